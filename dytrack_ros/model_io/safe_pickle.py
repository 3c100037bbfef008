"""Read torch checkpoints without ever executing pickled code.

Official OSTrack / CompressTracker trainer checkpoints pickle objects of the
original repository (``settings``, ``stats``), so ``torch.load(weights_only=True)``
refuses them and ``weights_only=False`` would import that repository and run
whatever the pickle says. This module is the third way: a restricted
unpickler over the checkpoint archive.

Policy (what a pickled global may become):

1. **Allowlisted callables** (:data:`SAFE_CALLABLES`): torch's own tensor
   rebuild functions, ``collections.OrderedDict``, ``torch.Size``,
   ``torch.device``, a few builtin containers, numpy array/scalar
   reconstruction. These are the only things ever *called* during loading.
   Storage and dtype names resolve to inert markers; storage bytes are read
   from the archive by us, never by pickled code.
2. **Code-execution modules** (:data:`FORBIDDEN_MODULES`: ``os``, ``posix``,
   ``subprocess``, ``builtins`` outside the allowlist, ``functools``, ...) are
   refused as soon as the pickle names them, with an error naming the global.
3. **Anything else** (e.g. ``lib.train.admin.settings.Settings``,
   ``lib.train.admin.stats.AverageMeter``) becomes an inert placeholder class
   named after the global. Instances are made the way pickle makes plain data
   objects (``cls.__new__`` + state), and the placeholder only stores what it
   is given: no import of the original module, no ``__init__``, no
   ``__setstate__`` of the original class. *Calling* a placeholder (pickle
   REDUCE / INST / OBJ: "call this with these arguments") is refused, because
   that is how a pickle runs code.

The issue asks for inert placeholders for unknown globals, methods.md §2.4 for
refusing unknown globals; this policy satisfies both where it matters: nothing
unknown is ever imported or called, plain data objects survive as inert
records, and any attempt to call something outside the allowlist is refused.
"""
from __future__ import annotations

import collections
import datetime
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch


class CheckpointError(ValueError):
    """A file is not a readable torch checkpoint (missing, truncated, wrong format)."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint tries to call something that could execute code; nothing was run."""


# Modules whose members are code-execution or system-access primitives: naming
# any of their globals is refused outright (even as data), so the error says
# exactly what the pickle asked for.
FORBIDDEN_MODULES = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "sys", "shutil", "importlib", "runpy", "builtins",
    "__builtin__", "pickle", "_pickle", "cPickle", "marshal", "socket", "ctypes", "code", "codeop", "pty",
    "webbrowser", "types", "functools", "operator", "io", "_io", "platform", "multiprocessing", "threading",
    "_thread", "signal", "tempfile", "glob", "asyncio", "inspect", "pdb", "timeit", "trace", "cProfile", "profile",
    "copyreg", "copy_reg", "_posixsubprocess", "pydoc", "zipimport", "site", "sysconfig", "torch.hub",
    "torch.jit", "torch.ops", "torch.utils.cpp_extension", "torch.serialization", "numpy.testing", "numpy.lib.npyio",
})


class _StorageMarker:
    """What a pickled storage class name resolves to: just its dtype."""

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name, self.dtype = name, dtype

    def __repr__(self) -> str:
        return f"<storage type {self.name}>"


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}
_STORAGE_MODULES = ("torch", "torch.cuda", "torch.storage")


def _checked_rebuild_from_type_v2(func, new_type, args, state):
    """torch._tensor._rebuild_from_type_v2 limited to plain tensors/parameters built by allowlisted functions."""
    if func not in SAFE_CALLABLES.values() or new_type not in (torch.Tensor, torch.nn.Parameter):
        raise UnsafeCheckpointError(f"refusing tensor rebuild through {func!r} as {new_type!r}")
    return torch._tensor._rebuild_from_type_v2(func, new_type, args, state)


def _safe_callables() -> dict[str, Any]:
    u = torch._utils
    names: dict[str, Any] = {
        "torch._utils._rebuild_tensor": u._rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": u._rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": u._rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": u._rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": u._rebuild_parameter_with_state,
        "torch._utils._rebuild_meta_tensor_no_storage": u._rebuild_meta_tensor_no_storage,
        "torch._tensor._rebuild_from_type_v2": _checked_rebuild_from_type_v2,
        "torch.tensor._rebuild_from_type_v2": _checked_rebuild_from_type_v2,  # pre-1.8 module name
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch.Tensor": torch.Tensor,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch.serialization._get_layout": torch.serialization._get_layout,
        "collections.OrderedDict": collections.OrderedDict,
        "collections.Counter": collections.Counter,
        "_codecs.encode": __import__("codecs").encode,  # how protocol-2 pickles write bytes
        "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
        "builtins.bytearray": bytearray, "builtins.slice": slice,
        "datetime.datetime": datetime.datetime, "datetime.date": datetime.date,
        "datetime.time": datetime.time, "datetime.timedelta": datetime.timedelta,
    }
    for attr in dir(torch):  # dtype objects (torch.float32, ...) are values, not calls
        obj = getattr(torch, attr, None)
        if isinstance(obj, torch.dtype):
            names[f"torch.{attr}"] = obj
    try:  # numpy arrays/scalars inside optimizer or stats: construction only, no code
        import numpy as np

        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            names[f"{mod}._reconstruct"] = np.ndarray.__reduce__(np.zeros(0))[0]
            names[f"{mod}.scalar"] = np.float64(0).__reduce__()[0]
        names["numpy.ndarray"] = np.ndarray
        names["numpy.dtype"] = np.dtype
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    return names


SAFE_CALLABLES: dict[str, Any] = _safe_callables()


class _InertMeta(type):
    """Metaclass of placeholders: calling a placeholder class is refused."""

    def __call__(cls, *args, **kwargs):
        raise UnsafeCheckpointError(
            f"checkpoint tries to call '{cls.pickled_name}' with arguments {_short(args)}; refused, nothing was "
            "executed (only tensors and plain data objects can be loaded)")

    def __repr__(cls) -> str:
        return f"<inert placeholder class for {cls.pickled_name}>"


class InertObject(metaclass=_InertMeta):
    """Stand-in for an instance of a class that only exists in the original repository.

    Holds what the pickle gave it: ``new_args`` (arguments of ``__new__``),
    ``state`` (what would have gone to ``__setstate__`` / ``__dict__``) and
    ``items`` / ``list_items`` for dict- or list-like classes.
    """

    pickled_name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        d = object.__getattribute__(obj, "__dict__")
        d.update(new_args=args, state=None, items={}, list_items=[])
        return obj

    def __setstate__(self, state) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key, value) -> None:
        self.__dict__["items"][key] = value

    def append(self, value) -> None:
        self.__dict__["list_items"].append(value)

    def extend(self, values) -> None:
        self.__dict__["list_items"].extend(values)

    @property
    def attributes(self) -> dict:
        """The instance attributes the original object had (from a dict state)."""
        s = self.state
        if isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], dict):  # (dict, slotstate)
            s = s[0]
        return dict(s) if isinstance(s, dict) else {}

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


def _short(obj: Any, limit: int = 80) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[:limit] + "..."


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals follow the module policy above.

    ``load_storage(key, dtype, numel)`` supplies the storage bytes for
    persistent ids (torch stores tensor data outside the pickle).
    """

    def __init__(self, file, load_storage: Callable[[str, torch.dtype, int], torch.UntypedStorage] | None) -> None:
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage
        self._storages: dict[str, torch.storage.TypedStorage] = {}
        self._placeholders: dict[str, type] = {}
        self.placeholder_names: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full in SAFE_CALLABLES:
            return SAFE_CALLABLES[full]
        if module in _STORAGE_MODULES and name in _STORAGE_DTYPES:
            return _StorageMarker(full, _STORAGE_DTYPES[name])
        root = module.split(".")[0]
        if module in FORBIDDEN_MODULES or root in FORBIDDEN_MODULES or any(
                module.startswith(m + ".") for m in FORBIDDEN_MODULES):
            raise UnsafeCheckpointError(
                f"checkpoint references '{full}', which can execute code or touch the system; refused, nothing was "
                "executed")
        if name.startswith("__") or not name.replace("_", "a").replace(".", "a").isalnum():
            raise UnsafeCheckpointError(f"checkpoint references the suspicious global '{full}'; refused")
        if full not in self._placeholders:
            self._placeholders[full] = _InertMeta(name.split(".")[-1], (InertObject,),
                                                  {"pickled_name": full, "__module__": __name__})
            self.placeholder_names.add(full)
        return self._placeholders[full]

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
            raise CheckpointError(f"unsupported persistent id in checkpoint: {_short(pid)}")
        if self._load_storage is None:
            raise CheckpointError("pickle references tensor storage but no storage source is available")
        if len(pid) == 5:  # zip format: (tag, type, key, location, numel)
            _, stype, key, _location, numel = pid
        elif len(pid) == 6:  # legacy format: (tag, type, key, location, numel, view_metadata)
            _, stype, key, _location, numel, view = pid
            if view is not None:
                raise CheckpointError("legacy storage views are not supported")
        else:
            raise CheckpointError(f"malformed storage id {_short(pid)}")
        if not isinstance(stype, _StorageMarker):
            raise UnsafeCheckpointError(f"storage type {stype!r} is not a torch storage type")
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key not in self._storages:
            untyped = self._load_storage(key, stype.dtype, int(numel))
            self._storages[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=stype.dtype, _internal=True)
        return self._storages[key]


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _storage_from_bytes(data: bytes | bytearray, dtype: torch.dtype, numel: int, big_endian: bool,
                        where: str) -> torch.UntypedStorage:
    nbytes = numel * _element_size(dtype)
    if len(data) < nbytes:
        raise CheckpointError(f"{where}: storage has {len(data)} bytes, expected {nbytes} (file truncated?)")
    buf = bytearray(data[:nbytes]) if not isinstance(data, bytearray) or len(data) != nbytes else data
    flat = torch.frombuffer(buf, dtype=torch.uint8) if nbytes else torch.empty(0, dtype=torch.uint8)
    if big_endian and _element_size(dtype) > 1:
        esize = _element_size(dtype)
        flat = flat.view(-1, esize).flip(1).reshape(-1).clone()
    return flat.untyped_storage()


def _load_zip(path: Path) -> tuple[Any, set[str]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable torch zip checkpoint ({exc})") from exc
    with zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise CheckpointError(f"{path}: zip file without a torch data.pkl record (not a torch checkpoint)")
        prefix = pkls[0][: -len("data.pkl")]
        byteorder = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        big = byteorder == "big"

        def load_storage(key: str, dtype: torch.dtype, numel: int) -> torch.UntypedStorage:
            record = f"{prefix}data/{key}"
            if record not in names:
                raise CheckpointError(f"{path}: tensor data record '{record}' missing (file truncated?)")
            return _storage_from_bytes(zf.read(record), dtype, numel, big, str(path))

        try:
            unpickler = RestrictedUnpickler(io.BytesIO(zf.read(pkls[0])), load_storage)
            obj = unpickler.load()
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError, AttributeError,
                KeyError, IndexError, RuntimeError, struct.error, OSError, MemoryError) as exc:
            raise CheckpointError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc})") from exc
    return obj, unpickler.placeholder_names


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _load_legacy(path: Path) -> tuple[Any, set[str]]:
    """Pre-1.6 torch format: magic, protocol, sys-info, object and key-list pickles, then raw storages."""
    with open(path, "rb") as f:
        try:
            magic = RestrictedUnpickler(f, None).load()
            if magic != _LEGACY_MAGIC:
                raise CheckpointError(f"{path}: not a torch checkpoint (neither zip nor legacy format)")
            header = [magic] + [RestrictedUnpickler(f, None).load() for _ in range(2)]
            little = bool(header[2].get("little_endian", True)) if isinstance(header[2], dict) else True
            pending: dict[str, tuple[torch.dtype, int]] = {}
            holders: dict[str, torch.UntypedStorage] = {}

            def defer(key: str, dtype: torch.dtype, numel: int) -> torch.UntypedStorage:
                pending[key] = (dtype, numel)
                holders[key] = torch.UntypedStorage(numel * _element_size(dtype))
                return holders[key]

            main = RestrictedUnpickler(f, defer)
            obj = main.load()
            keys = RestrictedUnpickler(f, None).load()
            for key in keys:
                dtype, _ = pending[str(key)]
                (count,) = struct.unpack("<q", f.read(8))
                raw = f.read(count * _element_size(dtype))
                src = _storage_from_bytes(raw, dtype, count, not little, str(path))
                holders[str(key)].copy_(src)
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
                RuntimeError, struct.error, MemoryError) as exc:
            raise CheckpointError(f"{path}: not a torch checkpoint, or a damaged one ({type(exc).__name__}: {exc})") from exc
    return obj, main.placeholder_names


def safe_load(path: str | Path) -> tuple[Any, set[str]]:
    """Unpickle a torch checkpoint file under the restricted policy.

    Returns ``(object, placeholder_names)``: the loaded object tree (tensors on
    CPU, unknown classes as :class:`InertObject` instances) and the globals
    that were turned into placeholders. Raises :class:`UnsafeCheckpointError`
    for anything that would run code and :class:`CheckpointError` for files
    that are not (complete) torch checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        raise CheckpointError(f"{path}: damaged or truncated zip archive (no central directory)")
    if not head:
        raise CheckpointError(f"{path}: empty file")
    return _load_legacy(path)


__all__ = ["CheckpointError", "UnsafeCheckpointError", "InertObject", "RestrictedUnpickler", "SAFE_CALLABLES",
           "FORBIDDEN_MODULES", "safe_load"]
