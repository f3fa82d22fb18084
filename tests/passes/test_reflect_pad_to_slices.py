from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes.reflect_pad_to_slices import ReflectPadToSlices

I64 = np.int64


def padded(pads, mode="reflect", opset=13, dims="N, 3, H, W", axes=None):
    extra = ", , ax" if axes is not None else ""
    inits = {"p": np.array(pads, I64)}
    if axes is not None:
        inits["ax"] = np.array(axes, I64)
    return parse(f"""
        <ir_version: 8, opset_import: ["" : {opset}]>
        g (float[{dims}] x) => (float[N, ?, ?, ?] y) {{
            y = Pad <mode = "{mode}"> (x, p{extra})
        }}
    """, **inits)


SHAPES = [{"x": (1, 3, 6, 7)}, {"x": (2, 3, 4, 5)}]


@pytest.mark.parametrize("pads", [[0, 0, 1, 1, 0, 0, 1, 1], [0, 0, 2, 3, 0, 0, 3, 1], [0, 1, 0, 0, 0, 2, 0, 0]])
def test_reflect_pad_equals_slices(pads):
    result = check_exact(ReflectPadToSlices(), padded(pads), SHAPES, atol=0, rtol=0)
    assert result.counts == {"Pad": 1}
    assert "Pad" not in ops(result.model)


def test_opset18_axes_input():
    result = check_exact(ReflectPadToSlices(), padded([1, 2, 2, 1], opset=18, axes=[-1, 2]), SHAPES, atol=0, rtol=0)
    assert ops(result.model).count("Concat") == 2


def test_constant_pad_and_crop_are_not_touched():
    result = ReflectPadToSlices()(padded([0, 0, 1, 1, 0, 0, 1, 1], mode="constant"))
    assert not result.changed
    assert "1 × Pad nodes that are a Pad with mode=constant, not mode=reflect" in result.notes
    result = ReflectPadToSlices()(padded([0, 0, -1, 0, 0, 0, 1, 0]))
    assert not result.changed and any("negative pads" in n for n in result.notes)
