"""Keras layers: ``Dense``, convolutions (``Conv1D``, ``Conv2D``, ``DepthwiseConv2D``,
``SeparableConv2D``, ``Conv2DTranspose``), pooling, reshaping (``Flatten``, ``Reshape``,
``UpSampling2D``, ``ZeroPadding2D``), merging (``Add``, ``Multiply``, ``Average``,
``Concatenate``), ``Dropout``, activations (``ReLU``, ``LeakyReLU``, ``PReLU``, ...),
``Embedding`` and ``Masking``, normalization and preprocessing (``LayerNormalization``, ``BatchNormalization``,
``Normalization``, ``Rescaling``), ``InputLayer``. The attention layers are in
:mod:`webtensor.nn.attention`.

Names, arguments and defaults follow Keras 3 (https://keras.io/api/layers/). Every layer is a
composition of core ops (``webtensor.core.ops``), so it traces, differentiates and runs on any
device. Shapes below include the batch dimension ``N``.
"""
from __future__ import annotations

from ..core import ops as F
from ..core.dtypes import int32
from ..core.shapes import normalize_pair
from ..tensor import Tensor, Variable, tensor
from . import _random
from . import activations as activations_mod
from .functional import symbolic_input
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

    supports_masking = True

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
    ``(N, C, H, W)``; ``kernel`` ``(KH, KW, C/groups, filters)``; output ``(N, OH, OW, filters)`` with
    ``OH = ceil(H / stride)`` for 'same' and ``floor((H - (KH-1)*dilation - 1) / stride) + 1``
    for 'valid' (``keras.layers.Conv2D``; :func:`webtensor.conv2d`).

    Args:
        filters: the number of output channels.
        kernel_size: the window, an int or pair ``(KH, KW)``.
        strides: the window step, an int or pair.
        padding: 'valid' or 'same' (any case).
        data_format: 'channels_last' or 'channels_first'.
        dilation_rate: the spacing of the window's taps, an int or pair.
        groups: split the channels into groups convolved separately (filters
            ``[g*filters/groups, (g+1)*filters/groups)`` see input channels of group ``g``).
        activation: an activation name or callable; None: linear.
        use_bias: add ``bias`` ``(filters,)``.
        kernel_initializer: the kernel's initializer (a name or callable).
        bias_initializer: the bias' initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: an unknown padding or data_format; (on call) non-positive sizes, an input whose
            rank is not 4, or channels ``groups`` does not divide.
        TypeError: sizes that are not ints.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format="channels_last",
                 dilation_rate=1, groups=1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)
        if self.groups <= 0 or int(filters) % self.groups:
            raise ValueError(f"Conv2D: groups must be a positive divisor of filters={filters}, got {groups!r}")
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
        if c % self.groups:
            raise ValueError(f"Conv2D {self.name!r}: input channels {c} are not divisible by groups={self.groups}")
        self.kernel = self.add_weight("kernel", self.kernel_size + (c // self.groups, self.filters),
                                      self.kernel_initializer)
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

    supports_masking = True

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

    supports_masking = True

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

    With ``mask_zero=True`` index 0 is padding: the output carries the mask ``indices != 0`` (bool,
    the indices' shape), which the next layers receive (recurrent layers skip the masked steps;
    see :meth:`~webtensor.nn.Layer.compute_mask`). Index 0 then cannot stand for a word, so
    ``input_dim`` should be the vocabulary size + 1, as Keras says.

    Args:
        input_dim: the vocabulary size.
        output_dim: the embedding size.
        embeddings_initializer: the table's initializer (Keras' default 'uniform': U(-0.05, 0.05)).
        mask_zero: a bool; True: index 0 is padding and the output carries a mask.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer="uniform", mask_zero: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer)

    def call(self, x):
        return F.gather(self.embeddings, F.cast(x, int32), axis=0)

    def compute_mask(self, inputs, previous_mask=None):
        """``inputs != 0`` (bool, the indices' shape) when ``mask_zero``, else None.

        Args:
            inputs: the indices.
            previous_mask: ignored (an Embedding starts a mask).
        """
        if not self.mask_zero:
            return None
        return F.not_equal(inputs if isinstance(inputs, Tensor) else tensor(inputs), 0)


class Masking(Layer):
    """Masks timesteps whose features all equal ``mask_value`` (``keras.layers.Masking``): input
    ``(N, T, ...)``; the output is the input with those timesteps zeroed, and carries the mask
    ``any(inputs != mask_value, axis=-1)`` (bool ``(N, T)``) for the layers after it (recurrent
    layers skip masked steps).

    Args:
        mask_value: the padding value (a float).
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    """
    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def compute_mask(self, inputs, previous_mask=None):
        """``any(inputs != mask_value, axis=-1)``.

        Args:
            inputs: the input tensor.
            previous_mask: ignored.
        """
        return F.reduce_any(F.not_equal(inputs, self.mask_value), axis=-1)

    def call(self, x):
        keep = F.cast(self.compute_mask(x), x.dtype)
        return x * F.expand_dims(keep, -1)


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


# ---- more convolutions (Keras 3 names, defaults and weights) ---------------------------------------

def _single(v, what):
    """An int or a 1-sequence of ints (Keras' Conv1D arguments) -> the int."""
    t = (v,) if isinstance(v, int) else tuple(v) if isinstance(v, (list, tuple)) else ()
    if len(t) != 1 or not isinstance(t[0], int) or isinstance(t[0], bool) or t[0] <= 0:
        raise ValueError(f"{what} must be a positive int or a 1-tuple, got {v!r}")
    return t[0]


def _positive(v, what):
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"{what} must be a positive integer, got {v!r}")
    return v


def _bias_activation(layer, y, channels_first):
    """``activation(y + bias)`` with the bias on the channel axis (last, or 1 when channels-first)."""
    if layer.bias is not None:
        y = y + (F.reshape(layer.bias, (-1,) + (1,) * (y.ndim - 2)) if channels_first else layer.bias)
    return layer.activation(y)


class Conv1D(Layer):
    """1-D convolution (Keras ``Conv1D``). Input ``(N, W, C)`` (channels_last) or ``(N, C, W)``;
    ``kernel`` ``(K, C/groups, filters)``, ``bias`` ``(filters,)``; output ``(N, OW, filters)``.
    ``OW`` as :func:`webtensor.conv1d` gives it; 'causal' padding pads ``(K-1)*dilation`` on the
    left only, so output ``t`` sees inputs ``<= t`` (WaveNet, van den Oord et al. 2016) and
    ``OW = ceil(W / stride)``.

    Args:
        filters: the number of output channels, a positive int.
        kernel_size: the window ``K``, a positive int or a 1-tuple.
        strides: the window step, a positive int or a 1-tuple.
        padding: 'valid', 'same' or 'causal' (any case).
        data_format: 'channels_last' or 'channels_first'; None: 'channels_last'.
        dilation_rate: the spacing of the window's taps, a positive int or a 1-tuple.
        groups: split the channels into groups convolved separately (as :class:`Conv2D`); must
            divide ``filters`` (and, on build, the input channels).
        activation: an activation name or callable; None: linear.
        use_bias: add ``bias`` ``(filters,)``.
        kernel_initializer: the kernel's initializer (a name or callable).
        bias_initializer: the bias' initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: non-positive or non-int sizes; an unknown padding or data_format; ``groups`` not
            dividing ``filters``; (on build) an input whose rank is not 3, or channels ``groups``
            does not divide.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive(filters, "Conv1D filters")
        self.kernel_size = _single(kernel_size, "Conv1D kernel_size")
        self.strides = _single(strides, "Conv1D strides")
        self.dilation_rate = _single(dilation_rate, "Conv1D dilation_rate")
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same", "causal"):
            raise ValueError(f"Conv1D: padding must be 'valid', 'same' or 'causal', got {padding!r}")
        self.data_format = data_format or "channels_last"
        self._channels_first = _data_format(self.data_format, "Conv1D") == "NCHW"
        self.groups = _positive(groups, "Conv1D groups")
        if self.filters % self.groups:
            raise ValueError(f"Conv1D: groups must be a positive divisor of filters={filters}, got {groups!r}")
        self.activation, self.use_bias = activations_mod.get(activation), use_bias
        self._activation_arg = activation
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": (self.kernel_size,),
                "strides": (self.strides,), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": (self.dilation_rate,), "groups": self.groups, "activation": self._activation_arg,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv1D {self.name!r}: input must have rank 3, got shape {input_shape}")
        axis = 1 if self._channels_first else -1
        c = input_shape[axis]
        if c % self.groups:
            raise ValueError(f"Conv1D {self.name!r}: input channels {c} are not divisible by groups={self.groups}")
        self.kernel = self.add_weight("kernel", (self.kernel_size, c // self.groups, self.filters),
                                      self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer) if self.use_bias else None
        self.input_spec = InputSpec(ndim=3, axes={axis: c})

    def call(self, x):
        padding = ((self.kernel_size - 1) * self.dilation_rate, 0) if self.padding == "causal" else self.padding
        y = F.conv1d(x, self.kernel, self.strides, padding, data_format="NCW" if self._channels_first else "NWC",
                     dilations=self.dilation_rate)
        return _bias_activation(self, y, self._channels_first)


class _Conv2DBase(Layer):
    """The arguments Keras' 2-D convolutions share: ``kernel_size``, ``strides``, ``padding``,
    ``data_format``, ``dilation_rate``, ``activation``, ``use_bias``, ``bias_initializer``."""

    def __init__(self, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, activation=None,
                 use_bias: bool = True, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        self.kernel_size = normalize_pair(kernel_size, f"{what} kernel_size")
        self.strides = normalize_pair(strides, f"{what} strides")
        self.dilation_rate = normalize_pair(dilation_rate, f"{what} dilation_rate")
        self.padding = _padding(padding, what)
        self.data_format = data_format or "channels_last"
        self._format = _data_format(self.data_format, what)
        self.activation, self._activation_arg, self.use_bias = activations_mod.get(activation), activation, use_bias
        self.bias_initializer = bias_initializer

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "activation": self._activation_arg, "use_bias": self.use_bias,
                "bias_initializer": self.bias_initializer}

    def _channels(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} {self.name!r}: input must have rank 4, got shape {input_shape}")
        axis = 1 if self._format == "NCHW" else -1
        self.input_spec = InputSpec(ndim=4, axes={axis: input_shape[axis]})
        return input_shape[axis]

    def _finish(self, y):
        return _bias_activation(self, y, self._format == "NCHW")


class DepthwiseConv2D(_Conv2DBase):
    """Depthwise 2-D convolution (Keras ``DepthwiseConv2D``): each input channel convolved with its
    own ``depth_multiplier`` filters. ``kernel`` ``(KH, KW, C, depth_multiplier)``, ``bias``
    ``(C * depth_multiplier,)``; output ``(N, OH, OW, C * depth_multiplier)`` (channels_last), channel
    ``c * depth_multiplier + m`` from input channel ``c``; ``OH``, ``OW`` as :class:`Conv2D`
    (:func:`webtensor.depthwise_conv2d`).

    Args:
        kernel_size: the window, an int or pair ``(KH, KW)``.
        strides: the window step, an int or pair.
        padding: 'valid' or 'same' (any case).
        depth_multiplier: the number of filters per input channel, a positive int.
        data_format: 'channels_last' or 'channels_first'; None: 'channels_last'.
        dilation_rate: the spacing of the window's taps, an int or pair.
        activation: an activation name or callable; None: linear.
        use_bias: add ``bias``.
        depthwise_initializer: the kernel's initializer (a name or callable).
        bias_initializer: the bias' initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: sizes that are not an int or a pair; a non-positive ``depth_multiplier``; an
            unknown padding or data_format; (on build) an input whose rank is not 4.
    """

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias: bool = True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         bias_initializer, **kwargs)
        self.depth_multiplier = _positive(depth_multiplier, "DepthwiseConv2D depth_multiplier")
        self.depthwise_initializer = depthwise_initializer

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": self.depthwise_initializer}

    def build(self, input_shape):
        c = self._channels(input_shape)
        self.kernel = self.add_weight("kernel", self.kernel_size + (c, self.depth_multiplier),
                                      self.depthwise_initializer)
        self.bias = self.add_weight("bias", (c * self.depth_multiplier,), self.bias_initializer) \
            if self.use_bias else None

    def call(self, x):
        return self._finish(F.depthwise_conv2d(x, self.kernel, self.strides, self.padding, data_format=self._format,
                                               dilations=self.dilation_rate))


class SeparableConv2D(_Conv2DBase):
    """Depthwise separable 2-D convolution (Keras ``SeparableConv2D``; Chollet 2017): a depthwise
    convolution (``depthwise_kernel`` ``(KH, KW, C, depth_multiplier)``) then a 1x1 convolution
    (``pointwise_kernel`` ``(1, 1, C * depth_multiplier, filters)``), then ``bias`` ``(filters,)``.
    Output ``(N, OH, OW, filters)`` (channels_last), ``OH``, ``OW`` as :class:`Conv2D`.

    Args:
        filters: the number of output channels, a positive int.
        kernel_size: the depthwise window, an int or pair ``(KH, KW)``.
        strides: the depthwise window's step, an int or pair.
        padding: 'valid' or 'same' (any case).
        data_format: 'channels_last' or 'channels_first'; None: 'channels_last'.
        dilation_rate: the spacing of the depthwise window's taps, an int or pair.
        depth_multiplier: the number of depthwise filters per input channel, a positive int.
        activation: an activation name or callable; None: linear.
        use_bias: add ``bias`` ``(filters,)``.
        depthwise_initializer: the depthwise kernel's initializer (a name or callable).
        pointwise_initializer: the pointwise kernel's initializer.
        bias_initializer: the bias' initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: sizes that are not an int or a pair; non-positive ``filters`` or
            ``depth_multiplier``; an unknown padding or data_format; (on build) an input whose rank
            is not 4.
    """

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias: bool = True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         bias_initializer, **kwargs)
        self.filters = _positive(filters, "SeparableConv2D filters")
        self.depth_multiplier = _positive(depth_multiplier, "SeparableConv2D depth_multiplier")
        self.depthwise_initializer, self.pointwise_initializer = depthwise_initializer, pointwise_initializer

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": self.depthwise_initializer,
                "pointwise_initializer": self.pointwise_initializer}

    def build(self, input_shape):
        c = self._channels(input_shape)
        self.depthwise_kernel = self.add_weight("depthwise_kernel", self.kernel_size + (c, self.depth_multiplier),
                                                self.depthwise_initializer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, c * self.depth_multiplier, self.filters),
                                                self.pointwise_initializer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer) if self.use_bias else None

    def call(self, x):
        y = F.depthwise_conv2d(x, self.depthwise_kernel, self.strides, self.padding, data_format=self._format,
                               dilations=self.dilation_rate)
        return self._finish(F.conv2d(y, self.pointwise_kernel, data_format=self._format))


def _deconv_output_length(n, k, padding, output_padding, stride, dilation):
    """Keras' ``deconv_output_length``: the output size of a transposed convolution."""
    k = k + (k - 1) * (dilation - 1)
    if output_padding is None:
        return n * stride + max(k - stride, 0) if padding == "valid" else n * stride
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * stride + k - 2 * pad + output_padding


class Conv2DTranspose(_Conv2DBase):
    """Transposed 2-D convolution (Keras ``Conv2DTranspose``; the gradient of Conv2D with respect
    to its input). ``kernel`` ``(KH, KW, filters, C)`` (output channels first, as Keras), ``bias``
    ``(filters,)``. Output height ``H * stride`` ('same') or ``H * stride + max(KH' - stride, 0)``
    ('valid', ``KH' = (KH - 1) * dilation + 1``); with ``output_padding`` ``(H - 1) * stride + KH'
    - 2 * pad + output_padding`` (``pad = KH' // 2`` for 'same'), as Keras' ``deconv_output_length``;
    output ``(N, OH, OW, filters)`` (channels_last) or ``(N, filters, OH, OW)``.

    Args:
        filters: the number of output channels, a positive int.
        kernel_size: the window, an int or pair ``(KH, KW)``.
        strides: the step, an int or pair.
        padding: 'valid' or 'same' (any case).
        output_padding: None, or an int or pair in ``[0, stride)``: extra rows/columns at the end.
        data_format: 'channels_last' or 'channels_first'; None: 'channels_last'.
        dilation_rate: the spacing of the window's taps, an int or pair.
        activation: an activation name or callable; None: linear.
        use_bias: add ``bias`` ``(filters,)``.
        kernel_initializer: the kernel's initializer (a name or callable).
        bias_initializer: the bias' initializer.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: sizes that are not an int or a pair; non-positive ``filters``; an
            ``output_padding`` outside ``[0, stride)``; an unknown padding or data_format; (on build)
            an input whose rank is not 4.
    """

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         bias_initializer, **kwargs)
        self.filters, self.kernel_initializer = _positive(filters, "Conv2DTranspose filters"), kernel_initializer
        self.output_padding = None if output_padding is None else \
            tuple(int(p) for p in ((output_padding,) * 2 if isinstance(output_padding, int) else output_padding))
        if self.output_padding is not None and (len(self.output_padding) != 2 or any(
                not 0 <= p < s for p, s in zip(self.output_padding, self.strides))):
            raise ValueError(f"Conv2DTranspose: output_padding must be two ints in [0, stride), got {output_padding!r}")

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "output_padding": self.output_padding,
                "kernel_initializer": self.kernel_initializer}

    def build(self, input_shape):
        c = self._channels(input_shape)
        self.kernel = self.add_weight("kernel", self.kernel_size + (self.filters, c), self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer) if self.use_bias else None

    def call(self, x):
        hw = x.shape[2:4] if self._format == "NCHW" else x.shape[1:3]
        op = self.output_padding or (None, None)
        oh, ow = (_deconv_output_length(n, k, self.padding, p, s, d) for n, k, p, s, d in
                  zip(hw, self.kernel_size, op, self.strides, self.dilation_rate))
        out = (x.shape[0], self.filters, oh, ow) if self._format == "NCHW" else (x.shape[0], oh, ow, self.filters)
        y = F.conv2d_transpose(x, self.kernel, out, self.strides, padding=self.padding, data_format=self._format,
                               dilations=self.dilation_rate)
        return self._finish(y)


# ---- reshaping --------------------------------------------------------------------------------

def _interpolation_matrix(n_in: int, n_out: int):
    """(n_out, n_in) rows of bilinear weights, half-pixel centres (tf.image.resize / jax.image.resize):
    source ``(o + 0.5) * n_in / n_out - 0.5``, clamped to the edge pixels."""
    rows = []
    for o in range(n_out):
        f = min(max((o + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
        lo = int(f)
        row = [0.0] * n_in
        row[lo] += 1.0 - (f - lo)
        row[min(lo + 1, n_in - 1)] += f - lo
        rows.append(row)
    return rows


def _upsample_2d(x, size, channels_first, interpolation):
    """Repeat rows and columns ``size`` times ('nearest'), or bilinear resizing (two constant matmuls)."""
    if channels_first:
        x = F.transpose(x, (0, 2, 3, 1))
    n, h, w, c = x.shape
    sh, sw = size
    if interpolation == "nearest":
        y = F.reshape(F.broadcast_to(F.reshape(x, (n, h, 1, w, 1, c)), (n, h, sh, w, sw, c)), (n, h * sh, w * sw, c))
    else:
        ah = tensor(_interpolation_matrix(h, h * sh), dtype=x.dtype).to(x.device)
        aw = tensor(_interpolation_matrix(w, w * sw), dtype=x.dtype).to(x.device)
        t = F.matmul(ah, F.reshape(x, (n, h, w * c)))                                  # (N, OH, W*C)
        t = F.transpose(F.reshape(t, (n, h * sh, w, c)), (0, 1, 3, 2))                  # (N, OH, C, W)
        y = F.transpose(F.matmul(t, aw, transpose_b=True), (0, 1, 3, 2))               # (N, OH, OW, C)
    return F.transpose(y, (0, 3, 1, 2)) if channels_first else y


class UpSampling2D(Layer):
    """Keras ``UpSampling2D``: ``(N, H, W, C)`` -> ``(N, H*sh, W*sw, C)``; 'nearest' repeats each
    pixel, 'bilinear' interpolates with half-pixel centres (as Keras' ``ops.image.resize``); the
    input's dtype (channels_first: ``(N, C, H, W)`` -> ``(N, C, H*sh, W*sw)``).

    Args:
        size: the factors ``(sh, sw)``, an int or a pair of ints.
        data_format: 'channels_last' or 'channels_first'; None: 'channels_last'.
        interpolation: 'nearest' or 'bilinear'.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``size`` not an int or a pair; an unknown data_format or interpolation; (on
            call) an input whose rank is not 4.
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_pair(size, "UpSampling2D size")
        self.data_format = data_format or "channels_last"
        self._channels_first = _data_format(self.data_format, "UpSampling2D") == "NCHW"
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"UpSampling2D: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
        self.interpolation = interpolation
        self.input_spec = InputSpec(ndim=4)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}

    def call(self, x):
        return _upsample_2d(x, self.size, self._channels_first, self.interpolation)


class ZeroPadding2D(Layer):
    """Keras ``ZeroPadding2D``: zeros around the spatial axes. ``padding``: an int (all sides), a
    pair ``(rows, cols)`` (symmetric) or ``((top, bottom), (left, right))``.
    ``(N, H, W, C)`` -> ``(N, H + top + bottom, W + left + right, C)`` (channels_first: the last two
    axes padded), the input's dtype.

    Args:
        padding: an int, a pair of ints or a pair of pairs of ints, all non-negative.
        data_format: 'channels_last' or 'channels_first'; None: 'channels_last'.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: a malformed or negative padding; an unknown data_format; (on call) an input
            whose rank is not 4.
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, int):
            pads = ((padding, padding), (padding, padding))
        elif len(padding) == 2 and all(isinstance(p, int) for p in padding):
            pads = ((padding[0], padding[0]), (padding[1], padding[1]))
        else:
            pads = tuple(tuple(p) for p in padding)
        if len(pads) != 2 or any(len(p) != 2 or not all(isinstance(a, int) and a >= 0 for a in p) for p in pads):
            raise ValueError(f"ZeroPadding2D: padding must be an int, (rows, cols) or ((top, bottom), (left, right)) "
                             f"of non-negative ints, got {padding!r}")
        self.padding = pads
        self.data_format = data_format or "channels_last"
        self._channels_first = _data_format(self.data_format, "ZeroPadding2D") == "NCHW"
        self.input_spec = InputSpec(ndim=4)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}

    def call(self, x):
        p = ((0, 0), (0, 0)) + self.padding if self._channels_first else ((0, 0),) + self.padding + ((0, 0),)
        return F.pad(x, p)


class GlobalMaxPooling2D(Layer):
    """Max over the spatial axes: ``(N, H, W, C)`` -> ``(N, C)`` (``(N, 1, 1, C)`` with keepdims)
    (``keras.layers.GlobalMaxPooling2D``).

    Args:
        data_format: 'channels_last' ``(N, H, W, C)`` or 'channels_first' ``(N, C, H, W)``; None:
            'channels_last'.
        keepdims: keep the spatial axes with size 1.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: an unknown data_format; (on call) an input whose rank is not 4.
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format, self.keepdims = data_format or "channels_last", bool(keepdims)
        self._axes = (1, 2) if _data_format(self.data_format, "GlobalMaxPooling2D") == "NHWC" else (2, 3)
        self.input_spec = InputSpec(ndim=4)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}

    def call(self, x):
        return F.max(x, axis=self._axes, keepdims=self.keepdims)


# ---- merging (called on a list of tensors) -----------------------------------------------------

class _Merge(Layer):
    """Merge layers take a list of at least one tensor (in the functional API, a list of
    KerasTensors) and combine them elementwise (broadcasting)."""

    def _inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError(f"{type(self).__name__} {self.name!r}: a merge layer must be called on a non-empty list "
                             f"of tensors, got {type(inputs).__name__}")
        return list(inputs)


class Add(_Merge):
    """Keras ``Add``: the elementwise sum of a list of tensors (broadcast together; the result has
    their broadcast shape and promoted dtype).

    Args:
        name: the layer's name (see :class:`~webtensor.nn.Layer`).
        trainable: unused (the layer has no weights); kept for Keras' signature.
        dtype: the layer's dtype (see :class:`~webtensor.nn.Layer`).
        **kwargs: refused (TypeError naming them).
    Raises:
        ValueError: (on call) an input that is not a non-empty list of tensors; shapes that do not
            broadcast.
    """

    def call(self, inputs):
        xs = self._inputs(inputs)
        y = xs[0]
        for x in xs[1:]:
            y = F.add(y, x)
        return y


class Multiply(_Merge):
    """Keras ``Multiply``: the elementwise product of a list of tensors (broadcast together; the
    result has their broadcast shape and promoted dtype).

    Args:
        name: the layer's name (see :class:`~webtensor.nn.Layer`).
        trainable: unused (the layer has no weights); kept for Keras' signature.
        dtype: the layer's dtype (see :class:`~webtensor.nn.Layer`).
        **kwargs: refused (TypeError naming them).
    Raises:
        ValueError: (on call) an input that is not a non-empty list of tensors; shapes that do not
            broadcast.
    """

    def call(self, inputs):
        xs = self._inputs(inputs)
        y = xs[0]
        for x in xs[1:]:
            y = F.mul(y, x)
        return y


class Average(_Merge):
    """Keras ``Average``: the elementwise mean of a list of tensors (broadcast together), their sum
    times ``1 / len(inputs)``.

    Args:
        name: the layer's name (see :class:`~webtensor.nn.Layer`).
        trainable: unused (the layer has no weights); kept for Keras' signature.
        dtype: the layer's dtype (see :class:`~webtensor.nn.Layer`).
        **kwargs: refused (TypeError naming them).
    Raises:
        ValueError: (on call) an input that is not a non-empty list of tensors; shapes that do not
            broadcast.
    """

    def call(self, inputs):
        xs = self._inputs(inputs)
        return Add.call(self, xs) * (1.0 / len(xs))


class Concatenate(_Merge):
    """Keras ``Concatenate``: a list of tensors joined along ``axis`` (:func:`webtensor.concat`: equal
    ranks and dtypes, equal sizes but along ``axis``).

    Args:
        axis: an int, the axis to join along; negative counts from the end.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: (on call) an input that is not a non-empty list of tensors; shapes that differ
            off ``axis``; ``axis`` out of range.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

    def call(self, inputs):
        return F.concat(self._inputs(inputs), axis=self.axis)


# ---- activations with state or arguments -------------------------------------------------------

def _leaky_relu(x, negative_slope):
    """``x`` where ``x >= 0``, ``negative_slope * x`` below (Maas et al. 2013)."""
    return F.where(F.greater_equal(x, 0.0), x, x * negative_slope)


class LeakyReLU(Layer):
    """Keras 3 ``LeakyReLU`` (Maas et al. 2013): ``x`` for ``x >= 0``, ``negative_slope * x``
    otherwise; the input's shape and dtype.

    Args:
        negative_slope: a number >= 0 (default 0.3, as Keras).
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``negative_slope`` None or negative.
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        if negative_slope is None or float(negative_slope) < 0:
            raise ValueError(f"LeakyReLU: negative_slope must be a number >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}

    def call(self, x):
        return _leaky_relu(x, self.negative_slope)


class PReLU(Layer):
    """Keras ``PReLU`` (He et al. 2015): ``relu(x) - alpha * relu(-x)`` with a learned ``alpha`` of the
    input's shape without the batch axis; ``shared_axes`` (1-based, batch excluded as in Keras)
    share one alpha along those axes. The input's shape and dtype.

    Args:
        alpha_initializer: ``alpha``'s initializer (a name or callable).
        shared_axes: None, an int or a sequence of ints (1-based axes of the input, batch excluded)
            along which ``alpha`` has size 1.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: (on build) a shared axis out of range.
    """

    def __init__(self, alpha_initializer="zeros", shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = alpha_initializer
        self.shared_axes = None if shared_axes is None else \
            tuple(int(a) for a in (shared_axes if isinstance(shared_axes, (list, tuple)) else (shared_axes,)))

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer,
                "shared_axes": self.shared_axes}

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for a in self.shared_axes or ():
            if not 1 <= a <= len(shape):
                raise ValueError(f"PReLU {self.name!r}: shared axis {a} is out of range for inputs of shape "
                                 f"{input_shape}")
            shape[a - 1] = 1
        self.alpha = self.add_weight("alpha", tuple(shape), self.alpha_initializer)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={i + 1: d for i, d in enumerate(shape) if d != 1})

    def call(self, x):
        return F.relu(x) - self.alpha * F.relu(-x)


# ---- preprocessing ------------------------------------------------------------------------------

class Rescaling(Layer):
    """Keras ``Rescaling``: ``x * scale + offset`` (``scale``/``offset``: numbers or per-channel
    sequences, broadcast against the input). The input is cast to the layer's dtype (default
    float32) first; the result has its shape (broadcast with ``scale``/``offset``) and that dtype.

    Args:
        scale: a number or a sequence of numbers (per channel).
        offset: a number or a sequence of numbers (per channel).
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}

    def call(self, x):
        x = F.cast(x, self.dtype)
        scale = self.scale if isinstance(self.scale, (int, float)) else F.cast(self.scale, self.dtype)
        offset = self.offset if isinstance(self.offset, (int, float)) else F.cast(self.offset, self.dtype)
        return x * scale + offset


class Normalization(Layer):
    """Keras ``Normalization``: ``(x - mean) / max(sqrt(variance), 1e-7)`` per index of ``axis``
    (``invert=True``: ``mean + x * max(sqrt(variance), 1e-7)``).

    ``mean``/``variance`` given: constants. Otherwise non-trainable weights ``mean`` (zeros) and
    ``variance`` (ones) of shape ``input_shape[axis]`` that :meth:`adapt` sets from data (the
    biased variance over every axis but ``axis``; ``axis=None``: one scalar statistic). The input
    is cast to the layer's dtype; the result has its shape. The 1e-7 floor is
    ``keras.config.epsilon()``.

    Args:
        axis: an int, a sequence of ints (the axes that keep their own statistics) or None.
        mean: None, or a number or array broadcastable to ``input_shape[axis]``.
        variance: None, or a number or array like ``mean``.
        invert: a bool; True applies the inverse transform.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: only one of ``mean`` and ``variance`` given; (on build) an axis out of range.
    """

    _EPSILON = 1e-7   # keras.config.epsilon()

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis if axis is None or isinstance(axis, int) else tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: pass both mean and variance, or neither (then call adapt())")
        self.input_mean, self.input_variance, self.invert = mean, variance, bool(invert)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "mean": self.input_mean,
                "variance": self.input_variance, "invert": self.invert}

    def _keep(self, ndim):
        if self.axis is None:
            return ()
        return _norm_axes(self.axis, ndim, f"Normalization {self.name!r}")

    def build(self, input_shape):
        keep = self._keep(len(input_shape))
        self._bshape = tuple(input_shape[i] if i in keep else 1 for i in range(len(input_shape)))
        self._reduce = tuple(i for i in range(len(input_shape)) if i not in keep)
        shape = tuple(input_shape[i] for i in keep)
        if self.input_mean is None:
            self.mean = self.add_weight("mean", shape, "zeros", trainable=False)
            self.variance = self.add_weight("variance", shape, "ones", trainable=False)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={i: input_shape[i] for i in keep})

    def _stats(self, x):
        """(mean, variance) shaped to broadcast against ``x``."""
        if self.input_mean is None:
            return F.reshape(self.mean, self._bshape), F.reshape(self.variance, self._bshape)
        keep_shape = tuple(d for i, d in enumerate(self._bshape) if i not in self._reduce)
        return tuple(F.reshape(F.broadcast_to(F.cast(v, x.dtype), keep_shape), self._bshape)
                     for v in (self.input_mean, self.input_variance))

    def call(self, x):
        x = F.cast(x, self.dtype)
        mean, var = self._stats(x)
        std = F.maximum(F.sqrt(var), self._EPSILON)
        return mean + x * std if self.invert else (x - mean) / std

    def adapt(self, data):
        """Set ``mean`` and ``variance`` from ``data`` (combined exactly over batches, Chan et al.
        1979's pairwise update); builds the layer on the first batch's shape.

        Args:
            data: an array-like or Tensor ``(N, ...)``, or an iterable of such batches.
        Raises:
            ValueError: the layer was given ``mean``/``variance``; no data; batches of other shapes.
        """
        if self.input_mean is not None:
            raise ValueError(f"Normalization {self.name!r}: adapt() needs a layer made without mean and variance")
        batches = [data] if isinstance(data, Tensor) or hasattr(data, "__array__") or (
            isinstance(data, (list, tuple)) and data and not hasattr(data[0], "__array__")
            and not isinstance(data[0], Tensor)) else data
        count = mean = m2 = None
        for b in batches:
            b = F.cast(b if isinstance(b, Tensor) else tensor(b), self.dtype)
            if not self.built:
                self._build_for_call(tuple(b.shape))
                self.built, self._build_shape = True, tuple(b.shape)
            problem = self.input_spec.problem(tuple(b.shape))
            if problem:
                raise ValueError(f"Normalization {self.name!r}: adapt() batch of shape {tuple(b.shape)}: {problem}")
            n = 1
            for i in self._reduce:
                n *= b.shape[i]
            if n == 0:
                continue
            bm = F.mean(b, axis=self._reduce, keepdims=True)
            bm2 = F.sum(F.square(b - bm), axis=self._reduce, keepdims=True)
            if count is None:
                count, mean, m2 = n, bm, bm2
            else:
                d, total = bm - mean, count + n
                mean = mean + d * (n / total)
                m2 = m2 + bm2 + F.square(d) * (count * n / total)
                count = total
        if count is None:
            raise ValueError(f"Normalization {self.name!r}: adapt() got no data")
        shape = tuple(self.mean.shape)
        self.mean.assign(F.reshape(mean, shape))
        self.variance.assign(F.reshape(m2 * (1.0 / count), shape))


__all__ = ["InputLayer", "Input", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "MaxPooling2D", "AveragePooling2D",
           "GlobalAveragePooling2D", "Flatten", "Reshape", "Dropout", "Activation", "ReLU", "Softmax", "Embedding",
           "LayerNormalization", "BatchNormalization", "Layer", "InputSpec", "Conv1D", "DepthwiseConv2D",
           "SeparableConv2D", "Conv2DTranspose", "UpSampling2D", "ZeroPadding2D", "GlobalMaxPooling2D", "Add",
           "Multiply", "Average", "Concatenate", "LeakyReLU", "PReLU", "Rescaling", "Normalization",
           "Masking"]
