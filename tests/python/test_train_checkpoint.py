"""webtensor.train: Checkpoint and CheckpointManager. Restoring and training on gives bit-identical
state to never stopping; the directory's state file follows TensorFlow's and is read defensively."""
import os

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn

R = np.random.RandomState(7)
X = R.rand(16, 5).astype(np.float32)
Y = np.eye(3, dtype=np.float32)[np.arange(16) % 3]


def make(seed):
    wt.set_seed(seed)
    model = nn.Sequential([nn.Input((5,)), nn.Dense(8, activation="relu"), nn.Dropout(0.3, seed=11),
                           nn.BatchNormalization(), nn.Dense(3)])
    return model, wt.optimizers.Adam(0.01), wt.Variable(0, dtype="int32")


def train(model, opt, step, n):
    @wt.function
    def one(x, y):
        with wt.GradientTape() as tape:
            loss = wt.reduce_mean(nn.losses.mean_squared_error(y, model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        step.assign_add(1)
    for _ in range(n):
        one(X, Y)


def state(model, opt, step):
    return [v.numpy() for v in model.variables + opt.variables + [step]] + [model.layers[1]._counter.numpy()]


def test_restore_then_train_is_bit_identical_to_never_stopping(tmp_path):
    a, opt_a, step_a = make(0)
    train(a, opt_a, step_a, 10)
    path = wt.train.Checkpoint(model=a, optimizer=opt_a, step=step_a).save(tmp_path / "ckpt")
    assert path == os.fspath(tmp_path / "ckpt-1") and os.path.exists(path + ".safetensors")
    train(a, opt_a, step_a, 10)

    b, opt_b, step_b = make(1)              # other initial weights; its optimizer has no state yet
    assert not np.array_equal(a.layers[0].kernel.numpy(), b.layers[0].kernel.numpy())
    status = wt.train.Checkpoint(model=b, optimizer=opt_b, step=step_b).restore(path)
    status.assert_consumed()
    assert int(opt_b.iterations) == 10 and int(step_b) == 10 and int(b.layers[1]._counter) == 10
    train(b, opt_b, step_b, 10)
    for u, v in zip(state(a, opt_a, step_a), state(b, opt_b, step_b)):
        assert u.dtype == v.dtype and np.array_equal(u, v)


def test_names_are_structural_and_include_optimizer_slots(tmp_path):
    a, opt, step = make(0)
    train(a, opt, step, 1)
    ckpt = wt.train.Checkpoint(model=a, optimizer=opt, step=step, inner=wt.train.Checkpoint(v=wt.Variable(2.0)))
    ckpt.write(tmp_path / "w")
    from safetensors.numpy import load_file
    stored = load_file(tmp_path / "w.safetensors")
    assert {"step", "save_counter", "inner/v", "inner/save_counter", "model/dense/kernel",
            "model/batch_normalization/moving_mean", "model/state/dropout/counter", "optimizer/iterations",
            "optimizer/learning_rate", "optimizer/momentum/model/dense/kernel",
            "optimizer/velocity/model/dense_1/bias"} <= set(stored)
    np.testing.assert_array_equal(stored["optimizer/velocity/model/dense/kernel"],
                                  opt._slots[id(a.layers[0].kernel)]["velocity"].numpy())
    assert int(ckpt.save_counter) == 0 and not os.path.exists(tmp_path / "checkpoint")   # write is not a save


def test_restore_checks_everything_before_assigning(tmp_path):
    v, w = wt.Variable([1.0, 2.0]), wt.Variable(3)
    wt.train.Checkpoint(v=v, w=w).write(tmp_path / "c")
    other = wt.Variable([0.0, 0.0, 0.0])
    w2 = wt.Variable(0)
    with pytest.raises(ValueError, match=r"'v': stored float32\[2\], expected float32\[3\]"):
        wt.train.Checkpoint(v=other, w=w2).restore(tmp_path / "c")
    assert int(w2) == 0                        # nothing assigned
    status = wt.train.Checkpoint(v=wt.Variable([5.0, 6.0]), extra=wt.Variable(1.0)).restore(tmp_path / "c")
    assert status.unused == ["w"] and status.missing == ["extra"]
    with pytest.raises(AssertionError, match="unused"):
        status.assert_consumed()
    assert wt.train.Checkpoint(v=v).restore(None).assert_consumed()      # None: nothing to do (TF)
    with pytest.raises(FileNotFoundError):
        wt.train.Checkpoint(v=v).restore(tmp_path / "nope")
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 9)
    with pytest.raises(ValueError, match="bad.safetensors"):
        wt.train.Checkpoint(v=v).restore(tmp_path / "bad")
    unbuilt = nn.Sequential([nn.Dense(2)])
    wt.train.Checkpoint(model=make(0)[0]).write(tmp_path / "m")
    with pytest.raises(ValueError, match="not built"):
        wt.train.Checkpoint(model=unbuilt).restore(tmp_path / "m")
    with pytest.raises(TypeError, match="not trackable"):
        wt.train.Checkpoint(x=3)


def test_manager_keeps_the_last_n_and_state_file_is_tensorflows(tmp_path):
    v = wt.Variable(0.0)
    ckpt = wt.train.Checkpoint(v=v)
    manager = wt.train.CheckpointManager(ckpt, tmp_path / "run", max_to_keep=3)
    assert manager.latest_checkpoint is None and wt.train.latest_checkpoint(tmp_path / "run") is None
    for i in range(5):
        v.assign(float(i))
        manager.save()
    names = [f"ckpt-{i}" for i in (3, 4, 5)]
    assert manager.checkpoints == [os.path.join(tmp_path / "run", n) for n in names]
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint"] + [n + ".safetensors" for n in names]
    assert (tmp_path / "run" / "checkpoint").read_text() == (
        'model_checkpoint_path: "ckpt-5"\n' + "".join(f'all_model_checkpoint_paths: "{n}"\n' for n in names))
    assert wt.train.latest_checkpoint(tmp_path / "run") == manager.latest_checkpoint
    v2 = wt.Variable(-1.0)
    ckpt2 = wt.train.Checkpoint(v=v2)
    again = wt.train.CheckpointManager(ckpt2, tmp_path / "run", max_to_keep=3)
    assert again.checkpoints == manager.checkpoints
    ckpt2.restore(again.latest_checkpoint)
    assert float(v2) == 4.0 and int(ckpt2.save_counter) == 5
    assert again.save(checkpoint_number=100).endswith("ckpt-100") and len(again.checkpoints) == 3


def test_state_file_is_untrusted(tmp_path):
    wt.train.Checkpoint(v=wt.Variable(1.0)).write(tmp_path / "ok")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "../../etc/passwd"\nall_model_checkpoint_paths: '
                                         '"/abs"\ngarbage\nmodel_checkpoint_path: "ok"\n')
    assert wt.train.latest_checkpoint(tmp_path) == os.path.join(tmp_path, "ok")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "../ok"\n')
    assert wt.train.latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoint").write_bytes(b"x" * (2 << 20))
    with pytest.raises(ValueError, match="over"):
        wt.train.latest_checkpoint(tmp_path)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "gone"\n')
    assert wt.train.latest_checkpoint(tmp_path) is None


def test_saving_and_checkpoints_need_no_numpy(tmp_path):
    """Pyodide pages have no numpy: .keras files and checkpoints are written and read without it."""
    from test_no_numpy import run_without_numpy
    r = run_without_numpy(f"""
        import sys
        import webtensor as wt
        with wt.device("wasm"):
            x = wt.reshape(wt.arange(32, dtype="float32") / 32.0, (8, 4))
            m = wt.nn.Sequential([wt.nn.Input((4,)), wt.nn.Dense(3, activation="relu"), wt.nn.Dense(2)])
            m.compile("adam", "mse")
            m.fit(x, wt.zeros((8, 2)), epochs=2, batch_size=4, verbose=0)
            m.save({str(tmp_path / "m.keras")!r})
            m2 = wt.nn.load_model({str(tmp_path / "m.keras")!r})
            ckpt = wt.train.Checkpoint(model=m2, optimizer=m2.optimizer)
            path = wt.train.CheckpointManager(ckpt, {str(tmp_path / "ck")!r}).save()
            ckpt.restore(path).assert_consumed()
            assert m2.predict(x, verbose=0).tolist() == m.predict(x, verbose=0).tolist()
            assert int(m2.optimizer.iterations) == 4
        assert "numpy" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_train_and_summary_namespaces_are_their_all():
    for mod in (wt.train, wt.summary):
        assert dir(mod) == sorted(mod.__all__)
        for name in mod.__all__:
            assert (getattr(mod, name).__doc__ or "").strip(), f"{mod.__name__}.{name} has no docstring"


def test_write_then_read_restores_the_written_values(tmp_path):
    """``read`` (TensorFlow's pair of ``write``) brings back exactly what ``write`` stored, optimizer
    slots included, and neither touches the save counter or the directory's ``checkpoint`` file."""
    a, opt, step = make(0)
    train(a, opt, step, 3)
    ckpt = wt.train.Checkpoint(model=a, optimizer=opt, step=step)
    prefix = ckpt.write(tmp_path / "w")
    written = [v.copy() for v in state(a, opt, step)]
    train(a, opt, step, 2)                                   # move everything on
    assert not all(np.array_equal(u, v) for u, v in zip(written, state(a, opt, step)))
    ckpt.read(prefix).assert_consumed()
    for u, v in zip(written, state(a, opt, step)):
        assert u.dtype == v.dtype and np.array_equal(u, v)
    assert int(ckpt.save_counter) == 0 and not os.path.exists(tmp_path / "checkpoint")
