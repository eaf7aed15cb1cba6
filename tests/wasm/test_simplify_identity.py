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
``INPLACE = False`` the files hash as before). Regenerate them (only for an intended change of the emitted code) with
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
    'cnn/kernels/train_step_0.wgsl': '874977df60af6656b43c59eb9e3f5258cd24e913f45f43e45484683bf8e4e2cc',
    'cnn/kernels/train_step_1.wgsl': '978342da3db95ff5e868e50a18a48eb995c0b911545506da263269a419daed6e',
    'cnn/kernels/train_step_10.wgsl': 'a00c91f629935b1cd4da15e0b08e3c4e879ffeb6f20946076aa1582feb0b8697',
    'cnn/kernels/train_step_11.wgsl': '7f40b6f9803d4e9a2f4e02a74faa63c4b0664812a7472c10cc9e89f13ef880ae',
    'cnn/kernels/train_step_12.wgsl': '3e76131903fd54de99e56e90b0da69c895db65db689b5419d0cb952a039708a4',
    'cnn/kernels/train_step_13.wgsl': '652ef6b2c539eb7e9f653ca1b75b0a6040c1dafe29334af96771a90b58488f00',
    'cnn/kernels/train_step_14.wgsl': '002871975976eddbaa619150e3a25653de8bc5688c6d77cc961881602b42a2f1',
    'cnn/kernels/train_step_15.wgsl': 'f2b1159f2b0f063479e6bea78b60f8aa239f70c5a88c75cd13173ce746a5f915',
    'cnn/kernels/train_step_16.wgsl': 'bb14b04b2a0d949f876d207127c5e72937e1cde54fde460d7fb037b2c78d28a0',
    'cnn/kernels/train_step_17.wgsl': '36d3efcfd9f439f69f0914a2c8d6c435efe40d239f8c5c254b8af580187c6573',
    'cnn/kernels/train_step_18.wgsl': 'b9864bd15b1649ef63cbacbac879554aaca78f088d37a85e965e636758095a4a',
    'cnn/kernels/train_step_19.wgsl': 'b6556e8b49bf546f2e52ca9481226a596befccb1250cad84a3aecc1a65fc4dea',
    'cnn/kernels/train_step_2.wgsl': '37259de8bfe7c38d1ef3c3b1008f42bbb13a48f068c81e284ec622119766c4ca',
    'cnn/kernels/train_step_20.wgsl': '2c1890a65528837d2f802375db6b87092caf07e87a566deda1ecb565c657ede2',
    'cnn/kernels/train_step_21.wgsl': 'bd4b58f14e653d10900e330d869bc42abdb0c3a9c9da80533b78813fd4605657',
    'cnn/kernels/train_step_22.wgsl': 'cbf4f4aa20315c38faa878b9fed5ea42bbf436299c9eef35105b6dc7485ac815',
    'cnn/kernels/train_step_23.wgsl': 'e8bcb74eeff64d90e22e350794e14f5c83dfdd1b93961065e0b0d053c75f8fce',
    'cnn/kernels/train_step_3.wgsl': '73ee1ca91a53e0333c717269c3798bf4c539ac4eb1d96836997440b82007cf0a',
    'cnn/kernels/train_step_4.wgsl': '9fede6b00207cb14bbd6c08ead8c156750e918017e29d41dafbfbfaee5d21301',
    'cnn/kernels/train_step_5.wgsl': '2246f9aa0aec589a73c27abe5667412d73d90e2c4f955f87225353c509410d0a',
    'cnn/kernels/train_step_6.wgsl': '3dc1dda898ceed673c7945cc5f3efd2d0b1eac389d76f51a49c2787c1045b8d8',
    'cnn/kernels/train_step_7.wgsl': 'ea04c7d7339b75b9b7c7bd02b0eee56cdd463e0520e302992a56bbbc371935b7',
    'cnn/kernels/train_step_8.wgsl': 'c49f6020899d49c0570d462c1ecebd1bbd7fd164fc36a76e87bb90de220059bd',
    'cnn/kernels/train_step_9.wgsl': 'f17ce803b93c1bc9761f8d002db01030e0cd6dc0b772e94a9d0c41323672f6e0',
    'cnn/manifest.json': '73a38003d5fd031dc169741e9663d9e545e66137b7a41dc68774b54d67ac7c47',
    'cnn/module.wasm': '31b8104ab4c8e340df587cdd2afab5fd501dd35949a74a2be20049f7ccc664bc',
    'cnn/weights.safetensors': '18fb33c2c6f3c18fd8dde02b1c329943b899c900951348f49b04ea1b8dd2ccae',
    'fn/kernels/predict_0.wgsl': '554d170699b936539b976f727170c3554a264d559806f0ace534b906e2dc6fe5',
    'fn/kernels/predict_1.wgsl': 'af597d18a38fc5d1f45afc36054f4f94c80a92763f8b23a41e1b64cc83045ddf',
    'fn/manifest.json': '9a0e6286980b1a8477647e86f5fa41f24178853ecfadd570aae10c72ea1747b0',
    'fn/module.wasm': '2732d3c5b72376f4514415de152d7277b32c05158b882f23fd758b9b8d690f83',
    'fn/weights.safetensors': '507f0fdd933733ae0953cab28bbf638a2d13650d463b2341324215447e758dc6',
    'mlp/kernels/predict_0.wgsl': '3347d74b87809a7c48c0af84a198abaedfa268e29c6728f248ae8fa99812bde3',
    'mlp/kernels/predict_1.wgsl': '3faf5022370fa272bbb2798ee5e2262e1bd500076ed5b2fd7153e5b43a2396f8',
    'mlp/kernels/train_step_0.wgsl': 'bf90b4465d3469f14eaa801623c324407e189e666bd360bba38ef45508a11cc8',
    'mlp/kernels/train_step_1.wgsl': 'df15b5db4bd39fd0761584af06b4a89e5fb43c20fe4a81ad3009645e78392965',
    'mlp/kernels/train_step_10.wgsl': '8859e493b2c39361f63da9174b85d4aaeca714254d4d12754c4e6fac4907f661',
    'mlp/kernels/train_step_11.wgsl': '5cc51ed55bb89b83f353fbb26561e3c0846d9aa05b123acbc8b263e698f1a170',
    'mlp/kernels/train_step_12.wgsl': '515bf57f8eb50322cb94ffd2e3ce980fecbd452b9d6fcacf6d2fd2f1614740dc',
    'mlp/kernels/train_step_13.wgsl': '9392d21cbb8c4ceb9562c95ec395a55272afd8b779ef052ea08f8176d6f65d36',
    'mlp/kernels/train_step_14.wgsl': '2e353cb97e6cd23fb111467e83710093063bcede6a56d77a436a2e0b6928e662',
    'mlp/kernels/train_step_15.wgsl': '678cbbed0bd437163147aa83e081fd8a2cc1b18431b73788b8d22ec6bd000705',
    'mlp/kernels/train_step_16.wgsl': 'aaef78453fcc85168417433ccc7b4ddd224f1f1124762ccf15068427e2eb7f86',
    'mlp/kernels/train_step_17.wgsl': '20cbd2c1981df750821132e8fba189221afdbadc82fdf26aab0a4e0207d8a574',
    'mlp/kernels/train_step_18.wgsl': '538ba3019c0a5a95b61337bce934c10bde8ab6ab194360ae9c7112b3c872d56c',
    'mlp/kernels/train_step_19.wgsl': '42ba48dee80b938579215bb66845de5685d43c0e7629026b034e8b5bd2cab65a',
    'mlp/kernels/train_step_2.wgsl': '537aa92b9962520b3ff55b69a7e9551764c71c3e87b8236f28df3d78690734aa',
    'mlp/kernels/train_step_20.wgsl': 'ef40fb00ee7954b04c89e5caddff15067c20b1eed876194de2b376141e3ef013',
    'mlp/kernels/train_step_21.wgsl': 'f63f643b977a5bcc3a59a38ef5147e495f42d9d073ea81fd8cded1c2b3907455',
    'mlp/kernels/train_step_22.wgsl': 'd15aeeeb02a1e090f2f77e238d080957481f992e67b1f53c3d68f53437beca75',
    'mlp/kernels/train_step_3.wgsl': 'f2d8cc3d7c835fffd5d916ac4bccbdf9ee439229615c97d8bf63c61c4b787c64',
    'mlp/kernels/train_step_4.wgsl': '4e096f13d98a981aae58ec8cf09fd04bd30154f9c6a8213198ede2091f23c445',
    'mlp/kernels/train_step_5.wgsl': '3e77ca964ee6c3fd0572f8cc6b5ccb0ee152c85876c6987862de47c6508c7f60',
    'mlp/kernels/train_step_6.wgsl': '3a5a09dedc95e4f9fcb4e1b80bc47428f9ac755bc97239acf800a024ec4a8940',
    'mlp/kernels/train_step_7.wgsl': '48991670552e203aa0441b92a155bd26cf4dc1c2ca53227a4b0f8c591b015dc1',
    'mlp/kernels/train_step_8.wgsl': '3074ef5fd851f0065416c7c211574a9cb9167b35eb6739417a59639581f558cb',
    'mlp/kernels/train_step_9.wgsl': 'e8bcb74eeff64d90e22e350794e14f5c83dfdd1b93961065e0b0d053c75f8fce',
    'mlp/manifest.json': 'c7462f23d18db5befac644a398a7cee0d99c0e27e2736d6e299f76bd56849015',
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
