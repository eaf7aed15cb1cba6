"""Small data sets shipped inside the package (pure Python, no numpy needed).

``digits_arrays()`` gives the UCI 8x8 handwritten digits as plain
``array.array`` data; see :mod:`webtensor.datasets.digits` for the layout,
source and licence.
"""

from .digits import digits_arrays, load_digits_raw, split_indices

__all__ = ["digits_arrays", "load_digits_raw", "split_indices"]
