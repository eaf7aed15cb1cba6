"""The UCI "Optical Recognition of Handwritten Digits" 8x8 data set.

Source: UCI Machine Learning Repository, E. Alpaydin and C. Kaynak (1998),
https://archive.ics.uci.edu/dataset/80 — licensed CC BY 4.0. The copy shipped
here is the one scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``):
1,797 images of 8x8 pixels, each pixel an integer count 0..16, labels 0..9.
See ``DIGITS_LICENSE.txt`` next to this file.

File layout of ``digits.bin.gz`` (gzip of raw bytes, no header)::

    1797 * 64 uint8   pixels, image-major, each image row-major (8 rows of 8)
    1797      uint8   labels 0..9, in the same order as the images

Everything here is pure Python (``gzip``, ``importlib.resources``, ``array``);
no numpy is needed, so it runs in Pyodide.
"""

from __future__ import annotations

import array
import gzip
import hashlib
import importlib.resources
import random

__all__ = [
    "NUM_SAMPLES",
    "NUM_FEATURES",
    "NUM_CLASSES",
    "IMAGE_SHAPE",
    "load_digits_raw",
    "split_indices",
    "digits_arrays",
]

NUM_SAMPLES = 1797
NUM_FEATURES = 64
NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8)
MAX_PIXEL = 16

_RESOURCE = "digits.bin.gz"
# SHA-256 of the uncompressed bytes (pixels then labels).
_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"


def _read_resource() -> bytes:
    """The compressed bytes of the packaged data file."""
    return importlib.resources.files(__package__).joinpath(_RESOURCE).read_bytes()


def load_digits_raw() -> tuple[bytes, bytes]:
    """Return ``(pixels, labels)`` as raw bytes.

    ``pixels`` has ``1797 * 64`` bytes (uint8 values 0..16, image-major, each
    image row-major 8x8); ``labels`` has ``1797`` bytes (uint8 values 0..9).

    Raises ``ValueError`` if the packaged file is damaged (not gzip, wrong
    size, wrong checksum or values out of range).
    """
    compressed = _read_resource()
    try:
        raw = gzip.decompress(compressed)
    except (OSError, EOFError, ValueError) as exc:  # BadGzipFile is an OSError
        raise ValueError(
            f"webtensor.datasets: {_RESOURCE} is damaged (cannot decompress: {exc})"
        ) from exc
    n_pixels = NUM_SAMPLES * NUM_FEATURES
    expected = n_pixels + NUM_SAMPLES
    if len(raw) != expected:
        raise ValueError(
            f"webtensor.datasets: {_RESOURCE} is damaged: expected {expected} bytes "
            f"({NUM_SAMPLES}x{NUM_FEATURES} pixels + {NUM_SAMPLES} labels) after "
            f"decompression, got {len(raw)}"
        )
    if hashlib.sha256(raw).hexdigest() != _SHA256:
        raise ValueError(
            f"webtensor.datasets: {_RESOURCE} is damaged: SHA-256 checksum mismatch"
        )
    pixels, labels = raw[:n_pixels], raw[n_pixels:]
    if max(pixels) > MAX_PIXEL or max(labels) >= NUM_CLASSES:
        raise ValueError(
            f"webtensor.datasets: {_RESOURCE} is damaged: values out of range"
        )
    return pixels, labels


def split_indices(
    n: int, test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Deterministically shuffle ``range(n)`` and split it into (train, test).

    The shuffle is ``random.Random(seed).shuffle`` (pure Python, identical on
    every platform for a given seed). The test part holds
    ``round(n * test_fraction)`` indices; both parts are returned as lists in
    shuffled order, are disjoint and together cover ``range(n)``. Not
    stratified.
    """
    if n < 0:
        raise ValueError(f"split_indices: n must be >= 0, got {n}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(
            f"split_indices: test_fraction must be in [0, 1], got {test_fraction}"
        )
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    n_test = int(round(n * test_fraction))
    return idx[n_test:], idx[:n_test]


def _gather(pixels: bytes, labels: bytes, indices, normalize: bool):
    x = array.array("f")
    if normalize:
        scale = 1.0 / MAX_PIXEL
        for i in indices:
            row = pixels[i * NUM_FEATURES:(i + 1) * NUM_FEATURES]
            x.extend([p * scale for p in row])
    else:
        for i in indices:
            x.extend(pixels[i * NUM_FEATURES:(i + 1) * NUM_FEATURES])
    y = array.array("i", [labels[i] for i in indices])
    return x, y


def digits_arrays(test_fraction: float = 0.2, seed: int = 0, normalize: bool = True):
    """The digits data set as plain Python arrays, split into train and test.

    Returns ``((x_train, y_train), (x_test, y_test)), shapes`` where

    * ``x_train``, ``x_test``: flat ``array.array('f')`` (float32), row-major
      with logical shape ``(n, 64)``; values are ``pixel / 16.0`` in [0, 1]
      when ``normalize`` is true, else the raw counts 0..16 as floats.
      Reshape to ``(n, 8, 8)`` for images.
    * ``y_train``, ``y_test``: ``array.array('i')`` (int32) of labels 0..9,
      logical shape ``(n,)``.
    * ``shapes``: ``{"x_train": (n_train, 64), "y_train": (n_train,),
      "x_test": (n_test, 64), "y_test": (n_test,)}``.

    The split is :func:`split_indices` over 1,797 samples (default: 1,438
    train, 359 test), deterministic for a given ``seed``.

    Source: UCI ML repository, "Optical Recognition of Handwritten Digits",
    E. Alpaydin and C. Kaynak (1998), https://archive.ics.uci.edu/dataset/80,
    as shipped by scikit-learn. Licence: CC BY 4.0.
    """
    pixels, labels = load_digits_raw()
    train_idx, test_idx = split_indices(NUM_SAMPLES, test_fraction, seed)
    x_train, y_train = _gather(pixels, labels, train_idx, normalize)
    x_test, y_test = _gather(pixels, labels, test_idx, normalize)
    shapes = {
        "x_train": (len(train_idx), NUM_FEATURES),
        "y_train": (len(train_idx),),
        "x_test": (len(test_idx), NUM_FEATURES),
        "y_test": (len(test_idx),),
    }
    return ((x_train, y_train), (x_test, y_test)), shapes
