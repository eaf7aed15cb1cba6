"""What PyTorch's ONNX exporter writes, read by webtensor.onnx: a small BERT-style encoder
(fixtures/torch_encoder.onnx, made by make_torch_fixture.py) against onnxruntime, for two batch
sizes (the dynamic dim) with a padding mask, on "reference" and "wasm"; then a few training steps
through its imported weights."""
import os

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import webtensor as wt  # noqa: E402
import webtensor.onnx as wo  # noqa: E402

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "torch_encoder.onnx")
SEQ = 16        # the TorchScript exporter bakes the sequence length into the attention's reshapes


def inputs(batch, seed):
    r = np.random.default_rng(seed)
    ids = r.integers(0, 100, (batch, SEQ)).astype(np.int64)
    mask = np.ones((batch, SEQ), np.int64)
    mask[-1, SEQ - 5:] = 0              # the last sequence is padded
    return ids, mask


@pytest.mark.parametrize("device", ["reference", "wasm"])
def test_torch_encoder_matches_onnxruntime(device):
    sess = ort.InferenceSession(PATH, providers=["CPUExecutionProvider"])
    with wt.device(device):
        model = wo.load(PATH)
        step = wt.function(lambda a, b: model([a, b]))
        for batch in (2, 3):
            ids, mask = inputs(batch, batch)
            want = sess.run(None, {"ids": ids, "mask": mask})[0]
            got = step(wt.tensor(ids), wt.tensor(mask)).numpy()
            assert np.abs(got - want).max() / np.abs(want).max() < 1e-5


def test_torch_encoder_fine_tunes():
    model = wo.load(PATH)
    ids, mask = inputs(4, 7)
    y = np.array([0, 1, 2, 3], np.int32)
    opt = wt.optimizers.Adam(1e-2)
    loss_fn = wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True)

    @wt.function
    def train(a, b, t):
        with wt.GradientTape() as tape:
            loss = loss_fn(t, model([a, b]))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss
    losses = [float(train(wt.tensor(ids), wt.tensor(mask), wt.tensor(y))) for _ in range(20)]
    assert losses[-1] < 0.3 * losses[0], losses
