"""RViz markers for reconstructed hands: joints, bones and mesh per side, with stable ids and DELETE on loss.

Rules (the RViz contract, tested in test/test_markers.py):
- one marker per (namespace, side): namespaces ``joints`` (SPHERE_LIST), ``bones`` (LINE_LIST), ``mesh``
  (TRIANGLE_LIST, 3 points per face, so a fixed point count per hand model); id 0 = left, 1 = right;
- a marker shown in the previous array and absent now is sent as DELETE (same namespace and id);
- no NaN or Inf ever: non-finite joints and the bones touching them are left out, a mesh with any
  non-finite vertex is not drawn (and deleted if it was);
- every marker carries the input image's header, a lifetime and a unit quaternion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hand_recon_ros.io.overlay import SIDE_COLOURS_RGB
from hand_recon_ros.pipeline.types import FrameResult, HandResult
from hand_recon_ros.skeleton import BONES, NUM_JOINTS

SIDE_MARKER_IDS: dict[str, int] = {"left": 0, "right": 1}
NAMESPACES: tuple[str, ...] = ("joints", "bones", "mesh")
# RGBA per side, the overlay image's colours (io/overlay.py): left blue, right orange.
SIDE_COLOURS_RGBA: dict[str, tuple[float, float, float, float]] = {
    side: (r / 255.0, g / 255.0, b / 255.0, 1.0) for side, (r, g, b) in SIDE_COLOURS_RGB.items()
}
MESH_ALPHA = 0.6
JOINT_DIAMETER_M = 0.012
BONE_WIDTH_M = 0.005


def _best_per_side(result: FrameResult) -> dict[str, HandResult]:
    """The highest-scoring hand per side that has 3D joints."""
    best: dict[str, HandResult] = {}
    for hand in result.hands:
        if hand.joints_3d is None or hand.side not in SIDE_MARKER_IDS:
            continue
        if hand.side not in best or hand.detection.score > best[hand.side].detection.score:
            best[hand.side] = hand
    return best


def _points(xyz: np.ndarray) -> list[Any]:
    from geometry_msgs.msg import Point

    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64).reshape(-1, 3).tolist()]


class HandMarkerBuilder:
    """Turns FrameResults into MarkerArrays, remembering what is on screen so vanished hands get DELETE."""

    def __init__(self, lifetime_s: float = 0.5) -> None:
        self.lifetime_s = float(lifetime_s)
        self._shown: set[tuple[str, str]] = set()

    def reset(self) -> None:
        """Forget what was shown (e.g. after the node restarted its pipeline)."""
        self._shown.clear()

    def _marker(self, header: Any, namespace: str, side: str, marker_type: int) -> Any:
        from builtin_interfaces.msg import Duration
        from visualization_msgs.msg import Marker

        marker = Marker()
        marker.header = header
        marker.ns = namespace
        marker.id = SIDE_MARKER_IDS[side]
        marker.type = marker_type
        marker.action = Marker.ADD
        marker.pose.orientation.w = 1.0
        seconds = max(0.0, self.lifetime_s)
        marker.lifetime = Duration(sec=int(seconds), nanosec=int(round((seconds % 1.0) * 1e9)) % 1_000_000_000)
        r, g, b, a = SIDE_COLOURS_RGBA[side]
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = r, g, b, a
        return marker

    def build(self, result: FrameResult, header: Any) -> Any:
        """The MarkerArray for one frame: ADD for every drawable part, DELETE for parts that vanished."""
        from visualization_msgs.msg import Marker, MarkerArray

        array = MarkerArray()
        shown: set[tuple[str, str]] = set()
        for side, hand in sorted(_best_per_side(result).items()):
            joints = np.asarray(hand.joints_3d, dtype=np.float64).reshape(NUM_JOINTS, 3)
            finite = np.all(np.isfinite(joints), axis=1)
            if not finite.any():
                continue
            spheres = self._marker(header, "joints", side, Marker.SPHERE_LIST)
            spheres.scale.x = spheres.scale.y = spheres.scale.z = JOINT_DIAMETER_M
            spheres.points = _points(joints[finite])
            array.markers.append(spheres)
            shown.add(("joints", side))

            bones = [(p, c) for p, c in BONES if finite[p] and finite[c]]
            if bones:
                lines = self._marker(header, "bones", side, Marker.LINE_LIST)
                lines.scale.x = BONE_WIDTH_M
                lines.points = _points(joints[np.asarray(bones).reshape(-1)])
                array.markers.append(lines)
                shown.add(("bones", side))

            mesh = hand.mesh
            if mesh is not None:
                vertices = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
                faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
                valid = (
                    faces.size > 0
                    and bool(np.all(np.isfinite(vertices)))
                    and int(faces.min()) >= 0
                    and int(faces.max()) < len(vertices)
                )
                if valid:
                    triangles = self._marker(header, "mesh", side, Marker.TRIANGLE_LIST)
                    triangles.scale.x = triangles.scale.y = triangles.scale.z = 1.0
                    triangles.color.a = MESH_ALPHA
                    triangles.points = _points(vertices[faces.reshape(-1)])
                    array.markers.append(triangles)
                    shown.add(("mesh", side))

        for namespace, side in sorted(self._shown - shown):
            gone = Marker()
            gone.header = header
            gone.ns = namespace
            gone.id = SIDE_MARKER_IDS[side]
            gone.action = Marker.DELETE
            gone.pose.orientation.w = 1.0
            array.markers.append(gone)
        self._shown = shown
        return array
