"""Keras layers: ``Dense``, ``Conv2D``, pooling, ``Flatten``, ``Dropout``, activations,
``Embedding``, ``LayerNormalization``, ``BatchNormalization``, ``InputLayer``.

Names, arguments and defaults follow Keras 3 (https://keras.io/api/layers/). Every layer is a
composition of core ops (``webtensor.core.ops``), so it traces, differentiates and runs on any
device. Shapes below include the batch dimension ``N``.
"""
from __future__ import annotations

from ..core import ops as F
from ..core.dtypes import int32
from ..core.shapes import normalize_pair
from ..tensor import Variable
from . import _random
from . import activations as activations_mod
from .layer import InputSpec, Layer


def _padding(padding, layer):
    p = str(padding).lower()
    if p not in ("valid", "same"):
        raise ValueError(f"{layer}: padding must be 'valid' or 'same', got {padding!r}")
    return p


def _data_format(data_format, layer):
    formats = {"channels_last": "NHWC", "channels_first": "NCHW"}
    if data_format not in formats:
        raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return formats[data_format]


class InputLayer(Layer):
    """Declares the input shape (without the batch dimension), so a ``Sequential`` model
    builds at once. Made by :func:`Input`; its call is the identity after a shape check.

    Args:
        shape: the input shape without the batch dimension (ints, None for any size).
        batch_size: a fixed batch size, or None.
        dtype: the input's dtype (default float32).
        name: the layer's name.
    """

    def __init__(self, shape, batch_size=None, dtype=None, name=None):
        super().__init__(name=name, dtype=dtype)
        self.shape = (batch_size,) + tuple(shape)
        self.input_spec = InputSpec(ndim=len(self.shape), axes={i: d for i, d in enumerate(self.shape)
                                                                if d is not None})
        self.built = True

    def call(self, inputs):
        return inputs


def Input(shape, batch_size=None, dtype=None, name=None):
    """``Input(shape=(64,))``: a model's input (``shape`` without the batch dimension), as a
    symbolic :class:`~webtensor.nn.functional.KerasTensor`: start a ``Sequential`` with it, or call
    layers on it and build ``Model(inputs, outputs)`` (Keras' functional API).

    Args:
        shape: the input shape without the batch dimension (a tuple of ints, None for any size).
        batch_size: a fixed batch size, or None.
        dtype: the input's dtype (default float32).
        name: the input's name (the key of a dict of inputs; default ``input_layer``, made unique).
    Returns:
        A KerasTensor.
    """
    from .functional import symbolic_input
    layer = InputLayer(shape, batch_size=batch_size, dtype=dtype, name=name)
    return symbolic_input(tuple(shape), batch_size=batch_size, dtype=layer.dtype, name=layer.name,
                          input_layer=layer)


class Lambda(Layer):
    """``Lambda(fn)``: a layer that computes ``fn(inputs)`` (no weights), as in Keras. Use it to
    apply any webtensor function inside a functional-API model:
    ``nn.Lambda(lambda t: webtensor.concat(t, axis=-1))([a, b])``.

    Args:
        function: ``inputs -> outputs``, made of webtensor ops.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        TypeError: ``function`` is not callable.
    """

    def __init__(self, function, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, got {type(function).__name__}")
        self.function = function

    def call(self, inputs):
        return self.function(inputs)


class Dense(Layer):
    """``activation(x @ kernel + bias)``. Input ``(N, ..., in)``, output ``(N, ..., units)``;
    ``kernel`` is ``(in, units)``, ``bias`` ``(units,)`` (``keras.layers.Dense``).

    Args:
        units: the output size, a positive int.
        activation: an activation name or callable (see :mod:`webtensor.nn.activations`); None: linear.
        use_bias: add ``bias``.
        kernel_initializer: the kernel's initializer (a name or callable).
        bias_initializer: the bias' initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``units`` not positive; (on build) an input of rank below 2.
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        self.units, self.use_bias = int(units), use_bias
        self.activation = activations_mod.get(activation)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Dense {self.name!r}: input must have rank >= 2 (N, ..., features), "
                             f"got shape {input_shape}")
        n_in = input_shape[-1]
        self.kernel = self.add_weight("kernel", (n_in, self.units), self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: n_in})

    def call(self, x):
        y = F.matmul(x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as Keras). Input ``(N, H, W, C)`` (channels_last) or
    ``(N, C, H, W)``; ``kernel`` ``(KH, KW, C, filters)``; output ``(N, OH, OW, filters)`` with
    ``OH = ceil(H / stride)`` for 'same' and ``floor((H - (KH-1)*dilation - 1) / stride) + 1``
    for 'valid' (``keras.layers.Conv2D``; :func:`webtensor.conv2d`).

    Args:
        filters: the number of output channels.
        kernel_size: the window, an int or pair ``(KH, KW)``.
        strides: the window step, an int or pair.
        padding: 'valid' or 'same' (any case).
        data_format: 'channels_last' or 'channels_first'.
        dilation_rate: the spacing of the window's taps, an int or pair.
        activation: an activation name or callable; None: linear.
        use_bias: add ``bias`` ``(filters,)``.
        kernel_initializer: the kernel's initializer (a name or callable).
        bias_initializer: the bias' initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: an unknown padding or data_format; (on call) non-positive sizes, or an input
            whose rank is not 4.
        TypeError: sizes that are not ints.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format="channels_last",
                 dilation_rate=1, activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), normalize_pair(kernel_size, "Conv2D kernel_size")
        self.strides, self.dilation_rate = normalize_pair(strides, "Conv2D strides"), normalize_pair(dilation_rate, "dilation_rate")
        self.padding = _padding(padding, "Conv2D")
        self.data_format = data_format
        self._nhwc = _data_format(data_format, "Conv2D")
        self.activation, self.use_bias = activations_mod.get(activation), use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Conv2D {self.name!r}: input must have rank 4, got shape {input_shape}")
        axis = -1 if self._nhwc == "NHWC" else 1
        c = input_shape[axis]
        self.kernel = self.add_weight("kernel", self.kernel_size + (c, self.filters), self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer) if self.use_bias else None
        self.input_spec = InputSpec(ndim=4, axes={axis: c})

    def call(self, x):
        y = F.conv2d(x, self.kernel, strides=self.strides, padding=self.padding, data_format=self._nhwc,
                     dilations=self.dilation_rate)
        if self.bias is not None:
            y = y + (self.bias if self._nhwc == "NHWC" else F.reshape(self.bias, (self.filters, 1, 1)))
        return self.activation(y)


class _Pool2D(Layer):
    _fn = None

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_pair(pool_size, f"{type(self).__name__} pool_size")
        self.strides = self.pool_size if strides is None else normalize_pair(strides, f"{type(self).__name__} strides")
        self.padding = _padding(padding, type(self).__name__)
        self.data_format = data_format
        self._nhwc = _data_format(data_format, type(self).__name__)
        self.input_spec = InputSpec(ndim=4)

    def call(self, x):
        return type(self)._fn(x, self.pool_size, self.strides, self.padding, self._nhwc)


class MaxPool2D(_Pool2D):
    """Max over ``pool_size`` windows (stride defaults to ``pool_size``). ``(N, H, W, C)`` ->
    ``(N, OH, OW, C)`` (``keras.layers.MaxPool2D``; :func:`webtensor.max_pool2d`).

    Args:
        pool_size: the window, a positive int or pair.
        strides: the window step, a positive int or pair; None: ``pool_size``.
        padding: 'valid' or 'same' (any case).
        data_format: 'channels_last' ``(N, H, W, C)`` or 'channels_first' ``(N, C, H, W)``.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: an unknown padding or data_format; (on call) non-positive sizes, or an input
            whose rank is not 4.
        TypeError: sizes that are not ints.
    """
    _fn = staticmethod(F.max_pool2d)


class AvgPool2D(_Pool2D):
    """Average over ``pool_size`` windows; with 'same' padding only real elements count
    (``keras.layers.AveragePooling2D``; :func:`webtensor.avg_pool2d`).

    Args:
        pool_size: the window, a positive int or pair.
        strides: the window step, a positive int or pair; None: ``pool_size``.
        padding: 'valid' or 'same' (any case).
        data_format: 'channels_last' ``(N, H, W, C)`` or 'channels_first' ``(N, C, H, W)``.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: an unknown padding or data_format; (on call) non-positive sizes, or an input
            whose rank is not 4.
        TypeError: sizes that are not ints.
    """
    _fn = staticmethod(F.avg_pool2d)


MaxPooling2D, AveragePooling2D = MaxPool2D, AvgPool2D


class GlobalAveragePooling2D(Layer):
    """Mean over the spatial axes: ``(N, H, W, C)`` -> ``(N, C)`` (``keras.layers.GlobalAveragePooling2D``).

    Args:
        data_format: 'channels_last' ``(N, H, W, C)`` or 'channels_first' ``(N, C, H, W)``.
        keepdims: keep the spatial axes with size 1.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: an unknown data_format.
    """

    def __init__(self, data_format="channels_last", keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self._axes = (1, 2) if _data_format(data_format, "GlobalAveragePooling2D") == "NHWC" else (2, 3)
        self.keepdims = keepdims
        self.input_spec = InputSpec(ndim=4)

    def call(self, x):
        return F.mean(x, axis=self._axes, keepdims=self.keepdims)


class Flatten(Layer):
    """``(N, d1, d2, ...)`` -> ``(N, d1 * d2 * ...)`` (row-major; ``keras.layers.Flatten``).

    Args:
        name: the layer's name.
        trainable: unused (the layer has no weights).
        dtype: unused.
        **kwargs: refused (TypeError naming them).
    Raises:
        ValueError: (on call) a scalar input.
    """

    def call(self, x):
        if x.ndim < 1:
            raise ValueError(f"Flatten {self.name!r}: input needs a batch dimension, got a scalar")
        return F.reshape(x, (x.shape[0], -1))


class Reshape(Layer):
    """``(N, ...)`` -> ``(N, *target_shape)`` (``keras.layers.Reshape``).

    Args:
        target_shape: the shape without the batch dimension; one entry may be -1.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: (on call) a size mismatch.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, x):
        return F.reshape(x, (x.shape[0],) + self.target_shape)


class Dropout(Layer):
    """With ``training=True``, zeroes each element with probability ``rate`` and scales the rest by
    ``1 / (1 - rate)`` (inverted dropout, Srivastava et al. 2014); the identity otherwise.

    The mask comes from an in-graph counter-based generator (:mod:`webtensor.nn._random`) keyed
    by ``seed`` (default: derived from the layer's seed) and a step counter that advances on
    every training call, so a traced training step draws a fresh mask every run, and two layers
    with the same ``seed`` draw the same sequence. ``noise_shape`` broadcasts the mask (None
    entries take the input's size).

    Args:
        rate: the fraction of elements to drop, in [0, 1].
        noise_shape: the mask's shape (None entries take the input's size); None: the input's shape.
        seed: an int; None: derived from the layer's seed.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``rate`` outside [0, 1].
    """

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1], got {rate!r}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def build(self, input_shape):
        # The counter is state but not a weight: it is not saved and never trained.
        self.__dict__["_counter"] = Variable(0, name=f"{self.name}/counter", trainable=False, dtype=int32)

    def call(self, x, training=False):
        if not training or self.rate == 0.0:
            return x
        if self.rate == 1.0:
            return x * 0.0
        shape = tuple(x.shape) if self.noise_shape is None else \
            tuple(x.shape[i] if d is None else int(d) for i, d in enumerate(self.noise_shape))
        u = _random.uniform(shape, self._counter, self.seed if self.seed is not None else self._seed)
        self._counter.assign_add(1)
        keep = F.cast(F.greater_equal(u, self.rate), x.dtype)
        return x * (keep * (1.0 / (1.0 - self.rate)))


class Activation(Layer):
    """Applies an activation by name (``'relu'``, ``'gelu'``, ``'softmax'``, ...) or callable
    (``keras.layers.Activation``).

    Args:
        activation: a name or callable (see :mod:`webtensor.nn.activations`); None: linear.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: an unknown name. TypeError: neither a name nor a callable.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations_mod.get(activation)

    def call(self, x):
        return self.activation(x)


class ReLU(Layer):
    """Keras ReLU: ``x`` for ``threshold <= x < max_value``, ``max_value`` above it,
    ``negative_slope * (x - threshold)`` below ``threshold``.

    Args:
        max_value: the saturation value (>= 0), or None: no saturation.
        negative_slope: the slope below ``threshold``.
        threshold: where the slope changes.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: a negative ``max_value``.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"ReLU: max_value must be >= 0, got {max_value}")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def call(self, x):
        if self.negative_slope == 0.0 and self.threshold == 0.0:
            y = F.relu(x)
        else:
            y = F.where(F.greater_equal(x, self.threshold), x, (x - self.threshold) * self.negative_slope)
        return y if self.max_value is None else F.minimum(y, float(self.max_value))


class Softmax(Layer):
    """Softmax along ``axis`` (numerically stable; ``keras.layers.Softmax``).

    Args:
        axis: the axis to normalise (an int).
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        TypeError/ValueError: (on call) an axis that is not an int, or out of range.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        return F.softmax(x, self.axis)


class Embedding(Layer):
    """Integer indices ``(N, ...)`` -> rows of ``embeddings`` ``(input_dim, output_dim)``:
    ``(N, ..., output_dim)``. Indices follow :func:`webtensor.gather`'s rule: in ``[-input_dim,
    input_dim)``, negative ones counting from the end; others raise IndexError eagerly and read
    zeros inside traced steps (``keras.layers.Embedding``).

    Args:
        input_dim: the vocabulary size.
        output_dim: the embedding size.
        embeddings_initializer: the table's initializer (Keras' default 'uniform': U(-0.05, 0.05)).
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer)

    def call(self, x):
        return F.gather(self.embeddings, F.cast(x, int32), axis=0)


def _norm_axes(axis, ndim, layer):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{layer}: axis {a} is out of range for inputs of rank {ndim}")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


class LayerNormalization(Layer):
    """Normalises over ``axis`` per example (Ba et al. 2016):
    ``(x - mean) / sqrt(var + epsilon) * gamma + beta``, with the biased variance
    (``keras.layers.LayerNormalization``).

    Args:
        axis: the axis or axes to normalise over (an int or a sequence of ints).
        epsilon: added to the variance.
        center: learn ``beta`` (an offset per normalised position).
        scale: learn ``gamma`` (a scale per normalised position).
        beta_initializer: ``beta``'s initializer.
        gamma_initializer: ``gamma``'s initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: (on build) an axis out of range.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.axis, self.epsilon, self.center, self.scale = axis, float(epsilon), center, scale
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer

    def build(self, input_shape):
        self._axes = _norm_axes(self.axis, len(input_shape), f"LayerNormalization {self.name!r}")
        pshape = tuple(input_shape[a] for a in self._axes)
        self._bshape = tuple(input_shape[i] if i in self._axes else 1 for i in range(len(input_shape)))
        self.gamma = self.add_weight("gamma", pshape, self.gamma_initializer) if self.scale else None
        self.beta = self.add_weight("beta", pshape, self.beta_initializer) if self.center else None
        self.input_spec = InputSpec(ndim=len(input_shape), axes={a: input_shape[a] for a in self._axes})

    def call(self, x):
        mean = F.mean(x, axis=self._axes, keepdims=True)
        d = x - mean
        y = d * F.rsqrt(F.mean(d * d, axis=self._axes, keepdims=True) + self.epsilon)
        if self.gamma is not None:
            y = y * F.reshape(self.gamma, self._bshape)
        if self.beta is not None:
            y = y + F.reshape(self.beta, self._bshape)
        return y


class BatchNormalization(Layer):
    """Batch normalisation (Ioffe & Szegedy 2015) over all axes but ``axis``.

    ``training=True``: normalise with the batch mean and (biased) variance and update
    ``moving_mean = moving_mean * momentum + mean * (1 - momentum)`` (same for the variance)
    with ``assign``, so the update happens inside a traced training step too.
    ``training=False`` (or ``trainable=False``): normalise with the moving statistics.

    Args:
        axis: the feature axis (an int): statistics are per index of this axis.
        momentum: the moving averages' decay.
        epsilon: added to the variance.
        center: learn ``beta``.
        scale: learn ``gamma``.
        beta_initializer: ``beta``'s initializer.
        gamma_initializer: ``gamma``'s initializer.
        moving_mean_initializer: the moving mean's initializer.
        moving_variance_initializer: the moving variance's initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: (on build) an axis out of range.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 **kwargs):
        super().__init__(**kwargs)
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self._inits = (gamma_initializer, beta_initializer, moving_mean_initializer, moving_variance_initializer)

    def build(self, input_shape):
        (a,) = _norm_axes(self.axis, len(input_shape), f"BatchNormalization {self.name!r}")
        c = input_shape[a]
        self._reduce = tuple(i for i in range(len(input_shape)) if i != a)
        self._bshape = tuple(c if i == a else 1 for i in range(len(input_shape)))
        g, b, mm, mv = self._inits
        self.gamma = self.add_weight("gamma", (c,), g) if self.scale else None
        self.beta = self.add_weight("beta", (c,), b) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", (c,), mm, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (c,), mv, trainable=False)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={a: c})

    def call(self, x, training=False):
        if training and self.trainable:
            mean = F.mean(x, axis=self._reduce, keepdims=True)
            var = F.mean(F.square(x - mean), axis=self._reduce, keepdims=True)
            m, c = self.momentum, tuple(self.moving_mean.shape)
            self.moving_mean.assign(self.moving_mean * m + F.reshape(F.stop_gradient(mean), c) * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + F.reshape(F.stop_gradient(var), c) * (1.0 - m))
        else:
            mean = F.reshape(self.moving_mean, self._bshape)
            var = F.reshape(self.moving_variance, self._bshape)
        y = (x - mean) * F.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * F.reshape(self.gamma, self._bshape)
        if self.beta is not None:
            y = y + F.reshape(self.beta, self._bshape)
        return y


__all__ = ["InputLayer", "Input", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "MaxPooling2D", "AveragePooling2D",
           "GlobalAveragePooling2D", "Flatten", "Reshape", "Dropout", "Activation", "ReLU", "Softmax", "Embedding",
           "LayerNormalization", "BatchNormalization", "Layer", "InputSpec"]
