from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from graph_builders import run
from int8_nets import conv_net, seg_net
from surgery.passes import PASSES, QuantizeInt8, make_pass

from surgery.calibration import Generated, write_bins
from surgery.errors import UsageError
from surgery.graph import opset_version
from surgery.parity import compare_arrays
from surgery.shapes import model_inputs

# The stated parity bound of a calibrated int8 model against float on held-out inputs
# (images it was not calibrated on): cosine >= 0.999 and max abs error <= 2% of the output's range.
COSINE_BOUND = 0.999
RANGE_FRACTION = 0.02


def copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def held_out(model: onnx.ModelProto, count: int = 16, seed: int = 1000) -> list[dict[str, np.ndarray]]:
    return list(Generated(seed=seed).feeds(model_inputs(model), {"x": (1, 3, 16, 16)}, count))


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


@pytest.fixture(scope="module")
def quantized() -> tuple[onnx.ModelProto, onnx.ModelProto, object]:
    before = conv_net()
    after = copy(before)
    result = QuantizeInt8(samples=8)(after)
    return before, after, result


def test_conv_net_becomes_qdq(quantized):
    _, after, result = quantized
    onnx.checker.check_model(after)
    assert opset_version(after) == 13  # per-channel DequantizeLinear needs its axis attribute
    ops = Counter(n.op_type for n in after.graph.node)
    assert ops["QuantizeLinear"] >= 4 and ops["DequantizeLinear"] >= 8
    made = producers(after)
    for node in after.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            # activation and weight both come through DequantizeLinear: onnxruntime runs this node in int8
            assert made[node.input[0]].op_type == "DequantizeLinear", node.name
            assert made[node.input[1]].op_type == "DequantizeLinear", node.name
    assert result.counts["int8 Conv"] == 3 and result.counts["int8 Gemm"] == 1
    weight_dq = made[next(n for n in after.graph.node if n.name == "conv_b").input[1]]
    scale = next(t for t in after.graph.initializer if t.name == weight_dq.input[1])
    assert list(scale.dims) == [8]  # per channel: one scale per output channel


def test_parity_within_the_stated_bound(quantized):
    before, after, _ = quantized
    feeds = held_out(before)
    expected = [run(before, f)["y"] for f in feeds]
    actual = [run(after, f)["y"] for f in feeds]
    diff = compare_arrays("y", expected, actual, 0.0, 0.0)
    span = max(float(np.ptp(e)) for e in expected)
    assert diff.cosine >= COSINE_BOUND
    assert diff.max_abs <= RANGE_FRACTION * span
    assert diff.max_abs > 0  # inexact: int8 really changed the numbers


def test_report_says_what_and_why(quantized):
    _, _, result = quantized
    text = "\n".join(result.notes)
    assert "opset raised 11 → 13" in text
    assert "quant_pre_process" in text
    assert "calibrated with minmax on 8 samples: generated inputs (x: imagenet" in text
    assert "int8: " in text
    assert "folded into the quantization ranges: Relu" in text


def test_exclusions_by_name_regex_and_op_type():
    model = conv_net()
    result = QuantizeInt8(samples=4, exclude_nodes=("conv_b", "nope"), exclude_ops=("Gemm",))(model)
    made = producers(model)
    node = {n.name: n for n in model.graph.node}
    assert made.get(node["conv_b"].input[1]) is None  # float weight: the initializer itself
    assert result.counts["int8 Conv"] == 2 and result.counts["float Conv"] == 1 and result.counts["float Gemm"] == 1
    text = "\n".join(result.notes)
    assert "float: Conv 1: excluded by name" in text and "conv_b" in text
    assert "float: Gemm 1: excluded by op type (exclude_ops)" in text
    assert "exclude_nodes names 'nope', which is not a node after preprocessing" in text
    result = QuantizeInt8(samples=4, exclude_regex="^conv_[ab]$")(conv_net())
    assert result.counts["int8 Conv"] == 1 and result.counts["float Conv"] == 2


def test_per_tensor_keeps_the_opset_and_op_types_restricts():
    model = conv_net()
    result = QuantizeInt8(samples=4, per_channel=False, op_types=("Conv",))(model)
    assert opset_version(model) == 11
    assert not any("opset raised" in n for n in result.notes)
    assert result.counts["int8 Conv"] == 3 and "int8 Gemm" not in result.counts
    assert any(n.startswith("float: ") and "Gemm 1" in n and "not among op_types" in n for n in result.notes)


def test_layers_and_keeping(quantized):
    _, after, _ = quantized
    p = QuantizeInt8(samples=8)
    assert p.layers(after) == ["conv_a", "conv_b", "conv_c", "fc"]
    variant = p.keeping(["conv_b"], cache_dir="/tmp/x")
    assert variant.exclude_nodes == ("conv_b",) and variant.cache_dir == "/tmp/x"
    assert variant.keeping(["conv_b", "fc"]).exclude_nodes == ("conv_b", "fc")


def test_cache_dir_reuses_preprocessing_and_calibration(tmp_path):
    first = QuantizeInt8(samples=4, cache_dir=str(tmp_path))(conv_net())
    assert not any("reused" in n for n in first.notes)
    a = conv_net()
    second = QuantizeInt8(samples=4, cache_dir=str(tmp_path), exclude_nodes=("fc",))(a)
    text = "\n".join(second.notes)
    assert "preprocessed model reused" in text and "calibration ranges reused" in text
    other = QuantizeInt8(samples=4, cache_dir=str(tmp_path), seed=7)(conv_net())
    assert not any("calibration ranges reused" in n for n in other.notes)  # another seed: other images, new ranges


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_other_calibration_methods(method):
    model = seg_net()
    before = copy(model)
    result = QuantizeInt8(samples=4, method=method)(model)
    assert f"calibrated with {method}" in "\n".join(result.notes)
    assert result.counts["int8 Conv"] == 2
    feed = held_out(before, 1)[0]
    assert compare_arrays("logits", [run(before, feed)["logits"]], [run(model, feed)["logits"]], 0, 0).cosine > 0.99


def test_calibration_from_a_folder_of_bins(tmp_path):
    model = conv_net()
    specs = model_inputs(model)
    feeds = list(Generated(seed=3).feeds(specs, {"x": (1, 3, 16, 16)}, 4))
    write_bins(feeds, tmp_path / "calib", specs)
    assert len(list((tmp_path / "calib").glob("*.bin"))) == 4
    result = QuantizeInt8(calib=str(tmp_path / "calib"), samples=4)(model)
    assert f"calibrated with minmax on 4 samples: arrays from {tmp_path / 'calib'}" in "\n".join(result.notes)
    assert result.counts["int8 Conv"] == 3


def test_calibration_folder_errors(tmp_path):
    with pytest.raises(UsageError, match="calibration folder not found"):
        QuantizeInt8(calib=str(tmp_path / "missing"))(conv_net())
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.bin").write_bytes(b"\0" * 12)
    with pytest.raises(UsageError, match=r"a\.bin holds 3 float32 values; input 'x' 1x3x16x16 needs 768"):
        QuantizeInt8(calib=str(tmp_path / "bad"))(conv_net())


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError, match="bad exclude_regex"):
        QuantizeInt8(exclude_regex="(")
    with pytest.raises(UsageError, match="op_types Foo cannot be quantized"):
        QuantizeInt8(op_types=("Foo",))
    with pytest.raises(UsageError, match="samples must be >= 1"):
        QuantizeInt8(samples=0)
    with pytest.raises(UsageError, match="not one of"):
        make_pass("quantize_int8", {"method": "kl"})
    with pytest.raises(UsageError, match="distribution= shapes generated inputs"):
        QuantizeInt8(calib="x", distribution="imagenet")


def test_registered_inexact_and_built_from_strings():
    assert PASSES["quantize_int8"] is QuantizeInt8 and not QuantizeInt8.exact
    p = make_pass("quantize_int8", {"method": "percentile", "per_channel": "false", "exclude_ops": "Resize,Add"})
    assert p.method == "percentile" and p.per_channel is False and p.exclude_ops == ("Resize", "Add")


def test_models_past_the_protobuf_limit_go_through_external_data(monkeypatch):
    """quantize_static wants paths: above 2 GB the temp files carry external data (here: a lowered threshold)."""
    import surgery.passes.quantize_int8 as module

    monkeypatch.setattr(module, "is_large", lambda model: True)
    model = conv_net()
    result = QuantizeInt8(samples=4)(model)
    assert result.counts["int8 Conv"] == 3
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)  # loaded back
    onnx.checker.check_model(model)


def test_a_second_run_changes_nothing(quantized):
    _, after, _ = quantized
    again = copy(after)
    result = QuantizeInt8(samples=4)(again)
    assert not result.changed and result.notes[0].startswith("already quantized (DequantizeLinear")
    assert again.SerializeToString() == after.SerializeToString()



def test_onnxruntimes_scratch_files_never_land_in_the_current_folder(tmp_path, monkeypatch):
    # on the UNet++ export, quant_pre_process's symbolic shape inference wrote sym_shape_infer_temp.onnx and
    # a <uuid>.data copy of the 36 MB of weights into the working folder, which is the user's
    pytest.importorskip("torch", reason="exports the zoo model")
    from surgery.cli.main import main

    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["apply", "unetpp", "--pass", "quantize_int8", "samples=2", "--no-verify",
                 "-o", str(tmp_path / "o.onnx")]) == 0
    assert sorted(p.name for p in here.iterdir()) == []
    assert (tmp_path / "o.onnx").is_file()
