"""``Model`` (subclassable, Keras style) and ``Sequential``, with ``compile``/``fit``/``evaluate``/
``predict``/``summary`` and weights I/O.

Each training step is ONE ``webtensor.function``: forward pass, loss, ``GradientTape`` backward
pass, optimizer update and metric updates are traced into a single graph (one compiled
executable on the compiling devices), retraced only for a new batch shape (usually just the
last, smaller batch). ``model.train_function.trace_count`` counts the traces; evaluation and
prediction steps are traced the same way. The model, the optimizer state and the metric state
are all Variables, so the traced steps update them in place.

Inputs follow Keras 3: ``x`` is a Tensor or array (anything :func:`webtensor.tensor` accepts),
or, for a model with several inputs, a list/tuple of them in the model's input order or a dict
keyed by input name (:attr:`Functional.input_names`); ``y`` likewise. Or ``x`` is a batched
:class:`webtensor.data.Dataset` whose elements are ``x``, ``(x,)``, ``(x, y)`` or
``(x, y, sample_weight)``, where ``x`` itself may be a tuple or dict
(``Dataset.from_tensor_slices(((a, b, c), y))``; tf.data reads a Python list as one array).

Asynchronous readback (WebGPU in the browser, under Pyodide): ``fit`` and ``evaluate`` read the
metrics back from the device; there, use ``await model.fit_async(...)`` and
``await model.evaluate_async(...)``, which run the same loops and await each readback.
``predict`` reads nothing back and works as it is (read its result with ``await
t.numpy_async()``). Both variants share one loop, written as a generator that yields where it
needs the metric values (:meth:`Model._drive` / :meth:`Model._drive_async` answer it).
"""
from __future__ import annotations

import contextlib
import math

from .. import optimizers as optimizers_mod
from ..creation import zeros
from ..core import ops as F
from ..data import INFINITE_CARDINALITY, Dataset
from ..device import device
from .._state import current_strategy
from ..function import function
from ..progress import Progress
from ..tape import GradientTape
from ..tensor import Tensor, init_scope, tensor
from . import callbacks as callbacks_mod
from . import losses as losses_mod
from . import metrics as metrics_mod
from . import saving
from ..export import export as export_artifact
from ..tree import flatten, unflatten
from ._export import holds_arrays as _holds_arrays, model_specs
from .functional import KerasTensor, apply
from .layer import Layer
from .layers import Input, InputLayer


def _as_tensor(x):
    return x if isinstance(x, Tensor) or x is None else tensor(x)


def _as_tensors(x, n_inputs: int | None = None):
    """Data in Keras 3's forms as Tensors: one array-like -> a Tensor; a dict -> a dict of Tensors; a
    list/tuple holding arrays (or of ``n_inputs`` items, for a model with that many inputs) -> a tuple
    (tf.data reads lists as one array, so a structure must be a tuple). For a model with one input
    (``n_inputs == 1``) a list or tuple is that input's data, as before several inputs existed."""
    if x is None or isinstance(x, Tensor):
        return x
    if isinstance(x, dict):
        return {k: _as_tensors(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and n_inputs != 1 and (_holds_arrays(x) or (n_inputs and len(x) == n_inputs)):
        return tuple(_as_tensors(v) for v in x)
    return tensor(x)


def _leaves(x) -> list:
    out: list = []
    flatten(x, out)
    return [v for v in out if v is not None]


def _num_samples(what, **parts) -> int:
    """The common first dimension of every array of ``parts`` (``x=..., y=...``).

    Raises:
        ValueError: arrays of different first dimensions (Keras: "data cardinality is ambiguous").
    """
    sizes = {k: [int(t.shape[0]) if t.ndim else None for t in _leaves(v)] for k, v in parts.items() if v is not None}
    flat = {n for v in sizes.values() for n in v}
    if None in flat:
        raise ValueError(f"{what}: every array needs a batch dimension; got a scalar")
    if len(flat) > 1:
        detail = "; ".join(f"{k} sizes: {', '.join(map(str, v))}" for k, v in sizes.items())
        raise ValueError(f"{what}: the arrays have different numbers of samples (data cardinality is ambiguous; "
                         f"{detail})")
    return flat.pop() if flat else 0


def _slice(x, start, stop):
    leaves: list = []
    struct = flatten(x, leaves)
    return unflatten(struct, iter([v if v is None else v[start:stop] for v in leaves]))


def _unpack(element):
    """A dataset element as ``(x, y, sample_weight)``."""
    if isinstance(element, (tuple, list)):
        if not 1 <= len(element) <= 3:
            raise ValueError(f"dataset elements must be x, (x,), (x, y) or (x, y, sample_weight); got a tuple "
                             f"of {len(element)}")
        return tuple(element) + (None,) * (3 - len(element))
    return element, None, None


def _verbose(verbose):
    return 1 if verbose == "auto" else int(verbose)


class Model(Layer):
    """A layer with training: subclass it, create layers in ``__init__`` (they are tracked when
    assigned to attributes) and define ``call(self, x, training=False)``.

    ``Model(inputs, outputs)`` builds a model from KerasTensors instead (Keras' functional API,
    :mod:`webtensor.nn.functional`): ``inputs`` are ``Input(...)`` results (one, a list or a dict),
    ``outputs`` KerasTensors computed from them (one or a list).

    Args:
        inputs: (functional API) the ``Input(...)`` KerasTensors: one, a list or a dict.
        outputs: (functional API) the KerasTensors computed from them: one or a list.
        *args: a subclass' own positional arguments (they go to its ``__init__``).
        **kwargs: ``name``, ``trainable``, ``dtype`` (as :class:`~webtensor.nn.Layer`), and a
            subclass' own keyword arguments.
    Raises:
        TypeError: (functional API) ``inputs``/``outputs`` that are not KerasTensors (see
            :class:`Functional`); unknown keyword arguments.
    """

    def __new__(cls, inputs=None, outputs=None, *args, **kwargs):
        # ``inputs``/``outputs`` are named so that ``inspect.signature(Model)`` shows the functional form.
        if cls is Model and (inputs is not None or outputs is not None):
            cls = Functional
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *, name=None, trainable=True, dtype=None, **kwargs):
        super().__init__(name=name, trainable=trainable, dtype=dtype, **kwargs)
        d = self.__dict__
        d.update(optimizer=None, loss=None, compiled_metrics=[], stop_training=False, run_eagerly=False,
                 history=None, train_function=None, test_function=None, predict_function=None,
                 steps_per_execution=1, _loss_tracker=None, _compile_args=None, _initial_epoch=None)

    # ---- building ----
    def _build_for_call(self, input_shape):
        # Sublayers build themselves on the first call; only a user-defined build() runs here.
        if type(self).build is not Model.build:
            super()._build_for_call(input_shape)

    def build(self, input_shape) -> None:
        """Create the weights by calling the model once, eagerly, on zeros of ``input_shape``
        (``None`` dimensions count as 1).

        Args:
            input_shape: one shape (batch dimension included), or a list/tuple/dict of shapes for a
                model that takes several inputs.
        """
        if self.built:
            return

        def is_shape(s):
            return isinstance(s, (list, tuple)) and all(d is None or isinstance(d, int) for d in s)

        def zeros_for(s):
            if is_shape(s):
                return zeros(tuple(1 if d is None else int(d) for d in s))
            if isinstance(s, dict):
                return {k: zeros_for(v) for k, v in s.items()}
            return tuple(zeros_for(v) for v in s)
        with init_scope():
            self(zeros_for(input_shape), training=False)

    def _ensure_built(self, x) -> None:
        if not self.built:
            with init_scope():
                self(x, training=False)

    def _build_from(self, ds, what) -> None:
        # Variables must exist before a step is traced: build eagerly on the first batch.
        if not self.built:
            first = next(iter(ds), None)
            if first is None:
                raise ValueError(f"{what}: the data is empty")
            self._ensure_built(_unpack(first)[0])

    # ---- compile ----
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, run_eagerly: bool = False,
                jit_compile=None, steps_per_execution: int = 1, auto_scale_loss: bool = True) -> None:
        """Configure training (``keras.Model.compile``). Compile (again) after changing ``trainable``
        flags, as in Keras, and inside the ``webtensor.device(...)`` block you train in: metric state
        is created here.

        Args:
            optimizer: a name ('adam', 'sgd', 'adamw', 'rmsprop') or an ``Optimizer``.
            loss: a name ('sparse_categorical_crossentropy', 'mse', ...), a ``Loss`` or a function
                ``(y_true, y_pred) -> losses``.
            metrics: names ('accuracy', 'mae', ...), ``Metric`` objects or functions (one or a list).
            run_eagerly: run steps without tracing (for debugging).
            jit_compile: accepted for Keras compatibility (steps are always traced and compiled).
            steps_per_execution: under a ``webtensor.distribute`` synchronous strategy, the steps the
                replicas run per hand-off (one thread hand-off or Ray call), all-reducing between
                them; metrics (batch-level logs) then advance every that many steps, as Keras'
                batch hooks do. Without a strategy accepted for Keras compatibility (one step per
                execution).
            auto_scale_loss: as Keras 3: when the model's dtype policy is ``"mixed_float16"``, wrap the
                optimizer in a :class:`~webtensor.optimizers.LossScaleOptimizer` (unless it is one).
        Raises:
            ValueError/TypeError: an unknown name or a wrong type; ``steps_per_execution`` not an
                int >= 1.
        """
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) or steps_per_execution < 1:
            raise ValueError(f"compile: steps_per_execution must be an int >= 1, got {steps_per_execution!r}")
        self.optimizer = optimizers_mod.get(optimizer)
        if auto_scale_loss and self.dtype_policy.name == "mixed_float16" and \
                not isinstance(self.optimizer, optimizers_mod.LossScaleOptimizer):
            self.optimizer = optimizers_mod.LossScaleOptimizer(self.optimizer)
        self.__dict__["_compile_args"] = {"loss": loss, "metrics": metrics}    # as given, for get_compile_config
        self.loss = losses_mod.get(loss) if loss is not None else None
        if isinstance(metrics, (str, metrics_mod.Metric)) or callable(metrics):
            metrics = [metrics]
        self.compiled_metrics = [metrics_mod.get(m) for m in (metrics or [])]
        self._loss_tracker = metrics_mod.Mean("loss")
        self.run_eagerly = run_eagerly
        self.steps_per_execution = steps_per_execution
        self.train_function = self.test_function = self.predict_function = None
        self.distribute_strategy = current_strategy()    # compiled in a strategy's scope: fit uses it

    def get_compile_config(self) -> dict | None:
        """The ``compile`` arguments as JSON-ready values (Keras 3): the optimizer with its config, the
        loss and metrics as given (names stay names); None when not compiled. ``save`` stores it."""
        if self.optimizer is None:
            return None
        args = self._compile_args
        return {"optimizer": saving.serialize_keras_object(self.optimizer),
                "loss": saving.serialize_keras_object(args["loss"]),
                "metrics": saving.serialize_keras_object(args["metrics"]), "run_eagerly": self.run_eagerly}

    def compile_from_config(self, config: dict) -> None:
        """``compile`` from :meth:`get_compile_config`'s result (already deserialized).

        Args:
            config: a dict with ``optimizer`` (an Optimizer) and optionally ``loss``, ``metrics`` and
                ``run_eagerly``, as :meth:`compile` takes them.
        Raises:
            KeyError: no ``optimizer``.
        """
        self.compile(optimizer=config["optimizer"], loss=config.get("loss"), metrics=config.get("metrics"),
                     run_eagerly=bool(config.get("run_eagerly", False)))

    def _assert_compiled(self, what):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"{what}: the model must be compiled with a loss first: "
                               "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')")

    @property
    def metrics(self) -> list:
        """The loss tracker (``'loss'``) then the compiled metrics."""
        return ([self._loss_tracker] if self._loss_tracker is not None else []) + list(self.compiled_metrics)

    @property
    def metrics_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        """Reset the loss tracker and every compiled metric (``fit`` does it each epoch)."""
        for m in self.metrics:
            m.reset_state()

    def get_metrics_result(self) -> dict[str, float]:
        """``{name: value}`` of every metric, read from the device."""
        return {m.name: float(m.result()) for m in self.metrics}

    async def get_metrics_result_async(self) -> dict[str, float]:
        """:meth:`get_metrics_result` with one awaited readback for all metrics (browser WebGPU)."""
        results = [m.result() for m in self.metrics]
        if not results:
            return {}
        packed = F.concat([F.reshape(F.cast(r, "float32"), (1,)) for r in results], axis=0)
        return {m.name: float(v) for m, v in zip(self.metrics, await packed.tolist_async())}

    def _drive(self, loop):
        """Run a training/evaluation loop generator, answering each ``yield`` with the metric values."""
        try:
            loop.send(None)
            while True:
                loop.send(self.get_metrics_result())
        except StopIteration as stop:
            return stop.value

    async def _drive_async(self, loop):
        """:meth:`_drive`, awaiting each readback."""
        try:
            loop.send(None)
            while True:
                loop.send(await self.get_metrics_result_async())
        except StopIteration as stop:
            return stop.value

    # ---- steps (override these to customise training, as in Keras) ----
    def compute_loss(self, x, y, y_pred, sample_weight=None):
        """The loss of a batch: the compiled ``loss(y, y_pred, sample_weight)``. Override it for a
        custom loss (as Keras' ``Model.compute_loss``).

        Args:
            x: the batch's inputs.
            y: the batch's targets.
            y_pred: the model's outputs for ``x``.
            sample_weight: per-example weights, or None.
        Returns:
            A scalar tensor.
        """
        return self.loss(y, y_pred, sample_weight)

    def _update_metrics(self, loss, x, y, y_pred, sample_weight):
        self._loss_tracker.update_state(loss, sample_weight=metrics_mod.count_of(_leaves(x)[0].shape[0]))
        for m in self.compiled_metrics:
            m.update_state(y, y_pred, sample_weight)

    def train_step(self, x, y, sample_weight=None):
        """One step: forward, loss, gradients, optimizer update, metric updates (traced by ``fit``;
        override it to customise training, as Keras' ``train_step``). Returns the loss.

        Args:
            x: the batch's inputs.
            y: the batch's targets.
            sample_weight: per-example weights, or None.
        """
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
            scaled = self.optimizer.scale_loss(loss)    # loss scaling (a LossScaleOptimizer), as Keras 3
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        self._update_metrics(loss, x, y, y_pred, sample_weight)
        return loss

    def test_step(self, x, y, sample_weight=None):
        """One evaluation step: forward (``training=False``), loss, metric updates. Returns the loss.

        Args:
            x: the batch's inputs.
            y: the batch's targets.
            sample_weight: per-example weights, or None.
        """
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        self._update_metrics(loss, x, y, y_pred, sample_weight)
        return loss

    def predict_step(self, x):
        """One prediction step: ``self(x, training=False)``.

        Args:
            x: the batch's inputs.
        """
        return self(x, training=False)

    def _step_function(self, kind):
        attr = f"{kind}_function"
        fn = getattr(self, attr)
        if fn is None:
            step = getattr(self, f"{kind}_step")
            if kind == "train" and self.__dict__.get("distribute_strategy") is not None:
                fn = self.distribute_strategy._train_step(self)    # replicas run the compiled step
            else:
                fn = step if self.run_eagerly else function(step, name=f"{self.name}_{kind}_step")
                if not self.run_eagerly:
                    fn._symbolic_batch = True   # one trace for every batch size (the last partial batch)
            self.__dict__[attr] = fn
        return fn

    # ---- data ----
    def _n_inputs(self) -> int | None:
        """How many inputs the model declares (a functional model; a Sequential takes one), else None."""
        if "_inputs" in self.__dict__:
            return len(self._inputs)
        return 1 if isinstance(self, Sequential) else None

    def _n_outputs(self) -> int | None:
        """How many outputs the model declares (a functional model; a Sequential has one), else None."""
        if "_outputs" in self.__dict__:
            return len(self._outputs)
        return 1 if isinstance(self, Sequential) else None

    def _batches(self, x, y, batch_size, shuffle, seed, what):
        if isinstance(x, Dataset):
            if y is not None:
                raise ValueError(f"{what}: y must be None when x is a Dataset (it yields (x, y) batches)")
            return x
        if x is None:
            raise ValueError(f"{what}: no input data (x is None)")
        x, y = _as_tensors(x, self._n_inputs()), _as_tensors(y, self._n_outputs())
        n = _num_samples(what, x=x, y=y)
        if y is not None:
            self._check_sparse_labels(x, y, what)
        ds = Dataset.from_tensor_slices((x, y) if y is not None else (x,))
        if shuffle:
            ds = ds.shuffle(n, seed=seed)
        return ds.batch(int(batch_size))

    def _check_sparse_labels(self, x, y, what) -> None:
        """In-memory labels for a sparse cross-entropy loss are checked once, before any step: in
        the traced steps a label outside ``[0, C)`` can only make the loss NaN."""
        sparse = isinstance(self.loss, losses_mod.SparseCategoricalCrossentropy) or \
            getattr(self.loss, "fn", None) is losses_mod.sparse_categorical_crossentropy
        if not sparse or not isinstance(x, Tensor) or not isinstance(y, Tensor) or not x.shape or not x.shape[0]:
            return                  # (several inputs or outputs: the traced loss still turns NaN)
        if self._output_shape is None:           # the number of classes: the model's last output axis
            with init_scope():
                self(x[:1], training=False)
        if self._output_shape:
            losses_mod.check_sparse_labels(y, self._output_shape[-1], what)

    @staticmethod
    def _steps(ds, steps):
        if steps is not None:
            return int(steps)
        n = ds.cardinality()
        return n if n >= 0 else None

    # ---- fit / evaluate / predict ----
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, steps_per_epoch=None, validation_batch_size=None,
            seed=None):
        """Train for ``epochs`` epochs (``keras.Model.fit``): per batch one traced ``train_step``
        (forward, loss, gradients, optimizer update, metrics); with validation data, an evaluation
        after each epoch (``val_`` entries in the logs).

        Args:
            x: inputs ``(N, ...)`` as Tensors or arrays; for several inputs a list/tuple in input order
                or a dict keyed by input name (Keras 3). Or a batched Dataset of ``(x, y)`` or
                ``(x, y, sample_weight)`` (``x`` a tuple or dict for several inputs), with ``y=None``.
            y: targets ``(N, ...)`` (None when ``x`` is a Dataset).
            batch_size: examples per step for in-memory data (the last batch may be smaller).
            epochs: the epoch to stop before (epochs run from ``initial_epoch``).
            verbose: 0 silent, 1 a progress bar per epoch (tqdm when installed), 2 one line per
                epoch; 'auto' is 1.
            callbacks: a list of :class:`~webtensor.nn.Callback`.
            validation_split: the fraction of ``x``/``y`` held out from the end (before shuffling)
                for validation, in [0, 1).
            validation_data: ``(x_val, y_val)`` or a Dataset, evaluated after each epoch.
            shuffle: shuffle in-memory data every epoch.
            initial_epoch: the epoch to start at (to resume training).
            steps_per_epoch: steps per epoch, drawn from one iterator that runs across epochs (for
                repeated datasets); None: the whole data.
            validation_batch_size: the batch size for validation (default ``batch_size``).
            seed: the shuffling seed (None: from the global generator).
        Returns:
            A :class:`~webtensor.nn.History` (also ``model.history``).
        Raises:
            RuntimeError: not compiled. ValueError: inconsistent data or arguments (mismatched
                sample counts, labels out of range for a sparse loss, empty data).
        """
        return self._drive(self._fit_loop(x, y, batch_size, epochs, verbose, callbacks, validation_split,
                                          validation_data, shuffle, initial_epoch, steps_per_epoch,
                                          validation_batch_size, seed))

    async def fit_async(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
                        validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
                        steps_per_epoch=None, validation_batch_size=None, seed=None):
        """``await model.fit_async(...)``: :meth:`fit` awaiting each metric readback, for devices whose
        readback is asynchronous (WebGPU in the browser). Same arguments, result and errors as
        :meth:`fit`; callbacks must not read tensors synchronously (their ``logs`` are floats)."""
        return await self._drive_async(self._fit_loop(x, y, batch_size, epochs, verbose, callbacks,
                                                      validation_split, validation_data, shuffle, initial_epoch,
                                                      steps_per_epoch, validation_batch_size, seed))

    def _fit_loop(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
                  initial_epoch, steps_per_epoch, validation_batch_size, seed):
        """:meth:`fit` as a generator: ``logs = yield`` wherever the metric values are needed."""
        self._assert_compiled("fit")
        verbose = _verbose(verbose)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_split:
            if isinstance(x, Dataset):
                raise ValueError("fit: validation_split is not supported for Dataset inputs; pass validation_data")
            if validation_data is not None:
                raise ValueError("fit: pass validation_split or validation_data, not both")
            x, y = _as_tensors(x, self._n_inputs()), _as_tensors(y, self._n_outputs())
            n = _num_samples("fit", x=x, y=y)
            split = int(math.floor(n * (1.0 - validation_split)))
            if split == 0 or split == n:
                raise ValueError(f"fit: validation_split={validation_split} leaves an empty part of {n} samples")
            x, y, validation_data = _slice(x, 0, split), _slice(y, 0, split), (_slice(x, split, n), _slice(y, split, n))
        # A strategy's replicas take host arrays: batch in-memory data on the host ("reference") so a
        # shuffled batch is a numpy gather, not a device kernel copied back every step.
        with device("reference") if self.__dict__.get("distribute_strategy") is not None else contextlib.nullcontext():
            train = self._batches(x, y, batch_size, shuffle, seed, "fit")
        val = None
        if validation_data is not None:
            if isinstance(validation_data, Dataset):
                val = validation_data
            else:
                vx, vy = validation_data[0], validation_data[1]
                val = self._batches(vx, vy, validation_batch_size or batch_size, False, None, "fit (validation)")

        if steps_per_epoch is None and train.cardinality() == INFINITE_CARDINALITY:
            raise ValueError("fit: the training dataset is infinite (repeat()); pass steps_per_epoch")
        self._build_from(train, "fit")
        self.optimizer.build(self.trainable_variables)
        step_fn = self._step_function("train")

        steps = self._steps(train, steps_per_epoch)
        self.history = callbacks_mod.History()
        cbs = callbacks_mod.CallbackList(list(callbacks or []) + [self.history], self,
                                         {"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        shared_iter = iter(train) if steps_per_epoch is not None else None
        self._initial_epoch = None
        cbs.on_train_begin()
        # a callback (BackupAndRestore) may resume from a later epoch, as Keras' ``model._initial_epoch``
        if self._initial_epoch is not None:
            initial_epoch = self._initial_epoch
            if shared_iter is None:         # the resumed epochs see the data orders they would have seen
                train._skip_epochs(initial_epoch)
        logs = None
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            bar = Progress(steps, f"Epoch {epoch + 1}/{epochs}", verbose=verbose)
            every = max(1, (steps or 20) // 20)
            # a strategy's step may gather rows of in-memory data itself (each replica its shard of
            # a source shipped once): it then gets each batch's row indices
            rows = train._row_batches() if shared_iter is None and hasattr(step_fn, "run_rows") else None
            it = shared_iter if shared_iter is not None else (rows[1] if rows is not None else iter(train))
            step = 0
            while steps_per_epoch is None or step < steps:
                element = next(it, None)
                if element is None:
                    break
                if rows is None:
                    bx, by, bw = _unpack(element)
                cbs.on_train_batch_begin(step)
                if rows is not None:
                    step_fn.run_rows(*_unpack(rows[0]), element)
                else:
                    step_fn(bx, by, bw) if bw is not None else step_fn(bx, by)
                step += 1
                logs = (yield) if cbs.wants_batch_logs else None
                if verbose == 1 and (step % every == 0 or step == steps):
                    bar.update(1, **(logs or (yield)))
                else:
                    bar.update(1)
                cbs.on_train_batch_end(step - 1, logs)
                if self.stop_training:
                    break
            getattr(step_fn, "sync", lambda: None)()    # a strategy's replicas -> the model's Variables
            logs = yield
            if val is not None:
                cbs.on_test_begin()
                val_logs = yield from self._evaluation_loop(val, None, verbose=0)
                cbs.on_test_end(val_logs)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            bar.close(**logs)
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return self.history

    def _evaluation_loop(self, ds, steps, verbose):
        """Evaluation as a generator (see :meth:`_fit_loop`); returns the logs."""
        self._assert_compiled("evaluate")
        self._build_from(ds, "evaluate")
        step_fn = self._step_function("test")
        self.reset_metrics()
        bar = Progress(self._steps(ds, steps), "Evaluate", verbose=verbose)
        for i, element in enumerate(ds):
            if steps is not None and i >= steps:
                break
            bx, by, bw = _unpack(element)
            step_fn(bx, by, bw) if bw is not None else step_fn(bx, by)
            bar.update(1)
        logs = yield
        bar.close(**logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", steps=None, callbacks=None,
                 return_dict=False):
        """Loss and metrics on ``x``/``y`` (``keras.Model.evaluate``), one traced ``test_step`` per batch.

        Args:
            x: inputs (arrays/Tensors, a list/tuple/dict of them for several inputs), or a Dataset of
                ``(x, y)`` batches; see :meth:`fit`.
            y: targets (None when ``x`` is a Dataset).
            batch_size: examples per step for in-memory data.
            verbose: 0 silent, 1 a progress bar, 2 one line; 'auto' is 1.
            steps: stop after this many batches (None: all).
            callbacks: a list of :class:`~webtensor.nn.Callback` (test hooks are called).
            return_dict: return ``{name: value}``.
        Returns:
            The loss (a float) when there are no metrics, else ``[loss, *metrics]``, or a
            ``{name: value}`` dict with ``return_dict=True``.
        Raises:
            RuntimeError: not compiled. ValueError: inconsistent or empty data.
        """
        return self._drive(self._evaluate_loop(x, y, batch_size, verbose, steps, callbacks, return_dict))

    async def evaluate_async(self, x=None, y=None, batch_size=32, verbose="auto", steps=None, callbacks=None,
                             return_dict=False):
        """``await model.evaluate_async(...)``: :meth:`evaluate` awaiting the metric readback (WebGPU in
        the browser). Same arguments, result and errors as :meth:`evaluate`."""
        return await self._drive_async(self._evaluate_loop(x, y, batch_size, verbose, steps, callbacks, return_dict))

    def _evaluate_loop(self, x, y, batch_size, verbose, steps, callbacks, return_dict):
        ds = self._batches(x, y, batch_size, False, None, "evaluate")
        cbs = callbacks_mod.CallbackList(list(callbacks or []), self, {"steps": self._steps(ds, steps)})
        cbs.on_test_begin()
        logs = yield from self._evaluation_loop(ds, steps, _verbose(verbose))
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=32, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x``, batch by batch (``keras.Model.predict``).

        Args:
            x: inputs (arrays/Tensors, a list/tuple/dict of them for several inputs), or a Dataset
                whose elements are ``x`` or ``(x, ...)``.
            batch_size: examples per step for in-memory data.
            verbose: 0 silent, 1 a progress bar, 2 one line; 'auto' is 1.
            steps: stop after this many batches (None: all).
            callbacks: a list of :class:`~webtensor.nn.Callback` (predict hooks are called).
        Returns:
            One Tensor ``(N, ...)`` (a tuple of Tensors for a model with several outputs).
        Raises:
            ValueError: empty data or inputs that do not fit the model.
        """
        ds = self._batches(x, None, batch_size, False, None, "predict")
        outs, bar = [], Progress(self._steps(ds, steps), "Predict", verbose=_verbose(verbose))
        cbs = callbacks_mod.CallbackList(list(callbacks or []), self, {"steps": self._steps(ds, steps)})
        cbs.on_predict_begin()
        step_fn = None
        for i, element in enumerate(ds):
            if steps is not None and i >= steps:
                break
            bx = _unpack(element)[0]
            if step_fn is None:
                self._ensure_built(bx)
                step_fn = self._step_function("predict")
            outs.append(step_fn(bx))
            bar.update(1)
            cbs.on_predict_batch_end(i, {"outputs": outs[-1]})
        bar.close()
        cbs.on_predict_end()
        if not outs:
            raise ValueError("predict: the data is empty")
        if isinstance(outs[0], (tuple, list)):
            return tuple(F.concat([o[k] for o in outs], axis=0) for k in range(len(outs[0])))
        return F.concat(outs, axis=0) if len(outs) > 1 else outs[0]

    def predict_on_batch(self, x) -> Tensor:
        """The outputs for one batch (``keras.Model.predict_on_batch``), by the traced predict step.

        Args:
            x: an array or Tensor ``(batch, ...)``, or a list/tuple/dict of them for several inputs.
        """
        x = _as_tensors(x, self._n_inputs())
        self._ensure_built(x)
        return self._step_function("predict")(x)

    # ---- weights I/O ----
    def save_weights(self, filepath) -> None:
        """Write the weights in the safetensors layout, named by their paths in the layer tree; see
        :mod:`webtensor.nn.saving`.

        Args:
            filepath: the file to write.
        """
        saving.save_weights(self, filepath)

    def load_weights(self, filepath, *, by_name: bool = False, name_map=None, skip_mismatch: bool = False) -> None:
        """Load weights written by :meth:`save_weights` or by other frameworks, matched by path, all
        checked before any is assigned. See :func:`webtensor.nn.saving.load_weights`.

        Args:
            filepath: a safetensors file.
            by_name: load the weights whose paths match and leave the others (Keras'), with warnings.
            name_map: a dict or callable renaming the file's tensors to weight paths, optionally with
                a transform such as a transpose (for other frameworks' files).
            skip_mismatch: skip shape mismatches with a warning instead of raising (Keras').
        Raises:
            ValueError: missing or extra names, or shape/dtype mismatches (all listed).
        """
        saving.load_weights(self, filepath, by_name=by_name, name_map=name_map, skip_mismatch=skip_mismatch)

    def save(self, filepath, overwrite: bool = True) -> None:
        """Save the whole model to a ``.keras`` file: its config, weights, compile settings and optimizer
        state (Keras 3's zip layout); :func:`webtensor.nn.load_model` reads it back. See
        :func:`webtensor.nn.saving.save_model`.

        Args:
            filepath: the file (a str or path-like), whose name must end in ``.keras``.
            overwrite: replace an existing file; False raises FileExistsError instead.
        Raises:
            ValueError: another extension, or the model is not built.
            FileExistsError: ``overwrite=False`` and the file exists.
            TypeError, NotImplementedError: something in the model has no config.
        """
        saving.save_model(self, filepath, overwrite=overwrite)

    def export(self, path, batch_size: int | None = None, signatures=None, **kwargs) -> dict:
        """Write an artifact for the JS runtime and ``webtensor.load``: ``predict`` and, when compiled,
        ``train_step``. See :func:`webtensor.export`.

        Args:
            path: the artifact directory.
            batch_size: the batch size of the signatures (default: the one the model was built with).
            signatures: the names to export (default ``['predict', 'train_step']``; ``['predict']``
                with a compact ``weights_dtype``).
            **kwargs: passed to :func:`webtensor.export` (``example_inputs``, ``backends``, ``wasm_fma``,
                ``weights_dtype``: ``'float16'`` or ``'int8'`` for a compact inference artifact).
        Returns:
            The manifest (a dict).
        """
        return export_artifact(self, kwargs.pop("example_inputs", None), path, signatures, batch_size=batch_size,
                               **kwargs)

    # the export protocol (webtensor.export.ExportableModel)
    def _export_signatures(self, example_inputs, signatures, batch_size, rows_train_step=False) -> dict:
        return model_specs(self, example_inputs, signatures, batch_size,
                           custom_train_step=type(self).train_step is not Model.train_step,
                           custom_loss=type(self).compute_loss is not Model.compute_loss,
                           rows_train_step=rows_train_step)

    def _export_weight_paths(self) -> dict:
        return saving.weight_paths(self)

    # ---- summary ----
    def summary(self, line_length: int = 78, print_fn=None) -> None:
        """Print a table of the layers, their output shapes and parameter counts (``keras.Model.summary``).

        Args:
            line_length: the table's width in characters.
            print_fn: called with each line (default ``print``).
        Raises:
            ValueError: the model is not built yet.
        """
        if not self.built:
            raise ValueError(f"model {self.name!r} has not been built yet: call it on a batch, call "
                             "model.build(input_shape), or start a Sequential model with Input(shape)")
        print_fn = print_fn or print
        cols = (int(line_length * 0.45), int(line_length * 0.33), line_length - int(line_length * 0.78))

        def row(*cells):
            return "".join(str(c)[:w - 1].ljust(w) for c, w in zip(cells, cols)).rstrip()

        def shape(layer):
            s = layer._output_shape
            return "?" if s is None else str((None,) + tuple(s[1:])) if s else "()"

        lines = [f'Model: "{self.name}"', "_" * line_length, row("Layer (type)", "Output Shape", "Param #"),
                 "=" * line_length]
        for layer in self.layers:
            lines.append(row(f"{layer.name} ({type(layer).__name__})", shape(layer), f"{layer.count_params():,}"))
        own = sum(v.size for v in self._weights.values())
        if own:
            lines.append(row(f"(weights of {self.name})", "", f"{own:,}"))
        total = self.count_params()
        trainable = sum(v.size for v in self.trainable_variables)
        nbytes = sum(v.size * v.dtype.itemsize for v in self.variables)
        lines += ["=" * line_length, f"Total params: {total:,} ({nbytes / 1024:.2f} KB)",
                  f"Trainable params: {trainable:,}", f"Non-trainable params: {total - trainable:,}",
                  "_" * line_length]
        for line in lines:
            print_fn(line)


class Sequential(Model):
    """A stack of layers, each feeding the next: ``Sequential([Dense(128, activation='relu'),
    Dense(10)])``. Starting with ``Input(shape)`` builds the model at once (so ``summary()``
    works before training) and checks input shapes (``keras.Sequential``).

    Args:
        layers: the layers, in order (a list; may start with ``Input(shape)``).
        name: the model's name.
        trainable: whether its weights are trained.
    Raises:
        TypeError: an element that is not a layer. ValueError: an ``Input`` that is not first.
    """

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.__dict__["_stack"] = []
        for layer in layers or []:
            self.add(layer)

    def _sublayers(self):
        return [layer for layer in self._stack if not isinstance(layer, InputLayer)]

    def add(self, layer: Layer) -> None:
        """Append ``layer`` (``keras.Sequential.add``); the model rebuilds when it starts with an Input.

        Args:
            layer: a Layer, or an ``Input(shape)`` KerasTensor as the first element.
        Raises:
            TypeError: a non-layer. ValueError: an Input that is not first.
        """
        if isinstance(layer, KerasTensor) and layer._input_layer is not None:
            layer = layer._input_layer          # Sequential([Input(shape), ...])
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a Layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer) and self._stack:
            raise ValueError("Sequential.add: Input(...) can only be the first layer")
        self._stack.append(layer)
        self.train_function = self.test_function = self.predict_function = None  # traced for the old stack
        if isinstance(self._stack[0], InputLayer) and not isinstance(layer, InputLayer):
            self.built = False
            self.build(self._stack[0].shape)

    def get_config(self) -> dict:
        """``{"name", "trainable", "layers"}``: the layers (an ``Input`` first, if any) with their configs."""
        return {"name": self.name, "trainable": self.trainable, "layers": list(self._stack)}

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._sublayers():
            raise ValueError("Sequential.pop: the model has no layers")
        self.train_function = self.test_function = self.predict_function = None
        return self._stack.pop()

    def call(self, x, training=False):
        """Each layer in turn on the previous one's output.

        Args:
            x: the input.
            training: passed to every layer.
        """
        for layer in self._stack:
            x = layer(x, training=training)
        return x


class Functional(Model):
    """A model built by ``Model(inputs, outputs)`` from KerasTensors (Keras' functional API; see
    :mod:`webtensor.nn.functional`). Its layers are built already; calling it runs the recorded
    layer calls in order on the given inputs: one tensor per ``Input``, as a list or tuple in the
    order of :attr:`inputs` or a dict keyed by :attr:`input_names` (extra keys are ignored), as
    Keras 3's functional models take them; each is converted to its Input's dtype and its shape
    checked (ValueError naming the input).

    Args:
        inputs: the ``Input(...)`` KerasTensors: one, a list or a dict.
        outputs: the KerasTensors computed from them: one or a list.
        name: the model's name.
        trainable: whether its weights are trained.
    Raises:
        TypeError: ``inputs`` are not ``Input(...)`` KerasTensors, or ``outputs`` not KerasTensors.
        ValueError: an output depends on an ``Input`` missing from ``inputs`` (a disconnected graph).
    """

    def __init__(self, inputs, outputs, *, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        in_leaves: list = []
        in_struct = flatten(inputs, in_leaves)
        out_leaves: list = []
        out_struct = flatten(outputs, out_leaves)
        for what, leaves in (("inputs", in_leaves), ("outputs", out_leaves)):
            if not leaves:
                raise TypeError(f"Model: no {what}")
            bad = [v for v in leaves if not isinstance(v, KerasTensor)]
            if bad:
                raise TypeError(f"Model({what}=...): expected KerasTensors (from nn.Input and layers called on "
                                f"them), got {bad[0]!r}")
        not_inputs = [v for v in in_leaves if v._node is not None]
        if not_inputs:
            raise TypeError(f"Model(inputs=...): {not_inputs[0]!r} is not an Input(...)")
        # the recorded calls that the outputs need, in an order where each follows its inputs
        order, seen, given = [], set(), {id(v) for v in in_leaves}

        def visit(kt):
            node = kt._node
            if node is None:
                if id(kt) not in given:
                    raise ValueError(f"Model: the outputs depend on {kt.name!r} ({kt!r}), which is not among "
                                     f"the model's inputs (a disconnected graph)")
                return
            if id(node) in seen:
                return
            seen.add(id(node))
            for v in node.leaves:
                if isinstance(v, KerasTensor):
                    visit(v)
            order.append(node)

        for v in out_leaves:
            visit(v)
        d = self.__dict__
        d.update(_inputs=in_leaves, _in_struct=in_struct, _outputs=out_leaves, _out_struct=out_struct,
                 _nodes=order)
        layers = []
        for node in order:
            if isinstance(node.fn, Layer) and all(node.fn is not x for x in layers):
                layers.append(node.fn)
        self.functional_layers = layers          # tracked: variables, weights' paths, summary
        self.built = True
        self._build_shape = in_leaves[0].shape if len(in_leaves) == 1 else None

    def get_config(self) -> dict:
        """The graph of layer calls as JSON-ready values: ``inputs`` (each ``Input``'s shape, dtype and
        name), ``layers`` (each distinct layer's config), ``nodes`` (in order: the layer or operator
        called and its arguments, where ``{"tensor": i}`` is the i-th KerasTensor, inputs first, then
        each node's outputs) and the input/output structures. :meth:`from_config` replays the calls."""
        index = {id(kt): i for i, kt in enumerate(self._inputs)}
        layers: list = []
        nodes = []
        for node in self._nodes:
            if isinstance(node.fn, Layer):
                if all(node.fn is not x for x in layers):
                    layers.append(node.fn)
                fn = {"layer": next(i for i, x in enumerate(layers) if x is node.fn)}
            else:
                fn = {"op": _op_name(node.fn)}
            nodes.append({**fn, "args": _encode_struct(node.struct),
                          "leaves": [_encode_leaf(v, index) for v in node.leaves]})
            for kt in node.outputs:
                index[id(kt)] = len(index)
        inputs = [{"shape": list(kt.shape[1:]), "batch_size": kt.shape[0], "dtype": kt.dtype.name,
                   "name": kt._input_layer.name} for kt in self._inputs]
        return {"name": self.name, "trainable": self.trainable, "inputs": inputs,
                "input_structure": _encode_struct(self._in_struct), "layers": layers, "nodes": nodes,
                "outputs": [index[id(kt)] for kt in self._outputs], "output_structure": _encode_struct(self._out_struct)}

    @classmethod
    def from_config(cls, config: dict):
        """A model from :meth:`get_config`'s result (its layers already rebuilt).

        Args:
            config: a dict with ``layers`` (Layer instances), ``inputs``, ``nodes``, ``outputs``,
                ``input_structure``, ``output_structure`` and optionally ``name``, as
                :meth:`get_config` writes them (with the layers deserialized).
        Returns:
            A new ``Functional`` model calling those layers as the graph says.
        Raises:
            ValueError: a malformed graph.
        """
        try:
            layers = config["layers"]
            if not all(isinstance(x, Layer) for x in layers):
                raise ValueError("'layers' must hold layers")
            tensors = [Input(saving.check_input_shape(i["shape"], f"Functional input {i['name']!r}"),
                             batch_size=i["batch_size"], dtype=i["dtype"], name=i["name"]) for i in config["inputs"]]
            for node in config["nodes"]:
                fn = layers[_index(node["layer"], len(layers))] if "layer" in node else _OPS[node["op"]]
                leaves = [tensors[_index(v["tensor"], len(tensors))] if "tensor" in v else _decode_leaf(v)
                          for v in node["leaves"]]
                args, kwargs = unflatten(_decode_struct(node["args"]), iter(leaves))
                outs: list = []
                flatten(apply(fn, *args, **kwargs), outs)
                tensors.extend(outs)
            inputs = unflatten(_decode_struct(config["input_structure"]), iter(tensors[:len(config["inputs"])]))
            outputs = unflatten(_decode_struct(config["output_structure"]),
                                iter([tensors[_index(i, len(tensors))] for i in config["outputs"]]))
        except (KeyError, TypeError, IndexError, StopIteration) as e:
            raise ValueError(f"Functional.from_config: malformed graph ({type(e).__name__}: {e})") from e
        model = cls(inputs, outputs, name=config.get("name"))
        model.trainable = bool(config.get("trainable", True))
        return model

    @property
    def inputs(self) -> list:
        """The model's ``Input`` KerasTensors, flat, in the order positional inputs take."""
        return list(self._inputs)

    @property
    def input_names(self) -> list[str]:
        """The name of each input, in the order of :attr:`inputs`: the keys when ``Model(inputs=...)``
        was a dict of Inputs, else each Input's ``name``. Dicts passed as ``x`` are matched by these."""
        s = self._in_struct
        if s is not None and s[0] == "dict" and all(c is None for c in s[2]):
            return [str(k) for k in s[1]]
        return [kt.name for kt in self._inputs]

    def _flat_inputs(self, inputs) -> list:
        """``inputs`` (one value, a list/tuple in input order, a dict keyed by input name, or the
        structure of ``Model(inputs=...)``) as one value per input, in :attr:`inputs` order (Keras 3's
        ``Functional._standardize_inputs``: lists and tuples are alike; a dict may hold extra keys).

        Raises:
            ValueError: a missing input name, or a number of values other than the number of inputs.
        """
        names = self.input_names
        s = self._in_struct
        nested_dict = s is not None and s[0] == "dict" and not all(c is None for c in s[2])
        if isinstance(inputs, dict) and not nested_dict:       # by name (a nested dict: by structure)
            missing = [k for k in names if k not in inputs]
            if missing:
                raise ValueError(f"model {self.name!r}: input(s) {missing} missing from the dict (keys: "
                                 f"{list(inputs)}); its inputs are {tuple(names)}")
            return [inputs[k] for k in names]
        leaves: list = []
        flatten(inputs, leaves)
        if len(leaves) != len(self._inputs):
            raise ValueError(f"model {self.name!r} takes {len(self._inputs)} inputs {tuple(names)}, got "
                             f"{len(leaves)}: pass one array per input, as a list in this order or a dict keyed "
                             "by these names")
        return leaves

    def call(self, inputs, training=False):
        """The recorded layer calls, in order, on ``inputs``.

        Args:
            inputs: one tensor per ``Input``: a list/tuple in the order of :attr:`inputs`, a dict
                keyed by :attr:`input_names`, or one tensor for a single input.
            training: passed to every layer call.
        Raises:
            ValueError: a wrong number of inputs, a missing key, or an input of the wrong shape.
        """
        values = {}
        for kt, x in zip(self._inputs, self._flat_inputs(inputs)):
            x = x if isinstance(x, Tensor) else tensor(x, dtype=kt.dtype)
            if kt._input_layer.input_spec.problem(tuple(x.shape)):
                raise ValueError(f"model {self.name!r}: input {kt.name!r} expects shape {kt.shape}, got "
                                 f"{tuple(x.shape)}")
            values[id(kt)] = x
        for node in self._nodes:
            node.run(values, training)
        return unflatten(self._out_struct, iter(values[id(v)] for v in self._outputs))


# ---- the functional graph as JSON (Functional.get_config / from_config) ----
import operator as _operator

_OPS = {name: getattr(_operator, name) for name in ("add", "sub", "mul", "truediv", "matmul", "pow", "neg", "getitem")}


def _op_name(fn) -> str:
    for name, op in _OPS.items():
        if op is fn:
            return name
    raise TypeError(f"cannot save a functional model that calls {fn!r}; wrap it in a layer")


def _index(i, n: int) -> int:
    if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n:
        raise IndexError(f"index {i!r} out of range (0..{n - 1})")
    return i


def _encode_struct(struct):
    if struct is None:
        return None
    kind, meta, children = struct
    items = [_encode_struct(c) for c in children]
    if kind == "dict":
        if not all(isinstance(k, str) for k in meta):
            raise TypeError(f"cannot save a functional model with non-string dict keys {meta}")
        return {"dict": list(meta), "items": items}
    if hasattr(meta, "_fields"):
        raise TypeError("cannot save a functional model whose inputs or outputs are namedtuples")
    return {"seq": "list" if issubclass(meta, list) else "tuple", "items": items}


def _decode_struct(enc):
    if enc is None:
        return None
    children = tuple(_decode_struct(c) for c in enc["items"])
    if "dict" in enc:
        keys = tuple(enc["dict"])
        if len(keys) != len(children) or not all(isinstance(k, str) for k in keys):
            raise TypeError("dict keys do not match their items")
        return ("dict", keys, children)
    return ("seq", {"list": list, "tuple": tuple}[enc["seq"]], children)


def _encode_leaf(v, index: dict):
    if isinstance(v, KerasTensor):
        return {"tensor": index[id(v)]}
    if v is None or isinstance(v, (bool, int, float, str)):
        return {"value": v}
    if isinstance(v, slice):
        return {"slice": [_encode_leaf(x, index)["value"] for x in (v.start, v.stop, v.step)]}
    if v is Ellipsis:
        return {"ellipsis": True}
    raise TypeError(f"cannot save a functional model with the constant argument {v!r} (numbers, strings, "
                    "None, slices and ... only)")


def _decode_leaf(enc):
    if "value" in enc:
        v = enc["value"]
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
    elif "slice" in enc and len(enc["slice"]) == 3 and all(x is None or isinstance(x, int) for x in enc["slice"]):
        return slice(*enc["slice"])
    elif enc.get("ellipsis") is True:
        return Ellipsis
    raise TypeError(f"unknown argument {str(enc)[:100]}")
