"""Media bank builder on a tiny fixture tree laid out like the extracted Debian packages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from dytrack_ros.data import media_bank as mb

RNG = np.random.default_rng(7)


def _noise(h: int, w: int, channels: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, channels), dtype=np.uint8)


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def _disc(size: int, stripes: bool = True, flat: bool = False) -> np.ndarray:
    """BGRA disc on transparent black: wide red/green stripes (texture) or one flat colour."""
    img = np.zeros((size, size, 4), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.45) ** 2
    if flat:
        img[inside] = (40, 200, 90, 255)
    elif stripes:
        red = (xx // max(4, size // 8)) % 2 == 0
        img[inside & red] = (0, 0, 255, 255)
        img[inside & ~red] = (0, 255, 0, 255)
    return img


def _fixture(root: Path) -> Path:
    src = root / "src"
    gnome = src / "gnome-backgrounds/usr/share/backgrounds/gnome"
    _write(gnome / "noise_a.png", _noise(300, 900))
    _write(gnome / "uniform.png", np.full((300, 300, 3), 128, np.uint8))  # near-uniform -> skipped
    _write(gnome / "small.png", _noise(150, 400))  # shortest side < 200 -> skipped
    (gnome / "vector.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (gnome / "alias.png").symlink_to(gnome / "noise_a.png")  # symlinks alias other files -> not read
    cv_data = src / "opencv-doc/usr/share/doc/opencv-doc/examples/data"
    _write(cv_data / "photo.jpg", _noise(400, 300))
    grey16 = (RNG.integers(0, 65536, size=(250, 250))).astype(np.uint16)
    _write(cv_data / "grey16.png", grey16)
    (cv_data / "clip.avi").write_bytes(b"RIFF....AVI ")  # videos are never candidates
    clip = src / "openclipart-png/usr/share/openclipart/png/misc"
    _write(clip / "ok.png", np.pad(_disc(400), ((30, 50), (20, 10), (0, 0))))  # padded: the crop must be tight
    _write(clip / "flat.png", _disc(200, flat=True))
    thin = np.zeros((300, 300, 4), np.uint8)
    thin[100:110, :] = (0, 0, 255, 255)
    thin[100:110, ::8] = (255, 255, 255, 255)
    _write(clip / "thin.png", thin)  # 300x10 after cropping -> too small
    ring = np.zeros((200, 200, 4), np.uint8)
    cv2.circle(ring, (100, 100), 90, (0, 0, 255, 255), 1)
    cv2.circle(ring, (100, 100), 80, (255, 255, 255, 255), 1)
    _write(clip / "ring.png", ring)  # alpha covers a few % of its box -> skipped
    _write(clip / "noalpha.png", _noise(100, 100))
    oxy = src / "oxygen-icon-theme/usr/share/icons/oxygen/base"
    for side in (48, 256, 512):
        _write(oxy / f"{side}x{side}/apps/tool.png", _disc(side))
    _write(oxy / "16x16/apps/tiny.png", _disc(16))  # only size: 16 px -> too small
    _write(src / "sway-backgrounds/usr/share/backgrounds/sway/w.png", _noise(480, 640))
    _write(src / "ukui-wallpapers/usr/share/backgrounds/u.jpg", _noise(600, 800))
    db = src / "desktop-base/usr/share"
    _write(db / "desktop-base/joy-theme/grub/grub-4x3.png", _noise(480, 640))
    _write(db / "plymouth/themes/joy/background.png", _noise(900, 1600))  # same picture, larger -> kept
    _write(db / "desktop-base/lines-theme/grub/huge.png", _noise(300, 5000))  # > 4K -> not used
    logo = np.zeros((256, 256, 4), np.uint8)
    logo[64:192, 64:192] = 255
    _write(db / "desktop-base/debian-logos/logo-256.png", logo)  # transparent -> not a background
    return src


def _sources_without_emoji() -> list[mb.SourceSpec]:
    return [s for s in mb.default_sources() if s.name != "fonts-noto-color-emoji"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bank")
    src = _fixture(root)
    out = root / "bank"
    manifest, stats = mb.build_bank(src, out, sources=_sources_without_emoji(), progress=False)
    return src, out, manifest, stats


def _by_source(entries: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for e in entries:
        groups.setdefault(e["source"], []).append(e)
    return groups


def test_layout_and_manifest(built):
    _, out, manifest, _ = built
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest == mb.load_manifest(out)
    assert on_disk["format_version"] == 1
    assert set(on_disk["splits"]) == {"train", "calib", "test"}
    for split, kinds in on_disk["splits"].items():
        assert set(kinds) == {"backgrounds", "objects"}
        for kind, entries in kinds.items():
            for i, e in enumerate(entries):
                assert set(e) == {"file", "source", "origin"}
                ext = "jpg" if kind == "backgrounds" else "png"
                assert e["file"] == f"{split}/{kind}/{i:04d}.{ext}"
    listed = {e["file"] for s in on_disk["splits"].values() for k in s.values() for e in k}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert listed == written


def test_malformed_manifest_names_the_file(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(mb.MediaBankError, match=re.escape(f"{path}: not a media bank manifest")):
        mb.load_manifest(tmp_path)
    path.write_text(json.dumps({"format_version": 1, "splits": {"train": {}}}))
    with pytest.raises(mb.MediaBankError, match=re.escape(f"{path}: not a media bank manifest (KeyError")):
        mb.load_manifest(tmp_path)


def test_split_by_source(built):
    _, _, manifest, _ = built
    sp = manifest["splits"]
    assert set(_by_source(sp["train"]["backgrounds"])) == {"gnome-backgrounds", "opencv-doc", "scikit-image"}
    assert set(_by_source(sp["train"]["objects"])) == {"openclipart-png", "oxygen-icon-theme"}
    assert set(_by_source(sp["calib"]["backgrounds"])) == {"sway-backgrounds"}
    assert set(_by_source(sp["test"]["backgrounds"])) == {"ukui-wallpapers", "desktop-base"}
    assert sp["calib"]["objects"] == [] and sp["test"]["objects"] == []
    owners: dict[str, set[str]] = {}
    for split, kinds in sp.items():
        for entries in kinds.values():
            for e in entries:
                owners.setdefault(e["source"], set()).add(split)
    assert all(len(s) == 1 for s in owners.values()), owners


def test_background_filters(built):
    _, out, manifest, stats = built
    train = _by_source(manifest["splits"]["train"]["backgrounds"])
    assert [e["origin"] for e in train["gnome-backgrounds"]] == ["usr/share/backgrounds/gnome/noise_a.png"]
    assert sorted(e["origin"] for e in train["opencv-doc"]) == [
        "usr/share/doc/opencv-doc/examples/data/grey16.png", "usr/share/doc/opencv-doc/examples/data/photo.jpg"]
    assert stats.skipped["gnome-backgrounds"] == {"near-uniform": 1, "too small": 1}
    for split in ("train", "calib", "test"):
        for e in manifest["splits"][split]["backgrounds"]:
            img = cv2.imread(str(out / e["file"]), cv2.IMREAD_UNCHANGED)
            assert img.ndim == 3 and img.shape[2] == 3 and max(img.shape[:2]) <= 640
            assert (out / e["file"]).read_bytes()[:2] == b"\xff\xd8"
    wide = cv2.imread(str(out / train["gnome-backgrounds"][0]["file"]))
    assert wide.shape[:2] == (213, 640)
    desk = _by_source(manifest["splits"]["test"]["backgrounds"])["desktop-base"]
    assert [e["origin"] for e in desk] == ["usr/share/plymouth/themes/joy/background.png"]


def test_object_filters(built):
    _, out, manifest, stats = built
    objs = _by_source(manifest["splits"]["train"]["objects"])
    assert [e["origin"] for e in objs["openclipart-png"]] == ["usr/share/openclipart/png/misc/ok.png"]
    assert stats.skipped["openclipart-png"] == {"flat": 1, "too small": 1, "sparse alpha": 1, "no alpha": 1}
    assert [e["origin"] for e in objs["oxygen-icon-theme"]] == [
        "usr/share/icons/oxygen/base/256x256/apps/tool.png"]
    for e in manifest["splits"]["train"]["objects"]:
        img = cv2.imread(str(out / e["file"]), cv2.IMREAD_UNCHANGED)
        assert img.shape[2] == 4 and max(img.shape[:2]) <= 160 and min(img.shape[:2]) >= 24
        alpha = img[..., 3] > 0.1 * 255
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()  # tight crop
        partial = (img[..., 3] > 20) & (img[..., 3] < 235)
        assert partial.sum() > 10
        # straight alpha: edge pixels keep the stripe colours (a naive resize darkens them toward the black
        # under the transparent area)
        assert np.median(img[..., :3][partial].max(axis=1)) > 200


def test_deterministic(built, tmp_path):
    src, out, _, _ = built
    again = tmp_path / "again"
    mb.build_bank(src, again, sources=_sources_without_emoji(), progress=False)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_caps_budget_and_missing_inputs(built, tmp_path):
    src, _, _, _ = built
    manifest, _ = mb.build_bank(src, tmp_path / "capped", sources=_sources_without_emoji(), max_train_objects=1,
                                progress=False)
    assert len(manifest["splits"]["train"]["objects"]) == 1
    with pytest.raises(mb.MediaBankError, match="backgrounds alone exceed"):
        mb.build_bank(src, tmp_path / "tiny", sources=_sources_without_emoji(), max_mb=1.01, progress=False)
    partial = tmp_path / "partial"
    shutil.copytree(src, partial, symlinks=True)
    shutil.rmtree(partial / "sway-backgrounds")
    with pytest.raises(mb.MediaBankError, match="missing extracted package.*sway-backgrounds"):
        mb.build_bank(partial, tmp_path / "x", sources=_sources_without_emoji(), progress=False)
    assert mb.main(["--src", str(tmp_path / "nope"), "--out", str(tmp_path / "y")]) == 2


def test_rebuild_removes_stale_files(built, tmp_path):
    src, _, _, _ = built
    out = tmp_path / "bank"
    stale = out / "train/objects/9999.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    mb.build_bank(src, out, sources=_sources_without_emoji(), max_train_objects=0, progress=False)
    assert not stale.exists()


def test_desktop_base_picture_key():
    assert mb.desktop_base_picture("usr/share/desktop-base/joy-theme/grub/grub-16x9.png") == "joy"
    assert mb.desktop_base_picture("usr/share/plymouth/themes/joy/background.png") == "joy"
    assert mb.desktop_base_picture("usr/share/a/b.png") == "usr/share/a"


def _real_font(name: str) -> Path | None:
    """A TrueType font to read (matplotlib ships DejaVuSans; the emoji font comes from the fetch script)."""
    if name == "NotoColorEmoji.ttf":
        p = Path(__file__).resolve().parents[1] / ("data/training_media/extract/fonts-noto-color-emoji/"
                                                   "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
        return p if p.is_file() else None
    try:
        import matplotlib
    except ImportError:
        return None
    p = Path(matplotlib.get_data_path()) / "fonts/ttf" / name
    return p if p.is_file() else None


def test_font_codepoints_and_flat_glyphs_rejected():
    font_path = _real_font("DejaVuSans.ttf")
    if font_path is None:
        pytest.skip("matplotlib's DejaVuSans.ttf not available")
    pytest.importorskip("PIL")
    from PIL import ImageFont

    points = mb.font_codepoints(font_path)
    assert ord("A") in points and ord("\u00e9") in points and points == sorted(set(points))
    glyph = mb.render_glyph(ImageFont.truetype(str(font_path), 109), ord("W"))
    assert glyph is not None and glyph.shape[2] == 4 and glyph[..., 3].max() == 255
    edge = (glyph[..., 3] > 0) & (glyph[..., 3] < 255)
    assert edge.sum() > 10 and (glyph[..., :3][edge] == 255).all()  # anti-aliased edges: straight white, no fringe
    assert mb.prepare_object(glyph) == (None, "flat")  # one-colour text glyphs are no tracking targets
    with pytest.raises(mb.MediaBankError, match="not a readable TrueType font"):
        mb.font_codepoints(Path(__file__))


def test_real_emoji_render():
    font_path = _real_font("NotoColorEmoji.ttf")
    if font_path is None:
        pytest.skip("NotoColorEmoji.ttf not fetched (scripts/fetch_training_media.sh)")
    pytest.importorskip("PIL")
    from PIL import ImageFont

    glyph = mb.render_glyph(ImageFont.truetype(str(font_path), mb.EMOJI_FONT_SIZE), 0x1F600)  # grinning face
    obj, reason = mb.prepare_object(glyph)
    assert obj is not None, reason
    assert obj.shape[2] == 4 and max(obj.shape[:2]) <= 160
    assert len(set(map(tuple, obj[..., :3][obj[..., 3] == 255].reshape(-1, 3)))) > 20  # colour bitmap kept
    # straight alpha: the face's yellow rim stays as bright where it is half transparent as where it is opaque
    lum = obj[..., :3].max(axis=2).astype(float)
    alpha = obj[..., 3]
    assert lum[(alpha > 30) & (alpha < 128)].mean() > 0.8 * lum[alpha == 255].mean()
