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

So nothing unknown is ever imported or called, plain data objects survive as
inert records, and any attempt to call something outside the allowlist is
refused.

Sizes are bounded by the file: a storage may claim no more bytes than its
zip record really holds, records must be stored uncompressed (as
``torch.save`` writes them; a compressed record could inflate without
bound), tensor views must lie inside their storage, and allowlisted
constructors that allocate by a count (``bytearray(n)``, numpy's
``_reconstruct``) are refused such counts. Error messages describe untrusted
objects by type and a bounded summary, never by a full ``repr()`` (shared
references make that exponential).
"""
from __future__ import annotations

import _compat_pickle
import collections
import datetime
import io
import pickle
import reprlib
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
        raise UnsafeCheckpointError(f"refusing tensor rebuild through {describe(func)} as {describe(new_type)}")
    return torch._tensor._rebuild_from_type_v2(func, new_type, args, state)


def _check_view(storage: Any, offset: Any, size: Any, stride: Any) -> None:
    """A tensor view must lie inside its storage (else torch would grow a resizable storage to fit it)."""
    if not isinstance(storage, torch.storage.TypedStorage):
        raise CheckpointError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
    dims = tuple(size) if isinstance(size, (tuple, list, torch.Size)) else None
    strides = tuple(stride) if isinstance(stride, (tuple, list)) else None
    if (dims is None or strides is None or len(dims) != len(strides) or not isinstance(offset, int) or offset < 0
            or any(not isinstance(v, int) or v < 0 for v in dims + strides)):
        raise CheckpointError(f"malformed tensor view (offset {describe(offset)}, size {describe(size)}, "
                              f"stride {describe(stride)})")
    extent = 0 if 0 in dims else offset + 1 + sum((n - 1) * st for n, st in zip(dims, strides))
    held = storage._untyped_storage.nbytes() // _element_size(storage.dtype)
    if extent > held:
        raise CheckpointError(f"tensor of size {describe(list(dims))} needs {extent} elements but its storage "
                              f"holds {held} (corrupt or hostile file)")


def _checked_rebuild_tensor(storage, storage_offset, size, stride, *rest):
    _check_view(storage, storage_offset, size, stride)
    return torch._utils._rebuild_tensor(storage, storage_offset, size, stride, *rest)


def _checked_rebuild_tensor_v2(storage, storage_offset, size, stride, *rest):
    _check_view(storage, storage_offset, size, stride)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, *rest)


def _checked_rebuild_tensor_v3(storage, storage_offset, size, stride, *rest):
    _check_view(storage, storage_offset, size, stride)
    return torch._utils._rebuild_tensor_v3(storage, storage_offset, size, stride, *rest)


def _checked_bytearray(*args):
    """``bytearray`` as pickles use it (from bytes or a latin-1 string), never ``bytearray(count)``."""
    if args and not isinstance(args[0], (bytes, bytearray, str)):
        raise CheckpointError(f"checkpoint asks for bytearray({describe(args[0])}); pickled byte arrays are "
                              "built from their bytes, never from a count; refused")
    return bytearray(*args)


_TEXT_ENCODINGS = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "utf-8", "utf8", "ascii"})


def _checked_encode(obj, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: a string and a text encoding."""
    if not isinstance(obj, str) or not isinstance(encoding, str) or encoding.lower() not in _TEXT_ENCODINGS:
        raise CheckpointError(f"checkpoint calls _codecs.encode({describe(obj)}, {describe(encoding)}); only "
                              "text encodings of strings are allowed")
    return __import__("codecs").encode(obj, encoding, errors)


def _safe_callables() -> dict[str, Any]:
    u = torch._utils
    names: dict[str, Any] = {
        "torch._utils._rebuild_tensor": _checked_rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _checked_rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _checked_rebuild_tensor_v3,
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
        "_codecs.encode": _checked_encode,  # how protocol-2 pickles write bytes
        "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
        "builtins.bytearray": _checked_bytearray, "builtins.slice": slice,
        "datetime.datetime": datetime.datetime, "datetime.date": datetime.date,
        "datetime.time": datetime.time, "datetime.timedelta": datetime.timedelta,
    }
    for attr in dir(torch):  # dtype objects (torch.float32, ...) are values, not calls
        obj = getattr(torch, attr, None)
        if isinstance(obj, torch.dtype):
            names[f"torch.{attr}"] = obj
    try:  # numpy arrays/scalars inside optimizer or stats: construction only, no code
        import numpy as np

        reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]

        def checked_reconstruct(cls, shape, dtype):
            # numpy pickles always reconstruct an empty (0,) array and fill it from the state's bytes
            if cls is not np.ndarray or tuple(shape) != (0,):
                raise CheckpointError(f"numpy array reconstruction with shape {describe(shape)}; refused (pickled "
                                      "arrays start empty and get their data from the file)")
            return reconstruct(cls, shape, dtype)

        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            names[f"{mod}._reconstruct"] = checked_reconstruct
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
            f"checkpoint tries to call '{cls.pickled_name}' with arguments {describe(args)}; refused, nothing was "
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


class _BoundedRepr(reprlib.Repr):
    """repr() with bounded depth, item count and length; other objects shown by type name only."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = self.maxset = self.maxfrozenset = 4
        self.maxdeque = 4
        self.maxstring = self.maxother = 40

    def repr_int(self, x: int, level: int) -> str:
        return repr(x) if x.bit_length() <= 128 else f"<int of {x.bit_length()} bits>"

    def repr_instance(self, x: Any, level: int) -> str:
        if isinstance(x, (float, complex, bool, type(None), torch.device, torch.dtype)):
            return repr(x)
        if isinstance(x, (bytes, bytearray)):
            return f"<{type(x).__name__} of {len(x)} bytes>"
        if isinstance(x, torch.Tensor):
            return f"<tensor {tuple(x.shape)} {x.dtype}>"
        if isinstance(x, InertObject):
            return f"<inert {x.pickled_name}>"
        return f"<{type(x).__name__}>"


_BOUNDED_REPR = _BoundedRepr()


def describe(obj: Any, limit: int = 80) -> str:
    """A bounded summary of an untrusted object for error messages (cost independent of its size)."""
    try:
        text = _BOUNDED_REPR.repr(obj)
    except Exception:  # noqa: BLE001 - a description must never fail
        text = f"<{type(obj).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


# Tuple parts examined per load before dict keys / set members count as hostile. Hashing a tuple is not
# cached, so a key of 40 nested pairs sharing their halves (a few hundred bytes) costs 2**40 steps to hash.
KEY_PARTS_BUDGET = 100_000
# Allowlisted callables that hash their arguments' items.
_HASHING_CALLABLES = frozenset({"builtins.set", "builtins.frozenset", "collections.OrderedDict", "collections.Counter"})


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python ``pickle`` unpickler with globals following the module policy above.

    ``load_storage(key, dtype, numel)`` supplies the storage bytes for
    persistent ids (torch stores tensor data outside the pickle). The
    pure-Python unpickler (the data pickle of a checkpoint is small; tensor
    bytes are read separately) lets every opcode that hashes a key check the
    key's cost first.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, load_storage: Callable[[str, torch.dtype, int], torch.UntypedStorage] | None) -> None:
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage
        self._storages: dict[str, torch.storage.TypedStorage] = {}
        self._placeholders: dict[str, type] = {}
        self.placeholder_names: set[str] = set()
        self._key_budget = KEY_PARTS_BUDGET

    def _check_keys(self, keys: Any) -> None:
        """Refuse keys whose hash would walk more tuple parts than the budget allows."""
        for key in keys:
            if type(key) in (str, int, bytes, float, bool) or key is None:
                continue
            todo = [key]
            while todo:
                part = todo.pop()
                self._key_budget -= 1
                if self._key_budget < 0:
                    raise CheckpointError(
                        f"checkpoint holds dict keys or set members with more than {KEY_PARTS_BUDGET} nested parts "
                        "(shared nested tuples: hashing them takes exponential time); refused")
                if type(part) in (tuple, frozenset):
                    todo.extend(part)

    def _load_setitem(self) -> None:
        self._check_keys(self.stack[-2:-1])
        pickle._Unpickler.load_setitem(self)

    def _load_setitems(self) -> None:  # the items since the mark: key, value, key, value, ...
        self._check_keys(self.stack[0::2])
        pickle._Unpickler.load_setitems(self)

    def _load_dict(self) -> None:
        self._check_keys(self.stack[0::2])
        pickle._Unpickler.load_dict(self)

    def _load_additems(self) -> None:
        self._check_keys(self.stack)
        pickle._Unpickler.load_additems(self)

    def _load_frozenset(self) -> None:
        self._check_keys(self.stack)
        pickle._Unpickler.load_frozenset(self)

    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset

    def _hashing_call(self, func: Callable, *args: Any) -> Any:
        """set/frozenset/OrderedDict/Counter of pickled items: the items (or pairs' keys) are checked first."""
        if args and isinstance(args[0], (list, tuple)):
            self._check_keys(item[0] if func in (collections.OrderedDict, collections.Counter) and
                             isinstance(item, (list, tuple)) and item else item for item in args[0])
        return func(*args)

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3:  # protocol-2 pickles (torch.save) name Python 2 modules: __builtin__.set -> builtins.set
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full in _HASHING_CALLABLES:
            func = SAFE_CALLABLES[full]
            return lambda *args: self._hashing_call(func, *args)
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
            raise CheckpointError(f"unsupported persistent id in checkpoint: {describe(pid)}")
        if self._load_storage is None:
            raise CheckpointError("pickle references tensor storage but no storage source is available")
        if len(pid) == 5:  # zip format: (tag, type, key, location, numel)
            _, stype, key, _location, numel = pid
        elif len(pid) == 6:  # legacy format: (tag, type, key, location, numel, view_metadata)
            _, stype, key, _location, numel, view = pid
            if view is not None:
                raise CheckpointError("legacy storage views are not supported")
        else:
            raise CheckpointError(f"malformed storage id {describe(pid)}")
        if not isinstance(stype, _StorageMarker):
            raise UnsafeCheckpointError(f"storage type {describe(stype)} is not a torch storage type")
        if not isinstance(key, (str, bytes)) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"malformed storage id {describe(pid)}")
        key = key.decode(errors="replace") if isinstance(key, bytes) else key
        if key not in self._storages:
            untyped = self._load_storage(key, stype.dtype, numel)
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


def _read_record(zf: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """One zip record, at most ``limit`` bytes, only if stored uncompressed (so its size is its real size)."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(f"{path}: record '{name}' is compressed (method {info.compress_type}); torch.save "
                              "stores records uncompressed, and inflating an untrusted record is unbounded; refused")
    with zf.open(info) as fh:
        return fh.read(limit)


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
        archive_size = path.stat().st_size  # stored records cannot hold more than the archive
        try:
            byteorder = (_read_record(zf, prefix + "byteorder", 16, path).decode(errors="replace").strip()
                         if prefix + "byteorder" in names else "little")
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc})") from exc
        big = byteorder == "big"

        def load_storage(key: str, dtype: torch.dtype, numel: int) -> torch.UntypedStorage:
            record = f"{prefix}data/{key}"
            if record not in names:
                raise CheckpointError(f"{path}: tensor data record '{record}' missing (file truncated?)")
            nbytes = numel * _element_size(dtype)
            real = zf.getinfo(record).file_size
            if zf.getinfo(record).compress_type == zipfile.ZIP_STORED and min(real, archive_size) < nbytes:
                raise CheckpointError(f"{path}: storage '{key}' claims {numel} elements ({nbytes} bytes) but its "
                                      f"record holds {min(real, archive_size)} bytes (corrupt or hostile file)")
            return _storage_from_bytes(_read_record(zf, record, nbytes, path), dtype, numel, big, str(path))

        try:
            unpickler = RestrictedUnpickler(io.BytesIO(_read_record(zf, pkls[0], archive_size, path)), load_storage)
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

            file_size = path.stat().st_size

            def defer(key: str, dtype: torch.dtype, numel: int) -> torch.UntypedStorage:
                if numel * _element_size(dtype) > file_size:  # the raw bytes follow in this file
                    raise CheckpointError(f"{path}: storage '{key}' claims {numel} elements, more than the "
                                          f"{file_size}-byte file can hold (corrupt or hostile file)")
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
            raise CheckpointError(f"{path}: not a torch checkpoint, or a damaged one "
                                  f"({type(exc).__name__}: {exc})") from exc
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
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            head = f.read(4)
        if head.startswith(b"PK"):
            raise CheckpointError(f"{path}: damaged or truncated zip archive (no central directory)")
        if not head:
            raise CheckpointError(f"{path}: empty file")
        return _load_legacy(path)
    except CheckpointError as exc:  # every message names the file
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from None


__all__ = ["CheckpointError", "UnsafeCheckpointError", "InertObject", "describe", "RestrictedUnpickler",
           "SAFE_CALLABLES", "FORBIDDEN_MODULES", "safe_load"]
