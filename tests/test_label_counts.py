"""``medseg.ops.counts.label_counts``: np.bincount's answer without its int64 copy."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.ops.counts import FEW_VALUES, label_counts


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
@pytest.mark.parametrize("top", [0, 1, 3, FEW_VALUES, FEW_VALUES + 1, 117])
def test_the_counts_are_bincounts(dtype, top):
    rng = np.random.default_rng(top)
    labels = rng.integers(0, top + 1, size=(17, 9, 5)).astype(dtype)
    for minlength in (0, 5, 200):
        expected = np.bincount(labels.ravel().astype(np.int64), minlength=minlength)
        got = label_counts(labels, minlength)
        assert got.dtype.kind == "i" and np.array_equal(got, expected)


def test_a_map_with_gaps_and_a_float_map():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0, 0, :2] = 5
    assert label_counts(labels).tolist() == [62, 0, 0, 0, 0, 2]
    with pytest.raises(TypeError, match="integer"):
        label_counts(labels.astype(np.float32))
    with pytest.raises(ValueError):
        label_counts(np.array([-1, 0, 2], dtype=np.int16))
