"""webtensor.summary and the TensorBoard callback, read back with TensorBoard's own reader
(EventAccumulator): values, steps, runs and tags as tf.summary / keras.callbacks.TensorBoard write them."""
import os
import subprocess
import sys

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read(logdir):
    ea = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "images": 0,
                                                                        "tensors": 0})
    ea.Reload()
    return ea


def scalars(ea, tag):
    return [(e.step, e.value) for e in ea.Scalars(tag)]


def test_scalars_histograms_images_text_round_trip(tmp_path):
    Image = pytest.importorskip("PIL.Image")     # tensorboardX encodes images with Pillow
    writer = wt.summary.create_file_writer(tmp_path)
    assert wt.summary.scalar("ignored", 1.0, step=0) is False            # no default writer: nothing written
    with writer.as_default(step=7):
        assert wt.summary.scalar("loss", wt.tensor(0.5))                  # the block's step
        assert wt.summary.scalar("loss", np.float32(0.25), step=8)
        values = np.random.RandomState(0).randn(1000)
        wt.summary.histogram("w", wt.tensor(values.astype(np.float32)), step=3, buckets=12)
        img = np.zeros((2, 4, 5, 3), np.float32)
        img[0, 1, 2] = [1.0, 0.5, 2.0]
        wt.summary.image("img", img, step=2, max_outputs=1)
        wt.summary.text("note", "hello **tensorboard**", step=5)
    writer.close()
    ea = read(tmp_path)
    assert scalars(ea, "loss") == [(7, 0.5), (8, 0.25)]
    (h,) = ea.Histograms("w")
    hv = h.histogram_value
    assert h.step == 3 and hv.num == 1000 and sum(hv.bucket) == 1000
    assert hv.min == pytest.approx(values.min(), rel=1e-6) and hv.max == pytest.approx(values.max(), rel=1e-6)
    assert hv.sum == pytest.approx(values.astype(np.float32).sum(), rel=1e-5)
    (im,) = ea.Images("img")
    assert (im.step, im.width, im.height) == (2, 5, 4)
    import io
    pixel = np.asarray(Image.open(io.BytesIO(im.encoded_image_string)))[1, 2]
    np.testing.assert_array_equal(pixel[:3], [255, 128, 255])            # round(0.5 * 255); 2.0 clipped
    (t,) = ea.Tensors("note/text_summary")
    assert t.step == 5 and t.tensor_proto.string_val == [b"hello **tensorboard**"]


def test_steps_and_errors(tmp_path):
    writer = wt.summary.create_file_writer(tmp_path)
    with writer.as_default():
        with pytest.raises(ValueError, match="no step set"):
            wt.summary.scalar("x", 1.0)
        wt.summary.set_step(wt.Variable(4))
        try:
            wt.summary.scalar("x", 1.0)
        finally:
            wt.summary.set_step(None)
        with pytest.raises(ValueError, match="must be a number"):
            wt.summary.scalar("x", [1.0, 2.0], step=0)
        with pytest.raises(ValueError, match=r"\(k, h, w, c\)"):
            wt.summary.image("i", np.zeros((4, 4, 3)), step=0)
        with pytest.raises(TypeError, match="str"):
            wt.summary.text("t", 3, step=0)
        with pytest.raises(ValueError, match="buckets"):
            wt.summary.histogram("h", [1.0], step=0, buckets=0)
    writer.close()
    with writer.as_default(step=0), pytest.raises(RuntimeError, match="closed"):
        wt.summary.scalar("x", 1.0)
    assert scalars(read(tmp_path), "x") == [(4, 1.0)]


def test_missing_tensorboardx_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['tensorboardX'] = None\nimport webtensor as wt\n"
            "try:\n    wt.summary.create_file_writer(sys.argv[1])\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert "pip install 'webtensor[tensorboard]'" in out.stdout, out.stderr


def test_tensorboard_callback_writes_keras_runs_and_tags(tmp_path):
    wt.set_seed(0)
    R = np.random.RandomState(0)
    x, y = R.rand(40, 3).astype(np.float32), R.randint(0, 2, 40)
    m = nn.Sequential([nn.Input((3,)), nn.Dense(4, activation="relu"), nn.Dense(2)])
    m.compile(wt.optimizers.SGD(0.1), nn.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    cb = nn.callbacks.TensorBoard(tmp_path / "logs", histogram_freq=2, update_freq="batch")
    h = m.fit(x, y, epochs=3, batch_size=10, verbose=0, validation_split=0.25, callbacks=[cb]).history
    assert sorted(os.listdir(tmp_path / "logs")) == ["train", "validation"]
    train, val = read(tmp_path / "logs" / "train"), read(tmp_path / "logs" / "validation")
    f32 = lambda v: float(np.float32(v))   # noqa: E731  (event files store float32)
    assert scalars(train, "epoch_loss") == [(e, f32(v)) for e, v in enumerate(h["loss"])]
    assert scalars(train, "epoch_accuracy") == [(e, f32(v)) for e, v in enumerate(h["accuracy"])]
    assert scalars(train, "epoch_learning_rate") == [(e, f32(0.1)) for e in range(3)]
    assert scalars(val, "epoch_loss") == [(e, f32(v)) for e, v in enumerate(h["val_loss"])]
    assert scalars(val, "epoch_accuracy") == [(e, f32(v)) for e, v in enumerate(h["val_accuracy"])]
    assert [s for s, _ in scalars(train, "batch_loss")] == list(range(1, 10))    # 3 batches an epoch
    assert sorted(train.Tags()["histograms"]) == ["dense/bias/histogram", "dense/kernel/histogram",
                                                  "dense_1/bias/histogram", "dense_1/kernel/histogram"]
    kernel = train.Histograms("dense_1/kernel/histogram")
    assert [e.step for e in kernel] == [0, 2]
    final = m.layers[1].kernel.numpy()
    assert kernel[-1].histogram_value.sum == pytest.approx(float(final.sum()), abs=1e-5)
    (graph,) = train.Tensors("keras/text_summary")
    assert b'"class_name": "Sequential"' in graph.tensor_proto.string_val[0]
    assert not val.Tags()["histograms"] and "batch_loss" not in val.Tags()["scalars"]
