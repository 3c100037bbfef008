"""Frame sources (video file or image folder) and an annotated-video writer, RGB in and out."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .image_io import ImageReadError, read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")


class VideoSourceError(ValueError):
    pass


class FrameSource:
    """Iterate RGB uint8 frames from a video file or a folder of images (sorted by name)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise VideoSourceError(f"video or image folder not found: {self.path}")
        self._files: list[Path] | None = None
        self.fps = 30.0
        if self.path.is_dir():
            self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise VideoSourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {self.path}")
            self.length = len(self._files)
        else:
            cap = cv2.VideoCapture(str(self.path))
            if not cap.isOpened():
                raise VideoSourceError(f"cannot open video {self.path}")
            self.fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            self.length = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            cap.release()

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._files is not None:
            for f in self._files:
                try:
                    yield read_image(f, "rgb")
                except ImageReadError as exc:
                    raise VideoSourceError(str(exc)) from exc
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                yield cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()


class VideoWriter:
    """mp4 writer taking RGB frames; opened lazily on the first frame, whose size every frame gets.

    Why the resize: ``cv2.VideoWriter`` silently drops frames of another size (40 tracked frames gave a
    15-frame video), so a frame of another size is scaled to the first one's; ``resized`` counts them.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._w: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame
        self.written = 0
        self.resized = 0

    def write(self, frame_rgb: np.ndarray) -> None:
        if self._w is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame_rgb.shape[:2]
            self._w = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._w.isOpened():
                self._w = None
                raise VideoSourceError(f"cannot open video writer for {self.path}")
            self._size = (w, h)
        if (frame_rgb.shape[1], frame_rgb.shape[0]) != self._size:
            frame_rgb = cv2.resize(frame_rgb, self._size, interpolation=cv2.INTER_AREA)
            self.resized += 1
        self._w.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
        self.written += 1

    def close(self) -> None:
        if self._w is not None:
            self._w.release()
            self._w = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
