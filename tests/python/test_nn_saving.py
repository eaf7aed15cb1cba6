"""save_weights / load_weights: round trip, safetensors interop, structural names, clear errors."""
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn


def cnn():
    return nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(4, 3, padding="same", activation="relu"),
                          nn.BatchNormalization(), nn.MaxPool2D(), nn.Flatten(), nn.Dense(16, activation="relu"),
                          nn.Dense(10)])


X = np.random.RandomState(0).rand(5, 8, 8, 1).astype(np.float32)


def test_round_trip_gives_identical_predictions(tmp_path):
    wt.set_seed(1)
    a = cnn()
    a.compile("adam", nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    a.fit(X, np.arange(5) % 10, epochs=2, verbose=0)  # moves BatchNormalization's moving statistics too
    path = tmp_path / "cnn.safetensors"
    a.save_weights(path)
    wt.set_seed(2)
    b = cnn()
    assert not np.array_equal(a.predict(X, verbose=0).numpy(), b.predict(X, verbose=0).numpy())
    b.load_weights(path)
    np.testing.assert_array_equal(a.predict(X, verbose=0).numpy(), b.predict(X, verbose=0).numpy())
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_file_is_plain_safetensors_with_structural_names(tmp_path):
    from safetensors.numpy import load_file
    wt.set_seed(0)
    m = cnn()
    path = tmp_path / "w.safetensors"
    m.save_weights(path)
    loaded = load_file(str(path))
    assert sorted(loaded) == sorted([
        "conv2d/kernel", "conv2d/bias", "batch_normalization/gamma", "batch_normalization/beta",
        "batch_normalization/moving_mean", "batch_normalization/moving_variance",
        "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"])
    for name, v in saving_paths(m).items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], v.numpy())
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert json.loads(raw[8:8 + n])["__metadata__"] == {"format": "webtensor.weights", "version": "1"}


def saving_paths(model):
    return nn.saving.weight_paths(model)


def test_weights_written_by_safetensors_library_load(tmp_path):
    from safetensors.numpy import save_file
    wt.set_seed(0)
    m = nn.Sequential([nn.Input((3,)), nn.Dense(2)])
    k = np.arange(6, dtype=np.float32).reshape(3, 2)
    save_file({"dense/kernel": k, "dense/bias": np.array([1.0, -1.0], np.float32)}, str(tmp_path / "x.safetensors"))
    m.load_weights(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(m.predict(np.eye(3, dtype=np.float32), verbose=0).numpy(), k + [1.0, -1.0])


def test_names_do_not_depend_on_process_history(tmp_path):
    """A file saved by one process loads into the same architecture built in a fresh process, even
    though the layers there get different automatic names."""
    wt.set_seed(3)
    for _ in range(3):
        nn.Dense(1)  # shifts this process's automatic names: dense_N
    m = cnn()
    path = tmp_path / "w.safetensors"
    m.save_weights(path)
    expected = m.predict(X, verbose=0).numpy()
    np.save(tmp_path / "x.npy", X)
    code = f"""
import numpy as np, webtensor as wt
from webtensor import nn
m = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(4, 3, padding="same", activation="relu"),
                   nn.BatchNormalization(), nn.MaxPool2D(), nn.Flatten(), nn.Dense(16, activation="relu"),
                   nn.Dense(10)])
m.load_weights({str(path)!r})
np.save({str(tmp_path / 'y.npy')!r}, m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0).numpy())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_mismatches_are_clear_and_load_nothing(tmp_path):
    wt.set_seed(0)
    small = nn.Sequential([nn.Input((4,)), nn.Dense(3), nn.Dense(2)])
    path = tmp_path / "small.safetensors"
    small.save_weights(path)

    wider = nn.Sequential([nn.Input((4,)), nn.Dense(5), nn.Dense(2)])
    before = wider.get_weights()
    with pytest.raises(ValueError, match=r"dense/kernel.*file has shape \(4, 3\), model has \(4, 5\)"):
        wider.load_weights(path)
    for u, v in zip(before, wider.get_weights()):
        np.testing.assert_array_equal(u, v)  # nothing was assigned, not even the matching biases' shapes

    deeper = nn.Sequential([nn.Input((4,)), nn.Dense(3), nn.Dense(2), nn.Dense(2)])
    with pytest.raises(ValueError, match=r"missing from the file: \['dense_2/kernel', 'dense_2/bias'\]"):
        deeper.load_weights(path)
    shallow = nn.Sequential([nn.Input((4,)), nn.Dense(3)])
    with pytest.raises(ValueError, match=r"in the file but not in the model: \['dense_1/"):
        shallow.load_weights(path)
    with pytest.raises(ValueError, match="build it first"):
        nn.Sequential([nn.Dense(3)]).load_weights(path)
    (tmp_path / "bad.safetensors").write_bytes(b"\x01\x00")
    with pytest.raises(ValueError, match="bad.safetensors"):
        small.load_weights(tmp_path / "bad.safetensors")


def test_set_weights_checks_shapes_first():
    m = nn.Sequential([nn.Input((2,)), nn.Dense(2)])
    before = m.get_weights()
    with pytest.raises(ValueError, match="shape"):
        m.set_weights([np.ones((2, 2), np.float32), np.ones((3,), np.float32)])
    np.testing.assert_array_equal(m.get_weights()[0], before[0])
    with pytest.raises(ValueError, match="2 variables"):
        m.set_weights([np.ones((2, 2), np.float32)])
