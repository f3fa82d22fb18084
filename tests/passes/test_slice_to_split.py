from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse
from pass_checks import check_exact, copy_of, ops
from surgery.passes.slice_to_split import SliceToSplit

I64 = np.int64


def halves(opset: int = 13, ends: tuple[int, int] = (4, 2**63 - 1), extra: str = "", starts=(0, 4)):
    return parse(f"""
        <ir_version: 8, opset_import: ["" : {opset}]>
        g (float[N, 3, 5, 5] x) => (float[N, 8, 5, 5] y, float[N, ?, 5, 5] b) {{
            c = Conv (x, w)
            a = Slice (c, s0, e0, ax)
            b = Slice (c, s1, e1, ax)
            r = Relu (b)
            y = Concat <axis = 1> (r, a)
            {extra}
        }}
    """, w=np.random.default_rng(0).standard_normal((8, 3, 1, 1)).astype(np.float32),
        s0=np.array([starts[0]], I64), e0=np.array([ends[0]], I64), s1=np.array([starts[1]], I64),
        e1=np.array([ends[1]], I64), ax=np.array([1], I64))


SHAPES = [{"x": (1, 3, 5, 5)}, {"x": (4, 3, 5, 5)}]


@pytest.mark.parametrize("opset", [11, 13])
def test_channel_halves_become_one_split(opset):
    result = check_exact(SliceToSplit(), halves(opset), SHAPES)
    assert result.counts == {"Slice": 2, "Split": 1}
    assert ops(result.model) == ["Conv", "Split", "Relu", "Concat"]
    assert list(result.model.graph.node[1].output) == ["a", "b"]  # graph output b keeps its name


def test_gap_and_overlap_are_refused():
    result = SliceToSplit()(halves(ends=(3, 2**63 - 1)))
    assert not result.changed and any("nothing takes [3, 4) of axis 1" in n for n in result.notes)
    result = SliceToSplit()(halves(starts=(0, 2)))
    assert not result.changed and any("overlap at 2" in n for n in result.notes)


def test_a_single_slice_is_left():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 8] x) => (float[2, 4] y) { y = Slice (x, s, e, a) }
    """, s=np.array([0], I64), e=np.array([4], I64), a=np.array([1], I64))
    result = SliceToSplit()(m)
    assert not result.changed and any("only one Slice" in n for n in result.notes)


@pytest.fixture(scope="module")
def cspresnext50(tmp_path_factory):
    pytest.importorskip("torch", reason="the zoo export needs torch")
    from surgery.models import export_model

    path = tmp_path_factory.mktemp("zoo") / "cspresnext50.onnx"
    export_model("cspresnext50", path, input_shapes={"image": (1, 3, 32, 32)}, batch="dynamic")
    return path


def test_fires_on_every_cspresnext50_stage_with_parity(cspresnext50):
    import onnx
    import onnxruntime as ort

    before = onnx.load(cspresnext50)
    result = SliceToSplit()(copy_of(before))
    assert result.counts == {"Slice": 8, "Split": 4}
    nodes = result.model.graph.node
    splits = [n.name for n in nodes if n.op_type == "Split"]
    assert sorted(name.split("/")[2] for name in splits) == [f"stages.{k}" for k in range(4)]
    # the split points came from Shape arithmetic (the batch is dynamic): folded, and that arithmetic is gone
    assert not {"Slice", "Shape", "Div"} & {n.op_type for n in nodes}
    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                for m in (before, result.model)]
    for batch in (1, 2):
        feed = {"image": np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)}
        want, got = (s.run(None, feed)[0] for s in sessions)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
