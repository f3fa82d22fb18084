from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes.fold_slice_into_conv import FoldSliceIntoConv

from surgery.errors import UsageError

I64 = np.int64
RNG = np.random.default_rng(3)


def sliced_conv(start, end, kernel=1, group=1, extra_out="", extra=""):
    w = RNG.standard_normal((5, (end - start) // group, kernel, kernel)).astype(np.float32)
    return parse(f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 8, H, W] x) => (float[N, 5, ?, ?] y{extra_out}) {{
            s = Slice (x, st, en, ax)
            y = Conv <group = {group}> (s, w, b)
            {extra}
        }}
    """, w=w, b=RNG.standard_normal(5).astype(np.float32), st=np.array([start], I64), en=np.array([end], I64),
        ax=np.array([1], I64))


SHAPES = [{"x": (1, 8, 4, 4)}, {"x": (3, 8, 6, 5)}]


@pytest.mark.parametrize(("start", "end", "kernel"), [(0, 4, 1), (4, 8, 1), (2, 6, 3)])
def test_channel_slice_folds_into_weights(start, end, kernel):
    result = check_exact(FoldSliceIntoConv(), sliced_conv(start, end, kernel), SHAPES, atol=1e-5)
    assert result.counts == {"Slice → Conv": 1}
    assert ops(result.model) == ["Conv"]


def test_slice_read_elsewhere_stays():
    m = sliced_conv(0, 4, extra_out=", float[N, 4, H, W] z", extra="z = Relu (s)")
    result = check_exact(FoldSliceIntoConv(), m, SHAPES, atol=1e-5)
    assert ops(result.model) == ["Slice", "Conv", "Relu"]


def test_reasons():
    result = FoldSliceIntoConv()(sliced_conv(0, 4, group=2))
    assert not result.changed and any("grouped" in n for n in result.notes)
    result = FoldSliceIntoConv(max_growth=1.5)(sliced_conv(0, 4))
    assert not result.changed and any("would grow 2.0x" in n for n in result.notes)
    with pytest.raises(UsageError):
        FoldSliceIntoConv(max_growth=0.5)
