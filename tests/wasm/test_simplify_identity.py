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
rows became fixed-size arrays (``webgpu/emit.py`` ``shader_header``'s ``lengths``), and the MLP's and CNN's module and manifest when the matmul template put
its packed B before A in scratch so that a thread's tiles reuse it (``Lowered.reuses_b``; same results), and
the train steps' WGSL and manifests when independent map kernels were grouped into one dispatch
(``webgpu/group.py``; with ``HORIZONTAL = False`` the files hash as before), and the MLP's module
when the matmul micro-kernel took bias + activation epilogues into its accumulators
(``wasm/matmul.py`` ``register_epilogue``; with ``REGISTER_EPILOGUES = False`` the files hash as before). Regenerate them (only for an intended change of the emitted code) with
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
    'cnn/kernels/train_step_0.wgsl': '68cfa13acc4e340a9ff39efcc480f390438ccde4791bd032d05c48004db694a8',
    'cnn/kernels/train_step_1.wgsl': '9e50eb25b7b0ce9e7da61d474179b088d61b24eb5a38ed0806425437dc88b8fe',
    'cnn/kernels/train_step_10.wgsl': '1021fa2649602e94faacbbdb2743ea7cb1ec12e9badfe8c510acdf1590e1a7ce',
    'cnn/kernels/train_step_11.wgsl': '747c7fbc59fe7d21e4a39567ff3ddfd2bd3ed7a16254c1d2d7feb5bf5767e258',
    'cnn/kernels/train_step_12.wgsl': '07d9558154950e9f705c5af3c9c3f77fbb31b179f36ca285e38eabd5b24c6cc9',
    'cnn/kernels/train_step_13.wgsl': '6cc9b123720a3450b1a0fabd66d50e69b4204934dbcf2c3642dbd1f2856078fa',
    'cnn/kernels/train_step_14.wgsl': '73d2fbde48633b988a0e6ea0518c2fde8f7cf6e815e1322d636c694c681ccbd7',
    'cnn/kernels/train_step_15.wgsl': '298bcc958116b69a961d2fb94154c3d44f1f603c846e6b8fec6a603a40177741',
    'cnn/kernels/train_step_16.wgsl': '4bb1dd47ec5c4d2fa75c9c8d3e22fb31a00525f1a48444fdbc5db983fece121e',
    'cnn/kernels/train_step_17.wgsl': '63dc9d7d53e6a5a24b1b43d5f8f9e7b81443906beee951414d511bd251279cc0',
    'cnn/kernels/train_step_18.wgsl': '3520f8a0029e9e58f43d33dab5edc882e5b5af91c5bdca61cb3f92c8b2dd766e',
    'cnn/kernels/train_step_19.wgsl': 'ef379525b5a3bc74fe5c36d9e31da4bb4c4c30d9badb2a0357f6f4a0fae27b75',
    'cnn/kernels/train_step_2.wgsl': '7bc80f10d1131152697d394485b36c89ddaf3657bb30a9c6aac7a1fa089706e2',
    'cnn/kernels/train_step_20.wgsl': '6d16daa785a8f617affb0befd3ba2aa996cdedf1a6db7fe68e1d0a5f45990336',
    'cnn/kernels/train_step_3.wgsl': '0b2d9ca7422720e04e09a569dd84ddb212151030cffe4e975973055bcfbc76b5',
    'cnn/kernels/train_step_4.wgsl': 'f60e7b737bd74e4ddf4b869ace44d18690f9be9996a81de2230e2bf4a439bf99',
    'cnn/kernels/train_step_5.wgsl': '8489dafc6d98fc5fc3800f0f9dcfdc64762902eeda753b3129a87d5388354358',
    'cnn/kernels/train_step_6.wgsl': 'ad919b9c87aca6cde122d2e5a081b5c068b2375e86a67ce862180fe86a06a57c',
    'cnn/kernels/train_step_7.wgsl': '735faeb53fba51d8d81fb02e5d995b8c8ec565987effd65797b44ee9497b9e37',
    'cnn/kernels/train_step_8.wgsl': '0f35d96dd58435024f6e8998386611076a1e12f67d470d7354885997b879ad93',
    'cnn/kernels/train_step_9.wgsl': '2d6e47655633ef15916828ee0e6979835251c036d77c76b47a20c13375f420a5',
    'cnn/manifest.json': 'a7e0086598da8274c42f1eca3e22f02135f9ae3e7b856089644e3d5aec334695',
    'cnn/module.wasm': '1dcaccd33e0f1f1f0b6c7f437d7e3ae16bd9dbac9a1f3a1a27778f1187a3c46a',
    'cnn/weights.safetensors': '18fb33c2c6f3c18fd8dde02b1c329943b899c900951348f49b04ea1b8dd2ccae',
    'fn/kernels/predict_0.wgsl': 'c691726571f67dcdcc616edcce9685c9181d1ed831ef687ae27197335b47fe17',
    'fn/kernels/predict_1.wgsl': '507fe77f57da81d3b9d09eba26e1e5dc00078579dce80c7916edaf492a8300fc',
    'fn/manifest.json': '62357a39c6e74b14ae581d21bd8ec8336cd0e7a19568be7eeb57731d14c2d7d7',
    'fn/module.wasm': '2732d3c5b72376f4514415de152d7277b32c05158b882f23fd758b9b8d690f83',
    'fn/weights.safetensors': '507f0fdd933733ae0953cab28bbf638a2d13650d463b2341324215447e758dc6',
    'mlp/kernels/predict_0.wgsl': '3347d74b87809a7c48c0af84a198abaedfa268e29c6728f248ae8fa99812bde3',
    'mlp/kernels/predict_1.wgsl': '3faf5022370fa272bbb2798ee5e2262e1bd500076ed5b2fd7153e5b43a2396f8',
    'mlp/kernels/train_step_0.wgsl': '328bbb5df795ab17588f28ec550b4de31e9ce0d6b06e3e5764c9751d78d3bf6d',
    'mlp/kernels/train_step_1.wgsl': '6a03980c392bd382e6c09079780cb4ee4b01453da1d0c4c873ac5ec537acc5ef',
    'mlp/kernels/train_step_10.wgsl': '13f8dac486f69095b854069af8fb5ef7f8822b7287ac0d32d36f15fe69b95040',
    'mlp/kernels/train_step_11.wgsl': 'c6bb39f5ef537e23bf5b69f699bef0e127628e062d1d492167655516ba1cb469',
    'mlp/kernels/train_step_12.wgsl': '56f75d4f3ea7b2748ac4b534f692feeed789b9f6246fea0435b42e5800936bbc',
    'mlp/kernels/train_step_13.wgsl': '48f44022b145d00b9bd907ffda87a705a480372754e7d54c207ce2fa9991ed5b',
    'mlp/kernels/train_step_14.wgsl': 'fcf280323310538ab1807dfe25ef569186812f302f61231e3e15999f9d734615',
    'mlp/kernels/train_step_15.wgsl': '9376cf5fd79f736f08c415c86171b1a8eab276f39738e1e23b06634746669dea',
    'mlp/kernels/train_step_16.wgsl': '372ad944b11d633f9501048b79815913f444c8f35d0ed0857fce3d41fabdb15e',
    'mlp/kernels/train_step_17.wgsl': 'bdc9c72bc568fd7429f3ff8c34b569961b1bbd9205b9c996ef775d5bc76cb5de',
    'mlp/kernels/train_step_18.wgsl': 'e968abb4e594262b3d2a44a5c2ab67d14f9e320dc8a7ec2c5df81464a216af6a',
    'mlp/kernels/train_step_19.wgsl': '0b5d5241f93259804286cb99ef760a2533f7dd8657599175660f3ff5b305ec08',
    'mlp/kernels/train_step_2.wgsl': 'c09ad92180f4c37a03b4864a58542003999f7a8ed856c450d02abd455313398f',
    'mlp/kernels/train_step_20.wgsl': 'befc92a5d5c3413623940042a13549c456921db3b9fcbebf1b30a9591eaecc83',
    'mlp/kernels/train_step_3.wgsl': '3ff518a19c54078a8965a951c181f2c1c941e1592f113856894571fd7e7337ea',
    'mlp/kernels/train_step_4.wgsl': '84ad3bf0cd994fb2f3e1ab26505ce3bb9a08ebe95ffcfbc29b7f45a515afc2fc',
    'mlp/kernels/train_step_5.wgsl': '436157ada21c158d994805d458331c00207ce842a204552f94c8e1cbdb1276cf',
    'mlp/kernels/train_step_6.wgsl': '31edb874ff5a756febaeaff8ae928f8e3a0e4305b56384a0cffbe68f3d3046cc',
    'mlp/kernels/train_step_7.wgsl': '5819851d0e85580c0e1bcd8e8932b36a05df0308038e57dd806f030cc9132bb0',
    'mlp/kernels/train_step_8.wgsl': '74e0760b4cce4b680663642ba66adb74f6c6b19e5875427f666b08c262d132f4',
    'mlp/kernels/train_step_9.wgsl': 'ba2274ca7b949f883226d15ce14c67a4bb3422d092b95d9ca327ed97e03faee4',
    'mlp/manifest.json': 'cba2ccf4a071ba3647a32fd9b388208f54ad1b1b6ac150833486973797f5cbc0',
    'mlp/module.wasm': '5e8d82c3ffde8773713168d727438cbc746b2749690bc7f35deb332e3594de2d',
    'mlp/weights.safetensors': 'ef8275a8cb3d019c06a7c3b87f7cbc9e76d890d818b2ade096b8e0999e55080d',
}


def test_exports_byte_identical(tmp_path):
    export_all(str(tmp_path))
    assert digests(str(tmp_path)) == EXPECTED


if __name__ == "__main__":
    export_all(sys.argv[1])
    for k, v in digests(sys.argv[1]).items():
        print(f"    {k!r}: {v!r},")
