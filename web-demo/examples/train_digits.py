# Train the digits MLP on "webgpu" in this page, in Python, and print progress and accuracy.
#
# webtensor compiles every step to WGSL here (pure Python, no numpy) and its "webgpu" device
# dispatches it through the page's navigator.gpu ("wasm" runs the WebAssembly it emits on the
# page's WebAssembly). The browser creates GPU devices and reads GPU buffers asynchronously,
# so: `await wt.init_async("webgpu")` first, then the *_async forms of what reads results
# back: `await model.fit_async(...)`, `await model.evaluate_async(...)`, `await t.tolist_async()`.
import time

import webtensor as wt

try:
    device = await wt.init_async("webgpu")
except RuntimeError as e:                  # no WebGPU in this browser: WebAssembly instead
    print(f"WebGPU is not available ({e}); training on WebAssembly instead")
    device = wt.get_device("wasm")
print(f"device: {device.name}")

with wt.device(device.name):
    wt.set_seed(0)
    (x_train, y_train), (x_test, y_test) = wt.datasets.digits()
    model = wt.nn.Sequential([
        wt.nn.Input((8, 8, 1)), wt.nn.Flatten(),
        wt.nn.Dense(128, activation="relu"), wt.nn.Dense(64, activation="relu"), wt.nn.Dense(10),
    ])
    model.compile(optimizer=wt.optimizers.Adam(3e-3),
                  loss=wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    await model.fit_async(x_train, y_train, epochs=5, batch_size=32, verbose=2, seed=0)
    loss, accuracy = await model.evaluate_async(x_test, y_test, verbose=0)

print(f"trained in {time.perf_counter() - start:.1f} s on {device.name}")
print(f"test accuracy: {accuracy:.4f}")
