"""The project's open hand mesh: closed, outward, skinned to the skeleton; OBJ/PLY writing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_recon_ros.io.mesh_writer import MeshWriteError, read_mesh, write_mesh
from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.models import open_hand_mesh as om
from hand_recon_ros.pipeline.types import HandMesh


def _edges(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def _volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    v = vertices[faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def test_rest_mesh_is_closed_and_outward():
    vertices, faces = om.rest_mesh()
    assert 300 <= len(vertices) <= 1000
    undirected = np.sort(_edges(faces), axis=1)
    _, counts = np.unique(undirected, axis=0, return_counts=True)
    assert np.all(counts == 2)  # watertight: every edge in exactly two faces
    directed = _edges(faces)
    assert len(np.unique(directed, axis=0)) == len(directed)  # consistent winding
    assert 1.5e-4 < _volume(vertices, faces) < 6e-4  # an adult hand is ~300-500 cm^3 incl. overlaps


@pytest.mark.parametrize("side", ["left", "right"])
def test_posed_mesh_follows_the_skeleton(side):
    rng = np.random.default_rng(0)
    rotation = Rotation.random(random_state=1).as_matrix()
    translation = np.array([0.05, -0.02, 0.6])
    angles = hk.random_angles(rng)
    vertices, faces = om.posed_mesh(rotation, translation, angles, hk.BONE_LENGTH_PRIOR_M, side)
    joints = hk.pose_joints(rotation, translation, angles, hk.BONE_LENGTH_PRIOR_M, side)
    tips = np.linalg.norm(vertices[:, None] - joints[None, [4, 8, 12, 16, 20]], axis=-1).min(axis=0)
    assert np.all(tips < 1e-9)  # each fingertip pole sits on its tip joint
    assert np.linalg.norm(vertices.mean(0) - joints.mean(0)) < 0.04
    assert _volume(vertices, faces) > 1.5e-4  # still outward after mirroring/posing


def test_mesh_writer_round_trips_obj_and_ply(tmp_path):
    vertices, faces = om.rest_mesh()
    mesh = HandMesh(vertices.astype(np.float32), faces)
    for name in ("hand.obj", "hand.ply"):
        back = read_mesh(write_mesh(tmp_path / name, mesh))
        np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-6)
        np.testing.assert_array_equal(back.faces, mesh.faces)
    with pytest.raises(MeshWriteError, match="must end in one of"):
        write_mesh(tmp_path / "hand.stl", mesh)
    with pytest.raises(MeshWriteError, match="face indices"):
        write_mesh(tmp_path / "bad.obj", HandMesh(vertices[:10].astype(np.float32), faces))
