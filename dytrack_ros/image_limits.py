"""The largest image any decoder of this package will allocate, checked before decoding.

Why: a compressed image states its size in its header and decoders allocate
that size before reading any pixel. A 629-byte JPEG claiming 6000x6000 made
OpenCV allocate 108 MB (a 16000x16000 claim: 768 MB, 1.5 GB while converting
colours), so twenty such messages took the node from 380 MB to 1.9 GB. Reading
the size from the header costs a few microseconds and no allocation; images
above the limit are refused as bad input with a one-line reason.
"""
from __future__ import annotations

# 8K UHD (7680 x 4320 = 33.2 megapixels): about 100 MB as RGB, the largest camera
# image this tracker is meant for. Raise it with the node parameter max_image_pixels.
DEFAULT_MAX_IMAGE_PIXELS = 7680 * 4320

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...): C0-CF without DHT (C4), JPG (C8), DAC (CC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length field


class ImageSizeError(ValueError):
    """An image is larger than the allowed number of pixels, or its size cannot be read."""


def encoded_image_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(width, height) stated in a JPEG or PNG header, or None for another format or a header too broken
    to read. Reads only marker bytes; never decodes pixels."""
    buf = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    if bytes(buf[:8]) == _PNG_SIGNATURE:
        if len(buf) < 24 or bytes(buf[12:16]) != b"IHDR":
            return None
        return int.from_bytes(buf[16:20], "big"), int.from_bytes(buf[20:24], "big")
    if bytes(buf[:2]) != b"\xff\xd8":
        return None
    pos, n = 2, len(buf)
    while pos + 4 <= n:
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        length = int.from_bytes(buf[pos + 2:pos + 4], "big")
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if pos + 9 > n:
                return None
            height = int.from_bytes(buf[pos + 5:pos + 7], "big")
            width = int.from_bytes(buf[pos + 7:pos + 9], "big")
            return width, height
        pos += 2 + length
    return None


def check_image_size(width: int, height: int, max_pixels: int, what: str = "image") -> None:
    """Raise :class:`ImageSizeError` when ``width`` x ``height`` exceeds ``max_pixels``."""
    pixels = int(width) * int(height)
    if pixels > int(max_pixels):
        raise ImageSizeError(f"{what} of {int(width)}x{int(height)} = {pixels} pixels exceeds the limit of "
                             f"{int(max_pixels)} pixels (max_image_pixels)")


def check_encoded_image(data, max_pixels: int, what: str = "compressed image") -> tuple[int, int]:
    """(width, height) of a JPEG/PNG within ``max_pixels``; :class:`ImageSizeError` otherwise, also when the
    header states no size (another format, or broken): such data is never handed to a decoder."""
    size = encoded_image_size(data)
    if size is None:
        raise ImageSizeError(f"cannot decode {what}: no JPEG or PNG header stating its size ({len(data)} bytes); "
                             "only JPEG and PNG are accepted")
    width, height = size
    if width == 0 or height == 0:
        raise ImageSizeError(f"{what}: header states a zero-size image ({width}x{height})")
    check_image_size(width, height, max_pixels, what)
    return size
