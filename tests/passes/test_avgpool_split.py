"""avgpool_split: kernel == stride pools of area ≥ 255 become chains of smaller pools; ICNet's pyramid pools."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from graph_builders import parse
from pass_checks import assert_idempotent, check_exact, ops
from surgery.passes import AvgPoolSplit
from surgery.passes.avgpool_split import split_kernel

from surgery.errors import UsageError


def pools(*specs: tuple[list[int], list[int], str]) -> onnx.ModelProto:
    """x[N,2,32,64] → one AveragePool per spec (kernel, strides, extra attributes), each to its own output."""
    outs = ", ".join(f"float[N, 2, ?, ?] y{k}" for k in range(len(specs)))
    body = "\n".join(f"y{k} = AveragePool <kernel_shape = {k_}, strides = {s}{extra}> (x)"
                     for k, (k_, s, extra) in enumerate(specs))
    model = parse(f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2, 32, 64] x) => ({outs}) {{
            {body}
        }}
    """)
    for k, node in enumerate(model.graph.node):
        node.name = f"/ppm/AveragePool{'_' + str(k) if k else ''}"
    return model


def test_split_kernel_matches_auto_optimizers_documented_example():
    assert split_kernel([32, 64], 255) == [[8, 16], [4, 4]]
    assert split_kernel([16, 32], 255) == [[8, 16], [2, 2]]
    assert split_kernel([300], 255) == [[150], [2]]
    assert split_kernel([257, 1], 255) == []  # 257 is prime
    for kernel in ([32, 64], [16, 17], [5, 7, 9], [254, 2]):
        stages = split_kernel(kernel, 255)
        assert [int(np.prod(a)) for a in zip(*stages, strict=True)] == kernel
        assert all(np.prod(s) < 255 for s in stages)


def test_icnet_bins_1_and_2_split_exactly_and_bin_3_is_left_with_its_reason():
    model = pools(([32, 64], [32, 64], ""), ([16, 32], [16, 32], ""), ([12, 22], [10, 21], ""),
                  ([7, 14], [5, 10], ""))
    result = check_exact(AvgPoolSplit(), model, [{"x": (1, 2, 32, 64)}, {"x": (3, 2, 32, 64)}])
    assert result.counts == {"AveragePool": 2}
    assert ops(model).count("AveragePool") == 6
    assert "AveragePool /ppm/AveragePool_2: kernel 12x22 ≠ strides 10x21 (windows overlap or leave gaps)" in \
        result.notes
    kernels = [next(a.ints for a in n.attribute if a.name == "kernel_shape") for n in model.graph.node]
    assert [list(k) for k in kernels[:4]] == [[8, 16], [4, 4], [8, 16], [2, 2]]
    # fresh names: auto-optimizer named the stages {name}_{i} and collided with /ppm/AveragePool_1
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names) and "/ppm/AveragePool_1" not in names[:2]


def test_refusals_say_why():
    model = pools(([16, 16], [16, 16], ", pads = [1, 1, 1, 1]"), ([16, 16], [16, 16], ", ceil_mode = 1"),
                  ([8, 8], [8, 8], ""), ([257, 1], [257, 1], ""))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 514
    result = AvgPoolSplit()(model)
    assert not result.changed
    text = "\n".join(result.notes)
    assert "padded (pads [1, 1, 1, 1])" in text and "ceil_mode=1" in text
    assert "kernel 8x8 area 64 < 255" in text and "cannot be split" in text


def test_max_area_option_and_validation():
    model = pools(([8, 8], [8, 8], ""))
    result = check_exact(AvgPoolSplit(max_area=50), model, [{"x": (2, 2, 32, 64)}])
    assert result.counts == {"AveragePool": 1}
    with pytest.raises(UsageError, match="max_area must be >= 2"):
        AvgPoolSplit(max_area=1)


def test_pool_inside_an_if_branch_is_split():
    body = onnx.helper.make_graph(
        [onnx.helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[16, 32], strides=[16, 32], name="inner")],
        "then", [], [onnx.helper.make_tensor_value_info("p", onnx.TensorProto.FLOAT, None)])
    other = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["q"])], "else", [],
                                   [onnx.helper.make_tensor_value_info("q", onnx.TensorProto.FLOAT, None)])
    node = onnx.helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=other, name="branch")
    graph = onnx.helper.make_graph([node], "g", [
        onnx.helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, []),
        onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 32, 64])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    result = AvgPoolSplit()(model)
    assert result.counts == {"AveragePool": 1}
    then = next(a.g for a in model.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in then.node] == ["AveragePool", "AveragePool"]
    assert_idempotent(AvgPoolSplit(), model)


def test_no_pool():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu (x) }
    """)
    result = AvgPoolSplit()(model)
    assert not result.changed and result.notes == ["no AveragePool in the graph"]


# -- the zoo: ICNet's pyramid pooling at the guide's 1024×2048 input (a 32×64 map)


def _ppm_export(mode: str) -> onnx.ModelProto:
    """The zoo's PyramidPooling module alone, traced on ICNet's 1/32 map at 1024×2048 (fast: no backbone)."""
    torch = pytest.importorskip("torch", reason="exporting the zoo's pyramid pooling needs torch")
    import io
    import warnings

    from surgery.models.icnet import PyramidPooling

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(PyramidPooling(mode), (torch.randn(1, 8, 32, 64),), buffer, dynamo=False, opset_version=11,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return onnx.load_from_string(buffer.getvalue())


def test_icnet_guide_pyramid_pooling_splits_bins_1_and_2_not_3():
    # the whole network at 1024×2048 has the same four pools (benchmarks/scan_zoo.py scans it at that size)
    model = _ppm_export("ascend")
    result = check_exact(AvgPoolSplit(), model, [{"x": (1, 8, 32, 64)}, {"x": (2, 8, 32, 64)}])
    assert result.counts == {"AveragePool": 2}
    text = "\n".join(result.notes)
    assert "kernel 12x22 ≠ strides 10x21" in text  # bin 3: area 264, but its windows overlap
    assert "kernel 7x14 ≠ strides 5x10" in text  # bin 6
