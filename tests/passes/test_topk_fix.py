from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from graph_builders import parse, run
from onnx import TensorProto
from pass_checks import assert_idempotent, copy_of, ops
from surgery.passes.topk_fix import TopkFix


def topk(k_const: bool = True):
    k = "k" if k_const else "kk"
    text = f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 10] x{", int64[1] kk" if not k_const else ""}) => (float[N, 3] v, int64[N, 3] i) {{
            v, i = TopK <axis = 1> (x, {k})
        }}
    """
    return parse(text, **({"k": np.array([3], np.int64)} if k_const else {}))


def test_default_makes_k_int32_and_casts_indices_back():
    m = TopkFix()(topk()).model
    assert ops(m) == ["TopK", "Cast"]
    k = next(t for t in m.graph.initializer if t.name == m.graph.node[0].input[1])
    assert k.data_type == TensorProto.INT32 and [t.name for t in m.graph.initializer] == [k.name]
    assert m.graph.node[1].output[0] == "i"
    # the deviation: not standard ONNX any more, onnxruntime refuses it
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime raises its own exception types
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    assert_idempotent(TopkFix(), m)


def test_dynamic_k_gets_a_cast():
    m = TopkFix()(topk(k_const=False)).model
    assert ops(m) == ["Cast", "TopK", "Cast"]
    assert onnx.helper.get_attribute_value(m.graph.node[0].attribute[0]) == TensorProto.INT32


def test_standard_variant_is_identical_on_onnxruntime():
    before = topk()
    result = TopkFix(k_int32=False)(copy_of(before))
    assert result.counts == {"TopK indices Cast": 1}
    onnx.checker.check_model(result.model, full_check=True)
    feed = {"x": np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)}
    want, got = run(before, feed), run(result.model, feed)
    for name in want:
        np.testing.assert_array_equal(want[name], got[name])
    assert_idempotent(TopkFix(k_int32=False), result.model)


def test_opset9_topk_is_skipped():
    m = parse("""
        <ir_version: 7, opset_import: ["" : 9]>
        g (float[2, 10] x) => (float[2, 3] v, int64[2, 3] i) { v, i = TopK <k = 3> (x) }
    """)
    result = TopkFix()(m)
    assert not result.changed and any("K is an attribute" in n for n in result.notes)


def test_the_non_standard_default_is_applied_and_reported_unverified_naming_why(tmp_path):
    from surgery.cli.main import main

    onnx.save(topk(), tmp_path / "m.onnx")
    rc = main(["apply", str(tmp_path / "m.onnx"), "--pass", "topk_fix", "-o", str(tmp_path / "o.onnx"), "--json"])
    assert rc == 0
    import json

    record = json.loads((tmp_path / "o.json").read_text())
    assert record["verification"]["verified"] is False
    [step] = record["passes"]
    assert step["verification"]["status"] == "unverified" and not step["verification"]["compared"]
    assert step["verification"]["reasons"] == ["non-standard ONNX by design: TopK with an int32 K (what ATC wants; "
                                               "onnx and onnxruntime refuse it)"]
