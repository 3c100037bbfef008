"""The ONNX export that backend ``auto`` runs instead of a ``.safetensors`` model file on a CPU.

On a small CPU, ONNX Runtime runs our small networks about 1.6 times as fast as eager PyTorch at one thread (its
kernels for 81-token matrices and the head's grouped convolutions have less per-call overhead). So when
``MODEL.safetensors`` has a *matching* fp32 export ``MODEL.onnx`` next to it (``dytrack export MODEL.safetensors``
writes one; ``scripts/setup.sh`` does for the shipped model), backend ``auto`` on device ``cpu`` uses that export.
"Matching" means: our export format, fp32 graphs, and a ``source_sha256`` in its metadata equal to the
SHA-256 of the model file's bytes, so an export left over from an older model file is never picked up (the
file then runs on torch, as without an export). The export itself was verified against torch (max |diff|
1e-4) when it was written. ``backend: torch`` always runs the model file on torch.
"""
from __future__ import annotations

from pathlib import Path

from .onnx_format import FORMAT

SOURCE_SHA256_KEY = "source_sha256"


def sibling_export_path(model: str | Path) -> Path:
    """``MODEL.onnx`` for ``MODEL.safetensors`` (same folder, same stem): where ``dytrack export`` writes it."""
    model = Path(model)
    return model.with_name(model.name[: -len(".safetensors")] + ".onnx")


def export_metadata(path: str | Path) -> dict[str, str] | None:
    """The ``metadata_props`` of an ONNX file, or None when it cannot be read (or onnx is not installed)."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx raises DecodeError, OSError and others for a bad or truncated file
        return None
    return {p.key: p.value for p in proto.metadata_props}


def matching_cpu_export(model: str | Path) -> tuple[Path | None, str]:
    """(the export to run instead of ``model``, or None; why, in words for a log line)."""
    model = Path(model)
    if not model.name.endswith(".safetensors"):
        return None, "not a .safetensors model file"
    onnx_path = sibling_export_path(model)
    if not onnx_path.is_file():
        return None, f"no ONNX export {onnx_path.name} next to it"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None, "onnxruntime is not installed"
    meta = export_metadata(onnx_path)
    if meta is None or meta.get("format") != FORMAT:
        return None, f"{onnx_path.name} is not a readable dytrack_ros ONNX export"
    if meta.get("precision", "fp32") != "fp32":
        return None, f"{onnx_path.name} is a {meta.get('precision')} export (only fp32 exports are picked up)"
    from .engine_cache import file_sha256

    if meta.get(SOURCE_SHA256_KEY) != file_sha256(model):
        return None, f"{onnx_path.name} was exported from a different model file (re-run 'dytrack export {model}')"
    return onnx_path, f"its ONNX export {onnx_path.name} (same model file bytes)"


__all__ = ["SOURCE_SHA256_KEY", "export_metadata", "matching_cpu_export", "sibling_export_path"]
