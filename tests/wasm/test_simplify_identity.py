"""Byte-identity guard for the index simplifier (issue 13, "two simplifiers").

Exports three models (an MLP trained with Adam, a CNN with conv2d + pooling, a function using
reshape/transpose/slice/pad/gather/concat) and compares the sha256 of every exported file with the
values recorded on main before the simplifier was moved into core/. Export is deterministic across
processes and PYTHONHASHSEED (see tests/python/test_export.py), so the stored digests hold on any
machine. The manifests' digests changed once since, when WebGPU kernels gained "access" (the
manifests without it hash as before; no code or weights changed), and the modules when loads took their constant offsets into the memarg and unrolled loops folded their index into selects and one-element constants became immediates, and the CNN's WGSL when WebGPU matmuls gained plans per
shape (webgpu/matmul.py: its small matmuls run the direct kernel), and the WGSL and manifests when map
kernels went to four elements per invocation (webgpu/map.py) and non-negative integer division to u32, and the
WGSL simplifier folded ``(x // c) * c + x % c`` into ``x``. Regenerate them (only for an intended change of the emitted code) with
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
    'cnn/kernels/predict_0.wgsl': 'e34ae82db924d8f49e2342b77019dfe5584576270843cce8bb2a8a746f217887',
    'cnn/kernels/predict_1.wgsl': 'a6260ed2306f778d7280919cf72b0bf0520922d79a63fdcf674693d2eae4bf37',
    'cnn/kernels/predict_2.wgsl': 'aee10b180a7e40375325bee28af0cab289d5c2b8511b1b10349bbab761b72e85',
    'cnn/kernels/predict_3.wgsl': '2e0c4fc9dd85e5b8fe50d898d64ceb2a70564e2907d0a3d11ad2e72d9fc5e47e',
    'cnn/kernels/train_step_1.wgsl': '7707cc2cd67c2e342d8913322cde75c44522eac240b8655fe0d1d8af3ed5ac66',
    'cnn/kernels/train_step_10.wgsl': '31f8eda8ef555edee64abd5ece7818cb07029b5cdda068eed0c8391dc961ee34',
    'cnn/kernels/train_step_11.wgsl': '14c4679b492dc5f6d6011f7f671bc77ef5a52b3cba6fe197a95b7a87d973044a',
    'cnn/kernels/train_step_12.wgsl': '8b1493196de43cc1f51eb3f0db5c490f0abdbf3a3a598d6e84d035b50ac850d6',
    'cnn/kernels/train_step_13.wgsl': '7f40b6f9803d4e9a2f4e02a74faa63c4b0664812a7472c10cc9e89f13ef880ae',
    'cnn/kernels/train_step_14.wgsl': '3e76131903fd54de99e56e90b0da69c895db65db689b5419d0cb952a039708a4',
    'cnn/kernels/train_step_15.wgsl': '652ef6b2c539eb7e9f653ca1b75b0a6040c1dafe29334af96771a90b58488f00',
    'cnn/kernels/train_step_16.wgsl': '455b97a947febeddd68cf25613dd843b8c32afb69f1da3a480c9193430080acc',
    'cnn/kernels/train_step_17.wgsl': '002871975976eddbaa619150e3a25653de8bc5688c6d77cc961881602b42a2f1',
    'cnn/kernels/train_step_18.wgsl': '42cf1b371531bf2e9ac49e1fe1f1999fe608d2d4559bc29c409b514222e32b54',
    'cnn/kernels/train_step_19.wgsl': 'a00c91f629935b1cd4da15e0b08e3c4e879ffeb6f20946076aa1582feb0b8697',
    'cnn/kernels/train_step_2.wgsl': '37259de8bfe7c38d1ef3c3b1008f42bbb13a48f068c81e284ec622119766c4ca',
    'cnn/kernels/train_step_20.wgsl': '2e84e9d95cdf39d0f3f69fd9173757b2f4e0c13bc2bf0638fa90a5371e0acdfa',
    'cnn/kernels/train_step_21.wgsl': '813c0559ad1433012c7f024615c1d185b74fa21bd420d877736b5d380e76cbce',
    'cnn/kernels/train_step_22.wgsl': '6f32dcbcedc71f0fa2fc5241a14bd0da0643144628af0d68d1034d0d67d7492e',
    'cnn/kernels/train_step_23.wgsl': '797f3e4c7de6125ea503b7ffeafbfc825da571c1c58712a14b51a01372f82c93',
    'cnn/kernels/train_step_24.wgsl': '2c1890a65528837d2f802375db6b87092caf07e87a566deda1ecb565c657ede2',
    'cnn/kernels/train_step_25.wgsl': 'bd4b58f14e653d10900e330d869bc42abdb0c3a9c9da80533b78813fd4605657',
    'cnn/kernels/train_step_26.wgsl': '0f124a0c8e3085db202d2c5aa0a3ff05ae0eefa3303f88727f2c5e4501400144',
    'cnn/kernels/train_step_27.wgsl': 'e737c6674c72615d5795c390dbc13d735da0db7b5d5265f4b1ccbed6d93e3569',
    'cnn/kernels/train_step_28.wgsl': 'ceb52d838b975eabcb329e3dd23b394774eaee67b2d51aba747f618365139c4c',
    'cnn/kernels/train_step_29.wgsl': '76b6f714bf33b6a4caf2fbac5fac64e63b43016d86ada92a5b5e244493ab4eb4',
    'cnn/kernels/train_step_3.wgsl': '73ee1ca91a53e0333c717269c3798bf4c539ac4eb1d96836997440b82007cf0a',
    'cnn/kernels/train_step_30.wgsl': 'c7f0808df60ed402f6a620267fecfb19d3f15dcbc0f26132f32106a2846d2013',
    'cnn/kernels/train_step_31.wgsl': '4333029b521cbf343c616c7d030d6fc39d72506ab467a19ab655fd5ce55972d1',
    'cnn/kernels/train_step_6.wgsl': '3fc1e97c4091fb8d198aff0f6b9b6395929f6eb52b225094897308594ee957f1',
    'cnn/kernels/train_step_7.wgsl': '3dc1dda898ceed673c7945cc5f3efd2d0b1eac389d76f51a49c2787c1045b8d8',
    'cnn/kernels/train_step_8.wgsl': 'ea04c7d7339b75b9b7c7bd02b0eee56cdd463e0520e302992a56bbbc371935b7',
    'cnn/kernels/train_step_9.wgsl': 'ee6a082da4f736592effcf6ffb6fddd76011f8caa4d005b44410724e99020716',
    'cnn/manifest.json': '8753a96b331dfec64c9f0e012f4cab4a2425610d2dcf6d1394a1357a6e993fcb',
    'cnn/module.wasm': 'f6f6eb23769b019d589c3fc52006605adeb0208d807bf193f9dad9c0cadc02cb',
    'cnn/weights.safetensors': '18fb33c2c6f3c18fd8dde02b1c329943b899c900951348f49b04ea1b8dd2ccae',
    'fn/kernels/predict_0.wgsl': '554d170699b936539b976f727170c3554a264d559806f0ace534b906e2dc6fe5',
    'fn/kernels/predict_1.wgsl': 'af597d18a38fc5d1f45afc36054f4f94c80a92763f8b23a41e1b64cc83045ddf',
    'fn/manifest.json': '9a0e6286980b1a8477647e86f5fa41f24178853ecfadd570aae10c72ea1747b0',
    'fn/module.wasm': '2732d3c5b72376f4514415de152d7277b32c05158b882f23fd758b9b8d690f83',
    'fn/weights.safetensors': '507f0fdd933733ae0953cab28bbf638a2d13650d463b2341324215447e758dc6',
    'mlp/kernels/predict_0.wgsl': '873ccf0d41156ec2a3dcc234b153eadf6f7398d62bd9cb3fd45e76ef25abc8db',
    'mlp/kernels/predict_1.wgsl': '8270d09cb44dee5dece2204b2ba8a7b5cf7c5b0382c08e611e547efb5f549344',
    'mlp/kernels/predict_2.wgsl': 'a7cb85f64512e269bf16cc7041f1c6c00d1ecfb404d4b65093f9c5eefb92e748',
    'mlp/kernels/predict_3.wgsl': '1239b448763212023c4b773eb91a2237ce97220eb20c50d42968d0b4678e9621',
    'mlp/kernels/train_step_1.wgsl': '42c121920d9e99ecf43b0c09b15a47204de56e82781ebcf0a8db61f538f3bfb8',
    'mlp/kernels/train_step_10.wgsl': '55b67c1b437f1f79fc121b32c47d21a8be5ca8d5b6cb8010eb1462bb4076c067',
    'mlp/kernels/train_step_11.wgsl': '8b1493196de43cc1f51eb3f0db5c490f0abdbf3a3a598d6e84d035b50ac850d6',
    'mlp/kernels/train_step_12.wgsl': '5cc51ed55bb89b83f353fbb26561e3c0846d9aa05b123acbc8b263e698f1a170',
    'mlp/kernels/train_step_13.wgsl': '515bf57f8eb50322cb94ffd2e3ce980fecbd452b9d6fcacf6d2fd2f1614740dc',
    'mlp/kernels/train_step_14.wgsl': '9392d21cbb8c4ceb9562c95ec395a55272afd8b779ef052ea08f8176d6f65d36',
    'mlp/kernels/train_step_15.wgsl': 'f63f643b977a5bcc3a59a38ef5147e495f42d9d073ea81fd8cded1c2b3907455',
    'mlp/kernels/train_step_16.wgsl': '5b59a21291cf5550c67ad2ca66e5736706c3ebd577e607f8d264814db570465d',
    'mlp/kernels/train_step_17.wgsl': '42ba48dee80b938579215bb66845de5685d43c0e7629026b034e8b5bd2cab65a',
    'mlp/kernels/train_step_18.wgsl': '343cdb6300f3565bc8825ff9fccd77b096b7190a4c49522860eb4bf2f68fe212',
    'mlp/kernels/train_step_19.wgsl': '20cbd2c1981df750821132e8fba189221afdbadc82fdf26aab0a4e0207d8a574',
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
    'mlp/manifest.json': 'b70b19dba6a9f68723bc24e0481c3631b9edd72c0f41ec9aa77b4e908266eb71',
    'mlp/module.wasm': '3a4f6c21a40e966bc4b4360657dd630e0a83b7ab617132afcbc2fe529ad3b17c',
    'mlp/weights.safetensors': 'ef8275a8cb3d019c06a7c3b87f7cbc9e76d890d818b2ade096b8e0999e55080d',
}


def test_exports_byte_identical(tmp_path):
    export_all(str(tmp_path))
    assert digests(str(tmp_path)) == EXPECTED


if __name__ == "__main__":
    export_all(sys.argv[1])
    for k, v in digests(sys.argv[1]).items():
        print(f"    {k!r}: {v!r},")
