"""FrameResult -> hand_recon_msgs/HandArray and sensor_msgs/CameraInfo -> CameraIntrinsics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hand_recon_ros.pipeline.camera import (
    DISTORTION_MODELS,
    FISHEYE_COEFFICIENT_COUNT,
    FISHEYE_MODEL,
    OPENCV_COEFFICIENT_COUNTS,
)
from hand_recon_ros.pipeline.types import CameraIntrinsics, FrameResult, HandResult, IntrinsicsError
from hand_recon_ros.skeleton import NUM_JOINTS

# Quaternion (x, y, z, w) used when the pipeline gave no wrist orientation.
IDENTITY_QUATERNION_XYZW: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
# Below this norm a quaternion carries no orientation and the identity is sent instead.
MIN_QUATERNION_NORM = 1e-9
# Distinct face arrays whose MeshTriangle lists are kept (one per hand model in practice).
TRIANGLE_CACHE_SIZE = 4
_TRIANGLE_CACHE: dict[bytes, list[Any]] = {}


def stamp_to_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def camera_info_to_intrinsics(msg: Any) -> CameraIntrinsics | None:
    """CameraIntrinsics from a sensor_msgs/CameraInfo; None for an uncalibrated one (K all zero).

    Raises IntrinsicsError (naming the values) for NaN/Inf or non-positive focal lengths.
    """
    return read_camera_info(msg)[0]


def read_camera_info(msg: Any, rectified: bool = False) -> tuple[CameraIntrinsics | None, str | None]:
    """CameraIntrinsics from a CameraInfo (None when uncalibrated) and a warning when its model is unknown.

    ``rectified`` (images from an image_rect topic): P's fx, fy, cx, cy and no distortion. Otherwise K with D
    read by ``distortion_model`` (plumb_bob, rational_polynomial, equidistant); an unknown model gives
    intrinsics without distortion and the warning text. IntrinsicsError names the field and value of a
    CameraInfo that cannot be used (non-finite K/P/D, wrong D length for its model, P all zero when rectified).
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9:
        raise IntrinsicsError(f"CameraInfo.k must have 9 values, got {k.size}")
    if not np.all(np.isfinite(k)):
        raise IntrinsicsError(f"CameraInfo.k holds non-finite values: {k.tolist()}")
    if rectified:
        p = np.asarray(msg.p, dtype=np.float64).reshape(-1)
        if p.size != 12 or not np.all(np.isfinite(p)):
            raise IntrinsicsError(f"CameraInfo.p must have 12 finite values (input_rectified), got {p.tolist()}")
        if not np.any(p):
            if np.any(k):
                raise IntrinsicsError("CameraInfo.p is all zero but input_rectified is true (needs P)")
            return None, None
        fx, fy, cx, cy = float(p[0]), float(p[5]), float(p[2]), float(p[6])
        return CameraIntrinsics(fx, fy, cx, cy, int(msg.width), int(msg.height), (), known=True), None
    if not np.any(k):
        return None, None
    d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(d)):
        raise IntrinsicsError(f"CameraInfo.d holds non-finite values: {d.tolist()}")
    model = str(msg.distortion_model) or "plumb_bob"
    warning = None
    if model not in DISTORTION_MODELS:
        warning = (f"CameraInfo.distortion_model {model!r} is not supported ({', '.join(DISTORTION_MODELS)}); "
                   "keypoints are used as they are with K (no undistortion)")
        d = np.zeros(0)
        model = "plumb_bob"
    elif np.any(d):
        counts = (FISHEYE_COEFFICIENT_COUNT,) if model == FISHEYE_MODEL else OPENCV_COEFFICIENT_COUNTS
        if d.size not in counts:
            raise IntrinsicsError(f"CameraInfo.d has {d.size} values, {model} needs "
                                  f"{' or '.join(str(c) for c in counts)}")
    else:
        d = np.zeros(0)
    intrinsics = CameraIntrinsics(
        fx=float(k[0]),
        fy=float(k[4]),
        cx=float(k[2]),
        cy=float(k[5]),
        width=int(msg.width),
        height=int(msg.height),
        distortion=tuple(float(v) for v in d),
        known=True,
        distortion_model=model,
    )
    return intrinsics, warning


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, header: Any = None) -> Any:
    """A sensor_msgs/CameraInfo (its distortion model, no rectification) describing ``intrinsics``."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = int(intrinsics.width), int(intrinsics.height)
    msg.distortion_model = intrinsics.distortion_model
    padded = 4 if intrinsics.distortion_model == FISHEYE_MODEL else 5
    d = list(intrinsics.distortion) + [0.0] * max(0, padded - len(intrinsics.distortion))
    msg.d = [float(v) for v in d]
    msg.k = [float(v) for v in intrinsics.matrix.reshape(-1)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    p = np.zeros((3, 4), dtype=np.float64)
    p[:, :3] = intrinsics.matrix
    msg.p = [float(v) for v in p.reshape(-1)]
    return msg


def unit_quaternion(quaternion: Any) -> tuple[float, float, float, float]:
    """``quaternion`` (x, y, z, w) scaled to unit length; identity when None, non-finite or (near) zero."""
    if quaternion is None:
        return IDENTITY_QUATERNION_XYZW
    qx, qy, qz, qw = (float(v) for v in quaternion)
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    if not math.isfinite(norm) or norm < MIN_QUATERNION_NORM:
        return IDENTITY_QUATERNION_XYZW
    return qx / norm, qy / norm, qz / norm, qw / norm


def finite_or_zero(values: np.ndarray) -> np.ndarray:
    """``values`` with NaN and Inf replaced by 0 (mesh vertices in a message must be finite)."""
    return np.where(np.isfinite(values), values, 0.0)


def wrist_pose_values(hand: HandResult, joints: np.ndarray | None = None
                      ) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """The wrist position (the wrist joint when the pipeline gave none) and unit quaternion (x, y, z, w) that
    Hand.wrist_pose and the wrist PoseStamped carry; ``joints``: the hand's (21, 3) joints when already at hand."""
    if hand.wrist_position is not None:
        wrist = np.asarray(hand.wrist_position, dtype=np.float64).reshape(3)
    else:
        wrist = np.asarray(hand.joints_3d if joints is None else joints, dtype=np.float64).reshape(NUM_JOINTS, 3)[0]
    x, y, z = (float(v) for v in wrist)
    return (x, y, z), unit_quaternion(hand.wrist_quaternion)


def wrist_pose_msg(hand: HandResult) -> Any:
    """geometry_msgs/Pose of the wrist (``wrist_pose_values``)."""
    from geometry_msgs.msg import Point, Pose, Quaternion

    (x, y, z), (qx, qy, qz, qw) = wrist_pose_values(hand)
    return Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def _triangles(faces: np.ndarray, triangle_type: Any) -> list[Any]:
    """MeshTriangle messages for ``faces`` (F, 3) uint32, cached: a hand model's faces never change."""
    key = faces.tobytes()
    triangles = _TRIANGLE_CACHE.get(key)
    if triangles is None:
        triangles = [triangle_type(vertex_indices=face) for face in faces]
        if len(_TRIANGLE_CACHE) >= TRIANGLE_CACHE_SIZE:
            _TRIANGLE_CACHE.pop(next(iter(_TRIANGLE_CACHE)))
        _TRIANGLE_CACHE[key] = triangles
    return list(triangles)


def hand_result_to_msg(hand: HandResult) -> Any:
    """One HandResult -> hand_recon_msgs/Hand (requires joints_3d)."""
    from geometry_msgs.msg import Point
    from hand_recon_msgs.msg import Hand
    from shape_msgs.msg import Mesh, MeshTriangle

    detection = hand.detection
    msg = Hand()
    msg.side = Hand.LEFT if hand.side == "left" else Hand.RIGHT
    msg.score = float(detection.score)
    msg.side_score = float(detection.side_score)
    msg.track_id = int(detection.track_id)
    joints = np.asarray(hand.joints_3d, dtype=np.float64).reshape(NUM_JOINTS, 3)
    msg.joints = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in joints]
    msg.joint_confidence = np.clip(np.asarray(hand.joint_confidence, dtype=np.float32).reshape(NUM_JOINTS), 0, 1)
    msg.keypoints_2d = np.asarray(detection.keypoints_2d, dtype=np.float32).reshape(NUM_JOINTS * 2)
    (x, y, z), (qx, qy, qz, qw) = wrist_pose_values(hand, joints)
    msg.wrist_pose.position.x, msg.wrist_pose.position.y, msg.wrist_pose.position.z = x, y, z
    orientation = msg.wrist_pose.orientation
    orientation.x, orientation.y, orientation.z, orientation.w = qx, qy, qz, qw
    if hand.mesh is not None:
        vertices = finite_or_zero(np.asarray(hand.mesh.vertices, dtype=np.float64).reshape(-1, 3))
        faces = np.asarray(hand.mesh.faces, dtype=np.uint32).reshape(-1, 3)
        mesh = Mesh()
        mesh.vertices = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in vertices.tolist()]
        mesh.triangles = _triangles(faces, MeshTriangle)
        msg.mesh = mesh
    if hand.mano_pose is not None:
        msg.mano_pose = np.asarray(hand.mano_pose, dtype=np.float32).reshape(-1)
    if hand.mano_shape is not None:
        msg.mano_shape = np.asarray(hand.mano_shape, dtype=np.float32).reshape(-1)
    msg.placement = Hand.PLACEMENT_DEPTH if hand.placement == "depth" else Hand.PLACEMENT_MONOCULAR
    msg.hand_length_m = float(hand.hand_length_m)
    grasp = hand.grasp
    msg.pinch_distance = float("nan") if grasp is None else float(grasp.pinch_distance_m)
    msg.grasp_strength = float("nan") if grasp is None else float(grasp.grasp_strength)
    msg.grasp_state = Hand.GRASP_OPEN if grasp is None else int(grasp.state)
    return msg


def placeable(hand: HandResult) -> bool:
    """True when a hand has finite metric 3D joints (only those go into HandArray, markers and TF)."""
    if hand.joints_3d is None:
        return False
    joints = np.asarray(hand.joints_3d)
    return joints.shape == (NUM_JOINTS, 3) and bool(np.all(np.isfinite(joints)))


def frame_result_to_hand_array(result: FrameResult, header: Any) -> Any:
    """A HandArray for one processed frame (header copied from the input image; empty ``hands`` is valid)."""
    from hand_recon_msgs.msg import HandArray

    msg = HandArray()
    msg.header = header
    msg.intrinsics_known = bool(result.intrinsics_known)
    msg.hands = [hand_result_to_msg(hand) for hand in result.hands if placeable(hand)]
    return msg
