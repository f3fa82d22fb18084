"""output_dtype: a Cast at each float graph output (the ICNet guide's fp16 output); names kept, deviation small."""

from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse, run
from pass_checks import assert_idempotent, copy_of
from surgery.passes import OutputDtype

from surgery.apply import apply
from surgery.errors import UnknownNameError

MODEL = """
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 4] x) => (float[N, 4] logits, int64[N] label, float[N, 4] aux) {
        logits = Relu (x)
        label = ArgMax <axis = 1, keepdims = 0> (logits)
        aux = Neg (logits)
    }
"""


def test_float_outputs_become_fp16_under_their_names():
    model = parse(MODEL)
    before = copy_of(model)
    result = OutputDtype()(model)
    assert result.changed and result.counts == {"float32→float16": 2}
    assert [o.name for o in model.graph.output] == ["logits", "label", "aux"]
    assert any("output 'label' is int64, not floating point: left" in n for n in result.notes)
    x = {"x": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)}
    want, got = run(before, x), run(model, x)
    assert got["logits"].dtype == np.float16 and got["label"].dtype == np.int64
    np.testing.assert_array_equal(got["label"], want["label"])  # the ArgMax still reads the float32 tensor
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-3, atol=1e-4)
    assert_idempotent(OutputDtype(), model)


def test_selected_outputs_and_unknown_names():
    model = parse(MODEL)
    result = OutputDtype(outputs=("aux",), dtype="bfloat16")(model)
    assert result.counts == {"float32→bfloat16": 1}
    with pytest.raises(UnknownNameError, match="unknown graph output 'nope'"):
        OutputDtype(outputs=("nope",))(parse(MODEL))


def test_the_pipeline_reports_the_deviation_and_passes():
    result = apply(parse(MODEL), [OutputDtype()], samples=2)
    figures = result.steps[0].figures["parity"]
    assert 0 < figures["outputs"]["logits"]["max_abs"] < 1e-3  # fp16 rounding of values in [0, 1): reported
    assert figures["outputs"]["logits"]["cosine"] > 0.9999
    assert figures["outputs"]["label"]["max_abs"] == 0
