"""The Keras training callbacks (ModelCheckpoint, BackupAndRestore, LearningRateScheduler,
ReduceLROnPlateau, CSVLogger, TerminateOnNaN) against Keras 3's documented semantics."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn
from webtensor.nn import callbacks as C

R = np.random.RandomState(5)
X = R.rand(32, 4).astype(np.float32)
Y = (X @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)).astype(np.float32)


def regression(lr=0.05):
    wt.set_seed(0)
    m = nn.Sequential([nn.Input((4,)), nn.Dense(6, activation="tanh"), nn.Dense(1)])
    m.compile(wt.optimizers.SGD(lr), "mse")
    return m


# ---- ModelCheckpoint -------------------------------------------------------------------------------

def test_model_checkpoint_save_best_only_saves_on_improvement(tmp_path):
    m = regression()
    cb = C.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.keras"), save_best_only=True)
    cb.set_model(m)
    for epoch, v in enumerate([0.5, 0.7, 0.4, 0.4, 0.6, 0.3]):
        m.layers[0].bias.assign(np.full(6, epoch, np.float32))       # tells the saved models apart
        cb.on_epoch_end(epoch, {"loss": 1.0, "val_loss": v})
    assert sorted(os.listdir(tmp_path)) == ["m-01-0.50.keras", "m-03-0.40.keras", "m-06-0.30.keras"]
    assert cb.best == 0.3
    assert nn.load_model(tmp_path / "m-03-0.40.keras").layers[0].bias.numpy()[0] == 2
    with pytest.warns(UserWarning, match="only with val_loss available"):
        cb.on_epoch_end(6, {"loss": 1.0})
    # in fit: every epoch saved without save_best_only (the path is formatted with the epoch's logs)
    cb = C.ModelCheckpoint(str(tmp_path / "fit" / "e{epoch}.keras"))
    h = m.fit(X, Y, epochs=2, verbose=0, callbacks=[cb]).history
    assert sorted(os.listdir(tmp_path / "fit")) == ["e1.keras", "e2.keras"]
    again = nn.load_model(tmp_path / "fit" / "e2.keras")
    assert all(np.array_equal(u, v) for u, v in zip(again.get_weights(), m.get_weights()))
    assert int(again.optimizer.iterations) == int(m.optimizer.iterations) and len(h["loss"]) == 2


def test_model_checkpoint_modes_weights_only_and_batch_frequency(tmp_path):
    assert C.ModelCheckpoint("a.keras", monitor="val_accuracy").monitor_op(0.9, 0.8)      # auto: max for acc
    assert C.ModelCheckpoint("a.keras", monitor="loss").monitor_op(0.8, 0.9)             # auto: min
    assert C.ModelCheckpoint("a.keras", monitor="acc", mode="min").monitor_op(0.8, 0.9)
    with pytest.raises(ValueError, match=r"\.keras"):
        C.ModelCheckpoint("model.h5")
    with pytest.raises(ValueError, match="save_freq"):
        C.ModelCheckpoint("a.keras", save_freq="batch")
    with pytest.raises(ValueError, match="mode"):
        C.ModelCheckpoint("a.keras", mode="best")
    m = regression()
    every = C.ModelCheckpoint(str(tmp_path / "w-{epoch}-{batch}.weights.safetensors"), save_weights_only=True,
                              save_freq=3)
    m.fit(X, Y, epochs=2, batch_size=8, verbose=0, shuffle=False, callbacks=[every])    # 4 batches an epoch
    assert sorted(os.listdir(tmp_path)) == sorted(["w-1-3.weights.safetensors", "w-2-2.weights.safetensors"])
    m2 = regression()
    m2.load_weights(tmp_path / "w-2-2.weights.safetensors")     # after 6 of the 8 updates
    assert not np.array_equal(m2.get_weights()[0], m.get_weights()[0])


# ---- BackupAndRestore ------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import webtensor as wt
    from webtensor import nn
    backup, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    wt.set_seed(0)
    R = np.random.RandomState(0)
    X, Y = R.rand(40, 5).astype("float32"), (R.rand(40) * 3).astype("int32")
    m = nn.Sequential([nn.Input((5,)), nn.Dense(8, activation="relu"), nn.Dropout(0.2), nn.Dense(3)])
    m.compile(wt.optimizers.Adam(0.01), nn.losses.SparseCategoricalCrossentropy(from_logits=True))

    class Kill(nn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    callbacks = ([nn.callbacks.BackupAndRestore(backup)] if backup != "-" else []) + [Kill()]
    h = m.fit(X, Y, epochs=6, batch_size=8, verbose=0, shuffle=True, callbacks=callbacks)
    np.savez(out, *m.get_weights(), *m.optimizer.variables, epochs=np.array(h.epoch), loss=np.array(h.history["loss"]))
""")


def run_child(tmp_path, backup, out, kill_at):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.run([sys.executable, str(script), backup, str(out), str(kill_at)], capture_output=True,
                          text=True, timeout=600)


def test_backup_and_restore_resumes_a_killed_fit(tmp_path):
    backup = tmp_path / "backup"
    plain = run_child(tmp_path, "-", tmp_path / "plain.npz", -1)
    assert plain.returncode == 0, plain.stderr
    killed = run_child(tmp_path, str(backup), tmp_path / "killed.npz", 3)
    assert killed.returncode == -9 and not (tmp_path / "killed.npz").exists()
    assert sorted(os.listdir(backup)) == ["backup-3.safetensors", "checkpoint"]     # the end of epoch index 2
    resumed = run_child(tmp_path, str(backup), tmp_path / "resumed.npz", -1)
    assert resumed.returncode == 0, resumed.stderr
    a, b = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "resumed.npz")
    assert list(b["epochs"]) == [3, 4, 5]                      # it resumed at the epoch that was killed
    np.testing.assert_array_equal(b["loss"], a["loss"][3:])  # the same data order, dropout masks and updates
    for k in a.files:
        if k.startswith("arr_"):
            assert np.array_equal(a[k], b[k]), k                # weights and Adam state, bit for bit
    assert not backup.exists()                                  # delete_checkpoint=True after a finished fit


def test_backup_and_restore_arguments():
    with pytest.raises(ValueError, match="empty"):
        C.BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        C.BackupAndRestore("d", save_freq=10)


def test_backup_is_kept_when_asked(tmp_path):
    m = regression()
    m.fit(X, Y, epochs=2, verbose=0, callbacks=[C.BackupAndRestore(tmp_path / "b", delete_checkpoint=False)])
    assert wt.train.latest_checkpoint(tmp_path / "b") == os.path.join(tmp_path / "b", "backup-2")
    # a later fit with the same backup starts after the last epoch saved: nothing left of 2 epochs
    h = m.fit(X, Y, epochs=2, verbose=0, callbacks=[C.BackupAndRestore(tmp_path / "b", delete_checkpoint=False)])
    assert h.epoch == []


# ---- learning rate ----------------------------------------------------------------------------------

def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    m = regression()
    seen = []
    cb = C.LearningRateScheduler(lambda epoch, lr: seen.append(lr) or lr * 0.5 if epoch else 0.2)
    h = m.fit(X, Y, epochs=4, verbose=0, callbacks=[cb]).history
    want = np.float32([0.2, 0.1, 0.05, 0.025])
    np.testing.assert_array_equal(np.float32(h["learning_rate"]), want)
    np.testing.assert_array_equal(np.float32(seen), want[:3])      # called with the current rate
    h = regression().fit(X, Y, epochs=2, verbose=0, callbacks=[C.LearningRateScheduler(lambda e: 0.01 * (e + 1))])
    np.testing.assert_array_equal(np.float32(h.history["learning_rate"]), np.float32([0.01, 0.02]))
    with pytest.raises(ValueError, match="should be a float"):
        regression().fit(X, Y, epochs=1, verbose=0, callbacks=[C.LearningRateScheduler(lambda e: "fast")])


def test_reduce_lr_on_plateau_follows_keras():
    # hand-traced from keras/src/callbacks/reduce_lr_on_plateau.py: patience 2, factor 0.5, cooldown 1,
    # min_lr 0.02, starting at 0.1
    m = regression(lr=0.1)
    cb = C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1, min_delta=0.0, min_lr=0.02)
    cb.set_model(m)
    cb.on_train_begin()
    logged = []
    for epoch, v in enumerate([1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8]):
        logs = {"val_loss": v}
        cb.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    np.testing.assert_array_equal(np.float32(logged),
                                  np.float32([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02]))
    assert np.float32(m.optimizer.learning_rate) == np.float32(0.02)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        C.ReduceLROnPlateau(factor=1.0)
    acc = C.ReduceLROnPlateau(monitor="val_accuracy", patience=1)
    acc.set_model(regression(lr=0.1))
    acc.on_train_begin()
    for epoch, v in enumerate([0.5, 0.6, 0.6]):                     # auto mode: max for accuracy
        acc.on_epoch_end(epoch, {"val_accuracy": v})
    assert np.float32(acc.model.optimizer.learning_rate) == np.float32(0.01)
    with pytest.warns(UserWarning, match="not available"):
        acc.on_epoch_end(3, {"loss": 1.0})


# ---- CSVLogger / TerminateOnNaN ----------------------------------------------------------------------

def test_csv_logger_writes_keras_rows(tmp_path):
    path = tmp_path / "log.csv"
    m = regression()
    h = m.fit(X, Y, epochs=2, verbose=0, validation_data=(X[:8], Y[:8]), callbacks=[C.CSVLogger(path)]).history
    rows = [f"{e},{h['loss'][e]},{h['val_loss'][e]}" for e in range(2)]
    assert open(path, newline="").read() == "\r\n".join(["epoch,loss,val_loss"] + rows) + "\r\n"
    m.fit(X, Y, epochs=1, verbose=0, callbacks=[C.CSVLogger(path, separator=";", append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[3].startswith("0;") and lines[0] == "epoch,loss,val_loss"
    m.fit(X, Y, epochs=1, verbose=0, callbacks=[C.CSVLogger(path)])           # append=False: a new file
    assert path.read_text().splitlines()[0] == "epoch,loss" and len(path.read_text().splitlines()) == 2


def test_terminate_on_nan_stops_after_the_first_bad_batch(capsys):
    m = regression()
    bad = X.copy()
    bad[0, 0] = np.nan
    h = m.fit(bad, Y, epochs=3, batch_size=8, verbose=0, shuffle=False, callbacks=[C.TerminateOnNaN()])
    assert int(m.optimizer.iterations) == 1 and h.epoch == [0] and np.isnan(h.history["loss"][0])
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    m = regression()
    m.fit(X, Y, epochs=2, batch_size=8, verbose=0, callbacks=[C.TerminateOnNaN()])
    assert int(m.optimizer.iterations) == 8
