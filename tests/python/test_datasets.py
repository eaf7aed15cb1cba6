"""webtensor.datasets.digits: the packaged UCI 8x8 digits data."""

import array
import gzip
import importlib
from collections import Counter

import pytest

from webtensor.datasets import digits_arrays, load_digits_raw, split_indices

# The module; the attribute webtensor.datasets.digits is the digits() function.
digits_mod = importlib.import_module("webtensor.datasets.digits")


def test_raw_shape_and_values():
    pixels, labels = load_digits_raw()
    assert len(pixels) == 1797 * 64
    assert len(labels) == 1797
    assert min(pixels) == 0 and max(pixels) == 16
    hist = Counter(labels)
    assert sorted(hist) == list(range(10))
    assert all(170 <= c <= 190 for c in hist.values()), hist
    # the first image of scikit-learn's copy (a zero)
    assert labels[0] == 0
    assert list(pixels[:8]) == [0, 0, 5, 13, 9, 1, 0, 0]


def test_split_indices_sizes_disjoint_cover():
    train, test = split_indices(1797, 0.2, seed=0)
    assert len(test) == 359 and len(train) == 1438
    assert not set(train) & set(test)
    assert sorted(train + test) == list(range(1797))


def test_split_indices_deterministic():
    assert split_indices(100, 0.3, seed=7) == split_indices(100, 0.3, seed=7)
    assert split_indices(100, 0.3, seed=7) != split_indices(100, 0.3, seed=8)
    assert split_indices(10, 0.0)[1] == []
    assert split_indices(10, 1.0)[0] == []
    with pytest.raises(ValueError):
        split_indices(10, 1.5)


def test_digits_arrays():
    ((x_tr, y_tr), (x_te, y_te)), shapes = digits_arrays()
    assert shapes == {"x_train": (1438, 64), "y_train": (1438,),
                      "x_test": (359, 64), "y_test": (359,)}
    assert isinstance(x_tr, array.array) and x_tr.typecode == "f"
    assert isinstance(y_tr, array.array) and y_tr.typecode == "i"
    assert len(x_tr) == 1438 * 64 and len(x_te) == 359 * 64
    assert len(y_tr) == 1438 and len(y_te) == 359
    assert min(x_tr) == 0.0 and max(x_tr) == 1.0
    assert set(y_tr) | set(y_te) == set(range(10))
    # rows follow split_indices, values are pixel / 16
    pixels, labels = load_digits_raw()
    train_idx, test_idx = split_indices(1797, 0.2, 0)
    i = test_idx[5]
    assert list(x_te[5 * 64:6 * 64]) == [p / 16.0 for p in pixels[i * 64:(i + 1) * 64]]
    assert y_te[5] == labels[i]
    # deterministic, seed-dependent, normalize=False keeps counts
    assert digits_arrays(seed=0)[0][1][1] == y_te
    assert digits_arrays(seed=1)[0][1][1] != y_te
    ((x_raw, _), _), _ = digits_arrays(normalize=False)
    assert max(x_raw) == 16.0


def test_damaged_file_raises(monkeypatch):
    good = digits_mod._read_resource()
    raw = gzip.decompress(good)
    monkeypatch.setattr(digits_mod, "_read_resource", lambda: good[: len(good) // 2])
    with pytest.raises(ValueError, match="damaged"):
        load_digits_raw()
    monkeypatch.setattr(digits_mod, "_read_resource", lambda: gzip.compress(raw[:-10]))
    with pytest.raises(ValueError, match="damaged.*bytes"):
        load_digits_raw()
    monkeypatch.setattr(digits_mod, "_read_resource", lambda: b"not gzip at all")
    with pytest.raises(ValueError, match="damaged"):
        load_digits_raw()
    flipped = bytearray(raw)
    flipped[100] ^= 1
    monkeypatch.setattr(digits_mod, "_read_resource", lambda: gzip.compress(bytes(flipped)))
    with pytest.raises(ValueError, match="damaged"):
        load_digits_raw()
