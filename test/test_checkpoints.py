"""Official checkpoint loading: safe unpickling, layout detection, conversion, refusals.

Trainer checkpoints are fabricated here the way the official trainers write
them (``torch.save`` of {epoch, actor_type, net_type, net, net_info,
constructor, optimizer, stats, settings}, with ``settings``/``stats`` being
instances of classes from the official ``lib.train.admin`` package). Those
classes exist only while saving; they are removed from ``sys.modules`` before
loading, proving the loader never needs (or imports) the original repository.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import pickle
import random
import subprocess
import sys
import types
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from dytrack_ros.cli import main as cli_main
from dytrack_ros.model import get_config
from dytrack_ros.model_io.model_file import load_model_file, save_model_file
from dytrack_ros.model_io.official import CeUndetectedWarning, OfficialCheckpointError, load_official_checkpoint
from dytrack_ros.model_io.safe_pickle import CheckpointError, InertObject, UnsafeCheckpointError, safe_load

_spec = importlib.util.spec_from_file_location("ostrack_reference",
                                               Path(__file__).parent / "reference" / "ostrack_reference.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

SMALL = dict(dim=128, head_channels=32)  # official structure, narrow: default heads = 128 / 64 = 2
TRAINER_CLASSES = {"lib.train.admin.settings.Settings", "lib.train.admin.stats.AverageMeter",
                   "lib.train.admin.stats.StatValue", "lib.train.admin.local.EnvironmentSettings"}


# --------------------------------------------------------------------------- fabrication helpers
@contextlib.contextmanager
def official_repo_modules(extra: dict[str, dict] | None = None):
    """Stand-in ``lib.*`` modules of the official repository, present only inside the block."""
    names = ["lib", "lib.train", "lib.train.admin", "lib.train.admin.settings", "lib.train.admin.stats",
             "lib.train.admin.local"] + sorted(extra or {})
    assert not any(n in sys.modules for n in names)
    mods = {n: types.ModuleType(n) for n in names}

    def cls(module, name, body=None):
        c = type(name, (), dict(body or {}, __module__=module))
        setattr(mods[module], name, c)
        return c

    cls("lib.train.admin.settings", "Settings")
    cls("lib.train.admin.local", "EnvironmentSettings")
    cls("lib.train.admin.stats", "AverageMeter",
        {"__init__": lambda self: self.__dict__.update(val=0, avg=0.0, sum=0, count=0)})
    cls("lib.train.admin.stats", "StatValue", {"__init__": lambda self: self.__dict__.update(val=0, history=[])})
    for module, attrs in (extra or {}).items():
        for k, v in attrs.items():
            if callable(v) and not isinstance(v, type):
                v.__module__, v.__qualname__ = module, k
            setattr(mods[module], k, v)
    sys.modules.update(mods)
    try:
        yield {n: m for n, m in mods.items()}
    finally:
        for n in names:
            sys.modules.pop(n, None)


NON_CE_EXPERIMENT = "vitb_256_mae_32x4_ep300"  # official OSTrack-256 experiment names
CE_EXPERIMENT = "vitb_256_mae_ce_32x4_ep300"


def write_trainer_checkpoint(path: Path, net: dict, epoch: int = 300, extra: dict | None = None,
                             config_name: str | None = NON_CE_EXPERIMENT) -> Path:
    """torch.save a checkpoint with the official trainer's structure (net, optimizer, stats, settings objects).

    ``settings.config_name`` is the experiment name; None leaves it out.
    """
    with official_repo_modules() as mods:
        settings = mods["lib.train.admin.settings"].Settings()
        env = mods["lib.train.admin.local"].EnvironmentSettings()
        env.workspace_dir, env.lasot_dir = "workspace", "data/lasot"
        settings.__dict__.update(env=env, script_name="ostrack", device=torch.device("cuda", 0), batchsize=32,
                                 grad_clip_norm=0.1, search_area_factor={"template": 2.0, "search": 4.0})
        if config_name is not None:
            settings.config_name = config_name
        meter = mods["lib.train.admin.stats"].AverageMeter()
        meter.__dict__.update(val=0.61, avg=0.7, sum=7.0, count=10)
        lr = mods["lib.train.admin.stats"].StatValue()
        lr.__dict__.update(val=4e-5, history=[4e-4, 4e-5])
        stats = OrderedDict(train=OrderedDict([("Loss/total", meter), ("LearningRate/group0", lr)]), val=None)
        p = torch.nn.Parameter(torch.ones(3))
        opt = torch.optim.AdamW([p], lr=4e-4)
        p.grad = torch.ones(3)
        opt.step()
        ckpt = {"epoch": epoch, "actor_type": "OSTrackActor", "net_type": "OSTrack", "net": net, "net_info": None,
                "constructor": None, "optimizer": opt.state_dict(), "stats": stats, "settings": settings}
        ckpt.update(extra or {})
        torch.save(ckpt, path)
    return path


def ct_training_state_dict(depth: int, seed: int = 0) -> OrderedDict:
    """CompressTracker *training* model: student distill_blocks + teacher blocks + ori_backbone/ori_box_head."""
    student = ref.random_official_state_dict(seed, depth=depth, distill=True, **SMALL)
    teacher = ref.random_official_state_dict(seed + 100, depth=12, **SMALL)
    sd = OrderedDict(student)
    sd.update((k, v) for k, v in teacher.items() if k.startswith("backbone.blocks."))
    sd.update(("ori_" + k, v) for k, v in teacher.items())
    return sd


def _inputs(seed=0, template=128, search=256):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, template, template, generator=g), torch.randn(1, 3, search, search, generator=g)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def small_ostrack_sd():
    return ref.random_official_state_dict(0, depth=4, **SMALL)


@pytest.fixture
def small_ckpt(tmp_path, small_ostrack_sd):
    return write_trainer_checkpoint(tmp_path / "OSTrack_ep0300.pth.tar", small_ostrack_sd)


# --------------------------------------------------------------------------- why a safe loader is needed
def test_torch_load_cannot_read_trainer_checkpoints(small_ckpt):
    with pytest.raises(pickle.UnpicklingError, match=r"lib\.train\.admin"):
        torch.load(small_ckpt, weights_only=True)
    with pytest.raises(ModuleNotFoundError, match="lib"):  # the unsafe path needs the official repo
        torch.load(small_ckpt, weights_only=False)


# --------------------------------------------------------------------------- loading
def test_trainer_checkpoint_loads_without_official_repo(small_ckpt, small_ostrack_sd):
    model, report = load_official_checkpoint(small_ckpt)
    assert "lib" not in sys.modules and "lib.train.admin.settings" not in sys.modules
    assert report.layout == "ostrack" and report.container == "trainer checkpoint['net']" and report.epoch == 300
    assert report.ignored_keys == ["backbone.cls_token", "backbone.pos_embed"]
    assert report.dropped_keys == [] and report.stripped_prefix is None
    assert set(report.inert_objects) == TRAINER_CLASSES and report.unexpected_objects == []
    cfg = report.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.head_channels) == (128, 4, 2, 32)
    assert (cfg.template_size, cfg.search_size, cfg.patch_size, cfg.mlp_ratio, cfg.ce_loc) == (128, 256, 16, 4.0, ())
    ours = model.state_dict()
    assert report.used_keys == len(ours) == len(small_ostrack_sd) - 2
    for k, v in small_ostrack_sd.items():
        if k not in ("backbone.cls_token", "backbone.pos_embed"):
            assert torch.equal(ours[k], v), k
    assert not model.training
    text = report.summary()
    assert "ostrack" in text and "backbone.cls_token" in text and "Settings" in text


def test_inert_objects_keep_their_data_and_are_not_callable(small_ckpt):
    obj, placeholders = safe_load(small_ckpt)
    assert set(obj) == {"epoch", "actor_type", "net_type", "net", "net_info", "constructor", "optimizer", "stats",
                        "settings"}
    settings = obj["settings"]
    assert isinstance(settings, InertObject) and settings.pickled_name == "lib.train.admin.settings.Settings"
    attrs = settings.attributes
    assert attrs["script_name"] == "ostrack" and attrs["device"] == torch.device("cuda", 0)
    assert attrs["env"].attributes["lasot_dir"] == "data/lasot"
    assert obj["stats"]["train"]["Loss/total"].attributes["avg"] == 0.7
    assert obj["optimizer"]["state"][0]["exp_avg"].shape == (3,)
    with pytest.raises(UnsafeCheckpointError, match="lib.train.admin.settings.Settings"):
        type(settings)("anything")


def test_ce_flag_and_variant(small_ckpt):
    _, report = load_official_checkpoint(small_ckpt, ce=False)
    assert report.config.ce_loc == ()
    with pytest.raises(OfficialCheckpointError, match="12-block"):  # CE is defined for 12 blocks only
        load_official_checkpoint(small_ckpt, ce=True)
    with pytest.raises(OfficialCheckpointError, match="embed_dim=768"):
        load_official_checkpoint(small_ckpt, "ostrack256")


def test_module_prefix_and_flat_state_dict(tmp_path, small_ostrack_sd):
    path = tmp_path / "dp.pth"
    torch.save(OrderedDict(("module." + k, v) for k, v in small_ostrack_sd.items()), path)
    model, report = load_official_checkpoint(path)
    assert report.stripped_prefix == "module." and report.container == "flat state dict"
    assert torch.equal(model.state_dict()["backbone.pos_embed_x"], small_ostrack_sd["backbone.pos_embed_x"])


def test_compresstracker_test_checkpoint(tmp_path):
    sd = ref.random_official_state_dict(3, depth=3, distill=True, **SMALL)
    assert len(sd) == 8 + 12 * 3 + 90 and not any(k.startswith("backbone.blocks.") for k in sd)
    model, report = load_official_checkpoint(write_trainer_checkpoint(tmp_path / "ct3.pth.tar", sd))
    assert report.layout == "compresstracker" and report.config.depth == 3 and report.config.name == "ct3_d128"
    for i in range(3):
        assert torch.equal(model.state_dict()[f"backbone.blocks.{i}.attn.qkv.weight"],
                           sd[f"backbone.distill_blocks.{i}.attn.qkv.weight"])


def test_compresstracker_training_checkpoint_drops_teacher_copies(tmp_path):
    sd = ct_training_state_dict(depth=4)
    assert len(sd) == 532  # CT-4 training model key count: student + teacher blocks + ori_ teacher copy
    model, report = load_official_checkpoint(write_trainer_checkpoint(tmp_path / "ct4_train.pth.tar", sd))
    assert report.layout == "compresstracker-training"
    assert len(report.dropped_keys) == 532 - 146
    assert all(k.startswith(("ori_", "backbone.blocks.")) for k in report.dropped_keys)
    assert report.used_keys == 146 - 2 and report.config.depth == 4
    ours = model.state_dict()
    for i in range(4):  # the student's weights, not the teacher's block i
        assert torch.equal(ours[f"backbone.blocks.{i}.mlp.fc1.weight"],
                           sd[f"backbone.distill_blocks.{i}.mlp.fc1.weight"])
    assert torch.equal(ours["box_head.conv5_ctr.weight"], sd["box_head.conv5_ctr.weight"])


@pytest.mark.slow
def test_vitb_ostrack256_and_ct2_checkpoints_infer_registry_configs(tmp_path):
    """Full-size official layouts: every tensor used (242 - 2 ignored), architecture = our registry entries."""
    sd = OrderedDict((k, torch.zeros(s)) for k, s in ref.official_shapes().items())
    path = write_trainer_checkpoint(tmp_path / "OSTrack_ep0300.pth.tar", sd)
    del sd
    model, report = load_official_checkpoint(path)
    assert len(ref.official_shapes()) == 242
    assert report.used_keys == 240 and report.used_elements == 92_521_425 - 152_064
    assert report.config == get_config("ostrack256") and report.config.name == "ostrack256"
    del model
    path.unlink()
    sd = OrderedDict((k, torch.zeros(s)) for k, s in ref.official_shapes(depth=2, distill=True).items())
    _, report = load_official_checkpoint(write_trainer_checkpoint(tmp_path / "CT2.pth.tar", sd), ce=False)
    assert report.config == get_config("ct2") and report.used_elements == 21_642_705 - 152_064


def test_ce_checkpoint_selects_official_ce(tmp_path):
    sd = ref.random_official_state_dict(1, depth=12, dim=64, head_channels=32)
    path = write_trainer_checkpoint(tmp_path / "ce.pth.tar", sd, config_name=CE_EXPERIMENT)
    _, report = load_official_checkpoint(path, ce=True, num_heads=2)
    c = report.config
    assert (c.ce_loc, c.ce_keep_ratio, c.ce_template_centre, c.num_heads) == ((3, 6, 9), 0.7, True, 2)
    assert c.name == "ostrack256_ce_d64"


# --------------------------------------------------------------------------- CE from the recorded experiment name
@pytest.fixture(scope="module")
def sd12():
    """12 blocks (where CE is defined), narrow."""
    return ref.random_official_state_dict(7, depth=12, dim=64, head_channels=32)


def _load_recording_warnings(path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, report = load_official_checkpoint(path, num_heads=2, **kwargs)
    return model, report, [str(w.message) for w in caught if issubclass(w.category, CeUndetectedWarning)]


def test_ce_detected_from_recorded_experiment_name(tmp_path, sd12):
    ce_model, ce_rep, ce_warn = _load_recording_warnings(
        write_trainer_checkpoint(tmp_path / "ce.pth.tar", sd12, config_name=CE_EXPERIMENT))
    plain_model, plain_rep, plain_warn = _load_recording_warnings(
        write_trainer_checkpoint(tmp_path / "plain.pth.tar", sd12, config_name=NON_CE_EXPERIMENT))
    assert ce_warn == [] and plain_warn == []
    assert (ce_rep.config.ce_loc, ce_rep.config.ce_keep_ratio) == ((3, 6, 9), 0.7)
    assert plain_rep.config.ce_loc == ()
    assert ce_rep.ce_source == f"on (detected from settings.config_name = '{CE_EXPERIMENT}')"
    assert plain_rep.ce_source == f"off (detected from settings.config_name = '{NON_CE_EXPERIMENT}')"
    assert f"CE:         on (detected from settings.config_name = '{CE_EXPERIMENT}')" in ce_rep.summary()
    z, x = _inputs(3)
    with torch.no_grad():  # detection changes what runs: the two models differ on the same weights
        assert not torch.allclose(ce_model(z, x).score_map, plain_model(z, x).score_map)


@pytest.mark.parametrize("where", ["trainer file without config_name", "bare state dict", "settings None"])
def test_unrecorded_ce_warns_and_loads_without_ce(tmp_path, sd12, where):
    path = tmp_path / "x.pth"
    if where == "trainer file without config_name":
        write_trainer_checkpoint(path, sd12, config_name=None)
        why = "record no config_name"
    elif where == "bare state dict":
        torch.save(OrderedDict(sd12), path)
        why = "bare state dict"
    else:
        torch.save({"epoch": 1, "net": sd12, "settings": None}, path)
        why = "'settings' is a NoneType"
    _, report, warned = _load_recording_warnings(path)
    assert report.config.ce_loc == ()
    assert len(warned) == 1 and why in warned[0] and "--ce" in warned[0] and "WITHOUT CE" in warned[0]
    assert report.warnings == warned and "WARNING:" in report.summary()
    assert report.ce_source.startswith("off (not detected")
    for ce in (True, False):  # an explicit choice needs no warning
        _, report, warned = _load_recording_warnings(path, ce=ce)
        assert warned == [] and bool(report.config.ce_loc) is ce


def test_no_warning_where_ce_does_not_apply(tmp_path, small_ostrack_sd):
    torch.save(OrderedDict(small_ostrack_sd), tmp_path / "d4.pth")  # 4 blocks: CE is defined for 12 only
    _, report, warned = _load_recording_warnings(tmp_path / "d4.pth")
    assert warned == [] and report.config.ce_loc == () and "not applicable to 4 blocks" in report.ce_source


def test_explicit_ce_contradicting_the_record_warns_and_is_followed(tmp_path, sd12):
    ce_file = write_trainer_checkpoint(tmp_path / "ce.pth.tar", sd12, config_name=CE_EXPERIMENT)
    _, report, warned = _load_recording_warnings(ce_file, ce=False)
    assert report.config.ce_loc == () and len(warned) == 1
    assert "explicitly off" in warned[0] and CE_EXPERIMENT in warned[0] and "following the explicit" in warned[0]
    plain_file = write_trainer_checkpoint(tmp_path / "plain.pth.tar", sd12, config_name=NON_CE_EXPERIMENT)
    _, report, warned = _load_recording_warnings(plain_file, ce=True)
    assert report.config.ce_loc == (3, 6, 9) and len(warned) == 1 and "explicitly on" in warned[0]
    _, report, warned = _load_recording_warnings(ce_file, ce=True)  # agreeing: quiet
    assert warned == [] and report.ce_source.startswith("on (explicit")


def test_ce_name_on_a_non_12_block_file_is_refused(tmp_path, small_ostrack_sd):
    path = write_trainer_checkpoint(tmp_path / "odd.pth.tar", small_ostrack_sd, config_name=CE_EXPERIMENT)
    with pytest.raises(OfficialCheckpointError, match=r"4 blocks; pass --no-ce"):
        load_official_checkpoint(path)
    with pytest.warns(CeUndetectedWarning, match="explicitly off"):
        _, report = load_official_checkpoint(path, ce=False)
    assert report.config.ce_loc == ()


def test_convert_cli_reports_detection_and_warnings(tmp_path, sd12, capsys):
    ce_file = write_trainer_checkpoint(tmp_path / "ce.pth.tar", sd12, config_name=CE_EXPERIMENT)
    out = tmp_path / "ce.safetensors"
    assert cli_main(["convert", str(ce_file), "--out", str(out), "--num-heads", "2"]) == 0
    captured = capsys.readouterr()
    assert f"CE:         on (detected from settings.config_name = '{CE_EXPERIMENT}')" in captured.out
    assert "CE at [3, 6, 9] keep 0.7" in captured.out and captured.err == ""
    assert load_model_file(out)[0].cfg.ce_loc == (3, 6, 9)
    assert cli_main(["convert", str(ce_file), "--out", str(out), "--num-heads", "2", "--no-ce", "--force"]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "explicitly off" in captured.err
    assert load_model_file(out)[0].cfg.ce_loc == ()
    bare = tmp_path / "bare.pth"
    torch.save(OrderedDict(sd12), bare)
    assert cli_main(["convert", str(bare), "--out", str(tmp_path / "bare.safetensors"), "--num-heads", "2"]) == 0
    captured = capsys.readouterr()
    assert "cannot be detected" in captured.err and captured.err.count("warning:") == 1
    assert "no CE" in captured.out


# --------------------------------------------------------------------------- our file format round trip
def test_round_trip_to_model_file_gives_identical_outputs(tmp_path):
    sd = ref.random_official_state_dict(2, depth=12, dim=64, head_channels=32)
    model, report = load_official_checkpoint(
        write_trainer_checkpoint(tmp_path / "ce.pth.tar", sd, config_name=CE_EXPERIMENT), ce=True, num_heads=2)
    out_path = save_model_file(model, tmp_path / "converted.safetensors", info={"source": "ce.pth.tar"})
    again, info = load_model_file(out_path)
    assert again.cfg == model.cfg and info == {"source": "ce.pth.tar"}
    z, x = _inputs(5)
    with torch.no_grad():
        a, b = model(z, x), again(z, x)
    for m1, m2 in ((a.score_map, b.score_map), (a.size_map, b.size_map), (a.offset_map, b.offset_map)):
        assert torch.equal(m1, m2)
    assert b"lib.train" not in out_path.read_bytes()  # nothing of the pickle survives


def test_convert_cli_in_process(tmp_path, small_ckpt, capsys):
    out = tmp_path / "ostrack_small.safetensors"
    assert cli_main(["convert", str(small_ckpt), "--out", str(out), "--name", "my_ostrack"]) == 0
    text = capsys.readouterr().out
    assert "layout:     ostrack" in text and "ignored:" in text and "wrote" in text
    model, info = load_model_file(out)
    assert model.cfg.name == "my_ostrack" and info["source_checkpoint"] == small_ckpt.name
    assert info["ignored_keys"] == ["backbone.cls_token", "backbone.pos_embed"]
    assert cli_main(["convert", str(small_ckpt), "--out", str(out)]) == 2  # exists, no --force
    assert cli_main(["convert", str(small_ckpt), "--out", str(tmp_path / "x.pth")]) == 2


@pytest.mark.slow
def test_convert_cli_subprocess_ce(tmp_path):
    sd = ref.random_official_state_dict(4, depth=12, dim=64, head_channels=32)
    ckpt = write_trainer_checkpoint(tmp_path / "ce.pth.tar", sd, config_name=CE_EXPERIMENT)
    out = tmp_path / "ce.safetensors"
    proc = subprocess.run([sys.executable, "-m", "dytrack_ros.cli", "convert", str(ckpt), "--out", str(out), "--ce",
                           "--num-heads", "2"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "CE at [3, 6, 9] keep 0.7" in proc.stdout
    model, _ = load_model_file(out)
    assert model.cfg.ce_loc == (3, 6, 9) and model.cfg.num_heads == 2


# --------------------------------------------------------------------------- refusals
def _torch_zip_with_pickle(path: Path, data_pkl: bytes) -> Path:
    """A torch-style zip archive whose data.pkl is ``data_pkl`` (for hand-crafted payloads)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    return path


def _payloads(marker: Path) -> dict[str, bytes]:
    """Protocol-2 pickles that create ``marker`` when unpickled unsafely, named by the global they call."""
    def call(module: str, name: str, arg_pickle: bytes) -> bytes:
        return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + arg_pickle + b"\x85R."

    s = lambda text: pickle.dumps(text, protocol=2)[2:-1]  # noqa: E731 - one pickled str, no PROTO/STOP
    return {
        "os.system": call("os", "system", s(f"touch '{marker}'")),
        "posix.system": call("posix", "system", s(f"touch '{marker}'")),
        "builtins.exec": call("builtins", "exec", s(f"open({str(marker)!r}, 'w').close()")),
        "subprocess.Popen": call("subprocess", "Popen", pickle.dumps(["touch", str(marker)], protocol=2)[2:-1]),
    }


@pytest.mark.parametrize("global_name", ["os.system", "posix.system", "builtins.exec", "subprocess.Popen"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, global_name):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[global_name]
    path = _torch_zip_with_pickle(tmp_path / "evil.pth", payload)
    with pytest.raises(UnsafeCheckpointError, match=global_name.replace(".", r"\.")) as err:
        load_official_checkpoint(path)
    assert "nothing was executed" in str(err.value)
    assert not marker.exists()
    # control: the payload is live, plain unpickling does run it (so the check above can fail)
    result = pickle.loads(payload)
    if global_name == "subprocess.Popen":
        result.wait(timeout=30)
    assert marker.exists()


def test_malicious_object_nested_in_settings_is_refused(tmp_path, small_ostrack_sd):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch '{marker}'",))

    path = write_trainer_checkpoint(tmp_path / "evil.pth.tar", small_ostrack_sd, extra={"net_info": [Payload()]})
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system"):
        load_official_checkpoint(path)
    assert not marker.exists()
    legacy = tmp_path / "evil_legacy.pth"
    torch.save({"net": small_ostrack_sd, "x": Payload()}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system"):
        safe_load(legacy)
    assert not marker.exists()
    assert cli_main(["convert", str(path), "--out", str(tmp_path / "o.safetensors")]) == 3
    assert not (tmp_path / "o.safetensors").exists()


def test_calling_an_unknown_repo_function_is_refused(tmp_path, small_ostrack_sd):
    """Not on any deny list, still refused: only allowlisted callables are ever called."""
    calls = []

    def build_network(*args):
        calls.append(args)
        return "built"

    class Deferred:
        def __reduce__(self):
            return (build_network, ("cfg",))

    with official_repo_modules(extra={"lib.models.ostrack": {"build_network": build_network}}):
        obj = {"net": small_ostrack_sd, "constructor": Deferred()}
        buf = io.BytesIO()
        torch.save(obj, buf)
    path = tmp_path / "ctor.pth.tar"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeCheckpointError, match=r"lib\.models\.ostrack\.build_network"):
        load_official_checkpoint(path)
    assert calls == []


def test_legacy_format_loads(tmp_path, small_ostrack_sd):
    path = tmp_path / "legacy.pth"
    torch.save({"net": small_ostrack_sd}, path, _use_new_zipfile_serialization=False)
    model, report = load_official_checkpoint(path)
    assert torch.equal(model.state_dict()["backbone.norm.weight"], small_ostrack_sd["backbone.norm.weight"])


@pytest.mark.parametrize("case", ["not_torch_pickle", "list_checkpoint", "truncated", "no_net", "mae_pretrain",
                                  "missing_key", "extra_key", "non_tensor", "empty", "random_bytes", "missing_file"])
def test_bad_files_get_clear_errors(tmp_path, small_ckpt, small_ostrack_sd, case):
    path = tmp_path / f"{case}.pth"
    sd = OrderedDict(small_ostrack_sd)
    expected = {
        "not_torch_pickle": "not a torch checkpoint",
        "list_checkpoint": "top-level object is a list",
        "truncated": "truncated",
        "no_net": "no weights found",
        "mae_pretrain": "backbone-only pretrain",
        "missing_key": "1 missing",
        "extra_key": "1 unused",
        "non_tensor": "non-tensor entries",
        "empty": "empty file",
        "random_bytes": "not a",
        "missing_file": "not found",
    }[case]
    if case == "not_torch_pickle":
        path.write_bytes(pickle.dumps({"a": [1, 2, 3]}))
    elif case == "list_checkpoint":
        torch.save([torch.ones(2)], path)
    elif case == "truncated":
        data = small_ckpt.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "no_net":
        write_trainer_checkpoint(path, sd)
        obj, _ = safe_load(path)  # same container without its weights
        torch.save({"epoch": 300, "optimizer": obj["optimizer"]}, path)
    elif case == "mae_pretrain":
        torch.save({"model": OrderedDict((k.replace("backbone.", ""), v) for k, v in sd.items()
                                         if k.startswith("backbone."))}, path)
    elif case == "missing_key":
        del sd["backbone.blocks.2.mlp.fc2.bias"]
        torch.save({"net": sd}, path)
    elif case == "extra_key":
        sd["backbone.blocks.0.attn.extra"] = torch.ones(1)
        torch.save({"net": sd}, path)
    elif case == "non_tensor":
        sd["backbone.note"] = "hello"
        torch.save({"net": sd}, path)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "random_bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(CheckpointError, match=expected) as err:
        load_official_checkpoint(path)
    assert not isinstance(err.value, UnsafeCheckpointError) or case == "random_bytes"
    if case == "missing_key":
        assert "backbone.blocks.2.mlp.fc2.bias" in str(err.value)
