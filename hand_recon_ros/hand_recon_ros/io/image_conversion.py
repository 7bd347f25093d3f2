"""sensor_msgs/Image and CompressedImage <-> RGB numpy arrays, in numpy and OpenCV only (no cv_bridge).

The functions take the message fields (or any object carrying them), so they run and are tested without ROS.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# Encodings we decode, with (channels, bytes per channel). Names as in sensor_msgs/image_encodings.hpp.
ENCODING_LAYOUT: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "mono16": (1, 2),
    "16UC1": (1, 2),
    "yuv422": (2, 1),  # UYVY
    "uyvy": (2, 1),
    "yuv422_yuy2": (2, 1),  # YUYV
    "yuyv": (2, 1),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(ENCODING_LAYOUT)
# Largest image side we accept (pixels): anything beyond is a corrupt header, not a camera.
MAX_IMAGE_SIDE_PX = 16384
# Largest decoded size of a CompressedImage (pixels), checked in the PNG/JPEG header before decoding: a 2.6 MB
# PNG can declare 30000x30000 and make OpenCV allocate 5 GB.
MAX_COMPRESSED_PIXELS = 8192 * 8192
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the size): C0..CF except DHT (C4), JPG (C8) and DAC (CC).
JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# mono16/16UC1: significant bits per pixel when the caller does not say (0 = read from the data: the highest
# set bit of the brightest pixel, at least 8), and the range a caller may give.
MONO16_BITS_FROM_DATA = 0
MONO16_MIN_BITS, MONO16_MAX_BITS = 1, 16


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an RGB array; the message names the field and value."""


def mono16_to_mono8(values: np.ndarray, bits: int = MONO16_BITS_FROM_DATA) -> np.ndarray:
    """The top 8 of ``bits`` significant bits of 16-bit pixels (a 12-bit sensor: >> 4), saturating above them.

    ``bits`` 0 reads the depth from the data (highest set bit of the brightest pixel, at least 8).
    """
    if bits == MONO16_BITS_FROM_DATA:
        bits = max(8, int(values.max(initial=0)).bit_length())
    if not MONO16_MIN_BITS <= bits <= MONO16_MAX_BITS:
        raise ImageConversionError(f"mono16 bit depth must be {MONO16_MIN_BITS}..{MONO16_MAX_BITS} (or 0 = from "
                                   f"the data), got {bits}")
    wide = values.astype(np.uint32)
    scaled = wide >> (bits - 8) if bits >= 8 else wide << (8 - bits)
    return np.minimum(scaled, 255).astype(np.uint8)


def image_fields_to_rgb(
    height: int, width: int, encoding: str, step: int, is_bigendian: bool | int, data: Any,
    mono16_bits: int = MONO16_BITS_FROM_DATA, copy: bool = True,
) -> np.ndarray:
    """Decode raw sensor_msgs/Image fields into an RGB uint8 (H, W, 3) array (a fresh, contiguous copy).

    ``mono16_bits``: significant bits of mono16/16UC1 pixels (see mono16_to_mono8; 0 = from the data).
    ``copy=False``: an rgb8 image whose rows are unpadded comes back as a read-only view of ``data`` (no copy of
    the frame; the caller must own ``data`` and not change it while the array is used); others are converted.
    """
    if encoding not in ENCODING_LAYOUT:
        raise ImageConversionError(
            f"unsupported image encoding '{encoding}'; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size: {width}x{height} ({encoding})")
    if height > MAX_IMAGE_SIDE_PX or width > MAX_IMAGE_SIDE_PX:
        raise ImageConversionError(f"image size {width}x{height} exceeds {MAX_IMAGE_SIDE_PX} px per side")
    channels, depth = ENCODING_LAYOUT[encoding]
    row_bytes = width * channels * depth
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv") and width % 2:
        raise ImageConversionError(f"{encoding} image width must be even, got {width}")
    if step < row_bytes:
        raise ImageConversionError(
            f"image step {step} is smaller than width*channels*bytes = {row_bytes} ({width} px, {encoding})"
        )
    buffer = np.frombuffer(memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data, np.uint8)
    if buffer.size < step * height:
        raise ImageConversionError(
            f"image data has {buffer.size} bytes, expected step*height = {step}*{height} = {step * height}"
        )
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes]
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        mono16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        mono8 = mono16_to_mono8(mono16, mono16_bits)
        return cv2.cvtColor(mono8, cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, channels)
    if encoding == "rgb8":
        if not copy and step == row_bytes:
            view = pixels.view()
            view.flags.writeable = False
            return view
        return pixels.copy()
    conversion = {
        "bgr8": cv2.COLOR_BGR2RGB,
        "rgba8": cv2.COLOR_RGBA2RGB,
        "bgra8": cv2.COLOR_BGRA2RGB,
        "mono8": cv2.COLOR_GRAY2RGB,
        "8UC1": cv2.COLOR_GRAY2RGB,
        "yuv422": cv2.COLOR_YUV2RGB_UYVY,
        "uyvy": cv2.COLOR_YUV2RGB_UYVY,
        "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
        "yuyv": cv2.COLOR_YUV2RGB_YUY2,
    }[encoding]
    source = np.ascontiguousarray(pixels[..., 0] if channels == 1 else pixels)
    return cv2.cvtColor(source, conversion)


def image_msg_to_rgb(msg: Any, mono16_bits: int = MONO16_BITS_FROM_DATA, copy: bool = True) -> np.ndarray:
    """Decode a sensor_msgs/Image into an RGB uint8 (H, W, 3) array; ImageConversionError names what is wrong
    (``copy``: see image_fields_to_rgb)."""
    return image_fields_to_rgb(
        int(msg.height), int(msg.width), str(msg.encoding), int(msg.step), bool(msg.is_bigendian), msg.data,
        mono16_bits, copy,
    )


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, or None when none comes before the scan data."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in JPEG_SOF_MARKERS and pos + 9 <= len(data):
            return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        pos += 2 + length
    return None


def compressed_image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared in a PNG or JPEG header without decoding; None for other or unreadable data."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def compressed_to_rgb(data: Any, format_name: str = "") -> np.ndarray:
    """Decode the bytes of a sensor_msgs/CompressedImage (JPEG, PNG, ...) into RGB uint8 (H, W, 3) with OpenCV.

    A PNG/JPEG whose header declares more than MAX_COMPRESSED_PIXELS (or a side over MAX_IMAGE_SIDE_PX) is
    refused before decoding, so a small message cannot make the node allocate gigabytes.
    """
    buffer = np.frombuffer(memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data, np.uint8)
    if buffer.size == 0:
        raise ImageConversionError(f"compressed image ('{format_name}') has no data")
    size = compressed_image_size(buffer[:65536].tobytes())
    if size is not None:
        width, height = size
        if width * height > MAX_COMPRESSED_PIXELS or max(width, height) > MAX_IMAGE_SIDE_PX:
            raise ImageConversionError(
                f"compressed image ('{format_name}') declares {width}x{height} pixels; the limit is "
                f"{MAX_COMPRESSED_PIXELS} pixels and {MAX_IMAGE_SIDE_PX} px per side"
            )
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageConversionError(f"compressed image ('{format_name}', {buffer.size} bytes) could not be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def compressed_msg_to_rgb(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage message into RGB uint8 (H, W, 3)."""
    return compressed_to_rgb(msg.data, str(msg.format))


def rgb_to_image_fields(rgb: np.ndarray) -> dict[str, Any]:
    """Fields of an rgb8 sensor_msgs/Image for an RGB uint8 (H, W, 3) array (height, width, encoding, step, data)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f"expected an RGB uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": width * 3,
        "data": np.ascontiguousarray(rgb).tobytes(),
    }

