"""Comparisons (non-finite values, strings, bools), samples (distributions, integer ranges), row joins."""

from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse

from surgery.errors import UsageError
from surgery.parity import batch_axis, compare_arrays, integer_ranges, join_rows, random_feed, random_samples
from surgery.shapes import InputSpec

INF, NAN = np.inf, np.nan


def test_same_sign_infinities_and_nan_at_the_same_place_match():
    e = np.array([1.0, INF, -INF, NAN], np.float32)
    d = compare_arrays("y", [e], [e.copy()], 1e-5, 1e-5)
    assert d.passed and d.mismatches == 0 and d.nonfinite == 0 and d.max_abs == 0
    assert d.cosine == pytest.approx(1.0)


@pytest.mark.parametrize("actual", [[1.0, 5.0, -INF, NAN], [1.0, INF, INF, NAN], [1.0, INF, -INF, 0.0],
                                    [1.0, NAN, -INF, NAN]])
def test_a_non_finite_value_on_one_side_only_is_a_mismatch_named_as_such(actual):
    e = np.array([1.0, INF, -INF, NAN], np.float32)
    d = compare_arrays("y", [e], [np.array(actual, np.float32)], 1e-5, 1e-5)
    assert not d.passed and d.nonfinite == 1 and d.mismatches == 1
    assert d.note == "1 element non-finite on one side only"
    assert np.isfinite(d.max_abs)  # the finite elements' figures stay readable


def test_strings_and_bools_are_compared_by_equality():
    words = np.array(["cat", "dog"], dtype=object)
    same = compare_arrays("w", [words], [words.copy()], 0, 0)
    assert same.passed and same.cosine is None and same.note == "compared by equality"
    other = compare_arrays("w", [words], [np.array(["cat", "cow"], dtype=object)], 0, 0)
    assert not other.passed and other.mismatches == 1
    flags = compare_arrays("b", [np.array([True, False])], [np.array([True, True])], 1, 1)
    assert not flags.passed and flags.mismatches == 1  # a tolerance does not excuse a flipped bool


def test_shape_change_and_tolerances():
    assert compare_arrays("y", [np.zeros((1, 2))], [np.zeros((2, 1))], 1, 1).note == "shape [1, 2] became [2, 1]"
    d = compare_arrays("y", [np.array([1.0, 2.0])], [np.array([1.0, 2.1])], 1e-3, 1e-3)
    assert d.mismatches == 1 and d.max_abs == pytest.approx(0.1)
    assert compare_arrays("y", [np.array([1.0, 2.0])], [np.array([1.0, 2.1])], 0.2, 0).passed


def test_samples_rotate_through_distributions():
    spec = [InputSpec("x", (1, 3, 16, 16))]
    samples = random_samples(spec, {"x": (1, 3, 16, 16)}, count=3, seed=0)
    normal, uniform, image = (s.feed["x"] for s in samples)
    assert [s.info["distribution"] for s in samples] == ["normal", "uniform", "image"]
    assert normal.min() < -1 and normal.max() > 1
    assert uniform.min() >= 0 and uniform.max() < 1
    # ImageNet-normalised: red spans (0 - 0.485) / 0.229 .. (1 - 0.485) / 0.229
    assert -2.2 < image[0, 0].min() < 0 < image[0, 0].max() < 2.3 and image.dtype == np.float32
    with pytest.raises(UsageError, match="distribution must be one of"):
        random_feed(spec, {"x": (1, 3, 16, 16)}, 0, "laplace")


GATHER = """
<ir_version: 7, opset_import: ["" : 13]>
g (int64[4] ids, int32[2] hot) => (float[4, 8] y, float[2, 5] z) {
    i = Cast <to = 7> (ids)
    y = Gather (table, i)
    z = OneHot (hot, depth, values)
}
"""


def test_integer_inputs_stay_inside_the_ranges_the_graph_implies():
    model = parse(GATHER, table=np.ones((50, 8), np.float32), depth=np.array(5, np.int64),
                  values=np.array([0, 1], np.float32))
    ranges = integer_ranges(model)
    assert ranges == {"ids": (0, 50), "hot": (0, 5)}
    specs = [InputSpec("ids", (4000,), np.int64), InputSpec("hot", (2,), np.int32)]
    feed = random_feed(specs, {"ids": (4000,), "hot": (2,)}, 0, int_ranges=ranges)
    assert feed["ids"].max() > 30 and feed["ids"].max() < 50 and feed["ids"].dtype == np.int64


def test_rows_join_only_along_the_batch_axis_the_graph_names():
    row = np.arange(8.0).reshape(1, 8)
    assert join_rows([row, row + 1], (2, 8)).shape == (2, 8)
    # Reshape [1, -1] at batch 2 gives (1, 16); joining the rows on axis 1 would fit that shape, and hide it
    assert join_rows([row, row + 1], (1, 16)) is None
    assert join_rows([row, row + 1], (1, 16), axis=1) is not None
    assert join_rows([row, row], (1, 8)) is not None  # a batch-independent output
    assert join_rows([row, row + 1], (1, 8)) is None


def test_the_batch_axis_comes_from_the_graph():
    assert batch_axis(["batch", 4, 8], {"batch"}) == 0
    assert batch_axis([1, "batch", 8, 8], {"batch"}) == 1  # mmseg's unsqueeze(0) argmax
    assert batch_axis([1, 2, 8, 8], set(), before=[1, 1, 8, 8], sizes=(1, 2)) == 1
    assert batch_axis([1, 32], set(), before=[1, 16], sizes=(1, 2)) == 0
    assert batch_axis(None, {"batch"}) == 0
