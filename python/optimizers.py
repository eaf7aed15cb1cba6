"""Optimizers (``webtensor.optimizers``): ``SGD``, ``Adam``, ``AdamW``, ``RMSprop`` with Keras 3's
names, defaults and update formulas (``keras/src/optimizers/*.py``).

``opt.apply_gradients(zip(grads, variables))`` updates each :class:`~webtensor.Variable` in place.
It works eagerly and inside ``webtensor.function``: all state is ``Variable``s (the step counter
``iterations``, the learning rate when it is a number, and per-variable slots such as Adam's
moments) updated with ``assign``, and all arithmetic is tensor ops, so a traced training step
updates parameters and optimizer state in place and stays correct on later calls without
retracing. State is created lazily on first use, inside ``webtensor.init_scope()`` (so it is
concrete even when the first use is during tracing), on each variable's device;
``opt.build(variables)`` creates it eagerly.

One update, as Keras' ``BaseOptimizer.apply``: read the learning rate (a schedule is evaluated at
``iterations``, the number of updates already done), apply decoupled weight decay
``w -= w * weight_decay * lr`` when ``weight_decay`` is set, run each optimizer's update rule,
then add 1 to ``iterations``.
"""
from __future__ import annotations

from . import _state, schedules
from ._registry import Registry
from .core import ops as F
from .core.dtypes import float32, int32
from .creation import zeros
from .device import get_device
from .schedules import LearningRateSchedule
from .tensor import Tensor, Variable, init_scope, tensor


class Optimizer:
    """Base class. Subclasses list their per-variable state in ``_slot_names()`` and implement
    ``update_step(gradient, variable, learning_rate)`` with tensor ops and ``assign``.

    Args:
        learning_rate: a float, or a schedule (a callable ``schedule(step) -> scalar Tensor``,
            such as those in ``webtensor.optimizers.schedules``).
        weight_decay: ``None`` or a float; decoupled decay ``w -= w * weight_decay * lr`` before
            each update (Loshchilov & Hutter 2019, as Keras' ``_apply_weight_decay``).
        name: the prefix of the state variables' names.
    Raises:
        TypeError, ValueError: a learning rate that is neither callable nor a number (as ``float()``
            raises them).
    """

    def __init__(self, learning_rate, weight_decay: float | None = None, name: str = "optimizer"):
        self.name, self.weight_decay = name, weight_decay
        self._learning_rate = learning_rate if callable(learning_rate) else float(learning_rate)
        self._lr_var: Variable | None = None      # the learning rate as state, when it is a number
        self._iterations: Variable | None = None
        self._slots: dict[int, dict[str, Variable]] = {}   # id(variable) -> slot name -> Variable
        self._slot_owners: list[Variable] = []    # keeps the ids above unique; creation order
        self._exclude_ids: set[int] = set()
        self._exclude_names: tuple[str, ...] = ()

    def _slot_names(self) -> tuple[str, ...]:
        return ()

    def update_step(self, gradient: Tensor, variable: Variable, learning_rate: Tensor) -> None:
        """Update ``variable`` (and its slots) in place with ``assign``; subclasses implement it.

        Args:
            gradient: the gradient, of ``variable``'s shape and dtype.
            variable: the Variable to update.
            learning_rate: the current learning rate, a scalar tensor of ``variable``'s dtype.
        """
        raise NotImplementedError

    # ---- state ----
    def _state(self, attr: str, name: str, value, dtype, device) -> Variable:
        """The scalar state variable ``attr`` (``_iterations`` / ``_lr_var``) on ``device``. A counter
        created earlier on another device (read before the first update) is moved there."""
        v = getattr(self, attr)
        if v is None or v.device is not device:
            with init_scope():
                value = value if v is None else v.read_value()   # moved by Variable (no numpy needed)
                v = Variable(value, name=f"{self.name}/{name}", trainable=False, dtype=dtype, device=device)
            setattr(self, attr, v)
        return v

    def _ensure_state(self, device) -> None:
        self._state("_iterations", "iterations", 0, int32, device)
        if not callable(self._learning_rate):
            self._state("_lr_var", "learning_rate", self._learning_rate, float32, device)

    def _slots_for(self, variable: Variable) -> dict[str, Variable]:
        slots = self._slots.get(id(variable))
        if slots is None:
            if not isinstance(variable, Variable):
                raise TypeError(f"{type(self).__name__}: expected webtensor.Variable, got {type(variable).__name__}")
            with init_scope():
                slots = {s: Variable(zeros(variable.shape, variable.dtype, device=variable.device),
                                     name=f"{variable.name}_{s}", trainable=False)
                         for s in self._slot_names()}
            self._slots[id(variable)] = slots
            self._slot_owners.append(variable)
        return slots

    def build(self, variables) -> None:
        """Create the optimizer state for ``variables`` now (it is otherwise created on first use).

        Args:
            variables: the Variables to be trained (an iterable).
        """
        variables = list(variables)
        if variables:
            self._ensure_state(variables[0].device)
        for v in variables:
            self._slots_for(v)

    @property
    def iterations(self) -> Variable:
        """The number of updates applied: an int32 scalar ``Variable``."""
        if self._iterations is None:
            self._state("_iterations", "iterations", 0, int32, get_device())
        return self._iterations

    @property
    def variables(self) -> list[Variable]:
        """The optimizer state (for saving): ``iterations``, the learning rate when it is a number,
        then each variable's slots in creation order. Empty before the first update or ``build``."""
        out = [v for v in (self._iterations, self._lr_var) if v is not None]
        for owner in self._slot_owners:
            out.extend(self._slots[id(owner)].values())
        return out

    @property
    def learning_rate(self) -> float:
        """The current learning rate as a Python float (eager only). A schedule is evaluated at
        ``iterations``. Assign a float to change it (a traced step sees the change: it reads the
        rate from a Variable); assigning over a schedule raises TypeError, as in Keras."""
        if callable(self._learning_rate):
            return float(self._learning_rate(self.iterations.read_value()))
        return float(self._lr_var) if self._lr_var is not None else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if callable(value):
            self._learning_rate = value
            return
        if callable(self._learning_rate):
            raise TypeError("This optimizer was created with a learning-rate schedule, hence its learning "
                            "rate is not settable; create it with a float learning_rate instead.")
        self._learning_rate = float(value)
        if self._lr_var is not None:
            self._lr_var.assign(float(value))

    def _current_lr(self) -> Tensor:
        if callable(self._learning_rate):
            return F.cast(self._learning_rate(self._iterations.read_value()), float32)
        return self._lr_var.read_value()

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Skip weight decay for some variables (Keras' ``exclude_from_weight_decay``).

        Args:
            var_list: Variables to exclude.
            var_names: strings: a variable whose name contains one is excluded (e.g. ``['bias']``).
        """
        self._exclude_ids = {id(v) for v in (var_list or [])}
        self._exclude_names = tuple(var_names or ())

    def _use_weight_decay(self, variable: Variable) -> bool:
        return (self.weight_decay is not None and id(variable) not in self._exclude_ids
                and not any(n in variable.name for n in self._exclude_names))

    # ---- the update ----
    def apply_gradients(self, grads_and_vars) -> Variable | None:
        """Apply one update (``keras.optimizers.Optimizer.apply_gradients``).

        Args:
            grads_and_vars: ``(gradient, variable)`` pairs; ``None`` gradients are skipped. Inside
                ``strategy.run`` the gradients are first summed across the replicas.
        Returns:
            ``iterations`` (``None`` when ``grads_and_vars`` is empty: nothing happens).
        Raises:
            ValueError: every gradient is ``None``, or a gradient's shape differs from its variable's.
            TypeError: a variable that is not a ``webtensor.Variable``.
        """
        pairs = list(grads_and_vars)
        if not pairs:
            return None
        pairs = [(g, v) for g, v in pairs if g is not None]
        if not pairs:
            raise ValueError(f"{type(self).__name__}: no gradients provided for any variable")
        for g, v in pairs:
            if isinstance(v, Variable) and tuple(g.shape) != tuple(v.shape):
                raise ValueError(f"{type(self).__name__}: gradient of shape {tuple(g.shape)} for variable "
                                 f"{v.name!r} of shape {tuple(v.shape)}")
        ctx = _state.replica_context()
        if ctx is not None:
            # Inside strategy.run: sum the replicas' gradients; state is made once for all replicas.
            variables = [v for _, v in pairs]
            grads = ctx.all_reduce("SUM", [g for g, _ in pairs], merge_fn=lambda: self.build(variables))
            pairs = list(zip(grads, variables))
        for _, v in pairs:
            self._slots_for(v)
        self._ensure_state(pairs[0][1].device)
        lr = self._current_lr()
        for _, v in pairs:
            if self._use_weight_decay(v):
                v.assign(v - v * float(self.weight_decay) * F.cast(lr, v.dtype))
        for g, v in pairs:
            self.update_step(F.cast(g, v.dtype), v, F.cast(lr, v.dtype))
        self._iterations.assign_add(1)
        return self._iterations

    def apply(self, grads, variables) -> Variable | None:
        """Keras 3 spelling: ``apply_gradients(zip(grads, variables))``.

        Args:
            grads: the gradients (``None`` entries are skipped).
            variables: the Variables, in the same order.
        """
        return self.apply_gradients(zip(grads, variables))

    def scale_loss(self, loss):
        """The loss to differentiate: ``loss`` itself (a :class:`LossScaleOptimizer` scales it).
        ``Model.fit`` calls it, as Keras 3's trainers do.

        Args:
            loss: a scalar tensor.
        """
        return loss

    def _step_count(self, dtype) -> Tensor:
        """``iterations + 1`` (the 1-based index of the update being applied) as ``dtype``."""
        return F.cast(self._iterations.read_value() + 1, dtype)

    def get_config(self) -> dict:
        """The constructor arguments (Keras 3's ``Optimizer.get_config``): each parameter of ``__init__``
        read back from the attribute of that name; ``learning_rate`` is the current rate, or the
        schedule (serialized by :func:`webtensor.nn.saving.serialize_keras_object`).

        Raises:
            NotImplementedError: a subclass parameter with no attribute of its name (define get_config).
        """
        import inspect
        config = {}
        for pname, p in list(inspect.signature(type(self).__init__).parameters.items())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if pname == "learning_rate":
                config[pname] = self._learning_rate if callable(self._learning_rate) else self.learning_rate
            elif pname in vars(self):
                config[pname] = vars(self)[pname]
            elif p.default is p.empty:
                raise NotImplementedError(f"{type(self).__name__}.get_config: no attribute {pname!r}; define "
                                          "get_config() to save this optimizer")
        return config

    @classmethod
    def from_config(cls, config: dict):
        """An optimizer from :meth:`get_config`'s result (a schedule already deserialized):
        ``cls(**config)``.

        Args:
            config: the constructor's keyword arguments, as :meth:`get_config` returns them.
        Returns:
            A new optimizer, with fresh state (no slots; ``iterations`` 0).
        Raises:
            TypeError: a key the constructor does not take.
        """
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class SGD(Optimizer):
    """Gradient descent with optional momentum (Keras 3 ``SGD``).

    Without momentum ``w -= lr * g``. With ``momentum > 0``: ``v = momentum * v - lr * g`` then
    ``w += v``, or with ``nesterov=True`` ``w += momentum * v - lr * g`` (Sutskever et al. 2013,
    "On the importance of initialization and momentum in deep learning", in Keras' form).
    Slot: ``momentum`` (only when ``momentum > 0``).

    Args:
        learning_rate: a float or a schedule (see :class:`Optimizer`).
        momentum: in [0, 1]; 0 is plain gradient descent.
        nesterov: use Nesterov momentum.
        weight_decay: ``None`` or a float (decoupled, see :class:`Optimizer`).
        name: the prefix of the state variables' names.
    Raises:
        ValueError: ``momentum`` outside [0, 1].
    """

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float | None = None, name: str = "SGD"):
        super().__init__(learning_rate, weight_decay, name)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum}")
        self.momentum, self.nesterov = float(momentum), nesterov

    def _slot_names(self):
        return ("momentum",) if self.momentum != 0 else ()

    def update_step(self, gradient, variable, learning_rate):
        step = gradient * learning_rate
        if self.momentum == 0:
            variable.assign(variable - step)
            return
        m = self._slots_for(variable)["momentum"]
        m.assign(m * self.momentum - step)
        variable.assign(variable + (m * self.momentum - step if self.nesterov else m))


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980), in
    Keras 3's form: with ``t = iterations + 1``,

    ``m += (g - m) * (1 - beta_1)``; ``v += (g^2 - v) * (1 - beta_2)``;
    ``w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``.

    ``epsilon`` is the paper's "epsilon hat" (the formula just before its Section 2.1), not the
    epsilon of Algorithm 1. ``amsgrad=True`` uses ``v_hat = max(v_hat, v)`` in place of ``v``
    (Reddi et al. 2018, "On the Convergence of Adam and Beyond").
    Slots: ``momentum``, ``velocity`` (and ``velocity_hat`` with amsgrad).

    Args:
        learning_rate: a float or a schedule (see :class:`Optimizer`).
        beta_1: decay rate of the first-moment estimate.
        beta_2: decay rate of the second-moment estimate.
        epsilon: the paper's "epsilon hat", added to ``sqrt(v)``.
        amsgrad: use the AMSGrad variant.
        weight_decay: ``None`` or a float (decoupled, see :class:`Optimizer`).
        name: the prefix of the state variables' names.
    """

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, weight_decay: float | None = None, name: str = "adam"):
        super().__init__(learning_rate, weight_decay, name)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def _slot_names(self):
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def update_step(self, gradient, variable, learning_rate):
        slots = self._slots_for(variable)
        m, v = slots["momentum"], slots["velocity"]
        t = self._step_count(variable.dtype)
        alpha = learning_rate * F.sqrt(1.0 - F.pow(float(self.beta_2), t)) / (1.0 - F.pow(float(self.beta_1), t))
        m.assign(m + (gradient - m) * (1.0 - self.beta_1))
        v.assign(v + (F.square(gradient) - v) * (1.0 - self.beta_2))
        if self.amsgrad:
            v_hat = slots["velocity_hat"]
            v = v_hat.assign(F.maximum(v_hat, v))
        variable.assign(variable - (m * alpha) / (F.sqrt(v) + self.epsilon))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay
    Regularization", arXiv:1711.05101), as Keras 3's ``AdamW``: before each Adam update
    ``w -= w * weight_decay * lr``.

    Args:
        learning_rate: a float or a schedule (see :class:`Optimizer`).
        weight_decay: the decay rate (a float; required).
        beta_1: decay rate of the first-moment estimate.
        beta_2: decay rate of the second-moment estimate.
        epsilon: added to ``sqrt(v)`` (as :class:`Adam`).
        amsgrad: use the AMSGrad variant.
        name: the prefix of the state variables' names.
    Raises:
        ValueError: ``weight_decay`` is ``None``.
    """

    def __init__(self, learning_rate=0.001, weight_decay: float = 0.004, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, name: str = "adamw"):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, name)


class RMSprop(Optimizer):
    """RMSprop (Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning", lecture 6e,
    2012), in Keras 3's form:

    ``v = rho * v + (1 - rho) * g^2``; with ``centered``: ``a = rho * a + (1 - rho) * g`` and
    ``denominator = v - a^2 + epsilon``, else ``denominator = v + epsilon``;
    ``increment = lr * g / sqrt(denominator)``; with ``momentum > 0``:
    ``mom = momentum * mom + increment`` and ``w -= mom``, else ``w -= increment``.
    Slots: ``velocity`` (and ``momentum``, ``average_gradient`` when used).

    Args:
        learning_rate: a float or a schedule (see :class:`Optimizer`).
        rho: decay rate of the squared-gradient average.
        momentum: momentum of the increments (0: none).
        epsilon: added to the denominator before the square root.
        centered: divide by the estimated variance (``v - a^2``) instead of ``v``.
        weight_decay: ``None`` or a float (decoupled, see :class:`Optimizer`).
        name: the prefix of the state variables' names.
    """

    def __init__(self, learning_rate=0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, weight_decay: float | None = None, name: str = "rmsprop"):
        super().__init__(learning_rate, weight_decay, name)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def _slot_names(self):
        return ("velocity",) + (("momentum",) if self.momentum > 0 else ()) + \
            (("average_gradient",) if self.centered else ())

    def update_step(self, gradient, variable, learning_rate):
        slots = self._slots_for(variable)
        vel, rho = slots["velocity"], self.rho
        vel.assign(vel * rho + F.square(gradient) * (1.0 - rho))
        if self.centered:
            avg = slots["average_gradient"]
            avg.assign(avg * rho + gradient * (1.0 - rho))
            denominator = vel - F.square(avg) + self.epsilon
        else:
            denominator = vel + self.epsilon
        increment = learning_rate * gradient / F.sqrt(denominator)
        if self.momentum > 0:
            mom = slots["momentum"]
            mom.assign(mom * self.momentum + increment)
            variable.assign(variable - mom)
        else:
            variable.assign(variable - increment)


class LossScaleOptimizer(Optimizer):
    """Dynamic loss scaling around another optimizer (``keras.optimizers.LossScaleOptimizer``, Keras
    3's algorithm, ``keras/src/optimizers/loss_scale_optimizer.py``), for float16 training: the loss
    is multiplied by ``dynamic_scale`` (:meth:`scale_loss`) so that small float16 gradients do not
    flush to zero, and each update divides the gradients by it again before the inner optimizer
    applies them. ``Model.fit`` scales the loss itself; a custom loop does::

        with webtensor.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            scaled = opt.scale_loss(loss)
        opt.apply_gradients(zip(tape.gradient(scaled, model.trainable_variables), model.trainable_variables))

    On each update: if any gradient holds an inf or NaN, the step is skipped (the variables and the
    inner optimizer's state, ``iterations`` included, are left as they were), ``dynamic_scale`` is
    halved and the step counter reset; otherwise the inner optimizer applies the unscaled gradients
    and, when this is the ``dynamic_growth_steps``-th finite step in a row, ``dynamic_scale`` is
    doubled and the counter reset (else the counter grows by one). The skip is a select
    (``where``) of the old values, so a traced step needs no control flow.

    Args:
        inner_optimizer: the :class:`Optimizer` to wrap.
        initial_scale: the first loss scale (a finite float > 0; default 2**15, as Keras).
        dynamic_growth_steps: finite steps in a row before the scale doubles (an int >= 1).
        name: the prefix of the state variables' names (default ``'loss_scale_optimizer'``).
    Raises:
        TypeError: ``inner_optimizer`` is not an Optimizer.
        ValueError: a non-positive or non-finite ``initial_scale``, or ``dynamic_growth_steps`` < 1.
    """

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps: int = 2000, name=None):
        if not isinstance(inner_optimizer, Optimizer):
            raise TypeError(f"LossScaleOptimizer: inner_optimizer must be an Optimizer, got "
                            f"{type(inner_optimizer).__name__}")
        initial_scale = float(initial_scale)
        if not 0.0 < initial_scale < float("inf"):
            raise ValueError(f"LossScaleOptimizer: initial_scale must be finite and > 0, got {initial_scale}")
        if isinstance(dynamic_growth_steps, bool) or not isinstance(dynamic_growth_steps, int) \
                or dynamic_growth_steps < 1:
            raise ValueError(f"LossScaleOptimizer: dynamic_growth_steps must be an int >= 1, "
                             f"got {dynamic_growth_steps!r}")
        super().__init__(0.0, name=name or "loss_scale_optimizer")
        self.inner_optimizer, self.initial_scale = inner_optimizer, initial_scale
        self.dynamic_growth_steps = dynamic_growth_steps
        self._scale: Variable | None = None
        self._counter: Variable | None = None

    def _ensure_scale(self, device) -> None:
        self._state("_counter", "step_counter", 0, int32, device)
        self._state("_scale", "dynamic_scale", self.initial_scale, float32, device)

    @property
    def dynamic_scale(self) -> Variable:
        """The current loss scale: a float32 scalar ``Variable``."""
        if self._scale is None:
            self._ensure_scale(get_device())
        return self._scale

    @property
    def step_counter(self) -> Variable:
        """Finite steps since the scale last changed: an int32 scalar ``Variable``."""
        if self._counter is None:
            self._ensure_scale(get_device())
        return self._counter

    def scale_loss(self, loss):
        """``loss * dynamic_scale`` (float32 or wider, as the promotion of the two gives).

        Args:
            loss: a scalar tensor.
        """
        loss = loss if isinstance(loss, Tensor) else tensor(loss)
        if self._scale is None and _state.replica_context() is not None:
            return loss * self.initial_scale     # as Keras before the state exists (built by apply_gradients)
        if self._scale is None or self._scale.device is not loss.device:
            self._ensure_scale(loss.device)
        return loss * self._scale.read_value()

    def build(self, variables) -> None:
        """Create the loss-scale state and the inner optimizer's state for ``variables``.

        Args:
            variables: the Variables to be trained (an iterable).
        """
        variables = list(variables)
        self.inner_optimizer.build(variables)
        self._ensure_scale(variables[0].device if variables else get_device())

    @property
    def variables(self) -> list[Variable]:
        """``step_counter``, ``dynamic_scale`` (once created), then the inner optimizer's state."""
        return [v for v in (self._counter, self._scale) if v is not None] + self.inner_optimizer.variables

    @property
    def iterations(self) -> Variable:
        """The inner optimizer's ``iterations`` (a skipped step does not count)."""
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self) -> float:
        """The inner optimizer's learning rate (settable, as there)."""
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self.inner_optimizer.learning_rate = value

    def apply_gradients(self, grads_and_vars) -> Variable | None:
        """One loss-scaled update (the class docstring says what happens).

        Args:
            grads_and_vars: ``(gradient of the scaled loss, variable)`` pairs; ``None`` gradients
                are skipped.
        Returns:
            The inner optimizer's ``iterations`` (``None`` when ``grads_and_vars`` is empty).
        Raises:
            ValueError, TypeError: as the inner optimizer's ``apply_gradients``.

        Inside ``strategy.run`` a step is skipped on every replica when any replica's gradients are
        not finite (the inner optimizer sums the gradients across the replicas).
        """
        pairs = [(g, v) for g, v in grads_and_vars]
        if not pairs:
            return None
        pairs = [(g, v) for g, v in pairs if g is not None]
        if not pairs:
            raise ValueError(f"{type(self).__name__}: no gradients provided for any variable")
        variables = [v for _, v in pairs]
        finite = None
        for g, _ in pairs:
            ok = F.reduce_all(F.is_finite(g))
            finite = ok if finite is None else F.logical_and(finite, ok)
        ctx = _state.replica_context()
        if ctx is None:
            self.build(variables)
        else:   # inside strategy.run: the replicas skip or apply together (the inner optimizer sums the gradients)
            (bad,) = ctx.all_reduce("SUM", [F.cast(F.logical_not(finite), float32)],
                                    merge_fn=lambda: self.build(variables))
            finite = F.equal(bad, 0.0)
        scale = self._scale.read_value()
        state, seen = [], set()
        for v in [v for _, v in pairs] + self.inner_optimizer.variables:
            if id(v) not in seen:
                seen.add(id(v))
                state.append(v)
        before = [v.read_value() for v in state]
        self.inner_optimizer.apply_gradients([(g / scale, v) for g, v in pairs])
        for v, old in zip(state, before):      # a non-finite step leaves everything as it was
            v.assign(F.where(finite, v.read_value(), old))
        counter = self._counter.read_value()
        grow = F.logical_and(finite, F.equal(counter, self.dynamic_growth_steps - 1))
        self._counter.assign(F.where(F.logical_or(grow, F.logical_not(finite)), 0, counter + 1))
        self._scale.assign(F.where(finite, F.where(grow, scale * 2.0, scale), scale * 0.5))
        return self.inner_optimizer.iterations

    def get_config(self) -> dict:
        """``name``, ``inner_optimizer`` (the Optimizer; serialized with its own config),
        ``initial_scale`` and ``dynamic_growth_steps``, as Keras."""
        return {"name": self.name, "inner_optimizer": self.inner_optimizer, "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config: dict):
        """``cls(**config)`` (``inner_optimizer`` already deserialized, or a name).

        Args:
            config: as :meth:`get_config` returns it.
        """
        config = dict(config)
        config["inner_optimizer"] = get(config.get("inner_optimizer"))
        return cls(**config)


def get(identifier) -> Optimizer:
    """An optimizer from a name (``'sgd'``, ``'adam'``, ``'adamw'``, ``'rmsprop'``; Keras defaults)
    or an ``Optimizer`` (returned as is), as ``keras.optimizers.get``.

    Args:
        identifier: a name (any case), an ``Optimizer`` instance, or an ``Optimizer`` subclass
            (instantiated with its defaults).
    Returns:
        An ``Optimizer``.
    Raises:
        ValueError: an unknown name. TypeError: anything else.
    """
    return Registry("optimizer", {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop},
                    base=Optimizer, wrap=False, lower=True).get(identifier)


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "LossScaleOptimizer", "get", "schedules", "LearningRateSchedule"]
