"""``webtensor.data``: an input pipeline with ``tf.data`` semantics, in plain Python.

    ds = (webtensor.data.Dataset.from_tensor_slices((x, y))
          .shuffle(1000, seed=0).batch(32).map(augment).prefetch(webtensor.data.AUTOTUNE))
    for xb, yb in ds: ...

Elements are Tensors, or tuples/dicts of Tensors (the structure given to ``from_tensor_slices``
or returned by ``map``). A dataset is a recipe: each iteration runs it again, so
``shuffle`` draws a new order per epoch and ``repeat`` re-iterates its input.

Batching is vectorised: while elements are still rows of the source (only ``shuffle``,
``repeat``, ``take`` and ``prefetch`` between ``from_tensor_slices`` and ``batch``), the
pipeline passes row indices and ``batch`` fetches each batch with one slice (contiguous rows)
or one ``gather`` per component. A ``map`` before ``batch`` runs per element and batches by
stacking; putting ``map`` after ``batch`` runs it once per batch, which is faster (the
tf.data performance guide gives the same advice).
"""
from __future__ import annotations

import itertools
import math
import random as _random

from .core import ops as F
from .core.dtypes import int32
from .creation import _global
from .tensor import Tensor, Variable, tensor
from .tree import flatten, unflatten

AUTOTUNE = -1                # accepted wherever tf.data accepts tf.data.AUTOTUNE
INFINITE_CARDINALITY = -1    # tf.data.INFINITE_CARDINALITY
UNKNOWN_CARDINALITY = -2     # tf.data.UNKNOWN_CARDINALITY


# ---- element structures: a tensor, or nested tuples/dicts of them ---------------------------------

def _as_tensor(x) -> Tensor:
    if isinstance(x, Variable):
        return x.read_value()  # a snapshot, as tf.data takes one
    return x if isinstance(x, Tensor) else tensor(x)


# ---- Dataset ---------------------------------------------------------------------------------

class Dataset:
    """A sequence of elements built by chaining transformations (``tf.data.Dataset``).

    Create one with :meth:`from_tensor_slices`. Iterating yields Tensors (or tuples/dicts of
    them); ``len(ds)`` and :meth:`cardinality` give the number of elements.
    """
    # While elements are still rows of a ``from_tensor_slices`` source, datasets pass row indices
    # (``_source`` is that source) and the rows are fetched at the end (or a batch at a time).
    _source: "_Slices | None" = None

    def _items(self):
        """Iterator over row indices (when ``_source`` is set) or elements."""
        raise NotImplementedError

    def cardinality(self) -> int:
        """The number of elements; ``INFINITE_CARDINALITY`` (-1) after ``repeat()``."""
        raise NotImplementedError

    def _row_batches(self):
        """``(source element, iterator of row-index lists)`` when each element of an iteration is the
        rows of a ``from_tensor_slices`` source at one list of indices (``batch`` over rows), so that
        a consumer holding the source (a distributed ``fit``'s replicas) can gather them itself;
        else None. Starts an iteration (a ``shuffle`` draws its order) as ``iter`` does."""
        return None

    def _skip_epochs(self, n: int) -> None:
        """Advance per-iteration randomness (``shuffle``'s epoch orders) as if ``n`` full iterations had
        run, so that ``fit`` resuming at epoch ``n`` (BackupAndRestore) sees the orders an uninterrupted
        run would."""
        inp = getattr(self, "_input", None)
        if inp is not None:
            inp._skip_epochs(n)

    def __iter__(self):
        src = self._source
        for item in self._items():
            yield src._row(item) if src is not None else item

    def __len__(self) -> int:
        n = self.cardinality()
        if n == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if n == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return n

    def as_numpy_iterator(self):
        """Iterate with numpy arrays in place of Tensors (same structures)."""
        for el in self:
            leaves: list = []
            struct = flatten(el, leaves, lists_are_leaves=True)
            yield unflatten(struct, iter([t.numpy() for t in leaves]))

    # ---- constructors ----
    @staticmethod
    def from_tensor_slices(tensors) -> "Dataset":
        """A dataset whose elements are the slices ``x[i]`` along the first axis.

        ``tensors`` is a Tensor, numpy array or (nested) list, or a tuple/dict (nested) of
        those; lists are data, not structure, as in tf.data. Every component must have rank
        >= 1 and the same first dimension.

        Args:
            tensors: the data (see above).
        Raises:
            ValueError: a rank-0 component, differing first dimensions, or no components.
        """
        leaves: list = []
        struct = flatten(tensors, leaves, lists_are_leaves=True)
        leaves = [_as_tensor(x) for x in leaves]
        if not leaves:
            raise ValueError("from_tensor_slices: needs at least one tensor")
        for t in leaves:
            if t.ndim == 0:
                raise ValueError(f"from_tensor_slices: components must have rank >= 1 to be sliced, "
                                 f"got a scalar of shape {t.shape}")
        sizes = {t.shape[0] for t in leaves}
        if len(sizes) > 1:
            raise ValueError("from_tensor_slices: all components must have the same size in their first "
                             f"dimension, got shapes {[t.shape for t in leaves]}")
        return _Slices(struct, leaves)

    # ---- transformations ----
    def shuffle(self, buffer_size: int, seed: int | None = None, reshuffle_each_iteration: bool = True) -> "Dataset":
        """Randomly shuffle with tf.data's buffer algorithm: fill a buffer with ``buffer_size``
        elements, then repeatedly emit a uniformly chosen one and put the next input element in
        its place. ``buffer_size >= len(ds)`` gives a uniform permutation.

        Randomness is Python's ``random.Random``: with a ``seed`` the sequence of epoch orders is
        the same every run (each iteration draws a new order unless ``reshuffle_each_iteration``
        is False); without one the seed comes from ``webtensor.random.set_seed``'s generator.

        Args:
            buffer_size: the number of elements held (>= 1).
            seed: an int, or None.
            reshuffle_each_iteration: draw a new order on every iteration.
        Raises:
            ValueError: ``buffer_size < 1``.
        """
        return _Shuffle(self, buffer_size, seed, reshuffle_each_iteration)

    def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        """Stack ``batch_size`` consecutive elements (each component gets a new leading axis).
        The last batch is smaller unless ``drop_remainder``, which drops it.

        Args:
            batch_size: elements per batch (>= 1).
            drop_remainder: drop a last, smaller batch.
        Raises:
            ValueError: ``batch_size < 1``; at iteration, elements of differing shapes.
        """
        return _Batch(self, batch_size, drop_remainder)

    def map(self, map_func, num_parallel_calls=None, deterministic=None) -> "Dataset":
        """Apply ``map_func`` to each element. A tuple element is passed as positional arguments,
        anything else (a Tensor, a dict) as one argument, as in tf.data. The function runs eagerly;
        non-Tensor leaves of its result are converted to Tensors and lists become tuples.
        ``num_parallel_calls``/``deterministic`` are accepted for compatibility and ignored (one
        thread; elements stay in order).

        Args:
            map_func: the function.
            num_parallel_calls: ignored.
            deterministic: ignored.
        """
        return _Map(self, map_func)

    def repeat(self, count: int | None = None) -> "Dataset":
        """Repeat the dataset (``tf.data.Dataset.repeat``).

        Args:
            count: the number of repetitions (``None`` or -1: forever).
        """
        return _Repeat(self, count)

    def take(self, count: int) -> "Dataset":
        """The first ``count`` elements (``tf.data.Dataset.take``).

        Args:
            count: how many (-1: all).
        """
        return _Take(self, count)

    def prefetch(self, buffer_size: int) -> "Dataset":
        """Accepted for tf.data compatibility; it changes nothing. tf.data prefetches on a
        background thread so input work overlaps device work; here input work is a few ops on
        the same devices, ops are dispatched from one thread, and Pyodide has no threads, so a
        buffer would only hold memory.

        Args:
            buffer_size: ignored (``webtensor.data.AUTOTUNE`` or any int)."""
        return _Passthrough(self, buffer_size)


class _Slices(Dataset):
    def __init__(self, struct, leaves: list[Tensor]):
        self._struct, self._leaves, self._n = struct, leaves, leaves[0].shape[0]
        self._source = self

    def _items(self):
        return iter(range(self._n))

    def cardinality(self):
        return self._n

    def _row(self, i: int):
        return unflatten(self._struct, iter([t[i] for t in self._leaves]))

    def _rows(self, idx: list[int]):
        """Rows ``idx`` stacked: one slice when they are consecutive, else one gather per component."""
        if idx == list(range(idx[0], idx[0] + len(idx))):
            parts = [t[idx[0]:idx[0] + len(idx)] for t in self._leaves]
        else:
            index = {}
            for t in self._leaves:
                if t.device not in index:
                    index[t.device] = tensor(idx, dtype=int32, device=t.device)
            parts = [F.gather(t, index[t.device]) for t in self._leaves]
        return unflatten(self._struct, iter(parts))


class _Unary(Dataset):
    """A transformation of one input."""

    def __init__(self, input_dataset: Dataset):
        self._input = input_dataset


class _Passthrough(_Unary):
    """``prefetch``: the input unchanged (see :meth:`Dataset.prefetch`)."""

    def __init__(self, input_dataset, buffer_size):
        super().__init__(input_dataset)
        self._source = input_dataset._source

    def _items(self):
        return self._input._items()

    def cardinality(self):
        return self._input.cardinality()


class _Shuffle(_Passthrough):
    def __init__(self, input_dataset, buffer_size, seed, reshuffle_each_iteration):
        if int(buffer_size) < 1:
            raise ValueError(f"shuffle: buffer_size must be >= 1, got {buffer_size}")
        super().__init__(input_dataset, buffer_size)
        if seed is None:
            seed = _global.getrandbits(64)
        self._buffer_size, self._seed, self._reshuffle = int(buffer_size), seed, reshuffle_each_iteration
        self._epoch_seeds = _random.Random(seed)  # one new seed per iteration when reshuffling

    def _skip_epochs(self, n: int) -> None:
        if self._reshuffle:
            for _ in range(n):
                self._epoch_seeds.getrandbits(64)
        super()._skip_epochs(n)

    def _items(self):
        rng = _random.Random(self._epoch_seeds.getrandbits(64) if self._reshuffle else self._seed)
        buf, size = [], self._buffer_size
        for x in self._input._items():
            if len(buf) < size:
                buf.append(x)
                continue
            i = rng.randrange(size)
            yield buf[i]
            buf[i] = x
        while buf:  # input exhausted: emit the rest in random order
            i = rng.randrange(len(buf))
            buf[i], buf[-1] = buf[-1], buf[i]
            yield buf.pop()


class _Repeat(_Passthrough):
    def __init__(self, input_dataset, count):
        super().__init__(input_dataset, None)
        self._count = None if count is None or count == -1 else int(count)
        if self._count is not None and self._count < 0:
            raise ValueError(f"repeat: count must be >= -1 or None, got {count}")

    def _items(self):
        done = 0
        while self._count is None or done < self._count:
            empty = True
            for x in self._input._items():
                empty = False
                yield x
            if empty:  # repeating nothing forever is nothing
                return
            done += 1

    def cardinality(self):
        n = self._input.cardinality()
        if self._count is None:
            return 0 if n == 0 else INFINITE_CARDINALITY
        if self._count == 0:
            return 0
        return n if n < 0 else n * self._count


class _Take(_Passthrough):
    def __init__(self, input_dataset, count):
        super().__init__(input_dataset, None)
        if int(count) < -1:
            raise ValueError(f"take: count must be >= -1, got {count}")
        self._count = int(count)

    def _items(self):
        it = self._input._items()
        return it if self._count == -1 else itertools.islice(it, self._count)

    def cardinality(self):
        n = self._input.cardinality()
        if self._count == -1:
            return n
        if n == INFINITE_CARDINALITY:
            return self._count
        return n if n == UNKNOWN_CARDINALITY else min(n, self._count)


class _Map(_Unary):
    def __init__(self, input_dataset, fn):
        if not callable(fn):
            raise TypeError(f"map: map_func must be callable, got {type(fn).__name__}")
        super().__init__(input_dataset)
        self._fn = fn

    def _items(self):
        src = self._input._source
        for item in self._input._items():
            el = src._row(item) if src is not None else item
            out = self._fn(*el) if isinstance(el, tuple) else self._fn(el)
            if isinstance(out, list):   # a returned list is a tuple element, as in tf.data
                out = tuple(out)
            leaves: list = []
            struct = flatten(out, leaves, lists_are_leaves=False)
            yield unflatten(struct, iter([_as_tensor(t) for t in leaves]))

    def cardinality(self):
        return self._input.cardinality()


class _Batch(_Unary):
    def __init__(self, input_dataset, batch_size, drop_remainder):
        if int(batch_size) < 1:
            raise ValueError(f"batch: batch_size must be >= 1, got {batch_size}")
        super().__init__(input_dataset)
        self._size, self._drop = int(batch_size), drop_remainder

    def _items(self):
        src, it = self._input._source, self._input._items()
        while True:
            chunk = list(itertools.islice(it, self._size))
            if not chunk or (self._drop and len(chunk) < self._size):
                return
            yield src._rows(chunk) if src is not None else _stack(chunk)

    def cardinality(self):
        n = self._input.cardinality()
        if n < 0:
            return n
        return n // self._size if self._drop else math.ceil(n / self._size)

    def _row_batches(self):
        src = self._input._source
        if src is None:
            return None
        it = self._input._items()

        def chunks():
            while True:
                chunk = list(itertools.islice(it, self._size))
                if not chunk or (self._drop and len(chunk) < self._size):
                    return
                yield chunk
        return unflatten(src._struct, iter(src._leaves)), chunks()


def _stack(elements):
    """Stack a list of same-structure elements componentwise along a new first axis."""
    leaves0: list = []
    struct = flatten(elements[0], leaves0, lists_are_leaves=True)
    columns = [[t] for t in leaves0]
    for el in elements[1:]:
        leaves: list = []
        if flatten(el, leaves, lists_are_leaves=True) != struct:
            raise ValueError("batch: elements have different structures")
        for col, t in zip(columns, leaves):
            col.append(t)
    return unflatten(struct, iter([F.stack(col) for col in columns]))


__all__ = ["Dataset", "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY"]
