"""surgery eval: accuracy through a target, scoring NPU outputs, fidelity, the NPU-host plan, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from surgery.cli.main import main
from surgery.eval.datasets import open_dataset
from surgery.eval.generate import make_dataset


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def segmenter(path: Path, classes: int = 19, scale: float = 1.0, h: int = 16, w: int = 32) -> Path:
    """x[N,3,h,w] → 1×1 conv → logits[N,classes,h,w]."""
    weights = np.random.default_rng(0).standard_normal((classes, 3, 1, 1)).astype(np.float32) * scale
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["logits"])], "seg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes, h, w])],
        [numpy_helper.from_array(weights, "w")])
    return save(graph, path)


def classifier(path: Path) -> Path:
    weights = np.random.default_rng(1).standard_normal((3, 1000)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["class"])], "cls",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("class", TensorProto.FLOAT, ["N", 1000])],
        [numpy_helper.from_array(weights, "w")])
    return save(graph, path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaldata")
    return {"cityscapes": make_dataset("cityscapes", root / "cs", 3, size=(16, 32)).root,
            "imagenet": make_dataset("imagenet", root / "in", 3, size=(60, 80)).root}


def test_accuracy_on_a_target_prints_the_table_the_guide_figure_and_writes_the_record(data, tmp_path, capsys):
    model = segmenter(tmp_path / "seg.onnx")
    rc = surgery("eval", model, "--recipe", "icnet", "--data", data["cityscapes"], "--batch", 2)
    out = capsys.readouterr().out
    assert rc == 0
    assert out.strip().splitlines()[-1].startswith("PASSED | icnet on ort-cpu: mIoU_average ")
    assert "over 3 images (guide mode" in out and "beside the guide's published figures" in out
    assert "Evaluate: Average mIoU:" in out and "they are not accuracy" in out
    record = json.loads((tmp_path / "seg.eval.json").read_text())
    ev = record["eval"]
    assert record["command"] == "eval" and record["target"] == "ort-cpu" and record["input_model"]["digest"]
    assert ev["kind"] == "accuracy" and ev["recipe"] == "icnet" and ev["metric"] == "icnet_segmentation"
    assert ev["samples"] == 3 and ev["synthetic"] and ev["dataset"]["labels"] == "labelIds"
    assert ev["published"][0]["figures"] == {"310": 0.686, "310P": 0.689}
    assert len(ev["worst"]) == 3 and ev["source"] == {"target": "ort-cpu", "batch": 2}


def test_another_metric_of_the_task_and_the_upstream_geometry(data, tmp_path, capsys):
    model = segmenter(tmp_path / "seg.onnx")
    rc = surgery("eval", model, "--recipe", "icnet", "--data", data["cityscapes"], "--metric", "mmseg_segmentation",
                 "--json")
    ev = json.loads(capsys.readouterr().out)["eval"]
    assert rc == 0 and ev["metric"] == "mmseg_segmentation" and ev["primary"] == "mIoU"
    # upstream ICNet resizes the short side to its base size 1024: this 16x32 model cannot take it
    assert surgery("eval", model, "--recipe", "icnet", "--data", data["cityscapes"], "--mode", "upstream") == 2
    assert "does not run on x:1x3x1024x2048" in capsys.readouterr().err
    assert surgery("eval", model, "--recipe", "icnet", "--data", data["cityscapes"], "--metric", "topk") == 2
    assert "does not score a segmentation model" in capsys.readouterr().err


def test_classification_writes_the_guides_result_json(data, tmp_path, capsys):
    model = classifier(tmp_path / "cls.onnx")
    rc = surgery("eval", model, "--recipe", "cspresnext50", "--data", data["imagenet"], "--result-json",
                 tmp_path / "result.json")
    assert rc == 0 and "PASSED | cspresnext50 on ort-cpu: top1 " in capsys.readouterr().out
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["title"] == "Overall statistical evaluation" and doc["value"][0]["value"] == "3"


def perfect_outputs(folder: Path, dataset: Path) -> None:
    ds = open_dataset("cityscapes", dataset)
    folder.mkdir(parents=True)
    for s in ds.samples:
        label = np.minimum(ds.read_label(s), 18)
        np.eye(19, dtype=np.float32)[label].transpose(2, 0, 1)[None].tofile(folder / f"{s.id}_0.bin")


def test_outputs_from_an_npu_host_are_scored_without_the_model(data, tmp_path, capsys):
    perfect_outputs(tmp_path / "result" / "eval_bs1", data["cityscapes"])
    (tmp_path / "result" / "eval_bs1_summary.json").write_text("{}")
    rc = surgery("eval", "icnet", "--data", data["cityscapes"], "--outputs", tmp_path / "result",
                 "--record", tmp_path / "r.json")
    out = capsys.readouterr().out
    assert rc == 0 and "(guide mode, ais_bench layout)" in out
    ev = json.loads((tmp_path / "r.json").read_text())["eval"]
    assert ev["metrics"]["mIoU_nanmean"] == 1.0 and ev["metrics"]["pixAcc"] == 1.0
    assert ev["source"]["layout"] == "ais_bench" and ev["models"]["model"] == {"zoo": "icnet"}


def test_fidelity_of_a_model_with_itself_is_exactly_one(data, tmp_path, capsys):
    model = segmenter(tmp_path / "seg.onnx")
    rc = surgery("eval", model, model, "--task", "segmentation", "--generate", 3, "--input-shapes", "x:1x3x16x32",
                 "--json")
    ev = json.loads(capsys.readouterr().out)["eval"]
    assert rc == 0 and ev["kind"] == "fidelity" and ev["metrics"]["mIoU"] == 1.0
    assert ev["metrics"]["pixel_agreement"] == 1.0 and ev["metrics"]["max_abs"] == 0.0
    assert ev["dataset"]["generated"] == "cityscapes" and ev["samples"] == 3


def test_fidelity_on_a_labelled_dataset_scores_both_models(data, tmp_path, capsys):
    before = segmenter(tmp_path / "a.onnx")
    after = segmenter(tmp_path / "b.onnx", scale=1.0001)
    rc = surgery("eval", before, after, "--recipe", "icnet", "--data", data["cityscapes"])
    out = capsys.readouterr().out
    assert rc == 0 and "PASSED | mIoU vs before " in out and "worst 3 of 3 by mIoU" in out
    ev = json.loads((tmp_path / "b.fidelity.json").read_text())["eval"]
    assert ev["extra"]["accuracy"]["metric"] == "icnet_segmentation"
    assert set(ev["models"]) == {"before", "after"}


def test_dry_run_plans_the_npu_host_evaluation(capsys):
    rc = surgery("eval", "icnet", "--data", "/data/cityscapes", "--target", "ais-bench", "--dry-run", "--limit", 50)
    out = capsys.readouterr().out
    assert rc == 0
    assert ("surgery data prep icnet --data /data/cityscapes -o eval-icnet/prep_dataset --info "
            "eval-icnet/icnet_prep_bin.info --mode guide --limit 50") in out
    assert "surgery compile icnet --batch 1 -o eval-icnet" in out
    assert ("python3 -m ais_bench --model eval-icnet/icnet_bs1.om --input eval-icnet/prep_dataset --output "
            "eval-icnet/result --output_dirname eval_bs1 --outfmt BIN --batchsize 1") in out
    assert "surgery eval icnet --data /data/cityscapes --outputs eval-icnet/result/eval_bs1 --mode guide" in out
    assert "width/height 1024 2048" in out
    assert out.strip().splitlines()[-1].startswith("PASSED | dry run: ")


def test_dry_run_of_an_om_skips_the_compile_step(capsys):
    assert surgery("eval", "unet_bs4.om", "--recipe", "unetpp", "--data", "/d", "--target", "ais-bench",
                   "--dry-run", "--batch", 4, "--json") == 0
    steps = json.loads(capsys.readouterr().out)["plan"]["steps"]
    assert [s["info"]["kind"] for s in steps] == ["prep", "ais_bench", "score"]
    assert steps[1]["argv"][4] == "unet_bs4.om" and steps[2]["argv"][2] == "unetpp"


@pytest.mark.parametrize("argv, message", [
    (["seg.onnx", "--data", "cs"], "is not a zoo model: give --recipe NAME"),
    (["icnet", "--data", "empty"], "not a Cityscapes layout"),
    (["icnet", "--data", "nope"], "dataset folder not found: nope"),
    (["icnet", "--data", "cs", "--target", "ais-bench"], "target ais-bench runs on its own host: --dry-run"),
    (["icnet", "--data", "cs", "--target", "ort-gpu"], "unknown target 'ort-gpu'"),
    (["icnet", "--generate", "3"], "--generate measures fidelity: give MODEL and AFTER"),
    (["icnet"], "give --data DIR"),
    (["icnet", "--data", "cs", "--dry-run"], "give --target ais-bench"),
    (["icnet", "--data", "cs", "--recipe", "yolo"], "unknown recipe 'yolo'"),
    (["icnet", "--data", "cs", "--outputs", "empty"], "no output files"),
    (["icnet", "--data", "cs", "--workdir", "w"], "add --dry-run --target ais-bench"),
    (["icnet", "--data", "cs", "--result-json", "r.json"], "result.json; icnet is segmentation"),
])
def test_bad_input_is_one_line_exit_2(data, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    segmenter(tmp_path / "seg.onnx")
    (tmp_path / "cs").symlink_to(data["cityscapes"])
    assert surgery("eval", *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_a_model_that_does_not_fit_the_data_is_one_line(data, tmp_path, capsys):
    model = segmenter(tmp_path / "small.onnx", h=8, w=8)
    assert surgery("eval", model, "--recipe", "icnet", "--data", data["cityscapes"]) == 2
    err = capsys.readouterr().err
    assert "does not run on x:1x3x16x32" in err and err.count("\n") == 1
