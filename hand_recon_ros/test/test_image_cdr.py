"""sensor_msgs/Image read from its CDR bytes (the node's raw subscription) against rclpy's own serialisation."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from hand_recon_ros.io.image_conversion import image_msg_to_rgb
from hand_recon_ros.ros.image_cdr import CdrFormatError, image_from_serialized, parse_image_cdr


def _image(frame_id: str, encoding: str, height: int = 5, width: int = 7, channels: int = 3) -> Image:
    msg = Image()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = -3, 999_999_999
    msg.height, msg.width, msg.encoding, msg.is_bigendian = height, width, encoding, 1
    msg.step = width * channels + 2  # padded rows
    msg.data = np.random.default_rng(len(frame_id)).integers(0, 256, msg.step * height, dtype=np.uint8).tobytes()
    return msg


# Frame ids of every length mod 4 move the following fields across CDR alignment boundaries.
@pytest.mark.parametrize("frame_id", ["", "a", "ab", "abc", "camera_optical_frame", "ü-frame"])
@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono16"])
def test_fields_match_what_was_serialised(frame_id, encoding):
    msg = _image(frame_id, encoding, channels=4 if encoding == "bgra8" else 3)
    raw = parse_image_cdr(serialize_message(msg))
    assert raw.header.frame_id == frame_id
    assert (raw.header.stamp.sec, raw.header.stamp.nanosec) == (-3, 999_999_999)
    assert (raw.height, raw.width, raw.encoding, raw.is_bigendian, raw.step) == (5, 7, encoding, 1, msg.step)
    assert bytes(raw.data) == bytes(msg.data)


def test_pixels_are_a_view_and_decode_like_the_message():
    msg = _image("cam", "rgb8")
    msg.is_bigendian = 0
    serialized = serialize_message(msg)
    raw = image_from_serialized(serialized)
    assert isinstance(raw.data, memoryview) and raw.data.obj is serialized  # no copy of the pixels
    np.testing.assert_array_equal(image_msg_to_rgb(raw), image_msg_to_rgb(msg))


def test_truncated_or_foreign_bytes_are_refused_with_the_reason():
    serialized = serialize_message(_image("cam", "rgb8"))
    with pytest.raises(CdrFormatError, match=r"truncated at byte \d+"):
        parse_image_cdr(serialized[:-10])
    with pytest.raises(CdrFormatError, match="encapsulation 0x0003 is not plain CDR"):
        parse_image_cdr(b"\x00\x03\x00\x00" + serialized[4:])
    with pytest.raises(CdrFormatError, match="shorter than the CDR encapsulation header"):
        parse_image_cdr(b"\x00")
