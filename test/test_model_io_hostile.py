"""Hostile and broken model files: bounded memory and time, one clear error naming the file (and tensor or field).

Every file here is generated: a small valid model file or official-layout
checkpoint, then altered the way an attacker (or a broken export) would. The
memory cases run in a subprocess under an address-space limit and report the
growth of the process's peak resident memory (VmHWM), so a regression fails
the test instead of exhausting the machine.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import pickle
import re
import resource
import signal
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dytrack_ros.cli import main as cli_main
from dytrack_ros.config import ConfigError, ModelConfig
from dytrack_ros.model.tracker_net import TrackerNet
from dytrack_ros.model_io.model_file import ModelFileError, load_model_file, save_model_file
from dytrack_ros.model_io.official import OfficialCheckpointError, load_official_checkpoint
from dytrack_ros.model_io.safe_pickle import CheckpointError, describe, safe_load

_spec = importlib.util.spec_from_file_location("ostrack_reference",
                                               Path(__file__).parent / "reference" / "ostrack_reference.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

TINY = ModelConfig(embed_dim=32, depth=2, num_heads=1, mlp_ratio=2.0, template_size=32, search_size=64,
                   head_channels=8, name="tiny")
MB = 1 << 20


# --------------------------------------------------------------------------- generators
@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model_file(TrackerNet(TINY), tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


def rewrite_model_file(src: Path, dst: Path, config: dict | None = None, tensors: dict | None = None) -> Path:
    """Copy of ``src`` with config keys and/or tensors replaced (metadata and header stay self-consistent)."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    cfg = json.loads(meta["model_config"])
    cfg.update(config or {})
    meta["model_config"] = json.dumps(cfg)
    data = load_file(str(src))
    data.update(tensors or {})
    save_file(data, str(dst), metadata=meta)
    return dst


def torch_zip(path: Path, data_pkl: bytes, records: dict[str, bytes] | None = None,
              deflated: dict[str, int] | None = None) -> Path:
    """A torch-style zip: ``data.pkl``, stored ``records`` and ``deflated`` records of N zero bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        for name, blob in (records or {}).items():
            zf.writestr(f"archive/data/{name}", blob)
        for name, size in (deflated or {}).items():
            info = zipfile.ZipInfo(f"archive/data/{name}")
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as out:
                chunk = bytes(MB)
                for _ in range(size // MB):
                    out.write(chunk)
    return path


class _StorageRef:
    """Stands for a tensor storage; pickled as torch's persistent id ('storage', type, key, location, numel)."""

    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _TensorRef:
    def __init__(self, storage: _StorageRef, size: tuple[int, ...], stride: tuple[int, ...] | None = None) -> None:
        self.storage, self.size = storage, size
        self.stride = stride if stride is not None else tuple(
            math.prod(size[i + 1:]) for i in range(len(size)))

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (self.storage, 0, self.size, self.stride, False, OrderedDict())


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return "storage", torch.FloatStorage, obj.key, "cpu", obj.numel
        return None


def torch_pickle(obj) -> bytes:
    """data.pkl bytes as torch.save writes them, with storages given by :class:`_StorageRef`."""
    import io

    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def laughs(levels: int = 40) -> list:
    """A list whose repr() has 2**levels leaves, pickled in a few hundred bytes (shared references)."""
    a: list = ["ha"]
    for _ in range(levels):
        a = [a, a]
    return a


def nested_pairs(levels: int = 40) -> tuple:
    """A tuple whose hash walks 2**levels parts (hashes of tuples are not cached), pickled in a few hundred bytes."""
    t: tuple = ("ha",)
    for _ in range(levels):
        t = (t, t)
    return t


def official_sd(seed: int = 0) -> OrderedDict:
    return ref.random_official_state_dict(seed, depth=2, dim=64, head_channels=32)


# --------------------------------------------------------------------------- memory probe (subprocess)
PROBE = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a regression fails here, not on the machine
from dytrack_ros.model_io.model_file import load_model_file
from dytrack_ros.model_io.official import load_official_checkpoint

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

out = {}
for name, kind, path in json.loads(sys.argv[1]):
    before, t0 = hwm_kb(), time.monotonic()
    try:
        (load_model_file if kind == "model" else load_official_checkpoint)(path)
        err = None
    except BaseException as exc:  # noqa: BLE001 - report whatever happened
        err = f"{type(exc).__name__}: {exc}"
    out[name] = {"error": err, "grew_mb": (hwm_kb() - before) / 1024, "seconds": time.monotonic() - t0}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe(tiny_file, tmp_path_factory):
    """Loads each hostile file in one subprocess; per case: error text, peak-RSS growth, seconds."""
    d = tmp_path_factory.mktemp("hostile")
    cases = [
        ("st_depth", "model", rewrite_model_file(tiny_file, d / "depth.safetensors", {"depth": 100_000})),
        ("st_embed_dim", "model", rewrite_model_file(tiny_file, d / "dim.safetensors",
                                                     {"embed_dim": 49152, "num_heads": 1})),
        ("st_mlp_ratio", "model", rewrite_model_file(tiny_file, d / "mlp.safetensors", {"mlp_ratio": 1e7})),
        ("st_search", "model", rewrite_model_file(tiny_file, d / "search.safetensors", {"search_size": 16 * 4000})),
        ("pth_zip_bomb", "official", torch_zip(
            d / "bomb.pth", torch_pickle({"net": {"w": _TensorRef(_StorageRef("0", 64 * MB), (64 * MB,))}}),
            deflated={"0": 128 * MB})),
        ("pth_bytearray", "official", torch_zip(  # bytearray(2 GiB) in 60 bytes
            d / "bytearray.pth", b"\x80\x02cbuiltins\nbytearray\n" + pickle.dumps(2 ** 31, 2)[2:-1] + b"\x85R.")),
        ("pth_laughs", "official", torch_zip(
            d / "laughs.pth", b"\x80\x02clib.evil\nThing\n" + pickle.dumps(laughs(), 2)[2:-1] + b"\x85R.")),
        ("pth_laughs_entry", "official", torch_zip(
            d / "laughs_entry.pth", torch_pickle({"net": {"backbone.x": laughs()}, "settings": laughs()}))),
        ("pth_hash_bomb", "official", torch_zip(  # {nested(40): 1}: hashing the key walks 2**40 parts
            d / "hash.pth", b"\x80\x02}" + pickle.dumps(nested_pairs(), 2)[2:-1] + b"K\x01s.")),
    ]
    assert all(p.stat().st_size < 2 * MB for _, _, p in cases)  # tiny files, huge claims
    control = d / "control.pth"  # real 32 MB of weights: the measure must see them
    torch.save({"net": {"w": torch.ones(8 * MB)}}, control)
    cases.append(("control", "official", control))
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps([(n, k, str(p)) for n, k, p in cases])],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case, expected", [
    ("st_depth", "declares depth 100000 but the file holds 2 transformer blocks"),
    ("st_embed_dim", "needs at least"),
    ("st_mlp_ratio", "needs at least"),
    ("st_search", "needs at least"),
    ("pth_zip_bomb", "is compressed"),
    ("pth_bytearray", "bytearray(2147483648)"),
    ("pth_laughs", "lib.evil.Thing"),
    ("pth_laughs_entry", "non-tensor entries"),
    ("pth_hash_bomb", "exponential time"),
])
def test_hostile_file_fails_fast_in_bounded_memory(probe, case, expected):
    result = probe[case]
    assert result["error"] is not None and expected in result["error"], result
    assert result["error"].startswith(("ModelFileError", "CheckpointError", "UnsafeCheckpointError",
                                       "OfficialCheckpointError")), result
    assert "\n" not in result["error"] and len(result["error"]) < 600, result  # one bounded line
    assert result["grew_mb"] < 24, result
    assert result["seconds"] < 3, result


def test_probe_measures_growth(probe):
    """The probe's measure can fail: loading 32 MB of real weights raises the peak by at least that much."""
    result = probe["control"]
    assert "no 'backbone.blocks.*'" in result["error"] and result["grew_mb"] > 30, result


# --------------------------------------------------------------------------- more .pth bounds (in process)
def test_storage_claiming_more_than_its_record_is_refused(tmp_path):
    path = torch_zip(tmp_path / "lie.pth", torch_pickle({"w": _TensorRef(_StorageRef("0", 1 << 28), (1 << 28,))}),
                     records={"0": bytes(64)})
    with pytest.raises(CheckpointError,
                       match=r"claims 268435456 elements \(1073741824 bytes\) but its record holds 64"):
        safe_load(path)


def test_view_outside_its_storage_is_refused(tmp_path):
    path = torch_zip(tmp_path / "view.pth", torch_pickle({"w": _TensorRef(_StorageRef("0", 4), (1000, 1000))}),
                     records={"0": bytes(16)})
    with pytest.raises(CheckpointError, match=r"needs 1000000 elements but its storage holds 4"):
        safe_load(path)


def test_expanded_view_cannot_inflate_the_inferred_model(tmp_path):
    """An MLP weight with zero strides over one stored number would declare any MLP width for every block."""
    records, tensors = {}, {}
    for i, (k, v) in enumerate(official_sd().items()):
        records[str(i)] = v.float().contiguous().numpy().tobytes()
        tensors[k] = _TensorRef(_StorageRef(str(i), v.numel()), tuple(v.shape))
    key = str(len(records))
    records[key] = bytes(4)
    tensors["backbone.blocks.0.mlp.fc1.weight"] = _TensorRef(_StorageRef(key, 1), (64 * 100_000, 64), (0, 0))
    path = torch_zip(tmp_path / "expanded.pth", torch_pickle({"net": tensors}), records=records)
    with pytest.raises(OfficialCheckpointError, match=r"'backbone.blocks.0.mlp.fc1.weight' presents 409600000 elements"
                                                      r" over 1 stored"):
        load_official_checkpoint(path, ce=False)


def test_legacy_storage_claim_is_bounded_by_the_file(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(4)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    # the storage's numel in the pickled persistent id ('storage', type, key, 'cpu', 4, None): 4 -> 2**40
    patched, n = re.subn(rb"(X\x03\x00\x00\x00cpuq.)K\x04N",
                         lambda m: m.group(1) + pickle.dumps(2 ** 40, 2)[2:-1] + b"N",
                         data, flags=re.DOTALL)
    assert n == 1
    path.write_bytes(patched)
    with pytest.raises(CheckpointError, match="claims 1099511627776 elements, more than the"):
        safe_load(path)


def test_describe_is_bounded():
    text = describe(laughs(60))
    assert len(text) <= 83 and text.startswith("[[[")
    assert describe(10 ** 5000) == "<int of 16610 bits>"
    assert describe(b"x" * 10 ** 6) == "<bytes of 1000000 bytes>"


# --------------------------------------------------------------------------- broken weights
@pytest.mark.parametrize("bad", ["nan", "inf", "int8", "bool"])
def test_broken_weights_in_model_files_are_refused_by_name(tiny_file, tmp_path, bad):
    w = load_file(str(tiny_file))["backbone.blocks.1.mlp.fc1.weight"]
    value = {"nan": torch.full_like(w, float("nan")), "inf": w.clone().index_fill_(0, torch.tensor([0]), float("inf")),
             "int8": w.to(torch.int8), "bool": w > 0}[bad]
    path = rewrite_model_file(tiny_file, tmp_path / f"{bad}.safetensors",
                              tensors={"backbone.blocks.1.mlp.fc1.weight": value})
    with pytest.raises(ModelFileError) as err:
        load_model_file(path)
    msg = str(err.value)
    assert str(path) in msg and "backbone.blocks.1.mlp.fc1.weight" in msg
    assert ("non-finite" in msg) if bad in ("nan", "inf") else ("wrong type" in msg and bad in msg)


@pytest.mark.parametrize("bad", ["nan", "int8", "bool"])
def test_broken_weights_in_official_checkpoints_are_refused_by_name(tmp_path, bad):
    sd = official_sd()
    w = sd["backbone.blocks.0.attn.proj.weight"]
    sd["backbone.blocks.0.attn.proj.weight"] = {"nan": w.clone().fill_(float("nan")), "int8": w.to(torch.int8),
                                                "bool": w > 0}[bad]
    path = tmp_path / f"{bad}.pth"
    torch.save({"net": sd}, path)
    with pytest.raises(OfficialCheckpointError, match=r"backbone\.blocks\.0\.attn\.proj\.weight") as err:
        load_official_checkpoint(path, ce=False)
    assert path.name in str(err.value)
    assert ("non-finite" in str(err.value)) if bad == "nan" else ("wrong type" in str(err.value))


def test_valid_files_still_load(tiny_file, tmp_path):
    model, _ = load_model_file(tiny_file)
    assert model.cfg == TINY
    half = rewrite_model_file(tiny_file, tmp_path / "half.safetensors",
                              tensors={k: v.half() if v.is_floating_point() else v
                                       for k, v in load_file(str(tiny_file)).items()})
    assert load_model_file(half)[0].cfg == TINY  # float16 weights for float32 parameters are fine


def test_meta_tensor_checkpoint_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "meta.pth"
    torch.save({"net": OrderedDict((k, v.to("meta")) for k, v in official_sd().items())}, path)
    with pytest.raises(OfficialCheckpointError, match="is a meta tensor"):
        load_official_checkpoint(path, ce=False)
    assert cli_main(["convert", str(path), "--out", str(tmp_path / "m.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "meta tensor" in err and "Traceback" not in err


# --------------------------------------------------------------------------- config values from the file
@pytest.mark.parametrize("field, value, expected", [
    ("embed_dim", "abc", "ModelConfig.embed_dim must be an integer, got 'abc'"),
    ("template_factor", float("nan"), "ModelConfig.template_factor must be a finite positive number, got nan"),
    ("search_factor", -4.0, "ModelConfig.search_factor must be a finite positive number, got -4.0"),
    ("search_factor", float("inf"), "ModelConfig.search_factor must be a finite positive number, got inf"),
    ("depth", True, "ModelConfig.depth must be an integer"),
    ("qkv_bias", "yes", "ModelConfig.qkv_bias must be true or false"),
    ("ce_loc", ["a"], "ModelConfig.ce_loc must be a list of integers"),
])
def test_invalid_config_in_a_model_file_names_file_and_field(tiny_file, tmp_path, field, value, expected):
    path = rewrite_model_file(tiny_file, tmp_path / "cfg.safetensors", {field: value})
    with pytest.raises(ModelFileError) as err:
        load_model_file(path)
    assert str(path) in str(err.value) and expected in str(err.value)
    with pytest.raises(ConfigError, match=f"ModelConfig.{field}"):
        ModelConfig(**{field: value})


# --------------------------------------------------------------------------- convert --out failures
@pytest.fixture
def small_pth(tmp_path) -> Path:
    path = tmp_path / "small.pth"
    torch.save({"net": official_sd()}, path)
    return path


def _assert_one_line_error_and_nothing_left(rc: int, err: str, out_dir: Path, before: set[str]) -> None:
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: cannot write"), err
    assert {p.name for p in out_dir.iterdir()} == before  # no output, no temporary file


def test_convert_into_read_only_filesystem(small_pth, capsys):
    out = Path("/sys/dytrack_test.safetensors")  # sysfs: no file can be created there, not even by root
    before = {p.name for p in out.parent.iterdir()}
    rc = cli_main(["convert", str(small_pth), "--out", str(out), "--no-ce"])
    _assert_one_line_error_and_nothing_left(rc, capsys.readouterr().err, out.parent, before)


def test_convert_into_read_only_directory(small_pth, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("this user can write to read-only directories (root): covered by the sysfs test")
        rc = cli_main(["convert", str(small_pth), "--out", str(ro / "m.safetensors"), "--no-ce"])
        _assert_one_line_error_and_nothing_left(rc, capsys.readouterr().err, ro, set())
    finally:
        ro.chmod(0o755)


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """Writes past ``nbytes`` fail with EFBIG, as on a full disk (soft limit only, restored afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def test_convert_onto_a_full_disk_leaves_nothing(small_pth, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with file_size_limit(64 * 1024):
        rc = cli_main(["convert", str(small_pth), "--out", str(out_dir / "m.safetensors"), "--no-ce"])
    _assert_one_line_error_and_nothing_left(rc, capsys.readouterr().err, out_dir, set())
    # control: the same conversion without the limit writes the file (the output is larger than the limit)
    assert cli_main(["convert", str(small_pth), "--out", str(out_dir / "m.safetensors"), "--no-ce"]) == 0
    assert (out_dir / "m.safetensors").stat().st_size > 64 * 1024
    assert {p.name for p in out_dir.iterdir()} == {"m.safetensors"}
