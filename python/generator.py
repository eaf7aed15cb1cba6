"""``webtensor.random.Generator``: TensorFlow's stateful random generator (``tf.random.Generator``).

Its state is two int32 Variables: a key (from the seed) and a counter that every draw advances, in
the graph when traced. Numbers are a counter-based hash (:mod:`webtensor._graph_random`) computed
with ordinary ops, so eager and traced calls, and every device, draw the same stream; a traced
function that draws from a generator draws new numbers on every call.
"""
from __future__ import annotations

import random as _random

from . import _graph_random
from .core import ops as F
from .core.dtypes import as_dtype, float32, int32
from .creation import gumbel_argmax
from .tensor import Variable, init_scope


class Generator:
    """A random number generator whose state is Variables (``tf.random.Generator``): draws advance
    it (inside ``webtensor.function`` too, as an update of the traced graph), so every call of a
    traced function draws new numbers, and a generator made with the same seed draws the same ones
    on every device, eagerly or traced. Make one with :meth:`from_seed`.

    Args:
        seed: an int (any size: it is hashed to the int32 key).
        device: the device of its state Variables (default: the current device).
    Raises:
        TypeError: a seed that is not an int.
    """

    def __init__(self, seed: int = 0, device=None):
        with init_scope():
            self._key = Variable(_key(seed), name="random_generator/key", trainable=False, dtype=int32,
                                 device=device)
            self.state = Variable(0, name="random_generator/counter", trainable=False, dtype=int32, device=device)

    @classmethod
    def from_seed(cls, seed: int, alg=None) -> "Generator":
        """A generator from an int seed (``tf.random.Generator.from_seed``).

        Args:
            seed: an int.
            alg: the algorithm; only None (webtensor's counter-based hash) is accepted.
        Returns:
            A Generator.
        Raises:
            ValueError: another ``alg``. TypeError: a seed that is not an int.
        """
        if alg is not None:
            raise ValueError(f"Generator.from_seed: only the default algorithm is available, got alg={alg!r}")
        return cls(seed)

    @classmethod
    def from_non_deterministic_state(cls) -> "Generator":
        """A generator seeded from the operating system's randomness (``os.urandom``).

        Returns:
            A Generator.
        """
        return cls(_random.SystemRandom().getrandbits(64))

    def reset_from_seed(self, seed: int) -> None:
        """Start this generator's stream again from ``seed`` (``tf.random.Generator.reset_from_seed``).

        Args:
            seed: an int.
        """
        self._key.assign(_key(seed))
        self.state.assign(0)

    def _uniforms(self, shape, n: int) -> list:
        now = self.state.read_value()
        self.state.assign_add(n)
        shape = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
        return [_graph_random.keyed_uniform(shape, now + k, self._key.read_value()) for k in range(n)]

    def uniform(self, shape, minval=0.0, maxval=None, dtype=float32):
        """Uniform samples in ``[minval, maxval)`` (``tf.random.Generator.uniform``).

        Args:
            shape: an int or a sequence of ints.
            minval: the lower bound (included).
            maxval: the upper bound (excluded); None: 1 (float dtypes only).
            dtype: float32, float16 or int32.
        Returns:
            A tensor of ``shape`` and ``dtype``.
        Raises:
            ValueError: an int dtype without ``maxval``.
        """
        dtype = as_dtype(dtype)
        if maxval is None:
            if not dtype.is_floating:
                raise ValueError("Generator.uniform: an integer dtype needs maxval")
            maxval = 1.0
        u = F.minimum(self._uniforms(shape, 1)[0], 1.0 - 2.0 ** -24)
        v = minval + (maxval - minval) * u
        return F.cast(v if dtype.is_floating else F.floor(v), dtype)

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=float32):
        """Normal samples N(mean, stddev^2) by the Box–Muller transform (``tf.random.Generator.normal``).

        Args:
            shape: an int or a sequence of ints.
            mean: the mean.
            stddev: the standard deviation.
            dtype: a float dtype.
        Returns:
            A tensor of ``shape`` and ``dtype``.
        """
        z = _graph_random.box_muller(self._uniforms(shape, 2))[0]
        return F.cast(mean + stddev * z, as_dtype(dtype))

    def truncated_normal(self, shape, mean=0.0, stddev=1.0, dtype=float32):
        """Normal samples within two standard deviations of the mean
        (``tf.random.Generator.truncated_normal``; :func:`webtensor._graph_random.first_within_two`).

        Args:
            shape: an int or a sequence of ints.
            mean: the mean.
            stddev: the standard deviation before truncation.
            dtype: a float dtype.
        Returns:
            A tensor of ``shape`` and ``dtype``.
        """
        zs = _graph_random.box_muller(self._uniforms(shape, _graph_random.TRUNCATION_CANDIDATES))
        return F.cast(mean + stddev * _graph_random.first_within_two(zs), as_dtype(dtype))


    def categorical(self, logits, num_samples: int, dtype=int32):
        """Class indices drawn from unnormalised log-probabilities by the Gumbel-max trick (as
        :func:`webtensor.random.categorical`).

        Args:
            logits: a float tensor ``[batch, num_classes]``.
            num_samples: an int >= 0.
            dtype: int32.
        Returns:
            An int32 tensor ``[batch, num_samples]``.
        Raises:
            ValueError: ``logits`` not of rank 2. TypeError: ``dtype`` not int32.
        """
        if len(logits.shape) != 2:
            raise ValueError(f"Generator.categorical: logits must be [batch, num_classes], got {tuple(logits.shape)}")
        if as_dtype(dtype) != int32:
            raise TypeError("Generator.categorical: dtype must be int32 (webtensor has no int64)")
        b, c = logits.shape
        u = F.maximum(F.minimum(self._uniforms((b, int(num_samples), c), 1)[0], 1.0 - 2.0 ** -24), 2.0 ** -24)
        return gumbel_argmax(logits, u)


def _key(seed) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"Generator: seed must be an int, got {type(seed).__name__}")
    return _graph_random._scramble(seed)
