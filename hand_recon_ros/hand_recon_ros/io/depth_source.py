"""Depth images for `hand-recon run --depth`: one file for every frame, a folder paired by name or order, or a video.

Depth files: 16-bit PNG/TIFF (units times ``scale_m``, default millimetres), 32-bit float TIFF (metres unless a
scale is given) or .npy. A folder pairs each colour frame with the depth file of the same stem, else with the
depth file at the frame's position in the run; a video pairs frame for frame (8-bit, so a scale is required).
A frame whose depth cannot be had gets the reason instead (the run places its hands monocularly).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hand_recon_ros.io.image_source import IMAGE_SUFFIXES, is_video_path
from hand_recon_ros.pipeline.depth_fusion import DepthError, depth_to_metres

DEPTH_SUFFIXES: frozenset[str] = IMAGE_SUFFIXES | {".npy"}


def read_depth_file(path: Path, scale_m: float | None) -> np.ndarray:
    """A depth file as float32 metres (H, W); DepthError naming the file when it cannot be read."""
    try:
        array = np.load(path) if path.suffix.lower() == ".npy" else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError) as exc:
        raise DepthError(f"{path}: cannot read depth ({exc})") from exc
    if array is None:
        raise DepthError(f"{path}: not a readable depth image")
    return _to_metres(array, scale_m, str(path))


def _to_metres(array: np.ndarray, scale_m: float | None, source: str) -> np.ndarray:
    """Metres from a decoded depth array; 8-bit depth needs an explicit scale."""
    if array.dtype == np.uint8 and scale_m is None:
        raise DepthError(f"{source}: 8-bit depth needs --depth-scale (metres per unit)")
    try:
        return depth_to_metres(array, scale_m)
    except DepthError as exc:
        raise DepthError(f"{source}: {exc}") from exc


class DepthSource:
    """Depth (metres) for each colour frame of a run, from ``--depth FILE|DIR|VIDEO`` and ``--depth-scale``."""

    def __init__(self, spec: str, scale_m: float | None = None) -> None:
        """Open ``spec``; DepthError when it does not exist or holds no depth files (a bad option)."""
        self.path = Path(spec)
        self.scale_m = scale_m
        if scale_m is not None and not (np.isfinite(scale_m) and scale_m > 0):
            raise DepthError(f"--depth-scale must be a positive number of metres per unit, got {scale_m!r}")
        self._files: list[Path] = []
        self._by_stem: dict[str, Path] = {}
        self._capture: cv2.VideoCapture | None = None
        self._video_index = 0
        self._single: np.ndarray | None = None
        self._single_error: str | None = None
        if is_video_path(self.path):
            if not self.path.is_file():
                raise DepthError(f"--depth {spec}: no such video file")
            self._capture = cv2.VideoCapture(str(self.path))
            if not self._capture.isOpened():
                raise DepthError(f"--depth {spec}: cannot open as a video")
        elif self.path.is_dir():
            self._files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in DEPTH_SUFFIXES)
            if not self._files:
                raise DepthError(f"--depth {spec}: folder holds no depth files ({', '.join(sorted(DEPTH_SUFFIXES))})")
            self._by_stem = {p.stem: p for p in self._files}
        elif self.path.is_file():
            try:
                self._single = read_depth_file(self.path, scale_m)
            except DepthError as exc:
                raise DepthError(f"--depth {exc}") from exc
        else:
            raise DepthError(f"--depth {spec}: no such file or folder")

    def for_frame(self, source: str, position: int) -> tuple[np.ndarray | None, str | None]:
        """(depth metres, None) for the colour frame from ``source`` at ``position`` (0-based in the run), or
        (None, why not)."""
        if self._single is not None:
            return self._single, None
        if self._capture is not None:
            return self._video_frame(position)
        path = self._by_stem.get(Path(source).stem)
        if path is None:
            if position >= len(self._files):
                return None, f"no depth file for {Path(source).name} (by name or as number {position + 1})"
            path = self._files[position]
        try:
            return read_depth_file(path, self.scale_m), None
        except DepthError as exc:
            return None, str(exc)

    def _video_frame(self, position: int) -> tuple[np.ndarray | None, str | None]:
        """Frame ``position`` of the depth video (read forward; frames are never skipped backwards)."""
        assert self._capture is not None
        frame = None
        while self._video_index <= position:
            ok, frame = self._capture.read()
            self._video_index += 1
            if not ok:
                return None, f"{self.path}: depth video ended before colour frame {position}"
        if frame is None:
            return None, f"{self.path}: depth video frame {position} was already passed"
        try:
            return _to_metres(frame[..., 0] if frame.ndim == 3 else frame, self.scale_m, str(self.path)), None
        except DepthError as exc:
            return None, str(exc)

    def close(self) -> None:
        """Release a depth video."""
        if self._capture is not None:
            self._capture.release()
