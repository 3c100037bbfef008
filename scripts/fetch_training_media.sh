#!/usr/bin/env bash
# Fetch the Debian packages allowed as training/calibration/test media, extract each into
# data/training_media/extract/<package>/ and build the media bank (data/bank, split by source; see
# dytrack_ros/data/media_bank.py). Downloads and extractions are cached under data/training_media/ and reused.
# Third-party media are never committed. Extra arguments go to the bank builder, e.g. --max-mb 30.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=data/training_media
PKGS="gnome-backgrounds sway-backgrounds ukui-wallpapers desktop-base openclipart-png fonts-noto-color-emoji
      oxygen-icon-theme opencv-doc"
mkdir -p "$CACHE/debs" "$CACHE/extract"
for p in $PKGS; do
  if [ -f "$CACHE/extract/$p/.extracted" ]; then continue; fi
  if ! ls "$CACHE/debs/${p}_"*.deb >/dev/null 2>&1; then
    echo "downloading $p"
    ( cd "$CACHE/debs" && (apt-get download "$p" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download "$p" >/dev/null; }) )
  fi
  echo "extracting $p"
  rm -rf "$CACHE/extract/$p"
  mkdir -p "$CACHE/extract/$p"
  dpkg -x "$(ls "$CACHE/debs/${p}_"*.deb | sort | tail -n 1)" "$CACHE/extract/$p"
  touch "$CACHE/extract/$p/.extracted"
done
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" -m dytrack_ros.data.media_bank --src "$CACHE/extract" --out data/bank "$@"
