"""io.image_conversion: every supported encoding against an OpenCV/numpy reference, step, endianness, refusals."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hand_recon_ros.io.image_conversion import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_to_rgb,
    image_fields_to_rgb,
    rgb_to_image_fields,
)

H, W = 6, 8


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _pad(rows: np.ndarray, extra: int) -> tuple[bytes, int]:
    """Row bytes with ``extra`` padding bytes per row; returns data and step."""
    flat = rows.reshape(rows.shape[0], -1)
    padded = np.concatenate([flat, np.full((flat.shape[0], extra), 77, np.uint8)], axis=1)
    return padded.tobytes(), padded.shape[1]


@pytest.mark.parametrize("extra", [0, 5])
def test_colour_encodings_round_to_rgb(rgb: np.ndarray, extra: int) -> None:
    variants = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.dstack([rgb, np.full((H, W), 9, np.uint8)]),
        "bgra8": np.dstack([rgb[..., ::-1], np.full((H, W), 9, np.uint8)]),
    }
    for encoding, pixels in variants.items():
        data, step = _pad(np.ascontiguousarray(pixels), extra)
        out = image_fields_to_rgb(H, W, encoding, step, False, data)
        assert out.dtype == np.uint8 and out.shape == (H, W, 3) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)


def test_mono8_and_mono16_both_endians(rgb: np.ndarray) -> None:
    grey = rgb[..., 0]
    out = image_fields_to_rgb(H, W, "mono8", W, False, grey.tobytes())
    np.testing.assert_array_equal(out, np.dstack([grey] * 3))
    wide = grey.astype(np.uint16) * 256 + 255  # high byte carries the value
    for big in (False, True):
        data = wide.astype(">u2" if big else "<u2").tobytes()
        out = image_fields_to_rgb(H, W, "mono16", W * 2, big, data)
        np.testing.assert_array_equal(out[..., 1], grey)


def test_yuv422_variants_decode_to_the_source_colours(rgb: np.ndarray) -> None:
    pairs = np.repeat(rgb[:, ::2], 2, axis=1).astype(np.float64)  # one colour per pixel pair: no chroma loss
    r, g, b = pairs[..., 0], pairs[..., 1], pairs[..., 2]
    # BT.601 video range, the YUV 4:2:2 of cameras (sensor_msgs yuv422 / yuv422_yuy2)
    y = np.round(16 + 0.257 * r + 0.504 * g + 0.098 * b).astype(np.uint8)
    u = np.round(128 - 0.148 * r - 0.291 * g + 0.439 * b).astype(np.uint8)[:, ::2]
    v = np.round(128 + 0.439 * r - 0.368 * g - 0.071 * b).astype(np.uint8)[:, ::2]
    uyvy = np.stack([u, y[:, ::2], v, y[:, 1::2]], axis=-1).reshape(H, W * 2)
    yuyv = np.stack([y[:, ::2], u, y[:, 1::2], v], axis=-1).reshape(H, W * 2)
    a = image_fields_to_rgb(H, W, "yuv422", W * 2, False, uyvy.tobytes())
    b_ = image_fields_to_rgb(H, W, "yuv422_yuy2", W * 2, False, yuyv.tobytes())
    np.testing.assert_array_equal(a, b_)
    assert np.abs(a.astype(int) - pairs.astype(int)).max() <= 4


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((H, W, "bayer_rggb8", W, False, bytes(H * W)), "unsupported image encoding 'bayer_rggb8'"),
        ((0, W, "rgb8", W * 3, False, b""), "zero size"),
        ((H, 0, "rgb8", 0, False, b""), "zero size"),
        ((H, W, "rgb8", W * 3 - 1, False, bytes(H * W * 3)), "step 23 is smaller"),
        ((H, W, "rgb8", W * 3, False, bytes(10)), "has 10 bytes, expected step\\*height = 24\\*6"),
        ((H, 7, "yuv422", 14, False, bytes(H * 14)), "width must be even"),
        ((10**6, W, "rgb8", W * 3, False, b""), "exceeds"),
    ],
)
def test_bad_messages_are_refused_with_the_problem_named(fields: tuple, message: str) -> None:
    with pytest.raises(ImageConversionError, match=message):
        image_fields_to_rgb(*fields)


def test_compressed_decodes_png_and_refuses_garbage(rgb: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb(png.tobytes(), "png"), rgb)
    with pytest.raises(ImageConversionError, match="could not be decoded"):
        compressed_to_rgb(b"not an image at all", "jpeg")
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_rgb(b"", "jpeg")


def test_rgb_to_image_fields_round_trip(rgb: np.ndarray) -> None:
    fields = rgb_to_image_fields(rgb)
    assert (fields["encoding"], fields["step"]) == ("rgb8", W * 3)
    back = image_fields_to_rgb(fields["height"], fields["width"], fields["encoding"], fields["step"],
                               fields["is_bigendian"], fields["data"])
    np.testing.assert_array_equal(back, rgb)
    with pytest.raises(ImageConversionError, match="expected an RGB uint8"):
        rgb_to_image_fields(rgb.astype(np.float32))


def test_message_objects_are_accepted(rgb: np.ndarray) -> None:
    import sensor_msgs.msg as sensor_msgs  # ROS messages are required: never skipped

    from hand_recon_ros.io.image_conversion import image_msg_to_rgb
    from hand_recon_ros.ros.image_message import rgb_to_image_msg

    msg = rgb_to_image_msg(rgb)
    assert isinstance(msg, sensor_msgs.Image)
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)
    assert "mono16" in SUPPORTED_ENCODINGS and "yuv422_yuy2" in SUPPORTED_ENCODINGS


@pytest.mark.parametrize("bits", [10, 12, 14])
def test_mono16_uses_the_real_bit_depth(rgb: np.ndarray, bits: int) -> None:
    """A 10/12/14-bit sensor in mono16 fills its own range: the top 8 of its bits, given or read from the data."""
    grey = rgb[..., 0].copy()
    grey[0, 0] = 255  # the brightest pixel uses the top bit, as a real exposure would somewhere
    wide = (grey.astype(np.uint16) << (bits - 8)) | ((1 << (bits - 8)) - 1)  # low bits carry noise-like ones
    data = wide.astype("<u2").tobytes()
    for given in (bits, 0):
        out = image_fields_to_rgb(H, W, "16UC1", W * 2, False, data, mono16_bits=given)
        np.testing.assert_array_equal(out[..., 0], grey, err_msg=f"mono16_bits={given}")


def test_mono16_saturates_above_the_given_depth_and_refuses_a_bad_one() -> None:
    data = np.array([[0, 1023, 4095, 65535]], "<u2").tobytes()
    out = image_fields_to_rgb(1, 4, "mono16", 8, False, data, mono16_bits=10)
    assert out[0, :, 0].tolist() == [0, 255, 255, 255]
    with pytest.raises(ImageConversionError, match="bit depth"):
        image_fields_to_rgb(1, 4, "mono16", 8, False, data, mono16_bits=17)


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


def test_compressed_header_sizes_are_read_without_decoding(rgb: np.ndarray) -> None:
    from hand_recon_ros.io.image_conversion import compressed_image_size

    jpeg = cv2.imencode(".jpg", rgb)[1].tobytes()
    png = cv2.imencode(".png", rgb)[1].tobytes()
    assert compressed_image_size(jpeg) == (W, H)
    assert compressed_image_size(png) == (W, H)
    assert compressed_image_size(b"GIF89a....") is None
    progressive = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert compressed_image_size(progressive) == (W, H)


def test_compressed_image_declaring_a_huge_size_is_refused_before_decoding(rgb: np.ndarray) -> None:
    """A 2.6 MB PNG declaring 30000x30000 made OpenCV allocate 5 GB; the header alone is enough to refuse it."""
    with pytest.raises(ImageConversionError, match="declares 30000x30000 pixels"):
        compressed_to_rgb(_png_header(30000, 30000), "png")
    jpeg = bytearray(cv2.imencode(".jpg", rgb)[1].tobytes())
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = (40000).to_bytes(2, "big") + (12000).to_bytes(2, "big")  # height, width
    with pytest.raises(ImageConversionError, match="declares 12000x40000 pixels"):
        compressed_to_rgb(bytes(jpeg), "jpeg")


def test_rgb8_without_copy_is_a_read_only_view_of_the_data(rgb) -> None:
    """copy=False (the node: the frame's own bytes): no copy of an unpadded rgb8 frame, and nobody can write it."""
    data = bytearray(rgb.tobytes())
    out = image_fields_to_rgb(H, W, "rgb8", W * 3, False, data, copy=False)
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(data, np.uint8)) and not out.flags.writeable
    padded, step = _pad(rgb, 5)  # padded rows: a contiguous copy as before
    copied = image_fields_to_rgb(H, W, "rgb8", step, False, padded, copy=False)
    np.testing.assert_array_equal(copied, rgb)
    assert copied.flags.c_contiguous and copied.flags.writeable
    assert image_fields_to_rgb(H, W, "rgb8", W * 3, False, data).flags.writeable  # the default still copies
