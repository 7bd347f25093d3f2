"""The 21-joint hand skeleton shared by every stage (order documented in hand_recon_msgs/Hand.msg)."""

from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
NUM_JOINTS = 21

WRIST = 0
THUMB = (1, 2, 3, 4)
INDEX = (5, 6, 7, 8)
MIDDLE = (9, 10, 11, 12)
RING = (13, 14, 15, 16)
PINKY = (17, 18, 19, 20)
FINGERS: tuple[tuple[int, int, int, int], ...] = (THUMB, INDEX, MIDDLE, RING, PINKY)
MIDDLE_MCP = 9

# Parent of each joint in the kinematic tree (-1 for the root).
PARENTS: tuple[int, ...] = (
    -1,
    0, 1, 2, 3,
    0, 5, 6, 7,
    0, 9, 10, 11,
    0, 13, 14, 15,
    0, 17, 18, 19,
)
# (parent, child) pairs: the 20 bones.
BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

# InterHand2.6M stores each hand tip→base per finger, thumb first, wrist last; this maps our order to it.
INTERHAND_TO_OURS: tuple[int, ...] = (20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16)

SIDES: tuple[str, str] = ("left", "right")
