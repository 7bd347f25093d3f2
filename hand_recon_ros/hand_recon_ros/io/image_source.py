"""Inputs → RGB uint8 frames: image files, folders of images, video files and camera devices; robust decoding.

Every problem with one input (not an image, empty, truncated, unreadable video) becomes a Frame with ``error``
set, so a run can log it, write it to the JSONL output and go on with the other inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jp2"}
)
VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
JPEG_END_MARKER = b"\xff\xd9"
PNG_END_CHUNK = b"IEND"
# A JPEG's end-of-image marker may be followed by a little padding; search the last bytes for it.
JPEG_TAIL_BYTES = 64
UINT16_TO_UINT8 = 1.0 / 257.0


class InputError(ValueError):
    """An input cannot be read as an image or video; the message names the file and the problem."""


@dataclass
class Frame:
    """One decoded frame (RGB uint8 (H, W, 3)) or the reason it could not be decoded (``image`` None)."""

    source: str
    index: int
    image: np.ndarray | None
    error: str | None = None
    timestamp_s: float | None = None


def to_rgb8(image: np.ndarray, source: str = "image") -> np.ndarray:
    """Any OpenCV-decoded image (BGR/BGRA/gray, 8/16-bit or float) as RGB uint8 (H, W, 3).

    16-bit values are scaled by 1/257 (full range to full range), float images are taken as [0, 1];
    alpha is dropped (the colour channels are kept as they are, not blended).
    """
    if image is None or image.size == 0:
        raise InputError(f"{source}: decoded to an empty image")
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) * UINT16_TO_UINT8 + 0.5).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"{source}: unsupported pixel type {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise InputError(f"{source}: unsupported image shape {image.shape}")


def _check_complete(data: bytes, source: str) -> None:
    """Raise InputError for JPEG/PNG files cut short (OpenCV would silently decode a grey remainder)."""
    if data[:3] == b"\xff\xd8\xff" and JPEG_END_MARKER not in data[-JPEG_TAIL_BYTES:]:
        raise InputError(f"{source}: truncated JPEG (no end-of-image marker); the file is incomplete")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and PNG_END_CHUNK not in data[-12:]:
        raise InputError(f"{source}: truncated PNG (no IEND chunk); the file is incomplete")


def decode_image_bytes(data: bytes, source: str = "image") -> np.ndarray:
    """Decode encoded image bytes to RGB uint8; InputError naming the source when they are not a whole image."""
    if not data:
        raise InputError(f"{source}: empty file (0 bytes)")
    _check_complete(data, source)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise InputError(f"{source}: not a readable image (OpenCV cannot decode it)")
    return to_rgb8(decoded, source)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); InputError naming the file and the problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image_bytes(data, str(path))


def is_video_path(path: Path) -> bool:
    """True for video files by suffix and for camera devices (/dev/video*)."""
    return path.suffix.lower() in VIDEO_SUFFIXES or str(path).startswith("/dev/video")


def is_bag_path(path: Path) -> bool:
    """True for rosbag2 inputs: a directory with metadata.yaml, or a .db3/.mcap file."""
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix.lower() in (".db3", ".mcap")


def iter_video(path: str | Path) -> Iterator[Frame]:
    """Frames of a video file or camera device; one error Frame when it cannot be opened or has no frames."""
    source = str(path)
    capture = cv2.VideoCapture(int(source[len("/dev/video"):]) if source.startswith("/dev/video")
                               and source[len("/dev/video"):].isdigit() else source)
    if not capture.isOpened():
        yield Frame(source, 0, None, f"{source}: cannot open as a video (unknown format or missing codec)")
        return
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    index = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            stamp = index / fps if fps > 0 else None
            yield Frame(source, index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, stamp)
            index += 1
    finally:
        capture.release()
    if index == 0:
        yield Frame(source, 0, None, f"{source}: video has no decodable frames")


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Input arguments as a list of files to read, folders expanded to their images/videos (sorted)."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir() and not is_bag_path(path):
            paths.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES))
        else:
            paths.append(path)
    return paths


def iter_frames(inputs: list[str], topic: str | None = None) -> Iterator[Frame]:
    """Every frame of every input in order; unreadable inputs yield a Frame with ``error`` and no image."""
    for path in expand_inputs(inputs):
        source = str(path)
        if is_video_path(path):
            if source.startswith("/dev/video") and not path.exists():
                yield Frame(source, 0, None, f"{source}: no such camera device (is the camera plugged in?)")
            elif not source.startswith("/dev/video") and not path.is_file():
                yield Frame(source, 0, None, f"{source}: no such file")
            else:
                yield from iter_video(path)
        elif is_bag_path(path):
            yield from _iter_bag(path, topic)
        elif not path.exists():
            yield Frame(source, 0, None, f"{source}: no such file or directory")
        else:
            try:
                yield Frame(source, 0, read_image(path))
            except InputError as exc:
                yield Frame(source, 0, None, str(exc))


def _iter_bag(path: Path, topic: str | None) -> Iterator[Frame]:
    from hand_recon_ros.io.bag_reader import iter_bag_images  # rosbags: imported only for bag input
    try:
        for index, item in enumerate(iter_bag_images(path, topic)):
            if hasattr(item, "rgb"):  # bag_reader.BagImage(stamp_s, frame_id, rgb)
                image, stamp = item.rgb, item.stamp_s
            else:
                image, stamp = item if isinstance(item, tuple) else (item, None)
            yield Frame(str(path), index, image, None, stamp)
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported for this input, the run goes on
        yield Frame(str(path), 0, None, f"{path}: cannot read bag: {exc}")


def count_frames(paths: list[Path]) -> int | None:
    """Total frames for a progress bar (images count 1, videos their frame count); None when unknown."""
    total = 0
    for path in paths:
        if is_video_path(path):
            capture = cv2.VideoCapture(str(path))
            n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
            capture.release()
            if n <= 0:
                return None
            total += n
        elif is_bag_path(path):
            return None
        else:
            total += 1
    return total
