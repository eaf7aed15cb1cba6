"""Recurrent layers (issue 15, part 4) against Keras' published equations in float64 numpy.

The oracle below is written from Keras 3's source (keras/src/layers/rnn/{simple_rnn,lstm,gru}.py
for the cells, keras/src/backend/tensorflow/rnn.py for the time loop and its masking, and
bidirectional.py), independently of ``webtensor/nn/rnn.py``. Layers run on the "reference" device
with ``float64_reference()`` so comparisons are tight; random weights go in with ``set_weights``
in Keras' layout. Also: gradients against finite differences, dropout masks, stateful layers,
``fit`` on "wasm", config and ``.keras`` round trips, and one run on "webgpu".
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn
from webtensor.core.numpy_util import float64_reference
from webtensor.nn.layer import get_keras_mask

TIGHT = dict(rtol=1e-9, atol=1e-10)


@pytest.fixture(autouse=True)
def _float64_reference():
    with wt.device("reference"), float64_reference():
        yield


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def randomize(layer, rng):
    layer.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32) for w in layer.get_weights()])
    return [w.astype(np.float64) for w in layer.get_weights()]


def close(got, want, **tol):
    got = got.numpy() if hasattr(got, "numpy") else got
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, **(tol or TIGHT))


def f32(rng, *shape):
    return rng.uniform(-2, 2, shape).astype(np.float32)


# ---- the oracle: Keras' equations ---------------------------------------------------------------

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_simple(x, states, w):
    k, rk, b = w
    h = np.tanh(x @ k + b + states[0] @ rk)
    return h, [h]


def np_lstm(x, states, w):
    k, rk, b = w
    h, c = states
    z = x @ k + h @ rk + b
    i, f, cc, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
    h = sigmoid(o) * np.tanh(c)
    return h, [h, c]


def np_gru(x, states, w, reset_after=True, rec_mask=1.0):
    """``rec_mask``: recurrent dropout on h where it meets recurrent_kernel (not in the final mix)."""
    k, rk, b = w
    h = states[0]
    hd = h * rec_mask
    u = h.shape[-1]
    b_in, b_rec = (b[0], b[1]) if reset_after else (b, np.zeros(3 * u))
    x_z, x_r, x_h = np.split(x @ k + b_in, 3, axis=-1)
    if reset_after:
        r_z, r_r, r_h = np.split(hd @ rk + b_rec, 3, axis=-1)
        z, r = sigmoid(x_z + r_z), sigmoid(x_r + r_r)
        hh = np.tanh(x_h + r * r_h)
    else:
        z = sigmoid(x_z + hd @ rk[:, :u])
        r = sigmoid(x_r + hd @ rk[:, u:2 * u])
        hh = np.tanh(x_h + (r * hd) @ rk[:, 2 * u:])
    h = z * h + (1 - z) * hh
    return h, [h]


def np_rnn(cell, x, states, mask=None, go_backwards=False, zero_output_for_mask=False):
    """keras backend.rnn: masked steps keep the states and repeat the previous output (zeros at
    first), or output zeros; go_backwards returns the outputs in processing order."""
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    prev, outs = None, []
    for t in steps:
        out, new = cell(x[:, t], states)
        if mask is not None:
            m = mask[:, t, None]
            prev = np.zeros_like(out) if prev is None or zero_output_for_mask else prev
            out = np.where(m, out, prev)
            new = [np.where(m, n, s) for n, s in zip(new, states)]
        states, prev = new, out
        outs.append(out)
    return outs[-1], np.stack(outs, 1), states


KINDS = {
    "simple": (nn.SimpleRNN, np_simple, 1),
    "lstm": (nn.LSTM, np_lstm, 2),
    "gru": (nn.GRU, np_gru, 1),
}


def right_padded_mask(rng, n, t):
    lengths = rng.integers(1, t + 1, n)
    lengths[0] = t
    return np.arange(t)[None, :] < lengths[:, None]


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_layers_match_keras_equations(kind, go_backwards, masked, rng):
    cls, cell, n_states = KINDS[kind]
    x = f32(rng, 3, 5, 4)
    mask = right_padded_mask(rng, 3, 5) if masked else None
    seq = cls(6, return_sequences=True, return_state=True, go_backwards=go_backwards)
    seq(x)
    w = randomize(seq, rng)
    last = cls(6, go_backwards=go_backwards)
    last(x)
    last.set_weights(seq.get_weights())
    zeros = [np.zeros((3, 6))] * n_states
    want_last, want_seq, want_states = np_rnn(lambda a, s: cell(a, s, w), x.astype(np.float64), zeros, mask,
                                              go_backwards)
    got = seq(x, mask=mask)
    assert len(got) == 1 + n_states
    close(got[0], want_seq)
    for g, s in zip(got[1:], want_states):
        close(g, s)
    close(last(x, mask=mask), want_last)


def test_weights_follow_keras_layout():
    x = np.zeros((2, 3, 5), np.float32)
    cases = [(nn.SimpleRNN(4), [(5, 4), (4, 4), (4,)]), (nn.LSTM(4), [(5, 16), (4, 16), (16,)]),
             (nn.GRU(4), [(5, 12), (4, 12), (2, 12)]), (nn.GRU(4, reset_after=False), [(5, 12), (4, 12), (12,)]),
             (nn.LSTM(4, use_bias=False), [(5, 16), (4, 16)])]
    for layer, shapes in cases:
        layer(x)
        assert [tuple(w.shape) for w in layer.get_weights()] == shapes, layer
        names = [k.split("/")[-1] for k, _ in layer._weight_items()]
        assert names == ["kernel", "recurrent_kernel", "bias"][:len(shapes)]
    lstm = cases[1][0]
    assert [k for k, _ in lstm._weight_items()] == ["lstm_cell/kernel", "lstm_cell/recurrent_kernel", "lstm_cell/bias"]
    # unit_forget_bias: the forget gate (second quarter, Keras' i, f, c, o) starts at 1, the rest at 0
    np.testing.assert_array_equal(lstm.cell.bias.numpy(), np.repeat([0.0, 1.0, 0.0, 0.0], 4))
    plain = nn.LSTM(4, unit_forget_bias=False)
    plain(x)
    np.testing.assert_array_equal(plain.cell.bias.numpy(), np.zeros(16))
    # recurrent kernels start orthogonal (Keras' "orthogonal"): (units, 4 units) with orthonormal rows
    rk = lstm.cell.recurrent_kernel.numpy().astype(np.float64)
    np.testing.assert_allclose(rk @ rk.T, np.eye(4), atol=1e-6)
    assert lstm.units == 4 and lstm.recurrent_activation is nn.activations.get("sigmoid")


def test_gru_variants_match_keras_equations(rng):
    x = f32(rng, 2, 4, 3)
    for reset_after in (True, False):
        layer = nn.GRU(5, reset_after=reset_after, return_sequences=True)
        layer(x)
        w = randomize(layer, rng)
        want = np_rnn(lambda a, s: np_gru(a, s, w, reset_after), x.astype(np.float64), [np.zeros((2, 5))])[1]
        close(layer(x), want)
    layer = nn.GRU(5, use_bias=False, activation="relu", recurrent_activation="softsign")
    layer(x)
    k, rk = randomize(layer, rng)

    def cell(a, s):
        h = s[0]
        hs = lambda v: v / (1 + np.abs(v))             # softsign
        xz, xr, xh = np.split(a @ k, 3, -1)
        rz, rr, rh = np.split(h @ rk, 3, -1)
        z, r = hs(xz + rz), hs(xr + rr)
        h = z * h + (1 - z) * np.maximum(xh + r * rh, 0)
        return h, [h]
    close(layer(x), np_rnn(cell, x.astype(np.float64), [np.zeros((2, 5))])[0])


def test_initial_state_and_cells_alone(rng):
    x = f32(rng, 2, 3, 4)
    h0, c0 = f32(rng, 2, 5), f32(rng, 2, 5)
    layer = nn.LSTM(5, return_state=True)
    layer(x)
    w = randomize(layer, rng)
    out, h, c = layer(x, initial_state=[h0, c0])
    _, _, (wh, wc) = np_rnn(lambda a, s: np_lstm(a, s, w), x.astype(np.float64), [h0, c0])
    close(out, wh)
    close(h, wh)
    close(c, wc)
    # a cell is one step; RNN(cell) runs it over time like the LSTM layer
    cell = nn.LSTMCell(5)
    y, (h1, c1) = cell(x[:, 0], [h0, c0])
    cell.set_weights(layer.get_weights())
    y, (h1, c1) = cell(x[:, 0], [h0, c0])
    want, (wh1, wc1) = np_lstm(x[:, 0].astype(np.float64), [h0, c0], w)
    close(y, want)
    close(c1, wc1)
    generic = nn.RNN(nn.LSTMCell(5))
    generic(x)
    generic.set_weights(layer.get_weights())
    close(generic(x, initial_state=[h0, c0]), wh)


def test_mask_from_embedding_and_masking_layers(rng):
    ids = np.array([[3, 1, 4, 1, 5], [2, 7, 0, 0, 0], [6, 0, 0, 0, 0]], np.int32)
    emb = nn.Embedding(8, 3, mask_zero=True)
    lstm = nn.LSTM(4, return_sequences=True)
    model = nn.Sequential([nn.Input((5,), dtype="int32"), emb, lstm])
    (table,) = randomize(emb, rng)
    w = randomize(lstm, rng)
    h = emb(ids)
    np.testing.assert_array_equal(get_keras_mask(h).numpy(), ids != 0)
    want = np_rnn(lambda a, s: np_lstm(a, s, w), table[ids], [np.zeros((3, 4))] * 2, ids != 0)[1]
    got = model(ids)
    close(got, want)
    # padding is invisible: a padded row's outputs are its unpadded run's, repeated after its end
    close(got[1, :2], lstm(emb(ids[1:2, :2]))[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got.numpy()[2, 1:], np.repeat(got.numpy()[2, :1], 4, 0))
    assert get_keras_mask(got) is not None                 # return_sequences passes the mask on
    # Masking: steps whose features all equal mask_value are skipped (and zeroed)
    x = f32(rng, 3, 5, 2)
    x[1, 3:] = 0.0
    m = nn.Masking()
    y = m(x)
    np.testing.assert_array_equal(get_keras_mask(y).numpy(), np.any(x != 0, -1))
    gru = nn.GRU(3)
    gru(x)
    w = randomize(gru, rng)
    close(nn.Sequential([m, gru])(x), np_rnn(lambda a, s: np_gru(a, s, w), x.astype(np.float64),
                                               [np.zeros((3, 3))], np.any(x != 0, -1))[0])
    # a layer that does not return sequences ends the mask; Dense passes it on
    assert get_keras_mask(gru(y)) is None
    assert get_keras_mask(nn.Dense(2)(y)) is not None


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_matches_keras(merge_mode, rng):
    x = f32(rng, 3, 4, 2)
    mask = right_padded_mask(rng, 3, 4)
    layer = nn.Bidirectional(nn.LSTM(3, return_sequences=True, return_state=True), merge_mode=merge_mode)
    layer(x)
    assert layer.forward_layer.name.startswith("forward_") and layer.backward_layer.go_backwards
    w = randomize(layer, rng)
    zeros = [np.zeros((3, 3))] * 2
    fw = lambda a, s: np_lstm(a, s, w[:3])
    bw = lambda a, s: np_lstm(a, s, w[3:])
    _, y, fs = np_rnn(fw, x.astype(np.float64), zeros, mask, False, zero_output_for_mask=True)
    _, y_rev, bs = np_rnn(bw, x.astype(np.float64), zeros, mask, True, zero_output_for_mask=True)
    y_rev = y_rev[:, ::-1]
    merged = {"concat": [np.concatenate([y, y_rev], -1)], "sum": [y + y_rev], "mul": [y * y_rev],
              "ave": [(y + y_rev) / 2], None: [y, y_rev]}[merge_mode]
    got = layer(x, mask=mask)
    assert len(got) == len(merged) + 4
    for g, want in zip(got, merged + fs + bs):
        close(g, want)


def test_bidirectional_last_output_and_gru(rng):
    x = f32(rng, 2, 5, 3)
    layer = nn.Bidirectional(nn.GRU(4), merge_mode="sum")
    layer(x)
    w = randomize(layer, rng)
    zeros = [np.zeros((2, 4))]
    a = np_rnn(lambda v, s: np_gru(v, s, w[:3]), x.astype(np.float64), zeros)[0]
    b = np_rnn(lambda v, s: np_gru(v, s, w[3:]), x.astype(np.float64), zeros, go_backwards=True)[0]
    close(layer(x), a + b)


def test_gradients_match_finite_differences(rng):
    wt.set_seed(2)
    ids = np.array([[1, 2, 3, 4], [2, 3, 0, 0]], np.int32)
    inp = nn.Input((4,), dtype="int32")
    h = nn.Embedding(5, 3, mask_zero=True)(inp)
    h = nn.Bidirectional(nn.GRU(3, return_sequences=True))(h)
    h = nn.LSTM(2, go_backwards=True)(h)
    model = nn.Model(inp, nn.SimpleRNN(2)(nn.Reshape((1, 2))(h)))
    u = wt.tensor(rng.normal(size=(2, 2)))

    def loss():
        return wt.sum(model(ids) * u)

    with wt.GradientTape() as tape:
        value = loss()
    variables = model.trainable_variables
    grads = tape.gradient(value, variables)
    assert len(variables) == 1 + 6 + 3 + 3 and all(g is not None for g in grads)
    eps = 1e-5
    for var, g in zip(variables, grads):
        base = var.numpy().astype(np.float64)
        d = rng.normal(size=base.shape)
        var.assign(base + eps * d)
        plus = float(loss().numpy())
        var.assign(base - eps * d)
        minus = float(loss().numpy())
        var.assign(base)
        numeric = (plus - minus) / (2 * eps)
        analytic = float(np.sum(g.numpy() * d))
        assert abs(analytic - numeric) <= 1e-7 * max(1.0, abs(numeric)), (var.name, analytic, numeric)
    # the padding's embedding row gets no gradient: masked steps do not reach the output
    np.testing.assert_array_equal(grads[0].numpy()[0], 0.0)


DROPPED = {      # the cell with input mask dm and recurrent mask rm (Keras: on h where it meets recurrent_kernel)
    "simple": lambda w, dm, rm: lambda a, s: np_simple(a * dm, [s[0] * rm], w),
    "lstm": lambda w, dm, rm: lambda a, s: np_lstm(a * dm, [s[0] * rm, s[1]], w),
    "gru": lambda w, dm, rm: lambda a, s: np_gru(a * dm, s, w, rec_mask=rm),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_uses_one_mask_per_sequence(kind, rng):
    cls, cell, n_states = KINDS[kind]
    x = f32(rng, 3, 4, 5)
    layer = cls(6, dropout=0.5, recurrent_dropout=0.25, return_sequences=True, seed=1)
    layer(x)
    w = randomize(layer, rng)
    zeros = [np.zeros((3, 6))] * n_states
    no_drop = np_rnn(lambda a, s: cell(a, s, w), x.astype(np.float64), zeros)[1]
    close(layer(x), no_drop)                                # inference: no dropout
    drawn = []
    original = layer.cell._dropout_mask

    def spy(which, like):
        m = original(which, like)
        drawn.append((which, m.numpy().copy()))
        return m
    layer.cell._dropout_mask = spy
    got = layer(x, training=True).numpy()
    masks = dict(drawn)
    assert len({k for k, _ in drawn}) == 2 and len(drawn) == 2 * 4     # looked up every step, drawn once
    assert all(np.array_equal(m, masks[k]) for k, m in drawn)
    dm, rm = masks["input"], masks["recurrent"]
    assert set(np.unique(dm)) <= {0.0, 2.0} and set(np.unique(rm)) <= {0.0, 1 / 0.75}
    assert 0 < (dm == 0).mean() < 1 and 0 < (rm == 0).mean() < 1
    close(got, np_rnn(DROPPED[kind](w, dm, rm), x.astype(np.float64), zeros)[1])
    again = layer(x, training=True).numpy()                 # a new sequence draws new masks
    assert not np.allclose(again, got)
    with pytest.raises(TypeError, match="dropout"):
        cls(2, dropout="0.5")


def test_stateful_continues_from_the_last_state(rng):
    x = f32(rng, 2, 6, 3)
    whole = nn.GRU(4, return_sequences=True)
    whole(x)
    weights = whole.get_weights()
    layer = nn.GRU(4, return_sequences=True, stateful=True)
    layer(x[:, :3])
    layer.set_weights(weights)
    layer.reset_state()
    got = np.concatenate([layer(x[:, :3]).numpy(), layer(x[:, 3:]).numpy()], 1)
    close(got, whole(x).numpy())
    layer.reset_state()
    close(layer(x[:, :3]), whole(x[:, :3]).numpy())
    with pytest.raises(ValueError, match="batch"):
        layer(x[:1, :3])
    assert layer.get_weights().__len__() == 3               # the kept states are not weights


def test_traced_matches_eager(rng):
    x = f32(rng, 2, 5, 3)
    layer = nn.Bidirectional(nn.LSTM(4, return_sequences=True))
    mask = wt.tensor(right_padded_mask(rng, 2, 5))
    eager = layer(x, mask=mask).numpy()
    traced = wt.function(lambda v, m: layer(v, mask=m))(wt.tensor(x), mask)
    close(traced, eager)


def _while_nodes(graph) -> int:
    return sum(n.op.name == "while" for n in graph.nodes)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_traced_layer_is_one_scan_and_unroll_true_unrolls_it(rng, go_backwards):
    """Traced, the time loop is one loop node (the cell traced once) that matches the unrolled trace
    and the eager loop: the same ops per step, so equal up to float32 rounding (measured 0 on "reference")."""
    x = f32(rng, 2, 5, 3)
    mask = wt.tensor(right_padded_mask(rng, 2, 5))
    layer = nn.LSTM(4, return_sequences=True, return_state=True, go_backwards=go_backwards)
    eager = [t.numpy() for t in layer(x, mask=mask)]
    unrolled = nn.LSTM(4, return_sequences=True, return_state=True, go_backwards=go_backwards, unroll=True)
    unrolled(x)
    unrolled.set_weights(layer.get_weights())
    fs = [wt.function(lambda v, m, lay=lay: lay(v, mask=m)) for lay in (layer, unrolled)]
    outs = [[t.numpy() for t in f(wt.tensor(x), mask)] for f in fs]
    graphs = [f.get_concrete(wt.tensor(x), mask).graph for f in fs]
    assert [_while_nodes(g) for g in graphs] == [1, 0]
    assert len(graphs[0].nodes) < len(graphs[1].nodes) / 3
    for a, b, c in zip(outs[0], outs[1], eager):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_traced_dropout_draws_the_masks_the_eager_loop_draws(rng):
    """Dropout masks are drawn once per sequence; traced (scan) they are drawn before the loop, in the
    eager order, so a traced training call equals an eager one from the same counter."""
    x = f32(rng, 3, 4, 2)
    layer = nn.GRU(3, dropout=0.4, recurrent_dropout=0.3, return_sequences=True, seed=11)
    layer(x)
    counter = layer.cell._counter
    eager = layer(x, training=True).numpy()
    counter.assign(0)
    f = wt.function(lambda v: layer(v, training=True))
    traced = f(wt.tensor(x)).numpy()
    assert _while_nodes(f.get_concrete(wt.tensor(x)).graph) == 1
    np.testing.assert_array_equal(traced, eager)
    assert not np.array_equal(traced, layer(x).numpy())            # the masks did drop something


def test_errors_name_the_problem():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="units"):
        nn.LSTM(0)
    with pytest.raises(ValueError, match=r"\(batch, timesteps, features\)"):
        nn.GRU(2)(np.zeros((2, 3), np.float32))
    layer = nn.LSTM(2)
    layer(x)
    with pytest.raises(ValueError, match="initial_state"):
        layer(x, initial_state=[np.zeros((2, 2), np.float32)])
    with pytest.raises(ValueError, match="mask"):
        layer(x, mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="merge_mode"):
        nn.Bidirectional(nn.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="RNN layers"):
        nn.Bidirectional(nn.Dense(2))
    with pytest.raises(TypeError, match="StackedRNNCells"):
        nn.RNN([nn.LSTMCell(2), nn.LSTMCell(2)])
    with pytest.raises(TypeError, match="state_size"):
        nn.RNN(nn.Dense(2))


def sequence_model():
    inp = nn.Input((6,), dtype="int32")
    h = nn.Embedding(5, 4, mask_zero=True)(inp)
    h = nn.Bidirectional(nn.LSTM(4, return_sequences=True, dropout=0.1), merge_mode="ave")(h)
    h = nn.GRU(3, reset_after=False)(h)
    return nn.Model(inp, nn.Dense(1)(h))


def test_config_and_keras_file_round_trip(tmp_path, rng):
    wt.set_seed(4)
    for layer in (nn.SimpleRNN(3, activation="relu", return_sequences=True, go_backwards=True),
                  nn.LSTM(2, unit_forget_bias=False, recurrent_dropout=0.2, stateful=False, return_state=True),
                  nn.GRU(2, reset_after=False, seed=7), nn.RNN(nn.GRUCell(3), return_sequences=True),
                  nn.Bidirectional(nn.SimpleRNN(2), merge_mode="mul")):
        config = layer.get_config()
        copy = type(layer).from_config(nn.saving.deserialize_keras_object(nn.saving.serialize_keras_object(config)))
        assert nn.saving.serialize_keras_object(copy.get_config()) == nn.saving.serialize_keras_object(config)
    model = sequence_model()
    ids = np.array([[1, 2, 3, 4, 0, 0], [4, 3, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], np.int32)
    model.compile("adam", "mse")
    model.fit(ids, np.ones((3, 1), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "rnn.keras")
    loaded = nn.load_model(tmp_path / "rnn.keras")
    # the file holds float32 weights; float64_reference kept the trained ones in float64
    close(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0).numpy(), rtol=1e-5, atol=1e-9)
    # dropout counters travel as layer state, beside the weights
    assert any(k.startswith("state/") and k.endswith("counter") for k in nn.saving._model_state(model))


def test_fit_learns_a_sequence_task_on_wasm():
    """The sign of a sequence's sum (a running count the state must carry), variable lengths."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 3, (64, 8)).astype(np.int32)                  # 1: -1, 2: +1
    lengths = rng.integers(3, 9, 64)
    ids[np.arange(8)[None] >= lengths[:, None]] = 0
    values = np.where(ids == 2, 1, np.where(ids == 1, -1, 0))
    y = (values.sum(1) > 0).astype(np.float32)[:, None]
    with wt.device("wasm"):
        wt.set_seed(0)
        model = nn.Sequential([nn.Input((8,), dtype="int32"), nn.Embedding(3, 4, mask_zero=True), nn.LSTM(8),
                               nn.Dense(1)])
        model.compile(wt.optimizers.Adam(learning_rate=0.03), nn.losses.BinaryCrossentropy(from_logits=True),
                      metrics=["binary_accuracy"])
        hist = model.fit(ids, y, epochs=12, batch_size=16, verbose=0).history
    assert max(hist["loss"][-4:]) < 0.5 * hist["loss"][0], hist["loss"]          # measured: 0.71 -> 0.19 or less
    assert min(hist["binary_accuracy"][-4:]) > 0.85, hist["binary_accuracy"]      # measured: 0.89 to 1.0 (chance 0.53)


def test_webgpu_matches_reference(rng):
    try:
        gpu = wt.get_device("webgpu")
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no webgpu device: {e}")
    x = f32(rng, 2, 4, 3)
    mask = right_padded_mask(rng, 2, 4)
    layer = nn.Bidirectional(nn.LSTM(4, return_sequences=True))
    layer(x)
    w = randomize(layer, rng)
    want = np.concatenate(
        [np_rnn(lambda a, s: np_lstm(a, s, w[:3]), x.astype(np.float64), [np.zeros((2, 4))] * 2, mask, False, True)[1],
         np_rnn(lambda a, s: np_lstm(a, s, w[3:]), x.astype(np.float64), [np.zeros((2, 4))] * 2, mask, True,
                True)[1][:, ::-1]], -1)
    with wt.device(gpu):
        layer = nn.Bidirectional(nn.LSTM(4, return_sequences=True))
        layer(x)
        layer.set_weights([v.astype(np.float32) for v in w])
        got = layer(x, mask=wt.tensor(mask)).numpy()
    close(got, want, rtol=1e-6, atol=1e-6)         # float32 against float64: measured 7e-8 (lavapipe)


def test_exported_recurrent_model_runs_on_wasm(tmp_path):
    """The time loops export as loops (docs/artifact.md "Control flow"); the artifact matches the model."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 5, (4, 6)).astype(np.int32)
    ids[0, 3:] = 0
    with wt.device("wasm"):
        wt.set_seed(5)
        model = nn.Sequential([nn.Input((6,), dtype="int32"), nn.Embedding(5, 4, mask_zero=True),
                               nn.Bidirectional(nn.GRU(4, return_sequences=True)), nn.LSTM(3), nn.Dense(2)])
        want = model.predict_on_batch(ids).numpy()
        model.compile("sgd", "mse")
        m = model.export(tmp_path, example_inputs=(ids, np.zeros((4, 2), np.float32)))     # int32 ids
        assert all("control" in m["signatures"][s] for s in ("predict", "train_step"))
        art = wt.load(tmp_path, backend="wasm")
        assert art.signatures["predict"]["inputs"][0]["dtype"] == "int32"
        got = art.predict(ids)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)      # measured: 1e-9 apart


def test_orthogonal_initializer():
    init = nn.initializers.get("orthogonal")
    for shape in [(5, 5), (3, 8), (8, 3), (2, 3, 4)]:
        q = init(shape, seed=3).numpy().astype(np.float64)
        assert q.shape == shape
        m = q.reshape(-1, shape[-1])
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m          # orthonormal rows or columns
        np.testing.assert_allclose(small, np.eye(min(m.shape)), atol=1e-6)
    np.testing.assert_array_equal(init((4, 4), seed=1).numpy(), init((4, 4), seed=1).numpy())
    assert not np.array_equal(init((4, 4), seed=1).numpy(), init((4, 4), seed=2).numpy())
    g = nn.initializers.Orthogonal(gain=2.0, seed=1)
    np.testing.assert_allclose(g((3, 3)).numpy(), 2 * init((3, 3), seed=1).numpy(), rtol=1e-6)
    assert g.get_config() == {"gain": 2.0, "seed": 1}
    with pytest.raises(ValueError, match="rank >= 2"):
        init((4,))


def test_functional_encoder_decoder(rng):
    """initial_state from another layer's return_state, through the functional API and its config."""
    enc_in, dec_in = nn.Input((5, 3)), nn.Input((4, 2))
    _, h, c = nn.LSTM(6, return_state=True)(enc_in)
    out = nn.LSTM(6, return_sequences=True)(dec_in, initial_state=[h, c])
    model = nn.Model([enc_in, dec_in], out)
    enc, dec = model.functional_layers[0], model.functional_layers[1]
    w_enc, w_dec = randomize(enc, rng), randomize(dec, rng)
    x = [f32(rng, 2, 5, 3), f32(rng, 2, 4, 2)]
    _, _, states = np_rnn(lambda a, s: np_lstm(a, s, w_enc), x[0].astype(np.float64), [np.zeros((2, 6))] * 2)
    want = np_rnn(lambda a, s: np_lstm(a, s, w_dec), x[1].astype(np.float64), states)[1]
    close(model(x), want)
    again = nn.saving.deserialize_keras_object(nn.saving.serialize_keras_object(model))
    again.set_weights(model.get_weights())
    close(again(x), want)


def test_custom_cell_in_rnn_and_bidirectional(rng):
    """Keras' minimal cell (its RNN docstring's example), unregistered, in RNN and Bidirectional."""
    class MinimalCell(nn.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight("kernel", (input_shape[-1], self.units))
            self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, self.units))

        def call(self, inputs, states):
            out = wt.matmul(inputs, self.kernel) + wt.matmul(states[0], self.recurrent_kernel)
            return out, [out]

    x = f32(rng, 2, 3, 4)
    layer = nn.Bidirectional(nn.RNN(MinimalCell(3), return_sequences=True), merge_mode="sum")
    layer(x)
    assert layer.forward_layer.cell is not layer.backward_layer.cell
    w = randomize(layer, rng)

    def cell(ws):
        def step(a, s):
            out = a @ ws[0] + s[0] @ ws[1]
            return out, [out]
        return step
    y = np_rnn(cell(w[:2]), x.astype(np.float64), [np.zeros((2, 3))])[1]
    y_rev = np_rnn(cell(w[2:]), x.astype(np.float64), [np.zeros((2, 3))], go_backwards=True)[1][:, ::-1]
    close(layer(x), y + y_rev)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_traced_gradient_of_go_backwards_equals_eager(rng, return_sequences):
    """go_backwards traced is a reverse loop (no reversed copy of the sequence): its gradient, traced,
    equals the eager loop's within 10x the largest difference measured (3.6e-7)."""
    x = wt.tensor(f32(rng, 2, 5, 3))
    wt.set_seed(1)
    layer = nn.LSTM(4, go_backwards=True, return_sequences=return_sequences)
    layer(x)
    u = wt.tensor(f32(rng, *((2, 5, 4) if return_sequences else (2, 4))))

    def grads():
        with wt.GradientTape() as tape:
            loss = wt.reduce_sum(layer(x) * u)
        return tape.gradient(loss, layer.trainable_variables)
    for a, b in zip(grads(), wt.function(grads)()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=4e-6)
