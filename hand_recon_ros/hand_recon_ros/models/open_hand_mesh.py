"""The project's own hand mesh: closed tubes per finger plus a rounded palm slab, skinned to the 21-joint skeleton.

Built in the rest pose of ``hand_kinematics`` (flat right hand, hand frame) for the given bone lengths:

- each of the five chains is one tube (8 vertices per ring) from its base joint (thumb CMC, finger MCP) to a
  hemispherical fingertip, closed at the base by a fan; rings at the joints blend the two adjacent bones,
- the palm is a UV sphere squashed onto the quadrilateral wrist / index MCP / pinky MCP, ~26 mm thick.

Every component is a closed, consistently outward-oriented surface (each edge in exactly two faces); about 480
vertices in all. Posing is linear blend skinning with one transform per articulated bone plus the hand frame.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.skeleton import FINGERS

RING_VERTICES = 8
PALM_LATITUDES = 8
PALM_LONGITUDES = 16
PALM_HALF_THICKNESS_M = 0.013
WRIST_HALF_WIDTH_M = 0.024
# Tube radius at each chain's base, middle and distal joints and at the tip, metres (thumb, index..pinky).
TUBE_RADIUS_M = np.array(
    [
        [0.0125, 0.0110, 0.0100, 0.0090],
        [0.0100, 0.0090, 0.0080, 0.0072],
        [0.0102, 0.0092, 0.0082, 0.0074],
        [0.0098, 0.0088, 0.0078, 0.0070],
        [0.0088, 0.0078, 0.0070, 0.0064],
    ]
)
NUM_SKIN_BONES = 1 + 3 * hk.NUM_CHAINS
# Bone lengths are rounded to this step (metres) to reuse cached rest meshes.
MESH_LENGTH_STEP_M = 0.0005  # the hand frame (palm) + three articulated bones per chain


def _ring_faces(first_a: int, first_b: int, n: int) -> list[list[int]]:
    """Two triangles per quad between ring a and the next ring b (outward for rings ordered along +y)."""
    faces = []
    for i in range(n):
        j = (i + 1) % n
        faces.append([first_a + i, first_b + i, first_b + j])
        faces.append([first_a + i, first_b + j, first_a + j])
    return faces


@lru_cache(maxsize=1)
def _topology() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mesh structure that does not depend on bone lengths.

    Returns per tube vertex (chain, bone, fraction along the bone, ring angle or -1 for a pole, radius index
    blend) packed as arrays, the faces, and per-vertex skinning (bone ids (V, 2), weights (V, 2)).
    """
    # Tube stations along a chain: (bone k, fraction t along it, blend with the previous bone, cap angle).
    stations = [(0, 0.0, 0.5), (0, 0.5, 0.0), (1, 0.0, 0.5), (1, 0.5, 0.0), (2, 0.0, 0.5), (2, 0.5, 0.0), (2, 1.0, 0.0)]
    cap_angles = (np.pi / 6.0, np.pi / 3.0)
    phi = 2.0 * np.pi * np.arange(RING_VERTICES) / RING_VERTICES
    records = []  # (chain, bone, t, blend, cos, sin, cap_angle, kind) kind 0 ring, 1 base pole, 2 tip pole
    faces: list[list[int]] = []
    for chain in range(hk.NUM_CHAINS):
        base_pole = len(records)
        records.append((chain, 0, 0.0, 0.5, 0.0, 0.0, 0.0, 1))
        ring_starts = []
        for bone, t, blend in stations:
            ring_starts.append(len(records))
            records += [(chain, bone, t, blend, np.cos(p), np.sin(p), 0.0, 0) for p in phi]
        for angle in cap_angles:
            ring_starts.append(len(records))
            records += [(chain, 2, 1.0, 0.0, np.cos(p), np.sin(p), angle, 0) for p in phi]
        tip_pole = len(records)
        records.append((chain, 2, 1.0, 0.0, 0.0, 0.0, np.pi / 2.0, 2))
        first = ring_starts[0]
        for i in range(RING_VERTICES):  # base fan, facing −y
            faces.append([base_pole, first + i, first + (i + 1) % RING_VERTICES])
        for a, b in zip(ring_starts[:-1], ring_starts[1:]):
            faces += _ring_faces(a, b, RING_VERTICES)
        last = ring_starts[-1]
        for i in range(RING_VERTICES):  # tip fan, facing +y
            faces.append([last + i, tip_pole, last + (i + 1) % RING_VERTICES])
    tube = np.array(records, dtype=np.float64)
    tube_faces = np.array(faces, dtype=np.int64)
    # Palm: UV sphere (poles + rings), later mapped onto the palm quadrilateral.
    lat = np.pi * np.arange(1, PALM_LATITUDES) / PALM_LATITUDES
    lon = 2.0 * np.pi * np.arange(PALM_LONGITUDES) / PALM_LONGITUDES
    sphere = [np.array([[0.0, 0.0, -1.0]])]
    for a in lat:
        sphere.append(np.stack([np.sin(a) * np.cos(lon), np.sin(a) * np.sin(lon), -np.cos(a) * np.ones_like(lon)], 1))
    sphere.append(np.array([[0.0, 0.0, 1.0]]))
    sphere_pts = np.concatenate(sphere)
    n_tube = len(tube)
    palm_faces = []
    n_lon = PALM_LONGITUDES
    for i in range(n_lon):
        palm_faces.append([0, 1 + (i + 1) % n_lon, 1 + i])
    for r in range(PALM_LATITUDES - 2):
        a, b = 1 + r * n_lon, 1 + (r + 1) * n_lon
        for i in range(n_lon):
            j = (i + 1) % n_lon
            palm_faces.append([a + i, a + j, b + j])
            palm_faces.append([a + i, b + j, b + i])
    top = len(sphere_pts) - 1
    last = 1 + (PALM_LATITUDES - 2) * n_lon
    for i in range(n_lon):
        palm_faces.append([top, last + i, last + (i + 1) % n_lon])
    faces_all = np.concatenate([tube_faces, np.array(palm_faces) + n_tube]).astype(np.int32)
    # Skinning: tube vertices on their bone, blended with the previous bone (or the palm) at joints.
    chain, bone, blend = tube[:, 0].astype(int), tube[:, 1].astype(int), tube[:, 3]
    own = 1 + 3 * chain + bone
    prev = np.where(bone == 0, 0, own - 1)
    bones = np.concatenate([np.stack([own, prev], 1), np.zeros((len(sphere_pts), 2), int)])
    weights = np.concatenate([np.stack([1.0 - blend, blend], 1), np.tile([1.0, 0.0], (len(sphere_pts), 1))])
    return tube, sphere_pts, faces_all, bones, weights


def rest_mesh(bone_lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) metres of the flat right hand in the hand frame, and faces (F, 3) int32."""
    lengths = hk.BONE_LENGTH_PRIOR_M if bone_lengths is None else np.asarray(bone_lengths, dtype=np.float64)
    key = np.round(lengths / MESH_LENGTH_STEP_M).astype(np.int64)
    vertices, faces = _rest_mesh_cached(key.tobytes())
    return vertices.copy(), faces


@lru_cache(maxsize=16)
def _rest_mesh_cached(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """rest_mesh for bone lengths quantised to MESH_LENGTH_STEP_M (int64 bytes); cached, as tracked hands'
    lengths change slowly and image mode always uses the prior."""
    lengths = np.frombuffer(key, dtype=np.int64) * MESH_LENGTH_STEP_M
    tube, sphere, faces, _, _ = _topology()
    joints = hk.rest_joints(lengths)
    chain, bone, t = tube[:, 0].astype(int), tube[:, 1].astype(int), tube[:, 2]
    kind, cap = tube[:, 7], tube[:, 6]
    frames = hk.CHAIN_BASE_FRAMES[chain]  # rest frame of every articulated bone of the chain
    chain_joints = np.stack([joints[list(f)] for f in FINGERS])  # (5, 4, 3)
    start, end = chain_joints[chain, bone], chain_joints[chain, bone + 1]
    seg_len = np.linalg.norm(end - start, axis=1)
    radius = TUBE_RADIUS_M[chain, bone] * (1.0 - t) + TUBE_RADIUS_M[chain, bone + 1] * t
    # The last ring sits one tip radius before the tip joint so the hemispherical cap ends on it.
    along = t * seg_len
    at_tip = (bone == 2) & (t == 1.0)
    along = np.where(at_tip, seg_len - radius + radius * np.sin(cap), along)
    ring_r = np.where(at_tip, radius * np.cos(cap), radius)
    along = np.where(kind == 1, -0.4 * radius, along)
    ring_r = np.where(kind > 0, 0.0, ring_r)
    local = np.stack([ring_r * tube[:, 4], along, ring_r * tube[:, 5]], axis=1)
    tube_v = start + np.einsum("vij,vj->vi", frames, local)
    # Palm: squircle-map the sphere's (x, y) onto the quadrilateral, z to the thickness.
    corners = np.array(
        [
            joints[0] + [-WRIST_HALF_WIDTH_M, 0.0, 0.0],
            joints[0] + [WRIST_HALF_WIDTH_M, 0.0, 0.0],
            joints[5] + [0.004, -0.004, 0.0],
            joints[17] + [-0.004, -0.004, 0.0],
        ]
    )  # ulnar wrist, radial wrist, index MCP, pinky MCP
    u = 0.5 * (np.sign(sphere[:, 0]) * np.abs(sphere[:, 0]) ** 0.6 + 1.0)
    v = 0.5 * (np.sign(sphere[:, 1]) * np.abs(sphere[:, 1]) ** 0.6 + 1.0)
    bottom = corners[0] * (1 - u)[:, None] + corners[1] * u[:, None]
    topline = corners[3] * (1 - u)[:, None] + corners[2] * u[:, None]
    palm_v = bottom * (1 - v)[:, None] + topline * v[:, None]
    palm_v[:, 2] += PALM_HALF_THICKNESS_M * sphere[:, 2]
    return np.concatenate([tube_v, palm_v]), faces


def skinning_weights() -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex bone ids (V, 2) (0 = hand frame, 1 + 3·chain + k = chain bone k) and weights (V, 2)."""
    _, _, _, bones, weights = _topology()
    return bones, weights


def pose_hand_frame(angles: np.ndarray, bone_lengths: np.ndarray, palm_spread: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Right-hand mesh posed by joint angles (5, 3, 2) and palm spread (rad), hand frame: vertices, faces."""
    lengths = np.asarray(bone_lengths, dtype=np.float64)
    vertices, faces = rest_mesh(lengths)
    bones, weights = skinning_weights()
    rest = hk.rest_joints(lengths)
    joints, frames = hk.forward_kinematics(np.asarray(angles, dtype=np.float64), lengths, None,
                                           np.float64(palm_spread))
    rot = np.empty((NUM_SKIN_BONES, 3, 3))
    offset = np.empty((NUM_SKIN_BONES, 3))
    rot[0], offset[0] = np.eye(3), 0.0
    for c, chain in enumerate(FINGERS):
        for k in range(3):
            b = 1 + 3 * c + k
            rot[b] = frames[c, k] @ hk.CHAIN_BASE_FRAMES[c].T
            offset[b] = joints[chain[k]] - rot[b] @ rest[chain[k]]
    posed = np.einsum("vkij,vj->vki", rot[bones], vertices) + offset[bones]
    return np.einsum("vk,vki->vi", weights, posed), faces


def posed_mesh(rotation: np.ndarray, translation: np.ndarray, angles: np.ndarray, bone_lengths: np.ndarray,
               side: str, palm_spread: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Mesh of a ``side`` hand in the camera frame: vertices (V, 3) metres float64, faces (F, 3) int32."""
    vertices, faces = pose_hand_frame(angles, bone_lengths, palm_spread)
    if side == "left":  # mirror the right hand; flip the winding so normals stay outward
        vertices = vertices @ hk.MIRROR_X
        faces = faces[:, ::-1]
    elif side != "right":
        raise hk.KinematicsError(f"side must be 'left' or 'right', got {side!r}")
    return vertices @ np.asarray(rotation).T + np.asarray(translation), np.ascontiguousarray(faces)
