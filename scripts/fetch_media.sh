#!/usr/bin/env bash
# Fetch real sample videos/photos from the Debian opencv-doc package into data/media/.
# Third-party media are never committed; tests skip when they are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=data/media
mkdir -p "$OUT"
if [ -s "$OUT/cup.mp4" ] && [ -s "$OUT/box.mp4" ] && [ -s "$OUT/vtest.avi" ]; then
  echo "sample media already in $OUT"; exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
( cd "$TMP" && (apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download opencv-doc >/dev/null; }) )
dpkg -x "$TMP"/opencv-doc_*.deb "$TMP/x"
HTML="$TMP/x/usr/share/doc/opencv-doc/opencv4/html"
EX="$TMP/x/usr/share/doc/opencv-doc/examples/data"
gunzip -c "$HTML/cup.mp4.gz" > "$OUT/cup.mp4"
gunzip -c "$HTML/box.mp4.gz" > "$OUT/box.mp4"
cp "$EX/vtest.avi" "$OUT/vtest.avi"   # pedestrians; evaluation only (benchmarks/keyframes), never training data
mkdir -p "$OUT/photos"
for f in baboon.jpg fruits.jpg apple.jpg orange.jpg butterfly.jpg building.jpg home.jpg messi5.jpg \
         squirrel_cls.jpg stuff.jpg board.jpg smarties.png box.png box_in_scene.png graf1.png lena.jpg; do
  [ -f "$EX/$f" ] && cp "$EX/$f" "$OUT/photos/" || true
done
echo "fetched: $(ls "$OUT" | tr '\n' ' ') photos: $(ls "$OUT/photos" | wc -l)"
