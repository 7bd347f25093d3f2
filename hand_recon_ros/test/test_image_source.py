"""Input decoding: bad files give clear errors, odd pixel formats are converted, folders and videos expand."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hand_recon_ros.io.image_source import (
    InputError,
    count_frames,
    expand_inputs,
    iter_frames,
    read_image,
    to_rgb8,
)


def _pattern(height: int = 48, width: int = 64) -> np.ndarray:
    """A BGR test image with distinct channels so channel-order mistakes show."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = 10  # blue
    image[..., 1] = np.arange(width, dtype=np.uint8)[None, :] * 2
    image[..., 2] = 200  # red
    return image


def test_colour_png_is_returned_as_rgb(tmp_path: Path):
    cv2.imwrite(str(tmp_path / "c.png"), _pattern())
    rgb = read_image(tmp_path / "c.png")
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 200 and rgb[0, 0, 2] == 10


def test_grayscale_rgba_and_16bit_are_converted(tmp_path: Path):
    bgr = _pattern()
    cv2.imwrite(str(tmp_path / "g.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = 0  # fully transparent: colours must still come through, not black
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    cv2.imwrite(str(tmp_path / "w.png"), bgr.astype(np.uint16) * 257)
    gray = read_image(tmp_path / "g.png")
    assert gray.shape == (48, 64, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    rgba = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(rgba, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    wide = read_image(tmp_path / "w.png")
    assert wide.dtype == np.uint8
    np.testing.assert_array_equal(wide, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def test_float_and_single_channel_arrays():
    out = to_rgb8(np.full((4, 5), 0.5, np.float32))
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8 and out[0, 0, 0] == 128
    out = to_rgb8(np.full((4, 5, 1), 7, np.uint8))
    assert out.shape == (4, 5, 3) and out[0, 0, 1] == 7
    with pytest.raises(InputError, match="unsupported image shape"):
        to_rgb8(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(InputError, match="unsupported pixel type"):
        to_rgb8(np.zeros((4, 5, 3), np.int32))


def test_bad_files_have_clear_errors(tmp_path: Path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not an image")
    ok, encoded = cv2.imencode(".jpg", _pattern(200, 200))
    (tmp_path / "cut.jpg").write_bytes(encoded.tobytes()[: len(encoded) // 2])
    ok, encoded = cv2.imencode(".png", _pattern(200, 200))
    (tmp_path / "cut.png").write_bytes(encoded.tobytes()[:-20])
    with pytest.raises(InputError, match=r"empty\.jpg: empty file"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(InputError, match=r"text\.jpg: not a readable image"):
        read_image(tmp_path / "text.jpg")
    with pytest.raises(InputError, match=r"cut\.jpg: truncated JPEG"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(InputError, match=r"cut\.png: truncated PNG"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match="cannot read"):
        read_image(tmp_path / "missing.png")


def test_iter_frames_reports_errors_and_continues(tmp_path: Path):
    cv2.imwrite(str(tmp_path / "b_good.png"), _pattern())
    (tmp_path / "a_bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    frames = list(iter_frames([str(tmp_path), str(tmp_path / "nope.jpg")]))
    assert [Path(f.source).name for f in frames] == ["a_bad.png", "b_good.png", "nope.jpg"]
    assert frames[0].image is None and "a_bad.png" in frames[0].error
    assert frames[1].error is None and frames[1].image.shape == (48, 64, 3)
    assert frames[2].image is None and "no such file" in frames[2].error


def test_video_frames(tmp_path: Path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(5):
        frame = _pattern()
        frame[:, :, 2] = 40 * i
        writer.write(frame)
    writer.release()
    frames = list(iter_frames([str(path)]))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.error is None and f.image.shape == (48, 64, 3) for f in frames)
    assert frames[3].timestamp_s == pytest.approx(0.3)
    assert abs(int(frames[4].image[10, 10, 0]) - 160) < 12  # red channel first (RGB), lossy codec
    assert count_frames(expand_inputs([str(path), str(path)])) == 10
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (bad,) = list(iter_frames([str(tmp_path / "broken.mp4")]))
    assert bad.image is None and "broken.mp4" in bad.error


def test_missing_camera_device_is_named():
    """A /dev/videoN that does not exist says so (it said 'unknown format or missing codec')."""
    device = next(f"/dev/video{n}" for n in range(90, 200) if not Path(f"/dev/video{n}").exists())
    frames = list(iter_frames([device]))
    assert len(frames) == 1 and frames[0].image is None
    assert frames[0].error == f"{device}: no such camera device (is the camera plugged in?)"
