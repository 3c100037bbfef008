"""Where built TensorRT engines are kept, and when one may be reused.

A TensorRT engine is only valid for the exact graph, TensorRT version and GPU
it was built for, and embodies the precision and builder flags used. Loading
one built under any other condition either fails or silently runs different
kernels, so an engine is found by the hash of *all* of these
(:class:`EngineKey`), and each engine file carries a JSON sidecar with the full
key that is compared field by field before use: a renamed or copied engine whose
sidecar does not match is never loaded.

Rebuild policy (:data:`REBUILD_POLICIES`): ``auto`` builds a missing or
mismatching engine (minutes for ViT-B; done offline by ``dytrack export --format
tensorrt`` or once at node configure, never per frame); ``never`` refuses with an
error naming what differs, for deployments whose engines must be built ahead.

The default cache is ``model.engines/`` next to the ONNX file (:func:`default_cache_dir`).
A TensorRT timing cache (measured kernel timings, reusable across builds of any
graph on the same GPU and TensorRT version) is kept next to the engines and
makes rebuilds much faster.

This module is plain Python (no TensorRT import), so it is unit-tested anywhere.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

REBUILD_POLICIES = ("auto", "never")
ENGINE_SUFFIX = ".engine"
_CHUNK = 1 << 20


class StaleEngineError(RuntimeError):
    """No engine matches the key and the policy forbids building one."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on."""

    onnx_sha256: str  # the stage graph's bytes
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    build_flags: tuple[str, ...] = ()  # sorted, e.g. ("strongly_typed", "version_compatible", "workspace_mib=4096")

    def __post_init__(self) -> None:
        object.__setattr__(self, "compute_capability", tuple(int(v) for v in self.compute_capability))
        object.__setattr__(self, "build_flags", tuple(sorted(str(f) for f in self.build_flags)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["compute_capability"] = list(self.compute_capability)
        d["build_flags"] = list(self.build_flags)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EngineKey":
        return cls(d["onnx_sha256"], d["tensorrt_version"], d["gpu_name"], tuple(d["compute_capability"]),
                   d["precision"], tuple(d.get("build_flags", ())))

    def digest(self) -> str:
        """Short stable hash of the key (part of the engine's file name)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: "EngineKey") -> list[str]:
        """Human-readable 'field: cached -> wanted' for every field that differs."""
        a, b = other.to_dict(), self.to_dict()
        return [f"{k}: {a[k]} -> {b[k]}" for k in b if a[k] != b[k]]


@dataclass(frozen=True)
class CacheDecision:
    action: str  # "load" or "build"
    engine_path: Path
    reason: str


class EngineCache:
    """A directory of ``<stage>.<digest>.engine`` files with ``.json`` key sidecars, and timing caches."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def engine_path(self, stage_name: str, key: EngineKey) -> Path:
        return self.root / f"{stage_name}.{key.digest()}{ENGINE_SUFFIX}"

    @staticmethod
    def sidecar(engine_path: Path) -> Path:
        return engine_path.with_name(engine_path.name + ".json")

    def timing_cache_path(self, key: EngineKey) -> Path:
        """One timing cache per TensorRT version and GPU (timings do not depend on the graph)."""
        gpu = hashlib.sha256(f"{key.gpu_name}|{key.compute_capability}".encode()).hexdigest()[:8]
        return self.root / f"timing.trt{key.tensorrt_version}.{gpu}.cache"

    def _cached_key(self, engine_path: Path) -> EngineKey | None:
        try:
            return EngineKey.from_dict(json.loads(self.sidecar(engine_path).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def others(self, stage_name: str, key: EngineKey) -> list[tuple[Path, EngineKey | None]]:
        """Engines of the same stage built under another key (stale for ``key``)."""
        want = self.engine_path(stage_name, key)
        return [(p, self._cached_key(p)) for p in sorted(self.root.glob(f"{stage_name}.*{ENGINE_SUFFIX}")) if p != want]

    def decide(self, stage_name: str, key: EngineKey, policy: str = "auto") -> CacheDecision:
        """Load the engine built for exactly ``key``, else build it (``auto``) or refuse (``never``)."""
        if policy not in REBUILD_POLICIES:
            raise ValueError(f"rebuild policy must be one of {REBUILD_POLICIES}, got {policy!r}")
        path = self.engine_path(stage_name, key)
        cached = self._cached_key(path) if path.is_file() else None
        if cached == key:
            return CacheDecision("load", path, "cached engine matches")
        if path.is_file():
            reason = "engine sidecar missing or unreadable" if cached is None else \
                "engine sidecar does not match: " + "; ".join(key.differences(cached))
        else:
            stale = [k for _, k in self.others(stage_name, key) if k is not None]
            reason = ("no engine for this key; cached engines differ in " + "; ".join(key.differences(stale[-1]))
                      if stale else "no engine built yet")
        if policy == "never":
            raise StaleEngineError(f"{stage_name}: {reason}, and the rebuild policy is 'never'; build the engines "
                                   "with 'dytrack export MODEL --format tensorrt' on this machine")
        return CacheDecision("build", path, reason)

    def store(self, path: Path, key: EngineKey, engine_bytes: bytes) -> Path:
        """Write an engine and its sidecar atomically (a crash never leaves a half engine under the final name)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, data in ((path, bytes(engine_bytes)),
                             (self.sidecar(path), json.dumps(key.to_dict(), indent=1).encode())):
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(target)
        return path

    def load_timing_cache(self, key: EngineKey) -> bytes:
        p = self.timing_cache_path(key)
        return p.read_bytes() if p.is_file() else b""

    def save_timing_cache(self, key: EngineKey, data: bytes) -> None:
        p = self.timing_cache_path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp{os.getpid()}")
        tmp.write_bytes(bytes(data))
        tmp.replace(p)


def default_cache_dir(onnx_path: str | Path) -> Path:
    """``model.onnx`` (or ``model.fp16.onnx``) -> ``model.engines/`` next to it (``DYTRACK_TRT_CACHE`` overrides).

    One directory for every precision of a model: the engine keys keep them apart.
    """
    env = os.environ.get("DYTRACK_TRT_CACHE")
    if env:
        return Path(env)
    p = Path(onnx_path)
    stem = p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.name
    for tag in (".fp16", ".fp32", ".int8"):
        if stem.endswith(tag):
            stem = stem[: -len(tag)]
    return p.with_name(stem + ".engines")


__all__ = ["CacheDecision", "ENGINE_SUFFIX", "EngineCache", "EngineKey", "REBUILD_POLICIES", "StaleEngineError",
           "default_cache_dir", "file_sha256"]
