"""ros.markers: the RViz contract (ids per side, DELETE on loss, no NaN/Inf, fixed TRIANGLE_LIST size, lifetime)."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import CUBE_FACES, synthetic_hand  # noqa: E402

from hand_recon_ros.pipeline.types import FrameResult  # noqa: E402
from hand_recon_ros.ros.markers import SIDE_MARKER_IDS, HandMarkerBuilder  # noqa: E402


def _frame(*hands) -> FrameResult:
    return FrameResult(640, 480, True, list(hands))


def _header() -> Header:
    header = Header()
    header.frame_id = "cam_optical"
    header.stamp.sec, header.stamp.nanosec = 12, 345
    return header


def _parts(array) -> dict[tuple[str, int], Marker]:
    return {(m.ns, m.id): m for m in array.markers}


def _all_finite(array) -> bool:
    values = []
    for m in array.markers:
        values += [v for p in m.points for v in (p.x, p.y, p.z)]
        values += [m.scale.x, m.scale.y, m.scale.z, m.pose.orientation.w]
    return all(math.isfinite(v) for v in values)


def test_two_hands_give_joints_and_bones_per_side_with_header_colour_and_lifetime() -> None:
    builder = HandMarkerBuilder(lifetime_s=1.25)
    array = builder.build(_frame(synthetic_hand("left", False), synthetic_hand("right", False)), _header())
    parts = _parts(array)
    assert set(parts) == {("joints", 0), ("joints", 1), ("bones", 0), ("bones", 1)}
    for m in array.markers:
        assert m.header.frame_id == "cam_optical" and (m.header.stamp.sec, m.header.stamp.nanosec) == (12, 345)
        assert (m.lifetime.sec, m.lifetime.nanosec) == (1, 250_000_000)
        assert m.action == Marker.ADD and m.pose.orientation.w == 1.0 and m.color.a > 0
    assert parts[("joints", 0)].type == Marker.SPHERE_LIST and len(parts[("joints", 0)].points) == 21
    assert parts[("bones", 0)].type == Marker.LINE_LIST and len(parts[("bones", 0)].points) == 40
    left, right = parts[("joints", 0)].color, parts[("joints", 1)].color
    assert (left.r, left.g, left.b) != (right.r, right.g, right.b)
    assert parts[("joints", 0)].points[0].x == pytest.approx(-0.1)
    assert SIDE_MARKER_IDS == {"left": 0, "right": 1}


def test_vanished_hand_is_deleted_once() -> None:
    builder = HandMarkerBuilder()
    builder.build(_frame(synthetic_hand("left", True), synthetic_hand("right", True)), _header())
    array = builder.build(_frame(synthetic_hand("right", True)), _header())
    parts = _parts(array)
    for ns in ("joints", "bones", "mesh"):
        assert parts[(ns, 0)].action == Marker.DELETE
        assert parts[(ns, 1)].action == Marker.ADD
    assert builder.build(_frame(synthetic_hand("right", True)), _header()).markers[0].action == Marker.ADD
    assert all(m.action == Marker.ADD for m in builder.build(_frame(synthetic_hand("right", True)), _header()).markers)
    deleted = builder.build(_frame(), _header())
    assert {(m.ns, m.id) for m in deleted.markers} == {("joints", 1), ("bones", 1), ("mesh", 1)}
    assert all(m.action == Marker.DELETE for m in deleted.markers)
    assert builder.build(_frame(), _header()).markers == []


def test_non_finite_joints_are_left_out_never_sent() -> None:
    hand = synthetic_hand("left", False)
    joints = hand.joints_3d.copy()
    joints[8] = np.nan  # index tip
    joints[3, 2] = np.inf  # thumb IP
    array = HandMarkerBuilder().build(_frame(dataclasses.replace(hand, joints_3d=joints)), _header())
    parts = _parts(array)
    assert len(parts[("joints", 0)].points) == 19
    assert len(parts[("bones", 0)].points) == 2 * (20 - 3)  # bones 2-3, 3-4, 7-8 dropped
    assert _all_finite(array)


def test_hand_without_any_finite_joint_counts_as_gone() -> None:
    builder = HandMarkerBuilder()
    builder.build(_frame(synthetic_hand("left", False)), _header())
    hand = synthetic_hand("left", False)
    array = builder.build(_frame(dataclasses.replace(hand, joints_3d=np.full((21, 3), np.nan, np.float32))), _header())
    assert all(m.action == Marker.DELETE for m in array.markers) and len(array.markers) == 2
    array = builder.build(_frame(dataclasses.replace(hand, joints_3d=None)), _header())
    assert array.markers == []


def test_mesh_is_a_fixed_size_triangle_list_and_a_bad_mesh_is_deleted() -> None:
    builder = HandMarkerBuilder()
    hand = synthetic_hand("right", True)
    mesh = _parts(builder.build(_frame(hand), _header()))[("mesh", 1)]
    assert mesh.type == Marker.TRIANGLE_LIST and len(mesh.points) == 3 * len(CUBE_FACES)
    first = np.array([[p.x, p.y, p.z] for p in mesh.points[:3]])
    np.testing.assert_allclose(first, hand.mesh.vertices[CUBE_FACES[0]], atol=1e-6)
    broken = dataclasses.replace(hand.mesh, vertices=hand.mesh.vertices.copy())
    broken.vertices[2] = np.nan
    array = builder.build(_frame(dataclasses.replace(hand, mesh=broken)), _header())
    parts = _parts(array)
    assert parts[("mesh", 1)].action == Marker.DELETE and parts[("joints", 1)].action == Marker.ADD
    assert _all_finite(array)
    out_of_range = dataclasses.replace(hand.mesh, faces=CUBE_FACES + 100)
    assert ("mesh", 1) not in _parts(builder.build(_frame(dataclasses.replace(hand, mesh=out_of_range)), _header()))


def test_two_hands_on_one_side_keep_the_higher_score() -> None:
    weak = synthetic_hand("left", False)
    strong = synthetic_hand("left", False)
    strong = dataclasses.replace(strong, detection=dataclasses.replace(strong.detection, score=0.99),
                                 joints_3d=strong.joints_3d + np.float32(0.2))
    weak = dataclasses.replace(weak, detection=dataclasses.replace(weak.detection, score=0.6))
    parts = _parts(HandMarkerBuilder().build(_frame(weak, strong), _header()))
    assert len(parts) == 2
    assert parts[("joints", 0)].points[0].x == pytest.approx(-0.1 + 0.2)
