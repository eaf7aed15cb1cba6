"""Attention layers, as Keras 3: ``MultiHeadAttention`` (Vaswani et al. 2017, "Attention Is All
You Need", section 3.2) and ``Attention`` (Luong et al. 2015 dot-product attention; Bahdanau-style
``concat`` scores). Every formula is a composition of core ops, in one function each
(:func:`_attend`, ``Attention._scores``), so it traces, differentiates, exports and runs on any
device.

Masks follow Keras: True (or 1) means "may attend". A masked score gets ``-1e9`` added before the
softmax, and the probabilities are multiplied by the mask afterwards, so a query row with every
key masked gives zeros (keras.layers.Softmax).
"""
from __future__ import annotations

import math

from ..core import ops as F
from ..creation import arange
from ..core.dtypes import bool_
from ..tensor import init_scope
from .layer import Layer
from .layers import Dropout

_LARGE_NEGATIVE = -1e9     # keras.layers.Softmax's mask bias for float32


def _masked_softmax(scores, mask):
    """softmax(scores + (1 - mask) * -1e9) * mask along the last axis; ``mask`` (bool, broadcast
    to ``scores``) or None."""
    if mask is None:
        return F.softmax(scores, -1)
    m = F.cast(mask, scores.dtype)
    return F.softmax(scores + (1.0 - m) * _LARGE_NEGATIVE, -1) * m


def _causal_mask(t: int, s: int):
    """(1, T, S) bool: query ``i`` may attend to key ``j`` when ``i >= j`` (Keras' lower triangle)."""
    return F.reshape(F.greater_equal(F.reshape(arange(t), (t, 1)), F.reshape(arange(s), (1, s))), (1, t, s))


def _and(a, b):
    return b if a is None else a if b is None else F.logical_and(a, b)


def _bool(mask):
    return F.cast(mask, bool_)      # nonzero -> True; a bool tensor is returned as is


class _Projection(Layer):
    """Keras' ``EinsumDense`` as MultiHeadAttention uses it: contracts the last ``n_in`` axes of
    the input with the first ``n_in`` axes of ``kernel`` and adds ``bias`` (the kernel's other axes).
    Computed as one reshape + matmul."""

    def __init__(self, kernel_shape, n_in, use_bias, kernel_initializer, bias_initializer, **kwargs):
        super().__init__(**kwargs)
        self.kernel_shape, self.n_in, self.use_bias = tuple(kernel_shape), n_in, use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", self.kernel_shape, self.kernel_initializer)
        self.bias = self.add_weight("bias", self.kernel_shape[self.n_in:], self.bias_initializer) \
            if self.use_bias else None

    def call(self, x):
        k_in, k_out = self.kernel_shape[:self.n_in], self.kernel_shape[self.n_in:]
        lead = tuple(x.shape[:len(x.shape) - self.n_in])
        n_in, n_out = math.prod(k_in), math.prod(k_out)
        y = F.matmul(F.reshape(x, lead + (n_in,)), F.reshape(self.kernel, (n_in, n_out)))
        y = F.reshape(y, lead + k_out)
        return y + self.bias if self.bias is not None else y


def _attend(q, k, v, mask, dropout):
    """Scaled dot-product attention over heads (Vaswani et al. 2017, eq. 1), Keras' layout.

    q ``(B, T, H, Dk)`` (already scaled by ``1/sqrt(Dk)``), k ``(B, S, H, Dk)``, v ``(B, S, H, Dv)``,
    mask None or bool broadcasting to ``(B, H, T, S)``; ``dropout`` a function on the probabilities.
    Returns ``(out (B, T, H, Dv), probabilities (B, H, T, S))``: out = softmax(q k^T + mask) v.
    """
    qh, kh, vh = (F.transpose(t, (0, 2, 1, 3)) for t in (q, k, v))
    probs = _masked_softmax(F.matmul(qh, kh, transpose_b=True), mask)
    return F.transpose(F.matmul(dropout(probs), vh), (0, 2, 1, 3)), probs


class MultiHeadAttention(Layer):
    """Multi-head attention, as ``keras.layers.MultiHeadAttention`` (Keras 3 names, defaults and
    weights).

    Call: ``layer(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
    attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False)``
    with query ``(B, T, dim_q)``, value ``(B, S, dim_v)``, key ``(B, S, dim_k)`` (default: value);
    ``attention_mask`` bool ``(B, T, S)`` (True: attend); ``query_mask`` ``(B, T)``,
    ``value_mask``/``key_mask`` ``(B, S)``; ``use_causal_mask`` lets query ``i`` see keys ``<= i``.
    Returns ``(B, T, output_shape or dim_q)``, and the attention probabilities ``(B, H, T, S)``
    with ``return_attention_scores=True``.

    Weights (paths as Keras 3): ``query/kernel (dim_q, H, key_dim)``, ``query/bias (H, key_dim)``,
    ``key/kernel (dim_k, H, key_dim)``, ``value/kernel (dim_v, H, value_dim)``,
    ``attention_output/kernel (H, value_dim, out)``, ``attention_output/bias (out,)``. The query is
    scaled by ``1/sqrt(key_dim)`` before the dot product; ``dropout`` applies to the
    probabilities while training. Only rank-3 inputs (``attention_axes=None``) are supported.

    Args:
        num_heads: the number of heads ``H``, a positive int.
        key_dim: the size of each head for query and key, a positive int.
        value_dim: the size of each head for value, a positive int; None: ``key_dim``.
        dropout: the dropout rate of the attention probabilities, in [0, 1].
        use_bias: whether the four projections have biases.
        output_shape: the last size of the output, an int or a 1-tuple; None: ``dim_q``.
        attention_axes: None (or ``1``/``-2``: the same for rank-3 inputs); other axes are not
            supported.
        kernel_initializer: the projections' kernels' initializer (a name or callable).
        bias_initializer: the projections' biases' initializer.
        seed: None or an int, the dropout's seed.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: non-positive ``num_heads``/``key_dim``/``value_dim``, a dropout outside [0, 1],
            other ``attention_axes``; (on call) inputs not of rank 3, batch or sequence sizes that
            do not match, feature sizes other than those it was built for, an ``output_shape`` that
            is not an int or a 1-tuple.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, kernel_initializer="glorot_uniform", bias_initializer="zeros", seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        if int(num_heads) <= 0 or int(key_dim) <= 0 or (value_dim is not None and int(value_dim) <= 0):
            raise ValueError(f"MultiHeadAttention: num_heads, key_dim and value_dim must be positive, got "
                             f"{num_heads!r}, {key_dim!r}, {value_dim!r}")
        if attention_axes is not None and tuple(attention_axes if isinstance(attention_axes, (list, tuple))
                                                else (attention_axes,)) not in ((1,), (-2,)):
            raise ValueError(f"MultiHeadAttention: only attention_axes=None (rank-3 inputs) is supported, got "
                             f"{attention_axes!r}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1], got {dropout!r}")
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim) if value_dim is not None else self.key_dim
        self.dropout, self.use_bias, self.seed = float(dropout), bool(use_bias), seed
        self._output_dims = output_shape
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self._dropout_layer = Dropout(self.dropout, seed=seed)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self._output_dims, "attention_axes": None,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer,
                "seed": self.seed}

    def _projection(self, name, shape, n_in):
        return _Projection(shape, n_in, self.use_bias, self.kernel_initializer, self.bias_initializer, name=name,
                           dtype=self.dtype_policy)       # as Keras: the sublayers share the policy

    def _build_from(self, q_shape, v_shape, k_shape):
        h = self.num_heads
        out = self._output_dims
        out = (q_shape[-1],) if out is None else (int(out),) if isinstance(out, int) else tuple(out)
        if len(out) != 1:
            raise ValueError(f"MultiHeadAttention: output_shape must be an int or a 1-tuple, got {self._output_dims!r}")
        with init_scope():
            self.query_dense = self._projection("query", (q_shape[-1], h, self.key_dim), 1)
            self.key_dense = self._projection("key", (k_shape[-1], h, self.key_dim), 1)
            self.value_dense = self._projection("value", (v_shape[-1], h, self.value_dim), 1)
            self.output_dense = self._projection("attention_output", (h, self.value_dim) + out, 2)
            for layer in (self.query_dense, self.key_dense, self.value_dense, self.output_dense):
                layer.build(None)
                layer.built = True
        self._shapes = (q_shape[-1], v_shape[-1], k_shape[-1])

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=False, use_causal_mask=False):
        key = value if key is None else key
        for name, t in (("query", query), ("value", value), ("key", key)):
            if len(t.shape) != 3:
                raise ValueError(f"MultiHeadAttention {self.name!r}: {name} must have rank 3 (batch, sequence, "
                                 f"features), got shape {tuple(t.shape)}")
        if key.shape[1] != value.shape[1] or not query.shape[0] == key.shape[0] == value.shape[0]:
            raise ValueError(f"MultiHeadAttention {self.name!r}: query {tuple(query.shape)}, value "
                             f"{tuple(value.shape)} and key {tuple(key.shape)} must share the batch size, and key "
                             "and value the sequence length")
        shapes = (query.shape[-1], value.shape[-1], key.shape[-1])
        if not hasattr(self, "_shapes"):
            self._build_from(query.shape, value.shape, key.shape)
        elif shapes != self._shapes:
            raise ValueError(f"MultiHeadAttention {self.name!r}: built for (query, value, key) features "
                             f"{self._shapes}, got {shapes}")
        mask = self._mask(query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask)
        q = self.query_dense(query) * (1.0 / math.sqrt(self.key_dim))
        out, probs = _attend(q, self.key_dense(key), self.value_dense(value), mask,
                            lambda p: self._dropout_layer(p, training=training))
        out = self.output_dense(out)
        return (out, probs) if return_attention_scores else out

    def _mask(self, query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask):
        """Keras' ``_compute_attention_mask``: the AND of every mask given, as (B or 1, 1, T, S) bool."""
        m = None
        if query_mask is not None:
            m = F.expand_dims(_bool(query_mask), -1)          # (B, T, 1)
        for vm in (value_mask, key_mask):
            if vm is not None:
                m = _and(m, F.expand_dims(_bool(vm), -2))    # (B, 1, S)
        if use_causal_mask:
            m = _and(m, _causal_mask(query.shape[1], value.shape[1]))
        if attention_mask is not None:
            m = _and(_bool(attention_mask), m)
        if m is None:
            return None
        while len(m.shape) < 4:
            m = F.expand_dims(m, -3)                                          # the heads axis
        return m


class Attention(Layer):
    """Dot-product attention, as ``keras.layers.Attention`` (Luong et al. 2015).

    Call: ``layer([query, value], mask=None, training=None, return_attention_scores=False,
    use_causal_mask=False)`` or ``[query, value, key]`` (key defaults to value); query
    ``(B, T, dim)``, value/key ``(B, S, dim)``; ``mask=[query_mask (B, T), value_mask (B, S)]``
    (either may be None). Scores: ``score_mode='dot'``: ``q k^T`` (times the weight ``scale``, a
    scalar initialised to 1, when ``use_scale``); ``'concat'``: ``concat_score_weight *
    sum(tanh(scale * (q_i + k_j)))`` over features. Returns ``softmax(scores + mask) v``
    ``(B, T, dim)``, rows of masked queries zeroed, and the probabilities ``(B, T, S)`` with
    ``return_attention_scores=True``.

    Args:
        use_scale: a bool; True learns the scalar ``scale``.
        score_mode: 'dot' or 'concat'.
        dropout: the dropout rate of the attention probabilities, in [0, 1].
        seed: None or an int, the dropout's seed.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: a ``score_mode`` other than 'dot'/'concat', a dropout outside [0, 1]; (on call)
            inputs that are not a list of 2 or 3 rank-3 tensors, a mask that is not a list of 2.
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"Attention: score_mode must be 'dot' or 'concat', got {score_mode!r}")
        self.use_scale, self.score_mode, self.dropout, self.seed = bool(use_scale), score_mode, float(dropout), seed
        self._dropout_layer = Dropout(self.dropout, seed=seed)

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout, "seed": self.seed}

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (), "ones") if self.use_scale else None
        self.concat_score_weight = self.add_weight("concat_score_weight", (), "ones") \
            if self.score_mode == "concat" else None

    def _scores(self, q, k):
        """(B, T, S) scores (Keras' ``_calculate_scores``)."""
        if self.score_mode == "dot":
            s = F.matmul(q, k, transpose_b=True)
            return s * self.scale if self.scale is not None else s
        qk = F.expand_dims(q, -2) + F.expand_dims(k, -3)                     # (B, T, S, dim)
        if self.scale is not None:
            qk = qk * self.scale
        return self.concat_score_weight * F.sum(F.tanh(qk), axis=-1)

    def call(self, inputs, mask=None, training=False, return_attention_scores=False, use_causal_mask=False):
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError(f"Attention {self.name!r}: inputs must be a list [query, value] or [query, value, "
                             f"key], got {type(inputs).__name__}")
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) == 3 else v
        if any(len(t.shape) != 3 for t in (q, v, k)):
            raise ValueError(f"Attention {self.name!r}: query, value and key must have rank 3, got shapes "
                             f"{[tuple(t.shape) for t in (q, v, k)]}")
        if mask is not None and (not isinstance(mask, (list, tuple)) or len(mask) != 2):
            raise ValueError(f"Attention {self.name!r}: mask must be a list [query_mask, value_mask]")
        q_mask, v_mask = mask if mask is not None else (None, None)
        m = None if v_mask is None else F.expand_dims(_bool(v_mask), -2)     # (B, 1, S)
        if use_causal_mask:
            m = _and(m, _causal_mask(q.shape[1], v.shape[1]))
        probs = self._apply_mask(self._scores(q, k), m)
        out = F.matmul(self._dropout_layer(probs, training=training), v)
        if q_mask is not None:
            out = out * F.expand_dims(F.cast(_bool(q_mask), out.dtype), -1)
        return (out, probs) if return_attention_scores else out

    @staticmethod
    def _apply_mask(scores, mask):
        """Keras' ``_apply_scores``: ``softmax(scores - 1e9 * (1 - mask))``."""
        if mask is None:
            return F.softmax(scores, -1)
        return F.softmax(scores - 1e9 * F.cast(F.logical_not(mask), scores.dtype), -1)


__all__ = ["MultiHeadAttention", "Attention"]
