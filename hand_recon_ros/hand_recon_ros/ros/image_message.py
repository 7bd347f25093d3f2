"""An rgb8 sensor_msgs/Image built from an RGB array: the ROS-message end of io.image_conversion."""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from hand_recon_ros.io.image_conversion import rgb_to_image_fields


def rgb_to_image_msg(rgb: np.ndarray, header: Any = None) -> Any:
    """A sensor_msgs/Image (rgb8) holding ``rgb``, with ``header`` copied in when given."""
    msg = Image()
    if header is not None:
        msg.header = header
    fields = rgb_to_image_fields(rgb)
    msg.height, msg.width = fields["height"], fields["width"]
    msg.encoding, msg.is_bigendian, msg.step = fields["encoding"], fields["is_bigendian"], fields["step"]
    msg.data = fields["data"]
    return msg
