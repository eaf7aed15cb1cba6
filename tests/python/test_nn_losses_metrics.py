"""webtensor.nn.losses and metrics against numpy formulas."""
import numpy as np
import pytest

import webtensor as wt
from webtensor import nn


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


R = np.random.RandomState(0)
LOGITS = (R.randn(6, 4) * 3).astype(np.float32)
LABELS = np.array([0, 3, 1, 1, 2, 0], np.int32)
ONEHOT = np.eye(4, dtype=np.float32)[LABELS]


def test_sparse_categorical_crossentropy_logits_and_probs():
    ref = -np.log(softmax(LOGITS)[np.arange(6), LABELS])
    loss = nn.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(loss(LABELS, LOGITS)) == pytest.approx(ref.mean(), rel=1e-5)
    probs = softmax(LOGITS)
    assert float(nn.losses.SparseCategoricalCrossentropy()(LABELS, probs)) == \
        pytest.approx(-np.log(np.clip(probs[np.arange(6), LABELS], 1e-7, 1 - 1e-7)).mean(), rel=1e-5)
    # (N, 1) labels, sum and none reductions
    assert float(loss(LABELS[:, None], LOGITS)) == pytest.approx(ref.mean(), rel=1e-5)
    assert float(nn.losses.SparseCategoricalCrossentropy(True, reduction="sum")(LABELS, LOGITS)) == \
        pytest.approx(ref.sum(), rel=1e-5)
    np.testing.assert_allclose(nn.losses.SparseCategoricalCrossentropy(True, reduction="none")(LABELS, LOGITS)
                               .numpy(), ref, rtol=1e-5)
    with pytest.raises(ValueError, match="labels of shape"):
        loss(LABELS[:5], LOGITS)
    with pytest.raises(ValueError, match="reduction"):
        nn.losses.SparseCategoricalCrossentropy(reduction="avg")


def test_categorical_crossentropy_and_label_smoothing():
    ref = -(ONEHOT * np.log(softmax(LOGITS))).sum(-1).mean()
    assert float(nn.losses.CategoricalCrossentropy(from_logits=True)(ONEHOT, LOGITS)) == pytest.approx(ref, rel=1e-5)
    smooth = ONEHOT * 0.9 + 0.1 / 4
    ref_s = -(smooth * np.log(softmax(LOGITS))).sum(-1).mean()
    assert float(nn.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(ONEHOT, LOGITS)) == \
        pytest.approx(ref_s, rel=1e-5)
    p = softmax(LOGITS)
    assert float(nn.losses.get("categorical_crossentropy")(ONEHOT, p)) == \
        pytest.approx(-(ONEHOT * np.log(np.clip(p, 1e-7, 1 - 1e-7))).sum(-1).mean(), rel=1e-5)


def test_binary_crossentropy_stable_with_logits():
    z = np.array([[0, 1, 1], [1, 0, 0]], np.float32)
    x = np.array([[-100.0, 50.0, 0.3], [2.0, -1.0, 80.0]], np.float32)
    ref = (np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))).mean(-1).mean()
    got = float(nn.losses.BinaryCrossentropy(from_logits=True)(z, x))
    assert np.isfinite(got) and got == pytest.approx(ref, rel=1e-5)
    p = 1 / (1 + np.exp(-np.clip(x, -10, 10)))
    ref_p = -(z * np.log(np.clip(p, 1e-7, 1 - 1e-7)) + (1 - z) * np.log(np.clip(1 - p, 1e-7, 1 - 1e-7)))
    assert float(nn.losses.BinaryCrossentropy()(z, p)) == pytest.approx(ref_p.mean(), rel=1e-4)


def test_regression_losses_and_plain_functions():
    a, b = R.randn(5, 3).astype(np.float32), R.randn(5, 3).astype(np.float32)
    assert float(nn.losses.MeanSquaredError()(a, b)) == pytest.approx(((a - b) ** 2).mean(), rel=1e-5)
    assert float(nn.losses.get("mae")(a, b)) == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    custom = nn.losses.get(lambda t, p: wt.sum((t - p) ** 2, axis=-1))
    assert float(custom(a, b)) == pytest.approx(((a - b) ** 2).sum(-1).mean(), rel=1e-5)


def test_loss_gradient_matches_softmax_minus_onehot():
    logits = wt.Variable(LOGITS)
    with wt.GradientTape() as tape:
        loss = nn.losses.SparseCategoricalCrossentropy(from_logits=True)(LABELS, logits)
    (g,) = tape.gradient(loss, [logits])
    np.testing.assert_allclose(g.numpy(), (softmax(LOGITS) - ONEHOT) / 6, rtol=1e-4, atol=1e-6)


def test_accuracy_metrics():
    pred_labels = LOGITS.argmax(-1)
    expected = float(np.mean(pred_labels == LABELS))
    m = nn.metrics.SparseCategoricalAccuracy()
    m.update_state(LABELS[:3], LOGITS[:3])
    m.update_state(LABELS[3:], LOGITS[3:])
    assert float(m.result()) == pytest.approx(expected)
    m.reset_state()
    assert float(m.result()) == 0.0
    c = nn.metrics.CategoricalAccuracy()
    assert float(c(ONEHOT, LOGITS)) == pytest.approx(expected)
    a = nn.metrics.Accuracy()
    assert float(a([1, 2, 3, 4], [1, 2, 0, 4])) == pytest.approx(0.75)
    b = nn.metrics.BinaryAccuracy()
    assert float(b([[1], [0], [1]], [[0.7], [0.2], [0.4]])) == pytest.approx(2 / 3)
    auto = nn.metrics.get("accuracy")
    assert auto.name == "accuracy"
    assert float(auto(LABELS, LOGITS)) == pytest.approx(expected)


def test_mean_metric_weighted_and_traced():
    m = nn.metrics.Mean("loss")
    m.update_state([1.0, 2.0, 3.0])
    m.update_state(10.0, sample_weight=3.0)
    assert float(m.result()) == pytest.approx((6 + 30) / 6)
    m.reset_state()
    step = wt.function(lambda v: m.update_state(v))
    for v in ([1.0, 3.0], [5.0, 7.0]):
        step(np.array(v, np.float32))
    assert float(m.result()) == pytest.approx(4.0) and step.trace_count == 1
