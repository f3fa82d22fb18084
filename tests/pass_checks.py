"""What every accelerator-pass test checks: valid output, parity on several input shapes, idempotence."""

from __future__ import annotations

import numpy as np
import onnx
from graph_builders import run

from surgery.pass_infra import Pass, PassResult


def random_feed(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]], seed: int,
                int_range: tuple[int, int] = (-50, 50)) -> dict[str, np.ndarray]:
    """Seeded inputs of the given shapes, in each input's dtype (normal floats, uniform ints, random bools)."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feed = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        shape = shapes[vi.name]
        if np.issubdtype(dtype, np.floating):
            feed[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feed[vi.name] = rng.random(shape) > 0.5
        else:
            feed[vi.name] = rng.integers(*int_range, size=shape).astype(dtype)
    return feed


def copy_of(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def check_exact(p: Pass, model: onnx.ModelProto, shapes: list[dict[str, tuple[int, ...]]], *,
                atol: float = 1e-6, rtol: float = 1e-5, int_range: tuple[int, int] = (-50, 50)) -> PassResult:
    """Run ``p``; assert it changed a valid model, kept every output on each input shape, and is idempotent."""
    before = copy_of(model)
    result = p(model)
    assert result.changed, result.notes
    after = result.model
    onnx.checker.check_model(after)
    onnx.shape_inference.infer_shapes(after, check_type=True, strict_mode=True)
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    for k, shape in enumerate(shapes):
        feed = random_feed(before, shape, seed=k, int_range=int_range)
        want, got = run(before, feed), run(after, feed)
        for name, value in want.items():
            assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
            np.testing.assert_allclose(got[name], value, atol=atol, rtol=rtol, err_msg=f"{name} at {shape}")
    assert_idempotent(p, after)
    return result


def assert_idempotent(p: Pass, model: onnx.ModelProto) -> None:
    """A second run changes nothing: same bytes, ``changed`` false, no counts."""
    data = model.SerializeToString()
    again = p(copy_of(model))
    assert not again.changed and not again.counts, again.counts
    assert again.model.SerializeToString() == data


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]
