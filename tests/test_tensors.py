from __future__ import annotations

import onnx
from tensor_models import SITES, everywhere, point_at

from surgery.tensors import data_nbytes, iter_tensors, proto_nbytes, skeleton, tensor_meta


def test_every_site_is_walked():
    wheres = [s.where for s in iter_tensors(everywhere())]
    for site in SITES:
        assert any(site in w for w in wheres), site
    assert len(wheres) == 9  # 5 dense tensors, and the values and indices of 2 sparse ones


def test_sizes_come_from_dims_and_the_external_table():
    model = everywhere(256)
    w = next(s.tensor for s in iter_tensors(model) if "initializer 'w'" in s.where)
    assert data_nbytes(w) == 256 * 4
    point_at(w, "weights.bin", 0, 1024)
    assert data_nbytes(w) == 1024 and not w.HasField("raw_data")


def test_size_without_serialising_matches_protobuf():
    model = everywhere(4096)
    exact = model.ByteSize()
    # a limit this low takes the skeleton path: data sizes from dims, the rest from a weightless copy
    estimate = proto_nbytes(model, limit=1024)
    assert abs(estimate - exact) < 64
    assert proto_nbytes(model, limit=2**40) == exact


def test_skeleton_replaces_tensors_and_leaves_the_model_alone():
    model = everywhere()
    before = model.SerializeToString()
    light = skeleton(model, lambda t: tensor_meta(t) if t.HasField("raw_data") else None)
    assert model.SerializeToString() == before
    kept = [s.tensor for s in iter_tensors(light)]
    assert len(kept) == len(list(iter_tensors(model)))
    assert not any(t.HasField("raw_data") for t in kept)
    assert isinstance(light, onnx.ModelProto) and light.graph.node[3].op_type == "If"


def test_the_fast_data_walk_sees_every_tensor_the_described_walk_sees():
    from surgery.tensors import total_data_nbytes

    model = everywhere(300)
    assert total_data_nbytes(model) == sum(data_nbytes(s.tensor) for s in iter_tensors(model)) > 4 * 300 * 4

