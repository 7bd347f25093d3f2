"""Images from rosbag2 files (MCAP or sqlite3) with `rosbags`, no ROS install needed.

``iter_bag_images(path, topic)`` yields ``BagImage(stamp_s, frame_id, rgb)`` for every sensor_msgs/Image or
sensor_msgs/CompressedImage message on the topic, decoded by the same code as the ROS node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hand_recon_ros.io.image_conversion import compressed_msg_to_rgb, image_msg_to_rgb

IMAGE_MSGTYPES: tuple[str, ...] = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class BagError(ValueError):
    """A bag that cannot be read, or a topic that is missing or not an image topic (the message lists topics)."""


class BagImage(NamedTuple):
    """One decoded image: header stamp (s; the bag's record time when the header stamp is zero), frame, RGB."""

    stamp_s: float
    frame_id: str
    rgb: np.ndarray


def _image_topics(connections: list) -> dict[str, str]:
    return {c.topic: c.msgtype for c in connections if c.msgtype in IMAGE_MSGTYPES}


def list_image_topics(path: str | Path) -> dict[str, str]:
    """Image topics in the bag and their message types."""
    from rosbags.highlevel import AnyReader

    with AnyReader([Path(path)], default_typestore=_typestore()) as reader:
        return _image_topics(list(reader.connections))


def _typestore():  # noqa: ANN202 - rosbags type, imported lazily
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def iter_bag_images(path: str | Path, topic: str | None = None) -> Iterator[BagImage]:
    """Every image on ``topic`` (the bag's only image topic when None), in record order.

    Raises BagError naming the bag and the available image topics when the topic is missing or ambiguous;
    a message that cannot be decoded raises ImageConversionError naming the message's index and problem.
    """
    from rosbags.highlevel import AnyReader

    from hand_recon_ros.io.image_conversion import ImageConversionError

    bag = Path(path)
    if not bag.exists():
        raise BagError(f"bag not found: {bag}")
    try:
        reader = AnyReader([bag], default_typestore=_typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several reader error types
        raise BagError(f"cannot open bag {bag}: {exc}") from exc
    try:
        topics = _image_topics(list(reader.connections))
        if topic is None:
            if len(topics) != 1:
                raise BagError(f"{bag}: choose an image topic with --topic; image topics: {sorted(topics) or 'none'}")
            topic = next(iter(topics))
        all_topics = {c.topic: c.msgtype for c in reader.connections}
        if topic not in all_topics:
            raise BagError(f"{bag}: no topic '{topic}'; image topics: {sorted(topics) or 'none'}")
        if topic not in topics:
            raise BagError(f"{bag}: topic '{topic}' holds {all_topics[topic]}, not an image type {IMAGE_MSGTYPES}")
        connections = [c for c in reader.connections if c.topic == topic]
        for index, (connection, record_ns, raw) in enumerate(reader.messages(connections=connections)):
            msg = reader.deserialize(raw, connection.msgtype)
            try:
                if connection.msgtype.endswith("CompressedImage"):
                    rgb = compressed_msg_to_rgb(msg)
                else:
                    rgb = image_msg_to_rgb(msg)
            except ImageConversionError as exc:
                raise ImageConversionError(f"{bag}: {topic} message {index}: {exc}") from exc
            stamp = msg.header.stamp
            stamp_s = stamp.sec + stamp.nanosec * 1e-9 if (stamp.sec or stamp.nanosec) else record_ns * 1e-9
            yield BagImage(float(stamp_s), str(msg.header.frame_id), rgb)
    finally:
        reader.close()
