"""Index and label rules on every device (reference, wasm, webgpu), compared with numpy.

Indices (``gather``, ``take_along_axis``, ``x[int_tensor]``): a negative index counts from the end,
as in numpy. An index outside ``[-n, n)`` raises IndexError naming the op when its value is known
(eager); inside ``webtensor.function`` the value is not known, and the gathered slice is zeros
(as TensorFlow's GPU kernels), with no gradient.

Sparse labels (``sparse_softmax_cross_entropy`` and the Keras loss): a label outside ``[0, C)``
raises ValueError when known (eager); in traced code that row's loss and gradient are NaN, so a run
cannot look healthy; ``Model.fit``/``evaluate`` check in-memory labels once, before the first step.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402
from webtensor import nn  # noqa: E402

DEVICES = ["reference", "wasm", "webgpu"]


@pytest.fixture(params=DEVICES)
def dev(request):
    with wt.device(request.param):
        yield request.param


P = (np.arange(15, dtype=np.float32).reshape(5, 3) * 0.5 - 2.0)
I0 = np.array([[0, -1, 4], [-5, 2, -2]], np.int32)     # indices along axis 0 (size 5)
I1 = np.array([-1, 0, -3, 2], np.int32)                # along axis 1 (size 3)


@pytest.mark.parametrize("axis,indices", [(0, I0), (1, I1)], ids=["axis0", "axis1"])
def test_gather_negative_indices_match_numpy(dev, axis, indices):
    p, i = wt.tensor(P), wt.tensor(indices)
    want = np.take(P, indices, axis=axis)
    np.testing.assert_array_equal(wt.gather(p, i, axis=axis).numpy(), want)
    np.testing.assert_array_equal(wt.function(lambda p, i: wt.gather(p, i, axis=axis))(p, i).numpy(), want)
    g = np.random.default_rng(0).normal(size=want.shape).astype(np.float32)
    loss = lambda p, i: wt.sum(wt.gather(p, i, axis=axis) * wt.tensor(g))   # noqa: E731
    want_grad = np.zeros_like(P)
    np.add.at(want_grad, (slice(None),) * axis + (indices % P.shape[axis],), g)
    _, eager_grad = wt.value_and_grad(loss)(p, i)
    _, traced_grad = wt.function(wt.value_and_grad(loss))(p, i)
    np.testing.assert_allclose(eager_grad.numpy(), want_grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(traced_grad.numpy(), want_grad, rtol=1e-6, atol=1e-6)


def test_integer_tensor_index_and_take_along_axis_wrap_negative_indices(dev):
    x = wt.tensor(P)
    np.testing.assert_array_equal(x[wt.tensor([-1, 0, -5])].numpy(), P[[-1, 0, -5]])
    np.testing.assert_array_equal(x[[-1]].numpy(), P[[-1]])
    ia = np.array([[-1, 0], [2, -3], [1, 1], [-2, -1], [0, 2]], np.int32)
    want = np.take_along_axis(P, ia, axis=1)
    np.testing.assert_array_equal(wt.take_along_axis(x, wt.tensor(ia), axis=1).numpy(), want)
    np.testing.assert_array_equal(
        wt.function(lambda a, i: wt.take_along_axis(a, i, axis=1))(x, wt.tensor(ia)).numpy(), want)


@pytest.mark.parametrize("bad", [5, -6, 100])
def test_out_of_range_index_raises_eagerly(dev, bad):
    p, i = wt.tensor(P), wt.tensor([1, bad, 0])
    with pytest.raises(IndexError, match=rf"^gather: index {bad} is out of bounds for axis 0 with size 5"):
        wt.gather(p, i)
    with pytest.raises(IndexError, match=rf"^gather: index {bad} is out of bounds for axis 1 with size 3"):
        wt.gather(p, i, axis=1)
    with pytest.raises(IndexError, match=rf"index {bad} is out of bounds"):
        wt.tensor(P)[i]
    with pytest.raises(IndexError, match=rf"^take_along_axis: index {bad} is out of bounds for axis 1 with size 3"):
        wt.take_along_axis(p, wt.tensor([[bad]] * 5), axis=1)


def test_out_of_range_index_in_a_function_gives_zeros_and_no_gradient(dev):
    idx = np.array([1, 5, -6, -1, 100], np.int32)
    p, i = wt.tensor(P), wt.tensor(idx)
    ok = (idx >= -5) & (idx < 5)
    want = np.where(ok[:, None], P[np.where(ok, idx, 0)], 0.0).astype(np.float32)
    np.testing.assert_array_equal(wt.function(lambda p, i: wt.gather(p, i))(p, i).numpy(), want)
    _, grad = wt.function(wt.value_and_grad(lambda p, i: wt.sum(wt.gather(p, i) * 2.0)))(p, i)
    want_grad = np.zeros_like(P)
    np.add.at(want_grad, idx[ok] % 5, 2.0)
    np.testing.assert_array_equal(grad.numpy(), want_grad)
    ia = np.array([[0, 3], [-4, -1], [2, 1], [0, 0], [-3, 9]], np.int32)
    oka = (ia >= -3) & (ia < 3)
    want_t = np.where(oka, np.take_along_axis(P, np.where(oka, ia, 0), axis=1), 0.0)
    got_t = wt.function(lambda a, i: wt.take_along_axis(a, i, axis=1))(p, wt.tensor(ia)).numpy()
    np.testing.assert_array_equal(got_t, want_t)


# ---- sparse labels ---------------------------------------------------------------------------------

LOGITS = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, 0.1], [-1.0, 2.0, 3.0], [0.0, 0.0, 4.0]], np.float32)
LABELS = np.array([0, 7, 2, -1], np.int32)
VALID = (LABELS >= 0) & (LABELS < 3)


def _np_sparse_ce(labels, logits):
    m = logits.max(-1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(-1)) + m[:, 0]
    return lse - logits[np.arange(len(labels)), np.clip(labels, 0, 2)]


def _np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("bad", [7, -1, 3])
def test_sparse_cross_entropy_raises_eagerly_for_a_known_bad_label(dev, bad):
    with pytest.raises(ValueError, match=rf"^sparse_softmax_cross_entropy: label {bad} is out of range for 3 "
                                         rf"classes"):
        wt.sparse_softmax_cross_entropy(wt.tensor([0, bad]), wt.zeros((2, 3)))
    with pytest.raises(ValueError, match=rf"label {bad} is out of range for 3 classes"):
        nn.losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([bad, 0]), wt.zeros((2, 3)))


@pytest.mark.parametrize("from_logits", [True, False])
def test_sparse_cross_entropy_is_nan_for_bad_rows_in_a_function(dev, from_logits):
    scores = LOGITS if from_logits else _np_softmax(LOGITS)
    y, z = wt.tensor(LABELS), wt.tensor(scores)
    fn = lambda y, z: wt.sparse_softmax_cross_entropy(y, z, from_logits=from_logits)   # noqa: E731
    loss = wt.function(fn)(y, z).numpy()
    assert np.isnan(loss[~VALID]).all(), loss
    np.testing.assert_allclose(loss[VALID], _np_sparse_ce(LABELS, LOGITS)[VALID], rtol=1e-5, atol=1e-5)
    _, grad = wt.function(wt.value_and_grad(lambda z, y: wt.sum(fn(y, z))))(z, y)
    grad = grad.numpy()
    assert np.isnan(grad[~VALID]).all(), grad
    if from_logits:
        want = _np_softmax(LOGITS) - np.eye(3, dtype=np.float32)[np.clip(LABELS, 0, 2)]
    else:
        want = -np.eye(3, dtype=np.float32)[np.clip(LABELS, 0, 2)] / scores
    np.testing.assert_allclose(grad[VALID], want[VALID], rtol=1e-4, atol=1e-5)
    mean = wt.function(lambda y, z: nn.losses.SparseCategoricalCrossentropy(from_logits=from_logits)(y, z))(y, z)
    assert np.isnan(float(mean))


def _model(seed=0):
    m = nn.Sequential([nn.Dense(3, kernel_initializer=nn.initializers.GlorotUniform(seed=seed))])
    m.compile(wt.optimizers.SGD(0.1), nn.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=[nn.metrics.SparseCategoricalAccuracy()])
    return m


X = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)


@pytest.mark.parametrize("bad", [7, -1])
def test_fit_checks_in_memory_labels_before_training(dev, bad):
    m = _model()
    y = np.array([0, 1, 2, 0, 1, bad, 2, 0], np.int32)
    with pytest.raises(ValueError, match=rf"^fit: label {bad} \(sample 5\) is out of range for 3 classes"):
        m.fit(X, y, batch_size=4, epochs=1, verbose=0)
    before = [w.copy() for w in m.get_weights()]
    with pytest.raises(ValueError, match=rf"label {bad} \(sample 5\) is out of range for 3 classes"):
        m.fit(X, wt.tensor(y), batch_size=4, epochs=1, verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)                      # no step ran
    good = np.array([0, 1, 2, 0, 1, 2, 2, 0], np.int32)
    with pytest.raises(ValueError, match=rf"^fit \(validation\): label {bad} \(sample 5\)"):
        m.fit(X, good, validation_data=(X, y), batch_size=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=rf"^evaluate: label {bad} \(sample 5\)"):
        m.evaluate(X, y, batch_size=4, verbose=0)
    m.fit(X, good.astype(np.float32), batch_size=4, epochs=1, verbose=0)      # float labels are fine


def test_fit_on_a_dataset_with_a_bad_label_reports_nan_not_zero(dev):
    m = _model()
    y = np.array([0, 1, 2, 0, 1, 7, 2, 0], np.int32)
    h = m.fit(wt.data.Dataset.from_tensor_slices((X, y)).batch(4), epochs=1, verbose=0)
    assert np.isnan(h.history["loss"][0]), h.history
    acc = h.history["sparse_categorical_accuracy"][0]
    assert 0.0 <= acc <= 1.0


def test_sparse_categorical_accuracy_counts_bad_labels_as_wrong(dev):
    m = nn.metrics.SparseCategoricalAccuracy()
    m.update_state(LABELS, LOGITS)
    want = np.mean(LOGITS.argmax(-1) == LABELS)
    assert float(m.result()) == pytest.approx(want)
    traced = wt.function(lambda y, z: nn.metrics.sparse_categorical_accuracy(y, z))(wt.tensor(LABELS),
                                                                                   wt.tensor(LOGITS))
    np.testing.assert_array_equal(traced.numpy(), (LOGITS.argmax(-1) == LABELS).astype(np.float32))
