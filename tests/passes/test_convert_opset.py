"""convert_opset: onnx's version converter as a pass; the pipeline verifies what it wrote."""

from __future__ import annotations

import pytest
from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes import ConvertOpset

from surgery.apply import apply
from surgery.errors import PassError, UsageError
from surgery.graph import opset_version

SPLIT_13 = """
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 6] x) => (float[N, 2] a, float[N, 4] b) {
        s = Constant <value = int64[2] {2, 4}> ()
        a, b = Split <axis = 1> (x, s)
    }
"""


def test_down_to_11_rewrites_split_and_keeps_outputs():
    model = parse(SPLIT_13)
    result = check_exact(ConvertOpset(), model, [{"x": (1, 6)}, {"x": (4, 6)}])
    assert opset_version(model) == 11
    assert result.counts == {"Split": 1}
    assert ops(model) == ["Split"] and len(model.graph.node[0].input) == 1  # split sizes became an attribute


def test_ops_without_a_downgrade_adapter_are_kept_when_they_fit_the_target():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 6] x) => (float[N, 6] y) {
            s = Constant <value = int64[2] {2, 4}> ()
            a, b = Split <axis = 1> (x, s)
            c = Concat <axis = 1> (b, a)
            y = Softmax <axis = 1> (c)
        }
    """)
    result = check_exact(ConvertOpset(), model, [{"x": (1, 6)}, {"x": (3, 6)}])
    assert opset_version(model) == 11 and ops(model) == ["Split", "Concat", "Softmax"]
    assert any(n.startswith("Concat: the converter has no adapter from 13; its nodes already fit opset 11")
               for n in result.notes)


def test_an_op_that_does_not_fit_the_target_is_refused_with_the_reason():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (bfloat16[N, 2] x) => (bfloat16[N, 4] y) { y = Concat <axis = 1> (x, x) }
    """)
    with pytest.raises(PassError, match=r"No Adapter From Version \$13 for Concat; its nodes cannot be kept as they "
                                        r"are: 'x' is tensor\(bfloat16\), which its opset-11 form does not take"):
        ConvertOpset()(model)
    assert opset_version(model) == 13 and model.graph.node[0].domain == ""  # left as it was


def test_up_is_a_version_change_only():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 11]>
        g (float[N, 3] x) => (float[N, 3] y) { y = Relu (x) }
    """)
    result = check_exact(ConvertOpset(target=17), model, [{"x": (2, 3)}])
    assert result.counts == {"opset": 1} and opset_version(model) == 17


def test_already_there_and_bad_targets():
    model = parse(SPLIT_13)
    result = ConvertOpset(target=13)(model)
    assert not result.changed and result.notes == ["the model is already at opset 13"]
    with pytest.raises(UsageError, match="target must be >= 7"):
        ConvertOpset(target=3)
    with pytest.raises(UsageError, match="target must be <="):
        ConvertOpset(target=99)


def test_a_model_the_converter_cannot_take_is_one_line():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[N, 4] x) => (float[N, 4] y) { y = Mish (x) }
    """)
    with pytest.raises(PassError, match="version converter cannot take opset 18 to 11") as info:
        ConvertOpset()(model)
    assert "\n" not in str(info.value)


def test_verified_in_the_pipeline():
    result = apply(parse(SPLIT_13), [ConvertOpset()], samples=2)
    step = result.steps[0]
    assert step.changed and step.figures["check"] == "ok" and step.figures["parity"]["passed"]
