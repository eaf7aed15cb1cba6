"""The device limits the WGSL compiler respects and how each dtype is stored and computed on the
device (the dtype table's ``wgsl`` column)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Mapping

from ..core import kernel_ir as K
from ..core.dtypes import DType


ADAPTER_CLASSES = ("cpu", "integrated-gpu", "discrete-gpu", "unknown")
# Adapter names (vendor, architecture, device, description) of software adapters that may not say
# so in their type: SwiftShader (Chromium, Dawn), llvmpipe / lavapipe (Mesa), WARP (D3D12).
_SOFTWARE_NAMES = ("swiftshader", "llvmpipe", "lavapipe", "microsoft basic render driver")


def adapter_class(info) -> str:
    """The class of a WebGPU adapter, from its info: ``"cpu"`` (a software adapter: SwiftShader,
    llvmpipe/lavapipe, WARP), ``"integrated-gpu"``, ``"discrete-gpu"`` or ``"unknown"``.

    ``info``: a mapping with wgpu-py's ``adapter.info`` keys (``adapter_type``: wgpu's ``"CPU"``,
    ``"IntegratedGPU"``, ``"DiscreteGPU"``, ``"VirtualGPU"``, ``"Unknown"``; ``vendor``,
    ``architecture``, ``device``, ``description``) and/or ``is_fallback_adapter`` (a browser's or
    Dawn's ``GPUAdapterInfo.isFallbackAdapter``). Browsers do not expose the adapter type, so a
    browser's hardware adapter is ``"unknown"``; a fallback adapter or a software adapter's name is
    ``"cpu"`` whatever the type says."""
    info = dict(info or {})
    name = " ".join(str(info.get(k) or "") for k in ("vendor", "architecture", "device", "description")).lower()
    kind = str(info.get("adapter_type") or "").replace("-", "").replace("_", "").lower()
    if info.get("is_fallback_adapter") or kind == "cpu" or any(w in name for w in _SOFTWARE_NAMES):
        return "cpu"
    return {"integratedgpu": "integrated-gpu", "discretegpu": "discrete-gpu"}.get(kind, "unknown")


@dataclass(frozen=True)
class Limits:
    """The device limits the compiler respects (WebGPU limit names in snake case). Defaults are the
    WebGPU spec's guaranteed minimums; ``shader_f16`` says the device has the ``shader-f16`` feature;
    ``adapter_class`` (one of ``ADAPTER_CLASSES``, :func:`adapter_class`) picks the per-class
    tuning of the templates (``matmul.MATMUL_TUNING``), never what is valid WGSL. Raises ValueError
    for another class."""
    max_storage_buffers_per_shader_stage: int = 8
    max_storage_buffer_binding_size: int = 128 << 20
    max_buffer_size: int = 256 << 20
    max_compute_workgroups_per_dimension: int = 65535
    max_compute_invocations_per_workgroup: int = 256
    max_compute_workgroup_size_x: int = 256
    max_compute_workgroup_size_y: int = 256
    max_compute_workgroup_storage_size: int = 16384
    shader_f16: bool = False
    adapter_class: str = "unknown"

    def __post_init__(self):
        if self.adapter_class not in ADAPTER_CLASSES:
            raise ValueError(f"adapter_class {self.adapter_class!r} is not one of {', '.join(ADAPTER_CLASSES)}")

    @classmethod
    def from_mapping(cls, limits: Mapping, features=(), **overrides) -> "Limits":
        """Limits from a device's ``limits`` (wgpu-py's ``max-buffer-size`` keys or JS ``maxBufferSize``)
        and ``features``; ``overrides`` replace single fields (tests simulate small devices with them)."""
        norm = {str(k).replace("-", "").replace("_", "").lower(): v for k, v in dict(limits).items()}
        kw = {}
        for f in fields(cls):
            if f.type in (str, "str"):
                continue
            key = f.name.replace("_", "")
            if key in norm and norm[key] is not None:
                kw[f.name] = int(norm[key])
        kw["shader_f16"] = "shader-f16" in set(features)
        kw.update(overrides)
        return cls(**kw)

    @property
    def workgroup_size(self) -> int:
        """Invocations per 1-D workgroup: 256, or less where the device allows less."""
        return max(1, min(256, self.max_compute_invocations_per_workgroup, self.max_compute_workgroup_size_x))


class BufferTooLarge(ValueError, MemoryError):
    """A buffer exceeds ``maxStorageBufferBindingSize`` or ``maxBufferSize``: the device cannot hold it
    (a MemoryError, as the other devices raise; a ValueError for code written before)."""


# ---- dtypes: the dtype table's ``wgsl`` column, plus how each type is stored ---------------------

def compute_type(dt: DType, limits: Limits) -> str:
    """WGSL type an expression of ``dt`` computes in (``dt.wgsl``; float16 computes in f32 where the
    device lacks ``shader-f16``)."""
    return "f32" if dt.wgsl == "f16" and not limits.shader_f16 else dt.wgsl


def storage_type(dt: DType, limits: Limits) -> str:
    """WGSL element type of a buffer holding ``dt`` (bool is stored as i32 0/1)."""
    t = compute_type(dt, limits)
    return "i32" if t == "bool" else t


def storage_nbytes(shape, dt: DType, limits: Limits) -> int:
    """Bytes of a contiguous buffer of ``shape`` and ``dt`` on the device."""
    return math.prod(shape) * (2 if storage_type(dt, limits) == "f16" else 4)


def check_sizes(kernel: K.Kernel, limits: Limits) -> None:
    """Raise :class:`BufferTooLarge` where an input or the output of ``kernel`` exceeds the device's
    ``maxStorageBufferBindingSize`` or ``maxBufferSize``."""
    bufs = [(f"input {k}", b) for k, b in enumerate(kernel.inputs)] + [("output", kernel.out)]
    for what, b in bufs:
        n = storage_nbytes(b.shape, b.dtype, limits)
        for limit, name in ((limits.max_storage_buffer_binding_size, "maxStorageBufferBindingSize"),
                            (limits.max_buffer_size, "maxBufferSize")):
            if n > limit:
                raise BufferTooLarge(f"kernel {what} ({b.dtype.name}{list(b.shape)}) needs {n} bytes, above this "
                                     f"device's {name} of {limit} bytes")
