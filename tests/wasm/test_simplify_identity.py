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
``EPILOGUES = False`` the files hash as before). Regenerate them (only for an intended change of the emitted code) with
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
    'cnn/kernels/predict_0.wgsl': '2c1890a65528837d2f802375db6b87092caf07e87a566deda1ecb565c657ede2',
    'cnn/kernels/predict_1.wgsl': '76db5a6598620ef0be0c494b09e3d07d17ef483c2c51302b1e32890cdd551e18',
    'cnn/kernels/predict_2.wgsl': 'a6260ed2306f778d7280919cf72b0bf0520922d79a63fdcf674693d2eae4bf37',
    'cnn/kernels/predict_3.wgsl': '9fede6b00207cb14bbd6c08ead8c156750e918017e29d41dafbfbfaee5d21301',
    'cnn/kernels/train_step_0.wgsl': '874977df60af6656b43c59eb9e3f5258cd24e913f45f43e45484683bf8e4e2cc',
    'cnn/kernels/train_step_10.wgsl': 'c49f6020899d49c0570d462c1ecebd1bbd7fd164fc36a76e87bb90de220059bd',
    'cnn/kernels/train_step_11.wgsl': 'f17ce803b93c1bc9761f8d002db01030e0cd6dc0b772e94a9d0c41323672f6e0',
    'cnn/kernels/train_step_12.wgsl': 'a00c91f629935b1cd4da15e0b08e3c4e879ffeb6f20946076aa1582feb0b8697',
    'cnn/kernels/train_step_13.wgsl': '7f40b6f9803d4e9a2f4e02a74faa63c4b0664812a7472c10cc9e89f13ef880ae',
    'cnn/kernels/train_step_14.wgsl': '3e76131903fd54de99e56e90b0da69c895db65db689b5419d0cb952a039708a4',
    'cnn/kernels/train_step_15.wgsl': '652ef6b2c539eb7e9f653ca1b75b0a6040c1dafe29334af96771a90b58488f00',
    'cnn/kernels/train_step_16.wgsl': '002871975976eddbaa619150e3a25653de8bc5688c6d77cc961881602b42a2f1',
    'cnn/kernels/train_step_17.wgsl': 'f2b1159f2b0f063479e6bea78b60f8aa239f70c5a88c75cd13173ce746a5f915',
    'cnn/kernels/train_step_18.wgsl': 'bb14b04b2a0d949f876d207127c5e72937e1cde54fde460d7fb037b2c78d28a0',
    'cnn/kernels/train_step_19.wgsl': '801546af18d71888f13e68dbb6abfb7c3e15c2485cba1e5bed331b493e5ac30b',
    'cnn/kernels/train_step_20.wgsl': 'a703d9253d506bdc0fd86b5422c30ca976397211921240521d02ba863aabedc5',
    'cnn/kernels/train_step_21.wgsl': '44490ce2ad67d7d4b733899d19de5579ad6f6efacdeb70410da693430ad02f7d',
    'cnn/kernels/train_step_22.wgsl': 'bd4b58f14e653d10900e330d869bc42abdb0c3a9c9da80533b78813fd4605657',
    'cnn/kernels/train_step_23.wgsl': '0f124a0c8e3085db202d2c5aa0a3ff05ae0eefa3303f88727f2c5e4501400144',
    'cnn/kernels/train_step_24.wgsl': '913348c4246190a3a8102eee389159ddaeace238a5ff3b89fba57965d95f16d1',
    'cnn/kernels/train_step_25.wgsl': '4333029b521cbf343c616c7d030d6fc39d72506ab467a19ab655fd5ce55972d1',
    'cnn/kernels/train_step_3.wgsl': '7707cc2cd67c2e342d8913322cde75c44522eac240b8655fe0d1d8af3ed5ac66',
    'cnn/kernels/train_step_4.wgsl': '37259de8bfe7c38d1ef3c3b1008f42bbb13a48f068c81e284ec622119766c4ca',
    'cnn/kernels/train_step_5.wgsl': '73ee1ca91a53e0333c717269c3798bf4c539ac4eb1d96836997440b82007cf0a',
    'cnn/kernels/train_step_7.wgsl': '2246f9aa0aec589a73c27abe5667412d73d90e2c4f955f87225353c509410d0a',
    'cnn/kernels/train_step_8.wgsl': '3dc1dda898ceed673c7945cc5f3efd2d0b1eac389d76f51a49c2787c1045b8d8',
    'cnn/kernels/train_step_9.wgsl': 'ea04c7d7339b75b9b7c7bd02b0eee56cdd463e0520e302992a56bbbc371935b7',
    'cnn/manifest.json': 'f2dedc2c9a71e239e0be3a26f6ee5a74631d64bddb60f930b21a7cffa200a294',
    'cnn/module.wasm': 'bd4e072fdab884a97002e0a6d5a8b162401ebb079bbdf6990d0fd2e66d667847',
    'cnn/weights.safetensors': '18fb33c2c6f3c18fd8dde02b1c329943b899c900951348f49b04ea1b8dd2ccae',
    'fn/kernels/predict_0.wgsl': '554d170699b936539b976f727170c3554a264d559806f0ace534b906e2dc6fe5',
    'fn/kernels/predict_1.wgsl': 'af597d18a38fc5d1f45afc36054f4f94c80a92763f8b23a41e1b64cc83045ddf',
    'fn/manifest.json': '9a0e6286980b1a8477647e86f5fa41f24178853ecfadd570aae10c72ea1747b0',
    'fn/module.wasm': '2732d3c5b72376f4514415de152d7277b32c05158b882f23fd758b9b8d690f83',
    'fn/weights.safetensors': '507f0fdd933733ae0953cab28bbf638a2d13650d463b2341324215447e758dc6',
    'mlp/kernels/predict_0.wgsl': '8adcc894d18f5431cbb7ba7bc41279352e8c54cee1817d36b82e0e66e3118dea',
    'mlp/kernels/predict_1.wgsl': 'f2d8cc3d7c835fffd5d916ac4bccbdf9ee439229615c97d8bf63c61c4b787c64',
    'mlp/kernels/train_step_0.wgsl': 'bf90b4465d3469f14eaa801623c324407e189e666bd360bba38ef45508a11cc8',
    'mlp/kernels/train_step_1.wgsl': 'df15b5db4bd39fd0761584af06b4a89e5fb43c20fe4a81ad3009645e78392965',
    'mlp/kernels/train_step_10.wgsl': '8859e493b2c39361f63da9174b85d4aaeca714254d4d12754c4e6fac4907f661',
    'mlp/kernels/train_step_11.wgsl': '5cc51ed55bb89b83f353fbb26561e3c0846d9aa05b123acbc8b263e698f1a170',
    'mlp/kernels/train_step_12.wgsl': '515bf57f8eb50322cb94ffd2e3ce980fecbd452b9d6fcacf6d2fd2f1614740dc',
    'mlp/kernels/train_step_13.wgsl': '9392d21cbb8c4ceb9562c95ec395a55272afd8b779ef052ea08f8176d6f65d36',
    'mlp/kernels/train_step_14.wgsl': '2e353cb97e6cd23fb111467e83710093063bcede6a56d77a436a2e0b6928e662',
    'mlp/kernels/train_step_15.wgsl': '678cbbed0bd437163147aa83e081fd8a2cc1b18431b73788b8d22ec6bd000705',
    'mlp/kernels/train_step_16.wgsl': '3a0232da1d0d97390e1b3d00b04c261dbaa699b0e3951302b2772064cc8a72fa',
    'mlp/kernels/train_step_17.wgsl': '20cbd2c1981df750821132e8fba189221afdbadc82fdf26aab0a4e0207d8a574',
    'mlp/kernels/train_step_18.wgsl': '92339335817b8e27698641805c352851068dc6918e7163e1b7963f3d739fabf2',
    'mlp/kernels/train_step_19.wgsl': '42ba48dee80b938579215bb66845de5685d43c0e7629026b034e8b5bd2cab65a',
    'mlp/kernels/train_step_2.wgsl': '537aa92b9962520b3ff55b69a7e9551764c71c3e87b8236f28df3d78690734aa',
    'mlp/kernels/train_step_20.wgsl': '678cbbed0bd437163147aa83e081fd8a2cc1b18431b73788b8d22ec6bd000705',
    'mlp/kernels/train_step_21.wgsl': 'c7f0808df60ed402f6a620267fecfb19d3f15dcbc0f26132f32106a2846d2013',
    'mlp/kernels/train_step_22.wgsl': '014abae3b5de4a51cddc06d493bf74c9dbd09ecdafbef891ccb35122272059da',
    'mlp/kernels/train_step_23.wgsl': '4e621eb89a9f25857f94feb0f88f5c8c91fe21eada19b26c05526aca42201eaf',
    'mlp/kernels/train_step_24.wgsl': '417a6ffab4e41a9c2a68a35f76b79521771501f2878be221b95eb0ec1bdf5c2f',
    'mlp/kernels/train_step_25.wgsl': 'a0d2e2a7a826c0bcf048dc667e20048392d0fc7551c15872678bc3c7aad5b8c1',
    'mlp/kernels/train_step_26.wgsl': '1d0fc261e0584147ec131966a29873c118b0fe0631c17065d4fb9debb92aaf6a',
    'mlp/kernels/train_step_27.wgsl': 'da363610c1e49546bfb3926adb1e29583636a37dfab69a715c3f85d78fc4edf5',
    'mlp/kernels/train_step_28.wgsl': '5fc5d708e39ac9c9971b4d8eb1f776feaa310a736259e9ec2d7819297a45cba2',
    'mlp/kernels/train_step_29.wgsl': 'b2b2452c434054b2da6251ac2af4c0938728d7bfd8183d331dea5523a1982dc0',
    'mlp/kernels/train_step_30.wgsl': '13a66c656fec093ed17bb6904e85c3987c3647d0c14b31bd102539292d392005',
    'mlp/kernels/train_step_31.wgsl': '8c5fbe836a47ce0e3629bbdbb92694344f70317c21d9da18cfc3a7169259db3e',
    'mlp/kernels/train_step_32.wgsl': 'a7601b62d9bad03c56bf0dbd11173f5a05ea8a60b26f56dcc8d246b596cb7912',
    'mlp/kernels/train_step_33.wgsl': 'b59808ebe05e57247d3bd72c45abdd38411c18d0aa15352cc71d6d99c575796f',
    'mlp/kernels/train_step_34.wgsl': '4688039e57d0adc788175ec6a1217bfcf1a9d1e313fa360e66ed875c333ec67f',
    'mlp/kernels/train_step_35.wgsl': '4333029b521cbf343c616c7d030d6fc39d72506ab467a19ab655fd5ce55972d1',
    'mlp/kernels/train_step_5.wgsl': '0b0a56e4d4fda55e08531b62f4d4efdf6fd41bfd2cc004eea7da8dc9550cb84b',
    'mlp/kernels/train_step_6.wgsl': '3e77ca964ee6c3fd0572f8cc6b5ccb0ee152c85876c6987862de47c6508c7f60',
    'mlp/kernels/train_step_7.wgsl': '3a5a09dedc95e4f9fcb4e1b80bc47428f9ac755bc97239acf800a024ec4a8940',
    'mlp/kernels/train_step_8.wgsl': '1776d4dd4630674f5b00f80626bbf9941329e34ab8efae4022fbfc6e07100815',
    'mlp/kernels/train_step_9.wgsl': '4f5e226e8b36eac7d1d16928e1191c3f249a2f5ec0fe165d4c0b07db024fb2ce',
    'mlp/manifest.json': 'dc0a1bf0f47408e63aab7820a5887b8d3534a0fd33c3b184818edefae0d507bd',
    'mlp/module.wasm': 'c4384afcf54abdb2b0034d87b5590b1ace122dfcd03bb30d258b6e6e7257b59e',
    'mlp/weights.safetensors': 'ef8275a8cb3d019c06a7c3b87f7cbc9e76d890d818b2ade096b8e0999e55080d',
}


def test_exports_byte_identical(tmp_path):
    export_all(str(tmp_path))
    assert digests(str(tmp_path)) == EXPECTED


if __name__ == "__main__":
    export_all(sys.argv[1])
    for k, v in digests(sys.argv[1]).items():
        print(f"    {k!r}: {v!r},")
