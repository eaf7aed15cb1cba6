"""Recurrent layers (Keras 3's ``keras.layers``): the cells ``SimpleRNNCell``, ``LSTMCell`` and
``GRUCell`` (one time step), the generic ``RNN(cell)`` that runs a cell over a sequence, the layers
``SimpleRNN``, ``LSTM`` and ``GRU`` (``RNN`` of their cell), and ``Bidirectional``.

Names, arguments, defaults and weight layouts follow Keras 3 (keras/src/layers/rnn/), so Keras
weights load with ``set_weights``: ``kernel`` ``(input_dim, k * units)``, ``recurrent_kernel``
``(units, k * units)`` and ``bias``, the gates side by side in Keras' order (LSTM ``i, f, c, o``;
GRU ``z, r, h``). Sequences are batch-major ``(N, T, features)``.

Masking follows Keras' ``backend.rnn``: at a masked step (mask False) the states keep their previous
values and the output repeats the previous step's output (zeros before the first unmasked step), or
is zeros with ``zero_output_for_mask=True`` (which ``Bidirectional`` sets when it returns sequences).
The mask comes from ``call(..., mask=)`` or from the input (``Embedding(mask_zero=True)``,
``Masking``; see :meth:`webtensor.nn.Layer.compute_mask`).

The time loop (:func:`_run`): eagerly a Python loop, step by step; inside ``webtensor.function`` one
scan node (``webtensor.scan``'s loop, :func:`_scanned`), so a compiled graph and an exported artifact
hold the cell once, run as a loop (``docs/artifact.md``, "Control flow"), differentiable through
stored iterations; with ``unroll=True`` (Keras' argument) the traced loop is unrolled instead (one
copy of the cell per step). Its body, ``masked_step(carry, (x_t, m_t)) -> (carry, output)``, is a
pure function of its arguments; a cell's dropout masks (drawn once per sequence) are drawn before the
loop when traced, so the loop body only reads them.
"""
from __future__ import annotations

import inspect

from .. import _state
from ..control import _loop
from ..core import ops as F
from ..core.dtypes import bool_, int32
from ..core.shapes import Dim
from ..creation import ones, zeros
from ..tensor import Tensor, Variable, tensor
from . import _random
from . import activations as activations_mod
from . import initializers as initializers_mod
from .layer import InputSpec, Layer

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _rate(value, what: str) -> float:
    """A dropout rate: Keras clips it to [0, 1]; a non-number is a TypeError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a float in [0, 1], got {value!r}")
    return min(1.0, max(0.0, float(value)))


def _units(units, layer: str) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"{layer}: units must be a positive integer, got {units!r}")
    return units


def _as_list(states) -> list:
    return list(states) if isinstance(states, (list, tuple)) else [states]


# ---- cells ------------------------------------------------------------------------------------------

class _DropoutCell(Layer):
    """What the three cells share: ``units``, their dropout masks (Keras' ``DropoutRNNCell``) and
    their zero initial state.

    Dropout: one mask for the inputs ``(N, input_dim)`` and one for the recurrent state ``(N, units)``
    per sequence, the same at every step (Gal & Ghahramani 2016), each entry ``keep / (1 - rate)``;
    the gates share them (Keras' ``implementation=2``; with ``recurrent_dropout`` Keras draws one
    recurrent mask per gate). The masks come from :mod:`webtensor.nn._random`, keyed by ``seed`` and
    a counter that advances with every mask, so traced training steps draw new masks every run.
    ``RNN`` forgets them after each sequence; a cell called on its own keeps them until
    :meth:`reset_dropout_mask` (as Keras).
    """

    def _init_cell(self, units, activation, use_bias, kernel_initializer, recurrent_initializer,
                   bias_initializer, dropout, recurrent_dropout, seed):
        """The arguments every cell takes (checked), stored under Keras' attribute names."""
        self.units = _units(units, type(self).__name__)
        self.activation = activations_mod.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.recurrent_initializer = kernel_initializer, recurrent_initializer
        self.bias_initializer = bias_initializer
        self.dropout = _rate(dropout, f"{type(self).__name__}: dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, f"{type(self).__name__}: recurrent_dropout")
        self.seed = seed
        self.__dict__["_masks"] = {}          # per sequence: "input"/"recurrent" -> mask (RNN resets it)

    def _build_dropout(self):
        if self.dropout or self.recurrent_dropout:
            # state, not a weight: saved with the model, never trained (as Dropout's counter)
            self.__dict__["_counter"] = Variable(0, name=f"{self.name}/counter", trainable=False, dtype=int32)

    def _dropout_mask(self, kind: str, like):
        """The ``kind`` ('input' or 'recurrent') mask for this sequence, drawn on first use; None
        when that rate is 0."""
        rate = self.dropout if kind == "input" else self.recurrent_dropout
        if rate == 0.0:
            return None
        if kind not in self._masks:
            if rate == 1.0:
                self._masks[kind] = zeros(tuple(like.shape), dtype=like.dtype)
            else:
                seed = (self.seed if self.seed is not None else self._seed) + (kind == "recurrent")
                u = _random.uniform(tuple(like.shape), self._counter, seed)
                self._counter.assign_add(1)
                self._masks[kind] = F.cast(F.greater_equal(u, rate), like.dtype) * (1.0 / (1.0 - rate))
        return self._masks[kind]

    def reset_dropout_mask(self) -> None:
        """Forget this sequence's dropout masks (``RNN`` calls it after each sequence, as Keras)."""
        self._masks.clear()

    def _dropped(self, x, h, training):
        """``(x, h)`` with the input and recurrent dropout masks applied when ``training``."""
        if not training:
            return x, h
        m, r = self._dropout_mask("input", x), self._dropout_mask("recurrent", h)
        return (x if m is None else x * m), (h if r is None else h * r)

    def get_initial_state(self, batch_size):
        """Zeros: one ``(batch_size, size)`` tensor per entry of ``state_size``, in a list.

        Args:
            batch_size: an int.
        """
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [zeros((batch_size, s), dtype=self.dtype) for s in sizes]


class SimpleRNNCell(_DropoutCell):
    """One step of a fully connected RNN (``keras.layers.SimpleRNNCell``; Elman 1990):
    ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``; the output is ``h_t``.
    ``kernel`` ``(input_dim, units)``, ``recurrent_kernel`` ``(units, units)``, ``bias`` ``(units,)``.

    Call: ``cell(inputs (N, input_dim), states [h (N, units)], training=False) -> (h, [h])``.

    Args:
        units: the size of the state and output, a positive int.
        activation: an activation name or callable (default tanh); None: linear.
        use_bias: add ``bias``.
        kernel_initializer: the kernel's initializer.
        recurrent_initializer: the recurrent kernel's initializer.
        bias_initializer: the bias' initializer.
        dropout: the fraction of the inputs to drop while training, in [0, 1] (clipped).
        recurrent_dropout: the fraction of the previous state to drop while training.
        seed: an int for the dropout masks; None: derived from the layer's seed.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``units`` not a positive int. TypeError: a rate that is not a number.
    """

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self._init_cell(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                        dropout, recurrent_dropout, seed)
        self.state_size = self.output_size = self.units

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, self.units),
                                                self.recurrent_initializer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None
        self._build_dropout()

    def call(self, inputs, states, training=False):
        """One step.

        Args:
            inputs: ``(N, input_dim)``.
            states: ``[h]`` (or ``h``), ``(N, units)``.
            training: apply dropout.
        Returns:
            ``(h, [h])``.
        """
        x, h = self._dropped(inputs, _as_list(states)[0], training)
        y = F.matmul(x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        out = self.activation(y + F.matmul(h, self.recurrent_kernel))
        return out, [out]


class LSTMCell(_DropoutCell):
    """One step of a long short-term memory (``keras.layers.LSTMCell``; Hochreiter & Schmidhuber 1997,
    with the forget gate of Gers et al. 2000)::

        z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias        # (N, 4 units): i, f, c, o
        i, f, o = recurrent_activation(z_i), recurrent_activation(z_f), recurrent_activation(z_o)
        c_t = f * c_{t-1} + i * activation(z_c)
        h_t = o * activation(c_t)

    ``kernel`` ``(input_dim, 4 units)``, ``recurrent_kernel`` ``(units, 4 units)``, ``bias``
    ``(4 units,)``, gates in Keras' order ``i, f, c, o``. ``unit_forget_bias`` starts the forget
    gate's bias at 1 (Jozefowicz et al. 2015), the rest from ``bias_initializer``.

    Call: ``cell(inputs (N, input_dim), states [h, c] (N, units) each, training=False) -> (h, [h, c])``.

    Args:
        units: the size of the state and output, a positive int.
        activation: the activation of the candidate and of the cell state (default tanh).
        recurrent_activation: the gates' activation (default sigmoid).
        use_bias: add ``bias``.
        kernel_initializer: the kernel's initializer.
        recurrent_initializer: the recurrent kernel's initializer.
        bias_initializer: the bias' initializer.
        unit_forget_bias: start the forget gate's bias at 1.
        dropout: the fraction of the inputs to drop while training, in [0, 1] (clipped).
        recurrent_dropout: the fraction of the previous state ``h`` to drop while training.
        seed: an int for the dropout masks; None: derived from the layer's seed.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``units`` not a positive int. TypeError: a rate that is not a number.
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._init_cell(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                        dropout, recurrent_dropout, seed)
        self.recurrent_activation = activations_mod.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        u = self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], 4 * u), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (u, 4 * u), self.recurrent_initializer)
        self.bias = None
        if self.use_bias:
            init = initializers_mod.get(self.bias_initializer)
            if self.unit_forget_bias:
                def init(shape, dtype, base=init):     # Keras: [bias_init(u), ones(u), bias_init(2u)]
                    return F.concat([base((u,), dtype=dtype), ones((u,), dtype=dtype), base((2 * u,), dtype=dtype)], 0)
            self.bias = self.add_weight("bias", (4 * u,), init)
        self._build_dropout()

    def call(self, inputs, states, training=False):
        """One step.

        Args:
            inputs: ``(N, input_dim)``.
            states: ``[h, c]``, each ``(N, units)``.
            training: apply dropout.
        Returns:
            ``(h, [h, c])``.
        """
        h, c = _as_list(states)
        x, hd = self._dropped(inputs, h, training)
        z = F.matmul(x, self.kernel) + F.matmul(hd, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        zi, zf, zc, zo = F.split(z, 4, axis=-1)
        act, rec = self.activation, self.recurrent_activation
        c = rec(zf) * c + rec(zi) * act(zc)
        h = rec(zo) * act(c)
        return h, [h, c]


class GRUCell(_DropoutCell):
    """One step of a gated recurrent unit (``keras.layers.GRUCell``; Cho et al. 2014)::

        x_z, x_r, x_h = split(x_t @ kernel + b_in, 3)                 # gates in Keras' order z, r, h
        reset_after=True (default; cuDNN's GRU, arXiv:1406.1078v1):
            r_z, r_r, r_h = split(h_{t-1} @ recurrent_kernel + b_rec, 3)
            z, r = recurrent_activation(x_z + r_z), recurrent_activation(x_r + r_r)
            hh = activation(x_h + r * r_h)
        reset_after=False (arXiv:1406.1078v3): as above with no b_rec, but
            hh = activation(x_h + (r * h_{t-1}) @ recurrent_kernel[:, 2 units:])
        h_t = z * h_{t-1} + (1 - z) * hh

    ``kernel`` ``(input_dim, 3 units)``, ``recurrent_kernel`` ``(units, 3 units)``; ``bias``
    ``(2, 3 units)`` (rows ``b_in``, ``b_rec``) with ``reset_after``, else ``(3 units,)``.

    Call: ``cell(inputs (N, input_dim), states [h (N, units)], training=False) -> (h, [h])``.

    Args:
        units: the size of the state and output, a positive int.
        activation: the candidate's activation (default tanh).
        recurrent_activation: the gates' activation (default sigmoid).
        use_bias: add the biases.
        kernel_initializer: the kernel's initializer.
        recurrent_initializer: the recurrent kernel's initializer.
        bias_initializer: the bias' initializer.
        dropout: the fraction of the inputs to drop while training, in [0, 1] (clipped).
        recurrent_dropout: the fraction of the previous state to drop while training.
        reset_after: apply the reset gate after the recurrent matrix product (cuDNN's convention).
        seed: an int for the dropout masks; None: derived from the layer's seed.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``units`` not a positive int. TypeError: a rate that is not a number.
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 dropout=0.0, recurrent_dropout=0.0, reset_after=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._init_cell(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                        dropout, recurrent_dropout, seed)
        self.recurrent_activation = activations_mod.get(recurrent_activation)
        self.reset_after = bool(reset_after)
        self.state_size = self.output_size = self.units

    def build(self, input_shape):
        u = self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], 3 * u), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (u, 3 * u), self.recurrent_initializer)
        self.bias = self.add_weight("bias", (2, 3 * u) if self.reset_after else (3 * u,), self.bias_initializer) \
            if self.use_bias else None
        self._build_dropout()

    def call(self, inputs, states, training=False):
        """One step.

        Args:
            inputs: ``(N, input_dim)``.
            states: ``[h]`` (or ``h``), ``(N, units)``.
            training: apply dropout.
        Returns:
            ``(h, [h])``.
        """
        h = _as_list(states)[0]
        x, hd = self._dropped(inputs, h, training)
        u, act, rec = self.units, self.activation, self.recurrent_activation
        b_in = b_rec = None
        if self.bias is not None:
            b_in, b_rec = (self.bias[0], self.bias[1]) if self.reset_after else (self.bias, None)
        xp = F.matmul(x, self.kernel)
        if b_in is not None:
            xp = xp + b_in
        x_z, x_r, x_h = F.split(xp, 3, axis=-1)
        if self.reset_after:
            hp = F.matmul(hd, self.recurrent_kernel)
            if b_rec is not None:
                hp = hp + b_rec
            r_z, r_r, r_h = F.split(hp, 3, axis=-1)
            z, r = rec(x_z + r_z), rec(x_r + r_r)
            hh = act(x_h + r * r_h)
        else:
            r_z, r_r = F.split(F.matmul(hd, self.recurrent_kernel[:, :2 * u]), 2, axis=-1)
            z, r = rec(x_z + r_z), rec(x_r + r_r)
            hh = act(x_h + F.matmul(r * hd, self.recurrent_kernel[:, 2 * u:]))
        h = z * h + (1.0 - z) * hh
        return h, [h]


# ---- the time loop ----------------------------------------------------------------------------------

def _run(step, sequences, states, mask, output_size, go_backwards, zero_output_for_mask, return_sequences,
         unroll=True):
    """Keras' ``backend.rnn`` (batch-major): ``step(x_t, states) -> (output, states)`` over the time
    axis of ``sequences`` ``(N, T, ...)``, in reverse with ``go_backwards`` (the outputs then stay in
    processing order, reversed, as Keras returns them). Returns ``(last_output, outputs (N, T, out)
    or None, states)``. Traced and not ``unroll``: one scan node (:func:`_scanned`)."""
    n, steps = sequences.shape[0], sequences.shape[1]
    zero = zeros((n, output_size), dtype=sequences.dtype)

    def masked_step(carry, inputs):
        prev_output, prev_states = carry
        x_t, m_t = inputs
        output, new_states = step(x_t, prev_states)
        new_states = _as_list(new_states)
        if m_t is not None:      # a masked step keeps the states and repeats (or zeroes) the output
            keep = F.expand_dims(m_t, -1)
            output = F.where(keep, output, zero if zero_output_for_mask else prev_output)
            new_states = [F.where(keep, s, p) for s, p in zip(new_states, prev_states)]
        return (output, new_states), output

    if not unroll and (isinstance(steps, Dim) or steps) and _state.current_trace() is not None:    # Dim: a None length
        return _scanned(masked_step, sequences, states, mask, zero, go_backwards, return_sequences)
    xs = F.unstack(sequences, axis=1)
    ms = F.unstack(mask, axis=1) if mask is not None else [None] * steps
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    carry, outputs = (zero, list(states)), []
    for t in order:
        carry, output = masked_step(carry, (xs[t], ms[t]))
        outputs.append(output)
    last_output, states = carry
    return last_output, (F.stack(outputs, axis=1) if return_sequences else None), states


def _scanned(masked_step, sequences, states, mask, zero, go_backwards, return_sequences):
    """:func:`_run`'s loop as one scan node: time-major rows of the sequences (and mask), read from
    the last with ``go_backwards`` (the loop's ``reverse``, so the last state reads no reversed copy
    of the sequence: an artifact with a symbolic length can run it, docs/artifact.md "Symbolic
    length"); the carry is the last output and the states; the outputs are stacked only when
    returned, in processing order as Keras returns them (a reverse loop stacks them in time order)."""
    seqs = [F.transpose(sequences, (1, 0, 2))] + ([F.transpose(mask, (1, 0))] if mask is not None else [])
    k = 1 + len(states)

    def step(*args):
        (output, new_states), y = masked_step((args[0], list(args[1:k])), (args[k], args[k + 1] if mask is not None else None))
        return [output, *new_states] + ([F.expand_dims(y, 0)] if return_sequences else [])
    final, ys = _loop(lambda *a: [tensor(True)], step, [zero, *states], seqs, sequences.shape[1], go_backwards, "RNN")
    if not return_sequences:
        return final[0], None, final[1:]
    ys = F.reverse(ys[0], 0) if go_backwards else ys[0]
    return final[0], F.transpose(ys, (1, 0, 2)), final[1:]


class RNN(Layer):
    """Runs a cell over the time axis (``keras.layers.RNN``): input ``(N, T, features)``; output the
    last step's ``(N, units)``, or every step's ``(N, T, units)`` with ``return_sequences``; with
    ``return_state`` a list ``[output, *final_states]``.

    A cell is a layer with ``call(inputs, states, training=False) -> (output, new_states)``, a
    ``state_size`` (an int or a list of ints) and optionally ``output_size`` and
    ``get_initial_state(batch_size)`` (default zeros).

    Call: ``layer(sequences, initial_state=None, mask=None, training=False)``: ``initial_state`` a
    list of ``(N, size)`` tensors, one per state (default zeros, or the kept states when
    ``stateful``); ``mask`` bool ``(N, T)``, True where a step is valid (default: the mask attached
    to ``sequences``, see the module docstring). The output's mask is the input's with
    ``return_sequences`` (Keras' ``RNN.compute_mask``, which tf.keras 2 applied; Keras 3 sets
    ``supports_masking=False`` on RNN layers and drops it), else none: stacked recurrent layers all
    skip the padding.

    Args:
        cell: the cell (a Layer as above).
        return_sequences: return every step's output, not only the last one.
        return_state: also return the final states.
        go_backwards: process the sequence from its end; the sequence returned is then reversed.
        stateful: keep the final states and start the next call from them (the batch size must stay
            the same; :meth:`reset_state` sets them back to zeros).
        unroll: when traced in ``webtensor.function``, unroll the time loop into the graph (one copy
            of the cell per step) instead of one scan node (module docstring). Eagerly the loop is a
            Python loop either way.
        zero_output_for_mask: masked steps output zeros instead of repeating the previous output.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        TypeError: a cell without ``call`` or ``state_size``, or a list of cells (stacked cells are not
            supported). ValueError: (on call) an input that is not 3-D, a wrong number of initial
            states, a mask that is not ``(N, T)``, or a stateful layer called with another batch size.
    """

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)):
            raise TypeError("RNN: a list of cells (StackedRNNCells) is not supported; stack RNN layers instead")
        if not callable(getattr(cell, "call", None)) or getattr(cell, "state_size", None) is None:
            raise TypeError(f"RNN: the cell must have a call(inputs, states) method and a state_size, got {cell!r}")
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful, self.unroll = bool(go_backwards), bool(stateful), bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        size = cell.state_size
        self.__dict__["state_size"] = [size] if isinstance(size, int) else list(size)
        self.__dict__["states"] = None            # stateful: Variables (not weights: never saved or trained)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r}: expected an input of shape (batch, timesteps, "
                             f"features), got {input_shape}")
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell._build_for_call((input_shape[0], input_shape[2]))
            self.cell.built = True
            self.cell._build_shape = (input_shape[0], input_shape[2])
        self.input_spec = InputSpec(ndim=3, axes={-1: input_shape[-1]})
        if self.stateful:
            self.__dict__["states"] = [Variable(s, name=f"{self.name}/rnn_state", trainable=False)
                                       for s in self.get_initial_state(input_shape[0])]

    def get_initial_state(self, batch_size):
        """The cell's ``get_initial_state(batch_size)`` as a list, else zeros ``(batch_size, size)``.

        Args:
            batch_size: an int.
        """
        fn = getattr(self.cell, "get_initial_state", None)
        if fn is not None:
            return _as_list(fn(batch_size))
        return [zeros((batch_size, s), dtype=self.dtype) for s in self.state_size]

    def reset_state(self, states=None) -> None:
        """Set a stateful layer's kept states to zeros, or to ``states``.

        Args:
            states: None, or one array or tensor ``(N, size)`` per state (a list).
        Raises:
            ValueError: the layer is not stateful or not built, or ``states`` has the wrong count or shapes.
        """
        if not self.stateful or self.states is None:
            raise ValueError(f"{type(self).__name__} {self.name!r}: reset_state needs a built layer with stateful=True")
        if states is None:
            values = [zeros(tuple(v.shape), dtype=v.dtype) for v in self.states]
        else:
            values = [s if isinstance(s, Tensor) else tensor(s) for s in _as_list(states)]
        if len(values) != len(self.states) or \
                any(tuple(a.shape) != tuple(v.shape) for a, v in zip(values, self.states)):
            raise ValueError(f"{type(self).__name__} {self.name!r}: reset_state expects {len(self.states)} states "
                             f"of shapes {[tuple(v.shape) for v in self.states]}")
        for var, value in zip(self.states, values):
            var.assign(F.cast(value, var.dtype))

    reset_states = reset_state

    def compute_mask(self, inputs, previous_mask):
        """The input's mask with ``return_sequences``, else None; with ``return_state`` a list with a
        None per state after it.

        Args:
            inputs: the sequences.
            previous_mask: the sequences' mask or None.
        """
        mask = previous_mask[0] if isinstance(previous_mask, (list, tuple)) else previous_mask
        out = mask if self.return_sequences else None
        return [out] + [None] * len(self.state_size) if self.return_state else out

    def call(self, sequences, initial_state=None, mask=None, training=False):
        """Run the cell over ``sequences`` (see the class docstring).

        Args:
            sequences: ``(N, T, features)``.
            initial_state: None or a list of ``(N, size)`` tensors, one per state.
            mask: None or bool ``(N, T)`` (True: a valid step).
            training: passed to the cell (its dropout).
        """
        n, steps = sequences.shape[0], sequences.shape[1]
        name = f"{type(self).__name__} {self.name!r}"
        if initial_state is None:
            if self.stateful:
                if n != self.states[0].shape[0]:
                    raise ValueError(f"{name}: stateful with batch size {self.states[0].shape[0]}, got a batch of {n}")
                initial_state = list(self.states)
            else:
                initial_state = self.get_initial_state(n)
        states = [s if isinstance(s, Tensor) else tensor(s, dtype=sequences.dtype) for s in _as_list(initial_state)]
        if len(states) != len(self.state_size) or \
                any(tuple(s.shape) != (n, size) for s, size in zip(states, self.state_size)):
            raise ValueError(f"{name}: initial_state must be {len(self.state_size)} tensor(s) of shapes "
                             f"{[(n, s) for s in self.state_size]}, got {[tuple(s.shape) for s in states]}")
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is not None:
            mask = F.cast(mask if isinstance(mask, Tensor) else tensor(mask), bool_)
            if tuple(mask.shape) != (n, steps):
                raise ValueError(f"{name}: the mask must have shape (batch, timesteps) = {(n, steps)}, "
                                 f"got {tuple(mask.shape)}")
        cell_kwargs = {"training": training} if "training" in _call_params(self.cell) else {}

        def step(x_t, s):
            return self.cell(x_t, s, **cell_kwargs)
        if training and not self.unroll and _state.current_trace() is not None and hasattr(self.cell, "_dropout_mask"):
            self.cell._dropout_mask("input", sequences[:, 0])     # drawn as the first step would, outside the loop
            self.cell._dropout_mask("recurrent", states[0])

        output_size = getattr(self.cell, "output_size", None) or self.state_size[0]
        try:
            last, outputs, states = _run(step, sequences, states, mask, output_size, self.go_backwards,
                                         self.zero_output_for_mask, self.return_sequences, self.unroll)
        finally:
            if hasattr(self.cell, "reset_dropout_mask"):
                self.cell.reset_dropout_mask()
        if self.stateful:
            for var, s in zip(self.states, states):
                var.assign(s)
        output = outputs if self.return_sequences else last
        return [output] + list(states) if self.return_state else output


def _call_params(cell):
    return inspect.signature(cell.call).parameters


class _Recurrent(RNN):
    """``RNN`` of a built-in cell: the cell's arguments are the layer's, and readable as attributes."""
    _cell_class = None
    _cell_args: tuple = ()

    def __init__(self, cell_args: dict, seed, return_sequences, return_state, go_backwards, stateful, unroll,
                 **kwargs):
        cell = self._cell_class(**cell_args, seed=seed, name=self._cell_name, dtype=kwargs.get("dtype"),
                                trainable=kwargs.get("trainable", True))
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)
        if seed is None:      # the seed the saved config records (auto-config) is the one the cell draws with
            cell.seed = self._seed

    def __getattr__(self, name):
        if name in type(self)._cell_args and "cell" in self.__dict__:
            return getattr(self.__dict__["cell"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_LAYER_ARGS = """        return_sequences: return every step's output ``(N, T, units)``, not only the last one.
        return_state: also return the final states (a list ``[output, *states]``).
        go_backwards: process the sequence from its end; the sequence returned is then reversed.
        stateful: keep the final states as the next call's initial states (see :class:`RNN`).
        unroll: unroll the time loop when traced instead of one scan node (see :class:`RNN`)."""


class SimpleRNN(_Recurrent):
    """A fully connected RNN whose output is fed back (``keras.layers.SimpleRNN``): :class:`RNN` of a
    :class:`SimpleRNNCell` (see it for the equation and weights). Input ``(N, T, features)``; output
    ``(N, units)``, or ``(N, T, units)`` with ``return_sequences``; masking, ``initial_state`` and
    ``return_state`` as :class:`RNN`.

    Args:
        units: the size of the state and output, a positive int.
        activation: an activation name or callable (default tanh); None: linear.
        use_bias: add ``bias``.
        kernel_initializer: the kernel's initializer.
        recurrent_initializer: the recurrent kernel's initializer.
        bias_initializer: the bias' initializer.
        dropout: the fraction of the inputs to drop while training, in [0, 1].
        recurrent_dropout: the fraction of the previous state to drop while training.
{layer_args}
        seed: an int for the dropout masks; None: derived from the layer's seed.
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``units`` not a positive int; (on call) see :class:`RNN`.
    """
    _cell_class, _cell_name = SimpleRNNCell, "simple_rnn_cell"
    _cell_args = ("units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
                  "bias_initializer", "dropout", "recurrent_dropout")

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 seed=None, **kwargs):
        super().__init__(dict(units=units, activation=activation, use_bias=use_bias,
                              kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                              bias_initializer=bias_initializer, dropout=dropout, recurrent_dropout=recurrent_dropout),
                         seed, return_sequences, return_state, go_backwards, stateful, unroll, **kwargs)


class LSTM(_Recurrent):
    """Long short-term memory (``keras.layers.LSTM``; Hochreiter & Schmidhuber 1997): :class:`RNN` of an
    :class:`LSTMCell` (see it for the equations and weights, gates ``i, f, c, o``). Input
    ``(N, T, features)``; output ``(N, units)``, or ``(N, T, units)`` with ``return_sequences``;
    ``return_state`` adds the final ``h`` and ``c``; masking and ``initial_state=[h, c]`` as :class:`RNN`.

    Args:
        units: the size of the state and output, a positive int.
        activation: the activation of the candidate and of the cell state (default tanh).
        recurrent_activation: the gates' activation (default sigmoid).
        use_bias: add ``bias``.
        kernel_initializer: the kernel's initializer.
        recurrent_initializer: the recurrent kernel's initializer.
        bias_initializer: the bias' initializer.
        unit_forget_bias: start the forget gate's bias at 1.
        dropout: the fraction of the inputs to drop while training, in [0, 1].
        recurrent_dropout: the fraction of the previous state ``h`` to drop while training.
        seed: an int for the dropout masks; None: derived from the layer's seed.
{layer_args}
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``units`` not a positive int; (on call) see :class:`RNN`.
    """
    _cell_class, _cell_name = LSTMCell, "lstm_cell"
    _cell_args = ("units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                  "recurrent_initializer", "bias_initializer", "unit_forget_bias", "dropout", "recurrent_dropout")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False, **kwargs):
        super().__init__(dict(units=units, activation=activation, recurrent_activation=recurrent_activation,
                              use_bias=use_bias, kernel_initializer=kernel_initializer,
                              recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                              unit_forget_bias=unit_forget_bias, dropout=dropout, recurrent_dropout=recurrent_dropout),
                         seed, return_sequences, return_state, go_backwards, stateful, unroll, **kwargs)


class GRU(_Recurrent):
    """Gated recurrent unit (``keras.layers.GRU``; Cho et al. 2014): :class:`RNN` of a :class:`GRUCell`
    (see it for the equations and weights, gates ``z, r, h``); ``reset_after=True`` (the default, as
    Keras 3) is cuDNN's variant with bias ``(2, 3 units)``. Input ``(N, T, features)``; output
    ``(N, units)``, or ``(N, T, units)`` with ``return_sequences``; masking, ``initial_state`` and
    ``return_state`` as :class:`RNN`.

    Args:
        units: the size of the state and output, a positive int.
        activation: the candidate's activation (default tanh).
        recurrent_activation: the gates' activation (default sigmoid).
        use_bias: add the biases.
        kernel_initializer: the kernel's initializer.
        recurrent_initializer: the recurrent kernel's initializer.
        bias_initializer: the bias' initializer.
        dropout: the fraction of the inputs to drop while training, in [0, 1].
        recurrent_dropout: the fraction of the previous state to drop while training.
        seed: an int for the dropout masks; None: derived from the layer's seed.
{layer_args}
        reset_after: apply the reset gate after the recurrent matrix product (cuDNN's convention).
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: ``units`` not a positive int; (on call) see :class:`RNN`.
    """
    _cell_class, _cell_name = GRUCell, "gru_cell"
    _cell_args = ("units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                  "recurrent_initializer", "bias_initializer", "dropout", "recurrent_dropout", "reset_after")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True, **kwargs):
        super().__init__(dict(units=units, activation=activation, recurrent_activation=recurrent_activation,
                              use_bias=use_bias, kernel_initializer=kernel_initializer,
                              recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                              dropout=dropout, recurrent_dropout=recurrent_dropout, reset_after=reset_after),
                         seed, return_sequences, return_state, go_backwards, stateful, unroll, **kwargs)


for _cls in (SimpleRNN, LSTM, GRU):
    _cls.__doc__ = _cls.__doc__.replace("{layer_args}", _LAYER_ARGS)


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy backwards over the sequence and merges their outputs
    (``keras.layers.Bidirectional``; Schuster & Paliwal 1997). The forward layer is a copy of
    ``layer`` named ``forward_<name>``; the backward one is ``backward_layer`` or a copy with
    ``go_backwards`` flipped, named ``backward_<name>``. With ``return_sequences`` the backward
    outputs are reversed back into time order and both layers output zeros at masked steps (Keras
    sets ``zero_output_for_mask``). Merge: ``concat`` (last axis, ``2 units``), ``sum``, ``mul``,
    ``ave``, or None (a list ``[forward, backward]``). ``return_state`` appends the forward then the
    backward final states. Weights: the forward layer's, then the backward layer's (Keras' order).

    Call: ``layer(sequences, initial_state=None, mask=None, training=False)``; ``initial_state`` holds
    the forward states then the backward ones.

    Args:
        layer: an ``RNN`` (``LSTM``, ``GRU``, ``SimpleRNN`` or ``RNN(cell)``); it is copied, not used.
        merge_mode: 'concat', 'sum', 'mul', 'ave' or None.
        backward_layer: None or an ``RNN`` for the backward direction (its ``go_backwards`` must differ
            from ``layer``'s and ``return_sequences``, ``return_state``, ``stateful`` be the same).
        **kwargs: ``name``, ``trainable``, ``dtype`` (see :class:`~webtensor.nn.Layer`).
    Raises:
        ValueError: an unknown ``merge_mode``; ``layer``/``backward_layer`` not RNN layers or not matching.
    """

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, RNN) or (backward_layer is not None and not isinstance(backward_layer, RNN)):
            raise ValueError(f"Bidirectional: layer and backward_layer must be RNN layers (LSTM, GRU, SimpleRNN, "
                             f"RNN), got {layer!r} and {backward_layer!r}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {_MERGE_MODES}, got {merge_mode!r}")
        super().__init__(**kwargs)
        # copies through the layer's config, as Keras: new weights (and a new cell for RNN(cell))
        self.forward_layer = _copy(layer, name=f"forward_{layer.name.removeprefix('forward_')}")
        if backward_layer is None:
            backward_layer = _copy(layer, name=f"backward_{layer.name.removeprefix('backward_')}",
                                   go_backwards=not layer.go_backwards)
            if isinstance(getattr(backward_layer, "cell", None), _DropoutCell) and backward_layer.cell.seed is not None:
                backward_layer.cell.seed += 1       # its own dropout masks, not the forward layer's
        self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == backward_layer.go_backwards:
            raise ValueError("Bidirectional: the forward and backward layers must differ in go_backwards")
        for attr in ("stateful", "return_sequences", "return_state"):
            if getattr(self.forward_layer, attr) != getattr(backward_layer, attr):
                raise ValueError(f"Bidirectional: the forward and backward layers must have the same {attr}")
        for sub in (self.forward_layer, backward_layer):
            sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state
        self.stateful = layer.stateful

    def compute_mask(self, inputs, previous_mask):
        """The input's mask with ``return_sequences`` (twice for ``merge_mode=None``), else None; with
        ``return_state`` a None per state after it.

        Args:
            inputs: the sequences.
            previous_mask: the sequences' mask or None.
        """
        mask = previous_mask[0] if isinstance(previous_mask, (list, tuple)) else previous_mask
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            return outs + [None] * (2 * len(self.forward_layer.state_size))
        return outs if self.merge_mode is None else out

    def call(self, sequences, initial_state=None, mask=None, training=False):
        """Both directions, merged (see the class docstring).

        Args:
            sequences: ``(N, T, features)``.
            initial_state: None or the forward layer's states followed by the backward layer's.
            mask: None or bool ``(N, T)``.
            training: passed to both layers.
        """
        fwd_state = bwd_state = None
        if initial_state is not None:
            initial_state = list(initial_state)
            half = len(initial_state) // 2
            fwd_state, bwd_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(sequences, initial_state=fwd_state, mask=mask, training=training)
        y_rev = self.backward_layer(sequences, initial_state=bwd_state, mask=mask, training=training)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = F.reverse(y_rev, [1])
        if self.merge_mode == "concat":
            out = [F.concat([y, y_rev], -1)]
        elif self.merge_mode == "sum":
            out = [y + y_rev]
        elif self.merge_mode == "ave":
            out = [(y + y_rev) * 0.5]
        elif self.merge_mode == "mul":
            out = [y * y_rev]
        else:
            out = [y, y_rev]
        if self.return_state or self.merge_mode is None:
            return out + states
        return out[0]

    def reset_state(self) -> None:
        """Reset both layers' kept states (stateful layers)."""
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()


def _copy(layer, **changes):
    """A new ``layer`` from its config with ``changes``; a layer in the config (``RNN``'s cell) is
    copied too, by its own class (so a custom cell needs no registration)."""
    config = {**layer.get_config(), **changes}
    config = {k: type(v).from_config(v.get_config()) if isinstance(v, Layer) else v for k, v in config.items()}
    return type(layer).from_config(config)


__all__ = ["SimpleRNNCell", "LSTMCell", "GRUCell", "RNN", "SimpleRNN", "LSTM", "GRU", "Bidirectional"]
