"""Camera intrinsics from the command line: "fx,fy,cx,cy", a MAP.json (file name → [fx, fy, cx, cy]) or a
ROS CameraInfo YAML (camera_calibration's format: image_width/height, camera_matrix.data, distortion_coefficients).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hand_recon_ros.pipeline.camera import DISTORTION_MODELS
from hand_recon_ros.pipeline.types import CameraIntrinsics, IntrinsicsError


def _four_numbers(values: Any, where: str) -> tuple[float, float, float, float]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise IntrinsicsError(f"{where}: expected 4 numbers fx,fy,cx,cy, got {values!r}") from exc
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise IntrinsicsError(f"{where}: expected 4 finite numbers fx,fy,cx,cy, got {values!r}")
    return numbers  # type: ignore[return-value]


def parse_intrinsics_arg(text: str) -> tuple[float, float, float, float]:
    """Parse "fx,fy,cx,cy" (pixels); IntrinsicsError naming the text when it is not 4 numbers."""
    return _four_numbers([p.strip() for p in text.split(",")], "--intrinsics")


def load_intrinsics_map(path: str | Path) -> dict[str, tuple[float, float, float, float]]:
    """Read MAP.json: {"image.jpg": [fx, fy, cx, cy], ...}; keys are matched by file name."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IntrinsicsError(f"{path}: cannot read intrinsics map ({exc})") from exc
    if not isinstance(data, dict):
        raise IntrinsicsError(f"{path}: must be a JSON object mapping file names to [fx, fy, cx, cy]")
    return {Path(str(k)).name: _four_numbers(v, f"{path}[{k!r}]") for k, v in data.items()}


def load_camera_info_yaml(path: str | Path) -> CameraIntrinsics:
    """Read a ROS CameraInfo / camera_calibration YAML file into CameraIntrinsics (with distortion)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise IntrinsicsError(f"{path}: cannot read camera info ({exc})") from exc
    if not isinstance(data, dict):
        raise IntrinsicsError(f"{path}: not a CameraInfo YAML mapping")
    try:
        width, height = int(data.get("image_width", data.get("width"))), int(data.get("image_height",
                                                                                    data.get("height")))
        matrix = data.get("camera_matrix", data.get("k", data.get("K")))
        values = matrix["data"] if isinstance(matrix, dict) else matrix
        k = [float(v) for v in values]
        dist_block = data.get("distortion_coefficients", data.get("d", data.get("D", [])))
        dist = dist_block["data"] if isinstance(dist_block, dict) else (dist_block or [])
        distortion = tuple(float(v) for v in dist)
        model = str(data.get("distortion_model") or "plumb_bob")
    except (TypeError, KeyError, ValueError) as exc:
        raise IntrinsicsError(f"{path}: needs image_width, image_height and camera_matrix.data (9 numbers): {exc}"
                              ) from exc
    if len(k) != 9:
        raise IntrinsicsError(f"{path}: camera_matrix must have 9 numbers, got {len(k)}")
    if model not in DISTORTION_MODELS:
        raise IntrinsicsError(f"{path}: distortion_model {model!r} is not one of {', '.join(DISTORTION_MODELS)}")
    return CameraIntrinsics(k[0], k[4], k[2], k[5], width, height, distortion, known=True, distortion_model=model)


def intrinsics_for(numbers: tuple[float, float, float, float], width: int, height: int) -> CameraIntrinsics:
    """CameraIntrinsics for an image of the given size from fx, fy, cx, cy."""
    fx, fy, cx, cy = numbers
    return CameraIntrinsics(fx, fy, cx, cy, width, height, (), known=True)
