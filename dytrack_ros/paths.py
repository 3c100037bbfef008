"""Where shipped resources live, for a source checkout and for an installed package."""
from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_MODEL_NAME = "dytrack_small.safetensors"


PACKAGE = "dytrack_ros"


def _ament_share_dir() -> Path | None:
    """``<prefix>/share/dytrack_ros`` of the prefix that registers the package in the ament index
    (``AMENT_PREFIX_PATH``, set by a colcon workspace's ``setup.bash``), or None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, ValueError, LookupError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        return None


def _install_prefix_share_dir() -> Path | None:
    """``<prefix>/share/dytrack_ros`` for sources installed at ``<prefix>/lib/pythonX.Y/site-packages/dytrack_ros``
    (a colcon or cmake install), found without the ament index (a shell that did not source setup.bash)."""
    here = Path(__file__).resolve().parent
    if here.parent.name in ("site-packages", "dist-packages") and len(here.parents) > 3:
        return here.parents[3] / "share" / PACKAGE
    return None


def _candidates(sub: str) -> list[Path]:
    """Where ``sub`` (models, config) may live, in order: the source checkout next to the package, the share
    directory of the prefix these sources are installed in (the files installed with them), the ament index's
    share directory, and ``sys.prefix/share`` (a pip install with data_files)."""
    here = Path(__file__).resolve().parent
    shares = [_install_prefix_share_dir(), _ament_share_dir(), Path(sys.prefix) / "share" / PACKAGE]
    out = [here.parent / sub]
    for share in shares:
        if share is not None and share / sub not in out:
            out.append(share / sub)
    return out


def models_dir() -> Path:
    """The ``models/`` folder (checkout first, then ``<prefix>/share/dytrack_ros/models``)."""
    for c in _candidates("models"):
        if c.is_dir():
            return c
    return _candidates("models")[0]


def default_model_path() -> Path:
    """Path of the shipped default model (it may not exist in a bare checkout)."""
    for c in _candidates("models"):
        if (c / DEFAULT_MODEL_NAME).is_file():
            return c / DEFAULT_MODEL_NAME
    return models_dir() / DEFAULT_MODEL_NAME


def config_dir() -> Path:
    for c in _candidates("config"):
        if c.is_dir():
            return c
    return _candidates("config")[0]
