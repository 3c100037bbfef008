"""Numeric precisions of the torch backend beyond a plain ``model.to(dtype)``.

- ``fp16``/``bf16``: the network in half precision *except* the LayerNorms and
  the exit decisioners, which keep fp32 weights and compute in fp32. A
  LayerNorm's mean/variance over 768 channels and a decisioner's logit near the
  exit threshold are where half precision loses the most; both are a tiny part
  of the work. (Softmax inside ``scaled_dot_product_attention`` already
  accumulates in fp32 in torch's fused CUDA kernels.)
- ``int8``: dynamic int8 quantisation of the transformer blocks' linear layers
  (qkv, proj, fc1, fc2: almost all of the FLOPs). Weights are quantised once,
  per output channel; activations are quantised per call from their observed
  range, so no calibration data is needed. The matrix products then run on
  int8 dot-product instructions (VNNI where the CPU has it, AVX2 otherwise).
  Patch embedding, heads, recyclers and decisioners stay fp32. CPU only.
- :func:`cpu_has_native_bf16`: whether bf16 arithmetic is native on this CPU;
  without it torch emulates bf16 and it is several times slower than fp32.
"""
from __future__ import annotations

import platform
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..model.tracker_net import TrackerNet

# CPU feature flags (Linux /proc/cpuinfo names) that mean native bf16 arithmetic.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX-512 BF16, x86 AMX, Arm (aarch64 'bf16' feature)


class Fp32LayerNorm(nn.LayerNorm):
    """A LayerNorm that keeps fp32 parameters and normalises in fp32 whatever its input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float(), self.normalized_shape, self.weight.float() if self.weight is not None else None,
                         self.bias.float() if self.bias is not None else None, self.eps)
        return y.to(x.dtype)


class Fp32Module(nn.Module):
    """Runs ``inner`` in fp32 on an input of any float dtype and returns the input's dtype."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float()).to(x.dtype)


def _as_fp32_layernorm(ln: nn.LayerNorm) -> Fp32LayerNorm:
    new = Fp32LayerNorm(ln.normalized_shape, eps=ln.eps, elementwise_affine=ln.elementwise_affine,
                        device=ln.weight.device if ln.weight is not None else None)
    if ln.elementwise_affine:
        with torch.no_grad():
            new.weight.copy_(ln.weight.float())
            new.bias.copy_(ln.bias.float())
    return new


def half_with_fp32_norms(model: TrackerNet, dtype: torch.dtype) -> TrackerNet:
    """Cast ``model`` (in place) to ``dtype`` with LayerNorms and decisioners kept in fp32.

    The module tree changes (LayerNorm -> :class:`Fp32LayerNorm`, decisioner MLPs wrapped
    in :class:`Fp32Module`), so use it on an inference copy, not on a model you will save.
    """
    model.to(dtype)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.LayerNorm:
                setattr(parent, name, _as_fp32_layernorm(child))
    if model.cfg.has_exits:
        for d in model.decisioners:
            d.mlp = Fp32Module(d.mlp.float())
    return model


def fp32_norm_modules(model: nn.Module) -> list[str]:
    """Names of the modules that compute in fp32 (for tests and reports)."""
    return [n for n, m in model.named_modules() if isinstance(m, (Fp32LayerNorm, Fp32Module))]


def quantize_linear_int8(model: TrackerNet) -> TrackerNet:
    """Dynamic int8 quantisation (per-channel weights) of the transformer blocks' nn.Linear layers, in place.

    Raises :class:`RuntimeError` naming the cause when this torch build has no quantised CPU engine.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if model.training:
        raise RuntimeError("int8 quantisation is for inference: call model.eval() first")
    engines = torch.backends.quantized.supported_engines
    # onednn's dynamic int8 linear measured 1.1-1.35x faster than x86/fbgemm's on an AVX2 EPYC (ViT-B shapes)
    engine = next((e for e in ("onednn", "x86", "fbgemm", "qnnpack") if e in engines), None)
    if engine is None:
        raise RuntimeError(f"this torch build has no quantised CPU engine (supported: {engines})")
    torch.backends.quantized.engine = engine
    if engine == "qnnpack":  # Arm: qnnpack has no per-channel dynamic linear
        from torch.ao.quantization import default_dynamic_qconfig as qconfig
    else:
        qconfig = per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        # torch >= 2.12 announces the removal of quantised tensor types; the kernels are current
        warnings.filterwarnings("ignore", message=".*quantize_per_.*deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        for blk in model.backbone.blocks:
            quantize_dynamic(blk, {nn.Linear: qconfig}, dtype=torch.qint8, inplace=True)
    return model


def int8_linear_count(model: nn.Module) -> int:
    """How many linear layers of ``model`` are dynamically quantised."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    return sum(isinstance(m, DynamicQuantizedLinear) for m in model.modules())


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU executes bf16 natively (AVX-512 BF16, AMX or Arm BF16), from the kernel's CPU flags.

    ``cpuinfo`` (the text of /proc/cpuinfo) can be passed for testing; where the
    flags cannot be read (not Linux) the answer is False, the cautious side for a warning.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return any(f in flags for f in _BF16_FLAGS)


def warn_if_slow_bf16(device: str) -> str | None:
    """Warn (and return the message) when bf16 is requested on a CPU that only emulates it."""
    if not str(device).startswith("cpu") or cpu_has_native_bf16():
        return None
    msg = (f"precision bf16 on this CPU ({platform.processor() or platform.machine()}) is emulated: it has no native "
           "bf16 instructions (AVX-512 BF16/AMX/Arm BF16) and bf16 runs several times slower than fp32; "
           "use fp32, or int8 for speed")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return msg


__all__ = ["Fp32LayerNorm", "Fp32Module", "cpu_has_native_bf16", "fp32_norm_modules", "half_with_fp32_norms",
           "int8_linear_count", "quantize_linear_int8", "warn_if_slow_bf16"]
