"""Activation functions by Keras name: ``get('relu')(x)``, with Keras' arguments and defaults. Each
calls the core op of that name (``webtensor.relu6``, ``webtensor.elu``, ...), so it runs (and fuses)
on every device."""
from __future__ import annotations

from ..core import ops as F
from .._registry import Registry, exports


def linear(x):
    """The identity (``keras.activations.linear``): ``x`` unchanged.

    Args:
        x: a tensor of any shape.
    Returns:
        ``x``.
    """
    return x


def relu(x):
    """``max(x, 0)`` (``keras.activations.relu`` with its defaults; :func:`webtensor.relu`).

    Args:
        x: a float tensor of any shape.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.relu(x)


def relu6(x):
    """``min(max(x, 0), 6)`` (``keras.activations.relu6``; Krizhevsky 2010).

    Args:
        x: a float tensor of any shape.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.relu6(x)


def leaky_relu(x, negative_slope=0.2):
    """``x`` for ``x >= 0``, ``negative_slope * x`` otherwise (``keras.activations.leaky_relu``;
    Maas et al. 2013).

    Args:
        x: a float tensor of any shape.
        negative_slope: the slope below 0 (Keras' default 0.2).
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.leaky_relu(x, alpha=negative_slope)


def elu(x, alpha=1.0):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise (``keras.activations.elu``; Clevert
    et al. 2015, "Fast and Accurate Deep Network Learning by Exponential Linear Units").

    Args:
        x: a float tensor of any shape.
        alpha: the negative saturation value.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.elu(x, alpha=alpha)


def selu(x):
    """``scale * elu(x, alpha)`` with Klambauer et al. 2017's constants ("Self-Normalizing Neural
    Networks"; ``keras.activations.selu``), as ``webtensor.selu``.

    Args:
        x: a float tensor of any shape.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.selu(x)


def gelu(x, approximate=False):
    """GELU (Hendrycks & Gimpel 2016; ``keras.activations.gelu``): :func:`webtensor.gelu`. Keras'
    default is the exact erf form.

    Args:
        x: a float tensor of any shape.
        approximate: use the tanh form ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.gelu(x, approximate=approximate)


def sigmoid(x):
    """``1 / (1 + exp(-x))`` (``keras.activations.sigmoid``; :func:`webtensor.sigmoid`).

    Args:
        x: a float tensor of any shape.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.sigmoid(x)


def tanh(x):
    """Hyperbolic tangent (``keras.activations.tanh``; :func:`webtensor.tanh`).

    Args:
        x: a float tensor of any shape.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.tanh(x)


def softplus(x):
    """``log(1 + exp(x))`` (``keras.activations.softplus``), computed as
    ``max(x, 0) + log1p(exp(-|x|))`` so it cannot overflow.

    Args:
        x: a float tensor of any shape.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.softplus(x)


def softsign(x):
    """``x / (1 + |x|)`` (``keras.activations.softsign``), as ``webtensor.softsign``.

    Args:
        x: a float tensor of any shape.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.softsign(x)


def silu(x):
    """``x * sigmoid(x)`` (``keras.activations.silu``, also ``'swish'``; Ramachandran et al. 2017,
    "Searching for Activation Functions"), as ``webtensor.silu``.

    Args:
        x: a float tensor of any shape.
    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    return F.silu(x)


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x), axis)`` (``keras.activations.softmax``; :func:`webtensor.softmax`,
    max-subtracted so it cannot overflow).

    Args:
        x: a float tensor of any shape.
        axis: the axis to normalise (an int).
    Returns:
        A tensor of ``x``'s shape and dtype.
    Raises:
        TypeError: ``axis`` not an int. ValueError: ``axis`` out of range.
    """
    return F.softmax(x, axis)


def log_softmax(x, axis=-1):
    """``x - log(sum(exp(x), axis))`` (``keras.activations.log_softmax``; :func:`webtensor.log_softmax`).

    Args:
        x: a float tensor of any shape.
        axis: the axis to normalise (an int).
    Returns:
        A tensor of ``x``'s shape and dtype.
    Raises:
        TypeError: ``axis`` not an int. ValueError: ``axis`` out of range.
    """
    return F.log_softmax(x, axis)


_BY_NAME = {f.__name__: f for f in (linear, relu, relu6, leaky_relu, elu, selu, gelu, sigmoid, tanh, softplus,
                                    softsign, silu, softmax, log_softmax)}
_BY_NAME["swish"] = silu


_REGISTRY = Registry("activation", _BY_NAME, make=lambda fn, name: fn)


def get(identifier):
    """The activation for a Keras name (``'relu'``, ``'gelu'``, ``'softmax'``, ...), ``None``
    (linear) or a callable (returned as is).

    Args:
        identifier: a name, None, or a callable.
    Returns:
        The activation function.
    Raises:
        ValueError: an unknown name (the message lists the known ones). TypeError: anything else.
    """
    if identifier is None:
        return linear
    return _REGISTRY.get(identifier)


__all__, __dir__ = exports(globals())
