"""Byte-identity guard for the index simplifier (issue 13, "two simplifiers").

Exports three models (an MLP trained with Adam, a CNN with conv2d + pooling, a function using
reshape/transpose/slice/pad/gather/concat) and compares the sha256 of every exported file with the
values recorded on main before the simplifier was moved into core/. Export is deterministic across
processes and PYTHONHASHSEED (see tests/python/test_export.py), so the stored digests hold on any
machine. The manifests' digests changed once since, when WebGPU kernels gained "access" (the
manifests without it hash as before; no code or weights changed), and the modules when loads took their constant offsets into the memarg and unrolled loops folded their index into selects and one-element constants became immediates, and the CNN's WGSL when WebGPU matmuls gained plans per
shape (webgpu/matmul.py: its small matmuls run the direct kernel), and the modules with matmuls when the
wasm micro-kernel broadcast A with ``v128.load32_splat`` and packed A a panel at a time. Regenerate them (only for an intended change of the emitted code) with
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
    'cnn/kernels/predict_0.wgsl': '520a3b9dc0928c7d2b68f86e7e436c172ca667ede447ee38a677bea44394d532',
    'cnn/kernels/predict_1.wgsl': '76db5a6598620ef0be0c494b09e3d07d17ef483c2c51302b1e32890cdd551e18',
    'cnn/kernels/predict_2.wgsl': '604f959b56a8207e847022d2cba294de68bb3afdaa2f24e0db376edee28b5f5a',
    'cnn/kernels/predict_3.wgsl': '3befc3e61962a88bd5bb4772e8c5cca4fa0263984ce2252bb6ff6197455ceef1',
    'cnn/kernels/predict_4.wgsl': '7fab0e0efd740dc2067da3d21030d4b4bb8bc1ad18f151afca6a7f1d95bd706e',
    'cnn/kernels/train_step_10.wgsl': '5810ad67bfafd13a3528e43d09d802f2bbab41be3849e8822dbdb306eb420dc4',
    'cnn/kernels/train_step_11.wgsl': '31f8eda8ef555edee64abd5ece7818cb07029b5cdda068eed0c8391dc961ee34',
    'cnn/kernels/train_step_12.wgsl': '14c4679b492dc5f6d6011f7f671bc77ef5a52b3cba6fe197a95b7a87d973044a',
    'cnn/kernels/train_step_13.wgsl': '8b1493196de43cc1f51eb3f0db5c490f0abdbf3a3a598d6e84d035b50ac850d6',
    'cnn/kernels/train_step_14.wgsl': '7f40b6f9803d4e9a2f4e02a74faa63c4b0664812a7472c10cc9e89f13ef880ae',
    'cnn/kernels/train_step_15.wgsl': '3e76131903fd54de99e56e90b0da69c895db65db689b5419d0cb952a039708a4',
    'cnn/kernels/train_step_16.wgsl': 'cc33defbfd869e6d58dd9d7663b6423a10024f2ad3c0e8d27296ccb072e74018',
    'cnn/kernels/train_step_17.wgsl': '455b97a947febeddd68cf25613dd843b8c32afb69f1da3a480c9193430080acc',
    'cnn/kernels/train_step_18.wgsl': '002871975976eddbaa619150e3a25653de8bc5688c6d77cc961881602b42a2f1',
    'cnn/kernels/train_step_19.wgsl': '42cf1b371531bf2e9ac49e1fe1f1999fe608d2d4559bc29c409b514222e32b54',
    'cnn/kernels/train_step_2.wgsl': 'ee896f02ccaee70c61676c900cbad7e7b4ae1e4f4094d42158c35bdf9b18c8a3',
    'cnn/kernels/train_step_20.wgsl': '639fb8c76fbfb9f53a73f184414def22da5f637fa925d2f066f3dc058c1d3dce',
    'cnn/kernels/train_step_21.wgsl': '13be51e4a42dbaba19dcb58397b74592ac76b378608664f178277f146580a869',
    'cnn/kernels/train_step_22.wgsl': 'ec0354a5f9f9e5a274bd6d49d2076962bb5cbdc29f6af0a2600050361489cdcf',
    'cnn/kernels/train_step_23.wgsl': 'aec9c1fa6a6868f6af8140132f814185451bc035fecb87024211dd0f07db2c82',
    'cnn/kernels/train_step_24.wgsl': '797f3e4c7de6125ea503b7ffeafbfc825da571c1c58712a14b51a01372f82c93',
    'cnn/kernels/train_step_25.wgsl': '118909ee541a2b014e34a71b3874eb7cf291be492eb5006fc19cb50aa51283bf',
    'cnn/kernels/train_step_26.wgsl': 'fecf11c0744d877e4182a69397795f68d0f5051686ad2251c516ad0cde4e2cf5',
    'cnn/kernels/train_step_27.wgsl': '340370e19c5600156355ed933dc3ca557b6f3b124176776367e3c8aaad232867',
    'cnn/kernels/train_step_28.wgsl': '39ba1a142ab468546d2a0d8d498be28eaa13ce84ddc46ceb22bda070e6b0aa5e',
    'cnn/kernels/train_step_29.wgsl': '76b6f714bf33b6a4caf2fbac5fac64e63b43016d86ada92a5b5e244493ab4eb4',
    'cnn/kernels/train_step_3.wgsl': 'c23e0542335a476ae3e9d11d5ac7157699571c2e2f73d30048ad9da96ee051a6',
    'cnn/kernels/train_step_30.wgsl': 'c7f0808df60ed402f6a620267fecfb19d3f15dcbc0f26132f32106a2846d2013',
    'cnn/kernels/train_step_31.wgsl': '4333029b521cbf343c616c7d030d6fc39d72506ab467a19ab655fd5ce55972d1',
    'cnn/kernels/train_step_4.wgsl': '28147b4f2e16cf1c2703ca07463b8c92ae952cff2bf1b67a0bebc0ee20242725',
    'cnn/kernels/train_step_7.wgsl': '3fc1e97c4091fb8d198aff0f6b9b6395929f6eb52b225094897308594ee957f1',
    'cnn/kernels/train_step_8.wgsl': '481551c6b974e621c38b519cd1b250ec1333ffb4351d588a1d1c30ec7b620ece',
    'cnn/kernels/train_step_9.wgsl': 'ea04c7d7339b75b9b7c7bd02b0eee56cdd463e0520e302992a56bbbc371935b7',
    'cnn/manifest.json': '89afaa112b347f785263199d371d462726540e013ad439ff0baeb5336e54f295',
    'cnn/module.wasm': '9cc760b1d5be9b830976ff99ca20087951cd105c8ca7f772e6a5e537c233b1bd',
    'cnn/weights.safetensors': '3ed89222bc3e72ea2e5a1f83549595045346d6fbb661a39ed2a31a5941ec3a85',
    'fn/kernels/predict_0.wgsl': 'abe1f0b3f19e50f47f4bad8cc201c351804c498800b73129d9094e4f8f75b10e',
    'fn/kernels/predict_1.wgsl': 'cb67c8edcdfa2cb65e09b2a073e08c6b40e1982b262f58391dc12fcfca737f9a',
    'fn/manifest.json': '0260f0b62f5bf44da0d526baff31127946935025db2150d3918512ba23c4decd',
    'fn/module.wasm': '2732d3c5b72376f4514415de152d7277b32c05158b882f23fd758b9b8d690f83',
    'fn/weights.safetensors': '507f0fdd933733ae0953cab28bbf638a2d13650d463b2341324215447e758dc6',
    'mlp/kernels/predict_0.wgsl': 'd3f1f5c2e35d784d352fdafb86b6b59f0540d94aef5f36081e3c5063af6bb530',
    'mlp/kernels/predict_1.wgsl': '7b95450e9ba4b0c8876e55cbc6dfda83b1bb99ad450d21f2e52cf8636b6a0c65',
    'mlp/kernels/predict_2.wgsl': '6520954823997f667ace42ef66dc053084c57a0c8da04b16895039720d1a3a65',
    'mlp/kernels/predict_3.wgsl': 'beed511d8eaace5875e1091c2b9b4ccc010a0845977ba9deeed1a95b1d29f84f',
    'mlp/kernels/train_step_1.wgsl': 'cf99099c716c9dc5a1ef694aa85227117093e2535d75998ff05b92d79847c52c',
    'mlp/kernels/train_step_10.wgsl': '55b67c1b437f1f79fc121b32c47d21a8be5ca8d5b6cb8010eb1462bb4076c067',
    'mlp/kernels/train_step_11.wgsl': '8b1493196de43cc1f51eb3f0db5c490f0abdbf3a3a598d6e84d035b50ac850d6',
    'mlp/kernels/train_step_12.wgsl': 'd264ff708ed4fb3bdb6401e7a7f15b60cd702654583cfa1997a0951b82456037',
    'mlp/kernels/train_step_13.wgsl': '515bf57f8eb50322cb94ffd2e3ce980fecbd452b9d6fcacf6d2fd2f1614740dc',
    'mlp/kernels/train_step_14.wgsl': 'c3d19e88cf0bb9feaa6d0a7c729fae5ac4f27b058c1a45a7334f59651bc02951',
    'mlp/kernels/train_step_15.wgsl': 'f63f643b977a5bcc3a59a38ef5147e495f42d9d073ea81fd8cded1c2b3907455',
    'mlp/kernels/train_step_16.wgsl': '21a487593248bf40781165adbf9f3dc4f00a8ada03d70f0593f437d53919fe13',
    'mlp/kernels/train_step_17.wgsl': 'd10dd0a6fdc1599e70600166c65e71600dd109ebbe467055c897f460d162b7bc',
    'mlp/kernels/train_step_18.wgsl': 'd115ca3b5361e2aeb7eefcb6dce78e4d8f9a1b27ea7865e0c49a8d65e27e7aac',
    'mlp/kernels/train_step_19.wgsl': '20cbd2c1981df750821132e8fba189221afdbadc82fdf26aab0a4e0207d8a574',
    'mlp/kernels/train_step_2.wgsl': 'e491b7460874d14448254aacc4cb73afd7b1b65dfc2cf522e025356e452fd710',
    'mlp/kernels/train_step_20.wgsl': '9e2752e76d4507ec1412fc5b39c096482552f605bfd61aa15a73cdef7df0f1af',
    'mlp/kernels/train_step_21.wgsl': 'c7f0808df60ed402f6a620267fecfb19d3f15dcbc0f26132f32106a2846d2013',
    'mlp/kernels/train_step_22.wgsl': 'd3c96289063d28f88865a064a48ce69259320770d1dc4d121866f6696073f0f1',
    'mlp/kernels/train_step_23.wgsl': 'a1024778b550e5461a60694e69bc6cfb7739aadc576118f3beef2568869a7403',
    'mlp/kernels/train_step_24.wgsl': '417a6ffab4e41a9c2a68a35f76b79521771501f2878be221b95eb0ec1bdf5c2f',
    'mlp/kernels/train_step_25.wgsl': '8677d19ccba1971e3fd7609e827d04dc81ea3c81b4f599cac2bf6a341313e895',
    'mlp/kernels/train_step_26.wgsl': '858428de92a9d71c44e275be8f9f8db613430f7a7e4dab1ecbe52a06973f8bc3',
    'mlp/kernels/train_step_27.wgsl': 'aa3c6041d2e056e245359e18825b13b49a76f72da8154eaaffcdde7c6df80782',
    'mlp/kernels/train_step_28.wgsl': 'e19c328cb8a1f190a17020567ecfa14d2a5f179f40ad4515801b52388d799b5c',
    'mlp/kernels/train_step_29.wgsl': '80d8a7df99635081c61764ad1ba4d9f0ec82adede1871ab91e2141b24b404a51',
    'mlp/kernels/train_step_30.wgsl': '2083146f59c19e4839e8b85849fdd9c55cae83de91ad92f520477bf2638476e4',
    'mlp/kernels/train_step_31.wgsl': '407ef5054b4f65ea8417751123e1f8d21e8016a8e377c5ae89c75eb1768137dc',
    'mlp/kernels/train_step_32.wgsl': 'a7601b62d9bad03c56bf0dbd11173f5a05ea8a60b26f56dcc8d246b596cb7912',
    'mlp/kernels/train_step_33.wgsl': 'b59808ebe05e57247d3bd72c45abdd38411c18d0aa15352cc71d6d99c575796f',
    'mlp/kernels/train_step_34.wgsl': '4688039e57d0adc788175ec6a1217bfcf1a9d1e313fa360e66ed875c333ec67f',
    'mlp/kernels/train_step_35.wgsl': '4333029b521cbf343c616c7d030d6fc39d72506ab467a19ab655fd5ce55972d1',
    'mlp/kernels/train_step_5.wgsl': '0b0a56e4d4fda55e08531b62f4d4efdf6fd41bfd2cc004eea7da8dc9550cb84b',
    'mlp/kernels/train_step_6.wgsl': 'c4fa463373359f1cf82da091daec1a964e1b0542add05c6f6a060fc4c273a672',
    'mlp/kernels/train_step_7.wgsl': '3a5a09dedc95e4f9fcb4e1b80bc47428f9ac755bc97239acf800a024ec4a8940',
    'mlp/kernels/train_step_8.wgsl': '72a99f11bee28747af87e82194d5556b11f960879ca866731ee9fabec724fdb8',
    'mlp/kernels/train_step_9.wgsl': '4f5e226e8b36eac7d1d16928e1191c3f249a2f5ec0fe165d4c0b07db024fb2ce',
    'mlp/manifest.json': 'ba7c60869d93d4feca769facc00e2c7ed5e3436652fafeb0e1317149ba43d898',
    'mlp/module.wasm': '3a4f6c21a40e966bc4b4360657dd630e0a83b7ab617132afcbc2fe529ad3b17c',
    'mlp/weights.safetensors': 'efde01b008819b2100a85d86bc00bcbb630dd4d72fc154b66a43dad9f7aeb20b',
}


def test_exports_byte_identical(tmp_path):
    export_all(str(tmp_path))
    assert digests(str(tmp_path)) == EXPECTED


if __name__ == "__main__":
    export_all(sys.argv[1])
    for k, v in digests(sys.argv[1]).items():
        print(f"    {k!r}: {v!r},")
