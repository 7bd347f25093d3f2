"""sensor_msgs/Image depth messages -> float32 metres (16UC1 / mono16 times a scale, 32FC1 metres), numpy only.

Takes the message fields (or any object carrying them), so it runs and is tested without ROS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hand_recon_ros.io.image_conversion import MAX_IMAGE_SIDE_PX
from hand_recon_ros.pipeline.depth_fusion import DepthError, depth_to_metres

# Depth encodings we read: numpy dtype (little-endian) per encoding (sensor_msgs/image_encodings.hpp names).
DEPTH_ENCODINGS: dict[str, str] = {"16UC1": "u2", "mono16": "u2", "32FC1": "f4"}


def depth_fields_to_metres(height: int, width: int, encoding: str, step: int, is_bigendian: bool | int, data: Any,
                           scale_m: float) -> np.ndarray:
    """Decode raw depth Image fields into float32 metres (H, W); 16-bit units times ``scale_m``, 32FC1 as metres.
    DepthError names the field and value that do not fit."""
    if encoding not in DEPTH_ENCODINGS:
        raise DepthError(f"unsupported depth encoding '{encoding}'; supported: {', '.join(DEPTH_ENCODINGS)}")
    if height <= 0 or width <= 0 or height > MAX_IMAGE_SIDE_PX or width > MAX_IMAGE_SIDE_PX:
        raise DepthError(f"depth image size {width}x{height} is not usable")
    kind = DEPTH_ENCODINGS[encoding]
    itemsize = int(kind[1])
    if step < width * itemsize:
        raise DepthError(f"depth step {step} is smaller than width*{itemsize} = {width * itemsize} ({encoding})")
    buffer = np.frombuffer(memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data, np.uint8)
    if buffer.size < step * height:
        raise DepthError(f"depth data has {buffer.size} bytes, expected step*height = {step * height}")
    rows = np.ascontiguousarray(buffer[: step * height].reshape(height, step)[:, : width * itemsize])
    values = rows.view(np.dtype((">" if is_bigendian else "<") + kind)).reshape(height, width)
    return depth_to_metres(values.astype(values.dtype.newbyteorder("=")), scale_m if itemsize == 2 else 1.0)


def depth_msg_to_metres(msg: Any, scale_m: float) -> np.ndarray:
    """Decode a depth sensor_msgs/Image into float32 metres (H, W)."""
    return depth_fields_to_metres(int(msg.height), int(msg.width), str(msg.encoding), int(msg.step),
                                  bool(msg.is_bigendian), msg.data, scale_m)
