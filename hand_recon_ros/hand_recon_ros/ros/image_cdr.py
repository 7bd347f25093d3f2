"""sensor_msgs/Image read straight from its serialized CDR bytes: the pixel data stays a view, never copied.

rclpy's own deserialisation copies a camera frame's ``data`` into an ``array.array`` (about 2 ms for a 640x960
rgb8 frame on a loaded 2-core CPU); the node subscribes with ``raw=True`` and reads the few header fields here.
Anything this reader does not expect (another encapsulation, a truncated buffer) falls back to rclpy's
deserialisation, so the result is always the message the publisher sent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

# CDR encapsulation identifiers (first two bytes, big-endian): plain CDR, big- and little-endian.
CDR_BE = 0x0000
CDR_LE = 0x0001
ENCAPSULATION_BYTES = 4


class CdrFormatError(ValueError):
    """Serialized bytes that are not a plain-CDR sensor_msgs/Image; the message says where it stopped."""


@dataclass
class RawImage:
    """The fields of a sensor_msgs/Image that the node reads; ``data`` is a memoryview into the received bytes."""

    header: Any
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


class _Reader:
    """Sequential CDR reader; alignment is relative to the end of the encapsulation header."""

    def __init__(self, buffer: memoryview, little: bool) -> None:
        self.buffer = buffer
        self.pos = ENCAPSULATION_BYTES
        self.prefix = "<" if little else ">"

    def _align(self, size: int) -> None:
        offset = (self.pos - ENCAPSULATION_BYTES) % size
        if offset:
            self.pos += size - offset

    def _take(self, count: int) -> memoryview:
        if self.pos + count > len(self.buffer):
            raise CdrFormatError(f"truncated at byte {self.pos}: need {count} more of {len(self.buffer)}")
        view = self.buffer[self.pos:self.pos + count]
        self.pos += count
        return view

    def u32(self) -> int:
        self._align(4)
        return int(struct.unpack(self.prefix + "I", self._take(4))[0])

    def i32(self) -> int:
        self._align(4)
        return int(struct.unpack(self.prefix + "i", self._take(4))[0])

    def u8(self) -> int:
        return int(self._take(1)[0])

    def string(self) -> str:
        length = self.u32()  # includes the terminating NUL
        raw = bytes(self._take(length))
        return raw[:-1].decode("utf-8") if length else ""

    def octets(self) -> memoryview:
        return self._take(self.u32())


def parse_image_cdr(serialized: bytes | memoryview) -> RawImage:
    """The Image fields of plain-CDR bytes; raises CdrFormatError when the bytes are not one (or are cut short)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    buffer = memoryview(serialized).cast("B")
    if len(buffer) < ENCAPSULATION_BYTES:
        raise CdrFormatError(f"{len(buffer)} bytes is shorter than the CDR encapsulation header")
    kind = (buffer[0] << 8) | buffer[1]
    if kind not in (CDR_BE, CDR_LE):
        raise CdrFormatError(f"encapsulation 0x{kind:04x} is not plain CDR")
    reader = _Reader(buffer, little=(kind == CDR_LE))
    stamp = Time(sec=reader.i32(), nanosec=reader.u32())
    header = Header(stamp=stamp, frame_id=reader.string())
    height, width = reader.u32(), reader.u32()
    encoding = reader.string()
    is_bigendian = reader.u8()
    step = reader.u32()
    data = reader.octets()
    return RawImage(header, height, width, encoding, is_bigendian, step, data)


def image_from_serialized(serialized: bytes | memoryview) -> Any:
    """A RawImage from the bytes, or (for anything parse_image_cdr refuses) rclpy's deserialised Image."""
    try:
        return parse_image_cdr(serialized)
    except CdrFormatError:
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image

        return deserialize_message(bytes(serialized), Image)
