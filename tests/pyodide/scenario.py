"""One computation, run natively (CPython, with or without numpy) and inside Pyodide (Node), whose
results the tests compare: eager ops, a traced function, a GradientTape gradient, a few training
steps of a small MLP on the digits data, and evaluation.

Pure Python (no numpy): ``await run(device, sync)`` returns a JSON-able dict of floats. With
``sync=True`` values are read with ``tolist()``/``fit``; with ``sync=False`` with the awaited API
(``tolist_async``/``fit_async``/``evaluate_async``), which is what WebGPU in the browser needs.
"""
import webtensor as wt


async def read(t, sync):
    return t.tolist() if sync else await t.tolist_async()


async def run(device: str, sync: bool = True) -> dict:
    out = {}
    with wt.device(device):
        x = wt.tensor([[1.5, -2.0, 3.0], [0.5, 4.0, -1.0]])
        w = wt.tensor([[0.25, -1.0], [2.0, 0.5], [-0.75, 1.5]])
        out["matmul"] = await read(x @ w, sync)
        out["exp_sum"] = await read(wt.exp(x * 0.5).sum(axis=1), sync)
        out["softmax"] = await read(wt.nn.activations.softmax(x), sync)
        out["compare"] = await read(x > 0.75, sync)
        out["int_ops"] = await read(wt.arange(7) * 3 // 2, sync)

        @wt.function
        def f(a, b):
            return wt.tanh(a @ b).mean(axis=0)
        out["function"] = await read(f(x, w), sync)

        v = wt.Variable([[0.5, -1.0], [1.5, 2.0], [-0.25, 0.75]])
        with wt.GradientTape() as tape:
            y = wt.sum(wt.tanh(x @ v) ** 2)
        out["gradient"] = await read(tape.gradient(y, v), sync)

        (xtr, ytr), (xte, yte) = wt.datasets.digits()
        xtr, ytr, xte, yte = xtr[:256], ytr[:256], xte[:128], yte[:128]
        wt.set_seed(0)
        model = wt.nn.Sequential([wt.nn.Input((8, 8, 1)), wt.nn.Flatten(), wt.nn.Dense(32, activation="relu"),
                                  wt.nn.Dense(10)])
        model.compile(optimizer=wt.optimizers.Adam(0.01), metrics=["accuracy"],
                      loss=wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        args = dict(batch_size=64, epochs=3, shuffle=True, seed=0, verbose=0)
        history = model.fit(xtr, ytr, **args) if sync else await model.fit_async(xtr, ytr, **args)
        out["loss"] = history.history["loss"]
        out["accuracy"] = history.history["accuracy"]
        ev = model.evaluate(xte, yte, verbose=0) if sync else await model.evaluate_async(xte, yte, verbose=0)
        out["evaluate"] = ev
        out["predict"] = (await read(model.predict(xte[:2], verbose=0), sync))
    return out
