"""Weight initializers (Keras names): ``initializer(shape, dtype=float32, seed=None) -> Tensor``.

Random initializers draw from :func:`webtensor.uniform` / :func:`webtensor.normal` /
:func:`webtensor.truncated_normal` (Python's Mersenne Twister, so a seed gives the same
weights on every device). The seed used is, in order: the initializer's own ``seed``; the
``seed`` argument (layers pass a seed derived from their own, see ``Layer``); else the
global generator (:func:`webtensor.set_seed`).

Fans follow Keras (``keras.initializers.VarianceScaling``): for a kernel of shape
``(..., fan_in, fan_out)`` with receptive field ``prod(shape[:-2])``, ``fan_in = shape[-2] *
receptive`` and ``fan_out = shape[-1] * receptive``; a 1-D shape has ``fan_in = fan_out =
shape[0]``.
"""
from __future__ import annotations

import math

from .. import creation
from ..core.dtypes import as_dtype, float32
from ..tensor import tensor
from ..util import require_numpy
from .._registry import Registry, exports

# Standard deviation of a unit normal truncated to [-2, 2]; VarianceScaling divides by it so
# the truncated samples keep the intended variance (Keras, initializers/random_initializers.py).
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape (see the module docstring; Keras' ``compute_fans``).

    Args:
        shape: a sequence of ints (a scalar shape gives ``(1, 1)``).
    Returns:
        ``(fan_in, fan_out)``, ints.
    """
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype=float32, seed=None) -> Tensor``,
    which returns a new tensor of ``shape`` and ``dtype`` (a DType or its name; TypeError for an
    unknown one) on the current device."""
    seed = None

    def _seed(self, seed):
        return self.seed if self.seed is not None else seed

    def get_config(self) -> dict:
        """The constructor's arguments as a dict (Keras' ``get_config``)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros (``keras.initializers.Zeros``)."""

    def __call__(self, shape, dtype=float32, seed=None):
        return creation.zeros(shape, dtype=as_dtype(dtype))


class Ones(Initializer):
    """All ones (``keras.initializers.Ones``)."""

    def __call__(self, shape, dtype=float32, seed=None):
        return creation.ones(shape, dtype=as_dtype(dtype))


class Constant(Initializer):
    """Every element ``value`` (``keras.initializers.Constant``).

    Args:
        value: a Python number (cast to the dtype asked for).
    """

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=float32, seed=None):
        return creation.full(shape, self.value, dtype=as_dtype(dtype))


class RandomUniform(Initializer):
    """Uniform in ``[minval, maxval)`` (``keras.initializers.RandomUniform``).

    Args:
        minval: the lower bound (included).
        maxval: the upper bound (excluded).
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    """

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=float32, seed=None):
        return creation.uniform(shape, self.minval, self.maxval, dtype=as_dtype(dtype), seed=self._seed(seed))


class RandomNormal(Initializer):
    """Normal ``N(mean, stddev^2)`` (``keras.initializers.RandomNormal``).

    Args:
        mean: the mean.
        stddev: the standard deviation.
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=float32, seed=None):
        return creation.normal(shape, self.mean, self.stddev, dtype=as_dtype(dtype), seed=self._seed(seed))


class TruncatedNormal(Initializer):
    """Normal ``N(mean, stddev^2)`` redrawn outside two standard deviations
    (``keras.initializers.TruncatedNormal``); the samples' standard deviation is about ``0.88 stddev``.

    Args:
        mean: the mean.
        stddev: the standard deviation before truncation.
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=float32, seed=None):
        return creation.truncated_normal(shape, self.mean, self.stddev, dtype=as_dtype(dtype),
                                         seed=self._seed(seed))


class VarianceScaling(Initializer):
    """Samples with variance ``scale / n``, ``n`` = fan_in, fan_out or their average (``mode``);
    ``distribution`` 'truncated_normal', 'untruncated_normal' or 'uniform' (limit
    ``sqrt(3 * scale / n)``). The truncated normal's stddev is ``sqrt(scale / n) / 0.8796`` so the
    samples keep the variance ``scale / n``. Source: Keras ``VarianceScaling``; He et al. 2015,
    Glorot & Bengio 2010.

    Args:
        scale: the variance numerator.
        mode: 'fan_in', 'fan_out' or 'fan_avg'.
        distribution: 'truncated_normal', 'untruncated_normal' or 'uniform'.
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    Raises:
        ValueError: an unknown ``mode`` or ``distribution``.
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError("VarianceScaling: distribution must be 'truncated_normal', 'untruncated_normal' "
                             f"or 'uniform', got {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype=float32, seed=None):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, n)
        dtype, seed = as_dtype(dtype), self._seed(seed)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return creation.uniform(shape, -limit, limit, dtype=dtype, seed=seed)
        if self.distribution == "truncated_normal":
            return creation.truncated_normal(shape, 0.0, math.sqrt(var) / _TRUNC_STD, dtype=dtype, seed=seed)
        return creation.normal(shape, 0.0, math.sqrt(var), dtype=dtype, seed=seed)

    def get_config(self):
        """``scale``, ``mode``, ``distribution`` and ``seed`` (only ``seed`` for the named subclasses, as Keras 3)."""
        if type(self) is not VarianceScaling:     # GlorotUniform(seed), HeNormal(seed), ...: as Keras 3
            return {"seed": self.seed}
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


class GlorotUniform(VarianceScaling):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010;
    ``keras.initializers.GlorotUniform``).

    Args:
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    """

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(VarianceScaling):
    """Truncated normal with ``stddev = sqrt(2 / (fan_in + fan_out))`` after truncation (Glorot &
    Bengio 2010; ``keras.initializers.GlorotNormal``).

    Args:
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    """

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeNormal(VarianceScaling):
    """Truncated normal with ``stddev = sqrt(2 / fan_in)`` after truncation (He et al. 2015;
    ``keras.initializers.HeNormal``).

    Args:
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    """

    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


class HeUniform(VarianceScaling):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / fan_in)`` (He et al. 2015;
    ``keras.initializers.HeUniform``).

    Args:
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    """

    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "uniform", seed)


class LecunNormal(VarianceScaling):
    """Truncated normal with ``stddev = sqrt(1 / fan_in)`` after truncation (LeCun et al. 1998;
    ``keras.initializers.LecunNormal``).

    Args:
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    """

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)


class Orthogonal(Initializer):
    """A random orthogonal matrix times ``gain`` (Saxe et al. 2014; ``keras.initializers.Orthogonal``,
    the recurrent layers' ``recurrent_initializer``): for ``shape`` seen as ``(rows, cols)`` with
    ``rows = prod(shape[:-1])``, the Q factor of the QR decomposition of a ``(max, min)`` standard
    normal matrix, its columns' signs fixed by ``sign(diag(R))`` (so it is uniform over orthogonal
    matrices), transposed when ``rows < cols``: orthonormal rows or columns, whichever are fewer.

    Args:
        gain: a float multiplying the matrix.
        seed: an int making the values reproducible (it wins over the ``seed`` a layer passes);
            None: the layer's seed, else the global generator.
    Raises:
        ValueError: (on call) a shape of rank below 2. ImportError: (on call) numpy is missing (the QR
            decomposition runs in numpy, in float64).
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, dtype=float32, seed=None):
        shape = tuple(int(d) for d in shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape must have rank >= 2, got {shape}")
        np = require_numpy("the Orthogonal initializer")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = creation.normal((max(rows, cols), min(rows, cols)), seed=self._seed(seed)).numpy().astype(np.float64)
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return tensor((self.gain * q).reshape(shape), dtype=as_dtype(dtype))


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform, "uniform": RandomUniform,
    "random_normal": RandomNormal, "normal": RandomNormal, "truncated_normal": TruncatedNormal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_normal": HeNormal,
    "he_uniform": HeUniform, "lecun_normal": LecunNormal, "variance_scaling": VarianceScaling,
    "orthogonal": Orthogonal,
}


_REGISTRY = Registry("initializer", _BY_NAME, base=Initializer, snake=True)


def get(identifier) -> Initializer:
    """An initializer from a Keras name (``'glorot_uniform'``, ``'he_normal'``, ``'zeros'``, ...,
    or the class name), an ``Initializer`` instance or class, or any callable
    ``(shape, dtype) -> Tensor``.

    Args:
        identifier: a name, an ``Initializer`` instance or subclass, or a callable.
    Returns:
        The initializer.
    Raises:
        ValueError: an unknown name (the message lists the known ones). TypeError: anything else.
    """
    return _REGISTRY.get(identifier)


__all__, __dir__ = exports(globals())
