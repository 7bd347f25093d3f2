"""INT8 calibration images: the folder's files, their digest (part of every INT8 key), and network-shaped arrays.

Shared by the ONNX INT8 graph maker (``precision_graphs``) and the TensorRT backend, so both read one folder the
same way and key it the same way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from hand_recon_ros.engines.base import BackendError
from hand_recon_ros.engines.engine_cache import sha256_file

DEFAULT_CALIB_MAX_IMAGES = 256
CALIB_IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
#: Fewest calibration samples (images, or hand crops for the landmark network) one INT8 calibration accepts:
#: fewer give activation ranges from a handful of pixels. It is also the batch the calibration reads at once.
MIN_CALIBRATION_SAMPLES = 8


def calibration_files(calib_dir: str | Path, max_images: int = DEFAULT_CALIB_MAX_IMAGES) -> list[Path]:
    """Sorted image files in ``calib_dir`` (at most ``max_images``); an empty or missing folder is an error."""
    folder = Path(calib_dir)
    if not folder.is_dir():
        raise BackendError(f"calibration folder not found: {folder} (fix: --calib-dir / calib_dir must name a "
                           "folder of representative images)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in CALIB_IMAGE_SUFFIXES)[:max_images]
    if not files:
        raise BackendError(f"calibration folder {folder} has no images ({', '.join(CALIB_IMAGE_SUFFIXES)}); "
                           "fix: put representative camera images in it")
    return files


def calibration_digest(files: list[Path]) -> str:
    """sha256 over the calibration images' names and bytes (part of every INT8 key)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def read_rgb_images(files: list[Path]) -> list[np.ndarray]:
    """The readable images among ``files`` as RGB uint8; unreadable files are skipped (an empty result is an
    error naming the folder, since a folder of broken files would otherwise calibrate on nothing)."""
    import cv2

    images = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not images and files:
        raise BackendError(f"calibration folder {files[0].parent}: none of its {len(files)} image files can be read "
                           "(corrupt or not images); fix: put readable JPEG/PNG images in it")
    return images


def letterbox(image_rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize keeping aspect ratio into height×width, zero border (MediaPipe's palm input convention)."""
    import cv2

    scale = min(height / image_rgb.shape[0], width / image_rgb.shape[1])
    new_h = max(1, round(image_rgb.shape[0] * scale))
    new_w = max(1, round(image_rgb.shape[1] * scale))
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, image_rgb.shape[2]), dtype=resized.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def load_calibration_images(files: list[Path], input_shape: tuple[int, ...]) -> np.ndarray:
    """Images preprocessed like the network input: RGB, letterboxed to H×W, float32 in [0, 1], NHWC or NCHW.

    ``input_shape`` is one input's shape without the batch axis: (H, W, 3) or (3, H, W).
    """
    if len(input_shape) != 3 or 3 not in (input_shape[0], input_shape[-1]):
        raise BackendError(f"INT8 calibration needs an image input (H,W,3) or (3,H,W); the model has {input_shape}")
    channels_last = input_shape[-1] == 3
    height, width = (input_shape[0], input_shape[1]) if channels_last else (input_shape[1], input_shape[2])
    batch = []
    for path, rgb in zip(files, _read_each(files)):
        if rgb is None:
            raise BackendError(f"calibration image cannot be read: {path}")
        image = letterbox(rgb, height, width).astype(np.float32) / 255.0
        batch.append(image if channels_last else image.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(batch))


def _read_each(files: list[Path]) -> list[np.ndarray | None]:
    import cv2

    out: list[np.ndarray | None] = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        out.append(None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def check_sample_count(samples: np.ndarray, source: str) -> np.ndarray:
    """``samples`` when there are at least MIN_CALIBRATION_SAMPLES, else an error saying how many are needed."""
    if len(samples) < MIN_CALIBRATION_SAMPLES:
        raise BackendError(
            f"INT8 calibration: {source} gave {len(samples)} calibration sample(s), at least "
            f"{MIN_CALIBRATION_SAMPLES} are needed (one calibration batch); fix: add images to the calibration "
            "folder")
    return samples
