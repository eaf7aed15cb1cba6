"""Byte-identity guard for the index simplifier (issue 13, "two simplifiers").

Exports three models (an MLP trained with Adam, a CNN with conv2d + pooling, a function using
reshape/transpose/slice/pad/gather/concat) and compares the sha256 of every exported file with the
values recorded on main before the simplifier was moved into core/. Export is deterministic across
processes and PYTHONHASHSEED (see tests/python/test_export.py), so the stored digests hold on any
machine. The manifests' digests changed once since, when WebGPU kernels gained "access" (the
manifests without it hash as before; no code or weights changed), and the modules when loads took their constant offsets into the memarg and unrolled loops folded their index into selects and one-element constants became immediates, and the CNN's WGSL when WebGPU matmuls gained plans per
shape (webgpu/matmul.py: its small matmuls run the direct kernel), and the WGSL and manifests when map
kernels went to four elements per invocation (webgpu/map.py) and non-negative integer division to u32, and the
WGSL simplifier folded ``(x // c) * c + x % c`` into ``x``, the MLP's and CNN's module and
manifest when symbolic-batch signatures gained a rows driver (docs/artifact.md, "Run-time rows"), and
every file when reductions took their elementwise consumers as epilogues (core/compile.py; with
``EPILOGUES = False`` the files hash as before), and the CNN's when small-window convolutions
became direct (``conv2d_direct``, with their bias and activation as epilogues), and the train steps' when
optimizer updates were written into their variables in place (``core/runtime/artifacts.py``; with
``INPLACE = False`` the files hash as before), and the WGSL and manifests when bindings outside run-time
rows became fixed-size arrays (``webgpu/emit.py`` ``shader_header``'s ``lengths``). Regenerate them (only for an intended change of the emitted code) with
``python tests/wasm/test_simplify_identity.py OUTDIR``, which prints the table.
"""
from __future__ import annotations

import hashlib
import os
import sys

import numpy as np


def export_all(out):
    import webtensor as wt
    nn = wt.nn
    os.environ.setdefault("WEBTENSOR_DEVICE", "reference")
    wt.set_seed(0)
    m = nn.Sequential([nn.Input((6,)), nn.Dense(8, activation="relu"), nn.Dense(3)])
    m.compile(wt.optimizers.Adam(0.01), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.export(os.path.join(out, "mlp"), batch_size=4)

    wt.set_seed(1)
    c = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(2),
                       nn.Flatten(), nn.Dense(3)])
    c.compile(wt.optimizers.SGD(0.1), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    c.export(os.path.join(out, "cnn"), batch_size=2)

    def f(x):
        y = wt.transpose(wt.reshape(x, (4, 6)), (1, 0))[1:5]
        y = wt.pad(y, ((1, 0), (0, 2)))
        g = wt.gather(y, wt.tensor(np.array([0, 2, 4], np.int32)), axis=0)
        return wt.concat([g, y[:3]], axis=1)
    wt.export(f, (np.arange(24, dtype=np.float32).reshape(2, 12),), os.path.join(out, "fn"))


def digests(out):
    res = {}
    for root, _, files in os.walk(out):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as fh:
                res[os.path.relpath(p, out).replace(os.sep, "/")] = hashlib.sha256(fh.read()).hexdigest()
    return dict(sorted(res.items()))


EXPECTED = {
    'cnn/kernels/predict_0.wgsl': 'f002d5251db3243fe2c39825fd954e57038d6fe66adebdfbf4b8a6bd49f1d4d8',
    'cnn/kernels/predict_1.wgsl': '92041b932f635b69a2201d02e75f5ffe830d241279cf995b367ac3c254e83d2d',
    'cnn/kernels/predict_2.wgsl': '5fc3121debc1cf39440ebe99ec1b442d49b2db80e81637d9a4e6a04518a28f84',
    'cnn/kernels/train_step_0.wgsl': '31262c547e6f70bc357a8e2b05bbd4a7feb69a490e7197d4b7d4cb584a86750b',
    'cnn/kernels/train_step_1.wgsl': '68cfa13acc4e340a9ff39efcc480f390438ccde4791bd032d05c48004db694a8',
    'cnn/kernels/train_step_10.wgsl': '8ff9bb6471b18924ff2803ef64c200ce031f31bde27ee1be50bbe5387e470533',
    'cnn/kernels/train_step_11.wgsl': 'd3963e6bad866382ed5da3e8e29c8855bdb515b3d23af55de3cc82f70c92b67a',
    'cnn/kernels/train_step_12.wgsl': '3e76131903fd54de99e56e90b0da69c895db65db689b5419d0cb952a039708a4',
    'cnn/kernels/train_step_13.wgsl': '747c7fbc59fe7d21e4a39567ff3ddfd2bd3ed7a16254c1d2d7feb5bf5767e258',
    'cnn/kernels/train_step_14.wgsl': '07d9558154950e9f705c5af3c9c3f77fbb31b179f36ca285e38eabd5b24c6cc9',
    'cnn/kernels/train_step_15.wgsl': 'f2b1159f2b0f063479e6bea78b60f8aa239f70c5a88c75cd13173ce746a5f915',
    'cnn/kernels/train_step_16.wgsl': 'bb14b04b2a0d949f876d207127c5e72937e1cde54fde460d7fb037b2c78d28a0',
    'cnn/kernels/train_step_17.wgsl': '36d3efcfd9f439f69f0914a2c8d6c435efe40d239f8c5c254b8af580187c6573',
    'cnn/kernels/train_step_18.wgsl': '4bb1dd47ec5c4d2fa75c9c8d3e22fb31a00525f1a48444fdbc5db983fece121e',
    'cnn/kernels/train_step_19.wgsl': 'b6556e8b49bf546f2e52ca9481226a596befccb1250cad84a3aecc1a65fc4dea',
    'cnn/kernels/train_step_2.wgsl': 'a718bb1e97372e029c0be26c5b850bad060d80247fb3c485dd6340f24dd47dbb',
    'cnn/kernels/train_step_20.wgsl': '3520f8a0029e9e58f43d33dab5edc882e5b5af91c5bdca61cb3f92c8b2dd766e',
    'cnn/kernels/train_step_21.wgsl': 'bd4b58f14e653d10900e330d869bc42abdb0c3a9c9da80533b78813fd4605657',
    'cnn/kernels/train_step_22.wgsl': 'e6183b62b7a851246c2ca87f9c005b63e0825009dee55f7887cf53692fd72065',
    'cnn/kernels/train_step_23.wgsl': '74e0760b4cce4b680663642ba66adb74f6c6b19e5875427f666b08c262d132f4',
    'cnn/kernels/train_step_3.wgsl': '73ee1ca91a53e0333c717269c3798bf4c539ac4eb1d96836997440b82007cf0a',
    'cnn/kernels/train_step_4.wgsl': '9fede6b00207cb14bbd6c08ead8c156750e918017e29d41dafbfbfaee5d21301',
    'cnn/kernels/train_step_5.wgsl': '2246f9aa0aec589a73c27abe5667412d73d90e2c4f955f87225353c509410d0a',
    'cnn/kernels/train_step_6.wgsl': '8489dafc6d98fc5fc3800f0f9dcfdc64762902eeda753b3129a87d5388354358',
    'cnn/kernels/train_step_7.wgsl': 'ea04c7d7339b75b9b7c7bd02b0eee56cdd463e0520e302992a56bbbc371935b7',
    'cnn/kernels/train_step_8.wgsl': 'c49f6020899d49c0570d462c1ecebd1bbd7fd164fc36a76e87bb90de220059bd',
    'cnn/kernels/train_step_9.wgsl': 'f17ce803b93c1bc9761f8d002db01030e0cd6dc0b772e94a9d0c41323672f6e0',
    'cnn/manifest.json': '51ae5a7f54ca293e7774151a3207973217f72d4de0d54add3ff2bffc93026923',
    'cnn/module.wasm': '31b8104ab4c8e340df587cdd2afab5fd501dd35949a74a2be20049f7ccc664bc',
    'cnn/weights.safetensors': '18fb33c2c6f3c18fd8dde02b1c329943b899c900951348f49b04ea1b8dd2ccae',
    'fn/kernels/predict_0.wgsl': 'c691726571f67dcdcc616edcce9685c9181d1ed831ef687ae27197335b47fe17',
    'fn/kernels/predict_1.wgsl': '507fe77f57da81d3b9d09eba26e1e5dc00078579dce80c7916edaf492a8300fc',
    'fn/manifest.json': '62357a39c6e74b14ae581d21bd8ec8336cd0e7a19568be7eeb57731d14c2d7d7',
    'fn/module.wasm': '2732d3c5b72376f4514415de152d7277b32c05158b882f23fd758b9b8d690f83',
    'fn/weights.safetensors': '507f0fdd933733ae0953cab28bbf638a2d13650d463b2341324215447e758dc6',
    'mlp/kernels/predict_0.wgsl': '3347d74b87809a7c48c0af84a198abaedfa268e29c6728f248ae8fa99812bde3',
    'mlp/kernels/predict_1.wgsl': '3faf5022370fa272bbb2798ee5e2262e1bd500076ed5b2fd7153e5b43a2396f8',
    'mlp/kernels/train_step_0.wgsl': '4cb241b98b2c63618aefc9b615357cf0a51a2c6ebc81453ec7910c3871eb9dbb',
    'mlp/kernels/train_step_1.wgsl': 'df15b5db4bd39fd0761584af06b4a89e5fb43c20fe4a81ad3009645e78392965',
    'mlp/kernels/train_step_10.wgsl': '16a13a3a0ad8215cf6c5d12db1d69b7e5e8b1efc68f3b05b20cfce8318b6dfd4',
    'mlp/kernels/train_step_11.wgsl': 'c4fb08db7b71c1281f66b9c05c1073fc924125381fd6f40d113236b9d118b9c3',
    'mlp/kernels/train_step_12.wgsl': '515bf57f8eb50322cb94ffd2e3ce980fecbd452b9d6fcacf6d2fd2f1614740dc',
    'mlp/kernels/train_step_13.wgsl': 'c6bb39f5ef537e23bf5b69f699bef0e127628e062d1d492167655516ba1cb469',
    'mlp/kernels/train_step_14.wgsl': '2e353cb97e6cd23fb111467e83710093063bcede6a56d77a436a2e0b6928e662',
    'mlp/kernels/train_step_15.wgsl': '678cbbed0bd437163147aa83e081fd8a2cc1b18431b73788b8d22ec6bd000705',
    'mlp/kernels/train_step_16.wgsl': 'fcf280323310538ab1807dfe25ef569186812f302f61231e3e15999f9d734615',
    'mlp/kernels/train_step_17.wgsl': '20cbd2c1981df750821132e8fba189221afdbadc82fdf26aab0a4e0207d8a574',
    'mlp/kernels/train_step_18.wgsl': '372ad944b11d633f9501048b79815913f444c8f35d0ed0857fce3d41fabdb15e',
    'mlp/kernels/train_step_19.wgsl': '42ba48dee80b938579215bb66845de5685d43c0e7629026b034e8b5bd2cab65a',
    'mlp/kernels/train_step_2.wgsl': 'f5cc10185f437e0f6f0547b9955e53ca3bbb819f23c214fc9969e93927c6eb19',
    'mlp/kernels/train_step_20.wgsl': 'e968abb4e594262b3d2a44a5c2ab67d14f9e320dc8a7ec2c5df81464a216af6a',
    'mlp/kernels/train_step_21.wgsl': 'f63f643b977a5bcc3a59a38ef5147e495f42d9d073ea81fd8cded1c2b3907455',
    'mlp/kernels/train_step_22.wgsl': 'befc92a5d5c3413623940042a13549c456921db3b9fcbebf1b30a9591eaecc83',
    'mlp/kernels/train_step_3.wgsl': 'f2d8cc3d7c835fffd5d916ac4bccbdf9ee439229615c97d8bf63c61c4b787c64',
    'mlp/kernels/train_step_4.wgsl': '4e096f13d98a981aae58ec8cf09fd04bd30154f9c6a8213198ede2091f23c445',
    'mlp/kernels/train_step_5.wgsl': '84ad3bf0cd994fb2f3e1ab26505ce3bb9a08ebe95ffcfbc29b7f45a515afc2fc',
    'mlp/kernels/train_step_6.wgsl': '3a5a09dedc95e4f9fcb4e1b80bc47428f9ac755bc97239acf800a024ec4a8940',
    'mlp/kernels/train_step_7.wgsl': '48991670552e203aa0441b92a155bd26cf4dc1c2ca53227a4b0f8c591b015dc1',
    'mlp/kernels/train_step_8.wgsl': '3074ef5fd851f0065416c7c211574a9cb9167b35eb6739417a59639581f558cb',
    'mlp/kernels/train_step_9.wgsl': '74e0760b4cce4b680663642ba66adb74f6c6b19e5875427f666b08c262d132f4',
    'mlp/manifest.json': '04118e75e8404b3b79cd632f4fe0c340309f5a3dfc5757d4b089b9392c4f8564',
    'mlp/module.wasm': '8cada3fc78f8debff1fc2174300603d064f63c2e3f25e8c020d91560c6172838',
    'mlp/weights.safetensors': 'ef8275a8cb3d019c06a7c3b87f7cbc9e76d890d818b2ade096b8e0999e55080d',
}


def test_exports_byte_identical(tmp_path):
    export_all(str(tmp_path))
    assert digests(str(tmp_path)) == EXPECTED


if __name__ == "__main__":
    export_all(sys.argv[1])
    for k, v in digests(sys.argv[1]).items():
        print(f"    {k!r}: {v!r},")
