"""How a model is run: backend, device, precision and CPU threads, in one typed object.

Every front end (``dytrack`` commands, the ROS node's parameters, the evaluation
runner, the benchmark, calibration) builds a :class:`RuntimeOptions` and hands it
to :func:`dytrack_ros.backends.load_backend`, which is the one place where the
options take effect (threads included). The defaults below are the only ones.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from .config import ConfigError, _from_mapping

# int8: dynamic int8 quantisation of the transformer's linear layers (CPU; torch and onnxruntime)
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
AUTO_BACKEND = "auto"


@dataclass(frozen=True)
class RuntimeOptions:
    """Backend selection and numeric settings for running a model.

    ``backend``: a registered backend name, or ``auto`` to pick it from the model
    file's suffix. ``device``: ``cpu``, ``cuda``/``cuda:N`` (and, for
    onnxruntime, ``tensorrt[:N]``). ``precision``: one of :data:`PRECISIONS`.
    ``threads``: CPU threads for inference, 0 = the runtime's default (one per
    core); on a small CPU shared with other processes fewer threads avoid
    OpenMP barrier stalls.
    """

    backend: str = AUTO_BACKEND
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str) or not self.backend:
            raise ConfigError(f"backend must be a non-empty name, got {self.backend!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"device must be a non-empty name such as 'cpu' or 'cuda:0', got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ConfigError(f"threads must be an integer >= 0 (0 = runtime default), got {self.threads!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "RuntimeOptions":
        return _from_mapping(cls, data)

    def replace(self, **changes: Any) -> "RuntimeOptions":
        """A copy with ``changes``; ``None`` values keep the current field (convenient for optional CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


__all__ = ["AUTO_BACKEND", "PRECISIONS", "RuntimeOptions"]
