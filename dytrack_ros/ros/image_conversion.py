"""sensor_msgs/Image and CompressedImage <-> RGB numpy arrays, without cv_bridge.

cv_bridge is not installable from PyPI (and its shim breaks with numpy 2 and
OpenCV 5), and the conversions the tracker needs are a few lines of numpy.
Incoming images keep their row padding (``step``) handled explicitly; bad
messages raise :class:`ImageConversionError` with a reason a user can act on.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..image_limits import DEFAULT_MAX_IMAGE_PIXELS, ImageSizeError, check_encoded_image, check_image_size

# encoding -> (channels, cv2 conversion to RGB or None)
_ENCODINGS = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


class ImageConversionError(ValueError):
    """An image message cannot be turned into an RGB frame (encoding, size or data length)."""


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """RGB uint8 (H, W, 3) array from a ``sensor_msgs/Image``.

    For ``rgb8`` without padding the result is a read-only view of ``msg.data``
    (no copy); other encodings and padded rows produce a new array. The declared
    size is checked against ``max_pixels`` and the data length before anything
    is allocated.
    """
    enc = str(msg.encoding).lower()
    if enc not in _ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{msg.encoding}'; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, code = _ENCODINGS[enc]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"zero-size image ({width}x{height})")
    try:
        check_image_size(width, height, max_pixels)
    except ImageSizeError as exc:
        raise ImageConversionError(str(exc)) from None
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width*channels = {row_bytes} for {enc}")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise ImageConversionError(
            f"data has {data.size} bytes, shorter than step*height = {step}*{height} = {step * height}")
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    img = rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width)
    if code is None:
        return img
    return cv2.cvtColor(np.ascontiguousarray(img), code)


def compressed_to_rgb(msg, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """RGB uint8 (H, W, 3) array from a ``sensor_msgs/CompressedImage`` (JPEG/PNG).

    The size stated in the header is checked against ``max_pixels`` before the
    decoder allocates it; data without a readable JPEG/PNG header is refused.
    """
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageConversionError("compressed image has no data")
    try:
        check_encoded_image(memoryview(buf), max_pixels)
    except ImageSizeError as exc:
        raise ImageConversionError(str(exc)) from None
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageConversionError(f"cannot decode compressed image (format '{msg.format}', {buf.size} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, header=None, encoding: str = "rgb8"):
    """``sensor_msgs/Image`` from an RGB uint8 (H, W, 3) array; ``header`` is copied as is."""
    from sensor_msgs.msg import Image

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f"need an RGB uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}")
    if encoding == "bgr8":
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding != "rgb8":
        raise ImageConversionError(f"can only write rgb8 or bgr8, got '{encoding}'")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def rgb_to_compressed(rgb: np.ndarray, header=None, fmt: str = "jpeg", quality: int = 90):
    """``sensor_msgs/CompressedImage`` (JPEG or PNG) from an RGB uint8 array."""
    from sensor_msgs.msg import CompressedImage

    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ImageConversionError(f"compressed format must be jpeg or png, got '{fmt}'")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError("image encoding failed")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "jpeg" if ext == ".jpg" else "png"
    msg.data = buf.tobytes()
    return msg
