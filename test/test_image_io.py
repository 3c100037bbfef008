"""Image decoding: same pixels through the fast JPEG path and OpenCV, clear errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from dytrack_ros import image_io
from dytrack_ros.image_io import ImageReadError, read_image


def _photo(tmp_path, suffix):
    from skimage import data

    rgb = cv2.resize(data.astronaut(), (320, 240))
    path = tmp_path / f"frame{suffix}"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_rgb_and_bgr_match_opencv(tmp_path, suffix):
    path = _photo(tmp_path, suffix)
    bgr_ref = cv2.imread(str(path), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(read_image(path, "bgr"), bgr_ref)
    np.testing.assert_array_equal(read_image(path, "rgb"), cv2.cvtColor(bgr_ref, cv2.COLOR_BGR2RGB))


def test_fast_jpeg_path_is_used_when_available(tmp_path):
    if image_io.simplejpeg is None:
        pytest.skip("simplejpeg not installed: OpenCV decodes every file")
    path = _photo(tmp_path, ".jpg")
    fast = image_io.simplejpeg.decode_jpeg(path.read_bytes(), colorspace="RGB")
    np.testing.assert_array_equal(read_image(path), fast)


def test_errors(tmp_path):
    with pytest.raises(ImageReadError, match="cannot read"):
        read_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageReadError, match="cannot read"):
        read_image(bad)
    with pytest.raises(ValueError, match="color"):
        read_image(bad, "hsv")
