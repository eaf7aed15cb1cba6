"""Small data sets shipped inside the package.

``digits()`` gives the UCI 8x8 handwritten digits as Tensors, split into train
and test; ``digits_arrays()`` gives the same data as plain ``array.array``
data (pure Python, no numpy needed). See :mod:`webtensor.datasets.digits` for
the layout, source and licence.
"""

from ..core.dtypes import float32, int32
from ..tensor import tensor
from .digits import IMAGE_SHAPE, digits_arrays, load_digits_raw, split_indices

__all__ = ["digits", "digits_arrays", "load_digits_raw", "split_indices"]


def digits(test_fraction: float = 0.2, seed: int = 0, device=None):
    """The digits data set as Tensors: ``((x_train, y_train), (x_test, y_test))``.

    * ``x_*``: float32 ``(n, 8, 8, 1)`` images (NHWC, one channel), pixel counts
      scaled to [0, 1] (``pixel / 16``);
    * ``y_*``: int32 ``(n,)`` labels 0..9.

    The split is deterministic for a given ``seed`` (default: 1,438 train and
    359 test images; see :func:`split_indices`). Tensors are made on ``device``
    (default: the current default device).

    Source: UCI ML repository, "Optical Recognition of Handwritten Digits",
    E. Alpaydin and C. Kaynak (1998), https://archive.ics.uci.edu/dataset/80,
    as shipped by scikit-learn. Licence: CC BY 4.0.

    Raises:
        ValueError: ``test_fraction`` outside [0, 1], or a damaged data file.
    """

    ((x_train, y_train), (x_test, y_test)), _ = digits_arrays(test_fraction, seed)

    def images(x):
        return tensor(x, dtype=float32, device=device).reshape((len(x) // 64,) + IMAGE_SHAPE + (1,))

    return ((images(x_train), tensor(y_train, dtype=int32, device=device)),
            (images(x_test), tensor(y_test, dtype=int32, device=device)))
