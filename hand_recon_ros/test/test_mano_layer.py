"""MANO layer on a synthetic model file with MANO's structure, pickled with fake chumpy objects."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.models import mano_layer
from hand_recon_ros.models.inverse_kinematics import mano_from_joints, mano_pose_from_joints
from hand_recon_ros.models.mano_loader import FINGERTIP_VERTICES, MANOLoadError, load_mano_file, load_mano_models

PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


def _synthetic_arrays(rng: np.random.Generator) -> dict:
    """Arrays shaped like MANO's: joints regressed from vertex clusters placed on a rest hand skeleton."""
    ours = hk.rest_joints()
    mano_rest = ours[[mano_layer.MANO_TO_OURS.index(m) for m in range(16)]]
    tips = ours[[4, 8, 12, 16, 20]]
    v = np.zeros((778, 3))
    weights = np.zeros((778, 16))
    j_reg = np.zeros((16, 778))
    owner = np.arange(778) % 16
    dip_of_tip = [15, 3, 6, 12, 9]  # thumb, index, middle, ring, pinky DIP joints
    for j in range(16):
        idx = np.flatnonzero(owner == j)
        idx = idx[~np.isin(idx, FINGERTIP_VERTICES)]
        offsets = rng.normal(0, 0.006, (len(idx) // 2, 3))
        half = len(offsets)
        v[idx[:half]] = mano_rest[j] + offsets
        v[idx[half:2 * half]] = mano_rest[j] - offsets
        v[idx[2 * half:]] = mano_rest[j]
        j_reg[j, idx] = 1.0 / len(idx)
        weights[idx, j] = 0.8
        weights[idx, max(PARENTS[j], 0)] += 0.2
    for tip, vid, dip in zip(tips, FINGERTIP_VERTICES, dip_of_tip):
        v[vid] = tip
        weights[vid] = 0.0
        weights[vid, dip] = 1.0
    return {
        "v_template": v, "f": rng.integers(0, 778, (1538, 3)).astype(np.uint32), "weights": weights,
        "J_regressor": scipy.sparse.csc_matrix(j_reg),
        "posedirs": rng.normal(0, 1e-5, (778, 3, 135)), "shapedirs_x": rng.normal(0, 1e-3, (778, 3, 10)),
        "kintree_table": np.array([[4294967295] + PARENTS[1:], list(range(16))], dtype=np.int64),
        "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0], "hands_mean": rng.normal(0, 0.1, 45),
        "bs_style": "lbs", "bs_type": "lrotmin",
    }


def _write_with_fake_chumpy(path, arrays: dict) -> None:
    """Pickle like the MANO release: shapedirs as a chumpy.ch.Ch object holding its array in 'x'."""
    chumpy = types.ModuleType("chumpy")
    ch_module = types.ModuleType("chumpy.ch")

    class Ch:
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch_module.Ch = Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch_module
    try:
        data = dict(arrays)
        shapedirs = Ch()
        shapedirs.__dict__.update({"x": data.pop("shapedirs_x"), "_dirty_vars": set()})
        data["shapedirs"] = shapedirs
        with open(path, "wb") as stream:
            pickle.dump(data, stream, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mano")
    rng = np.random.default_rng(0)
    right = _synthetic_arrays(rng)
    _write_with_fake_chumpy(folder / "MANO_RIGHT.pkl", right)
    left = dict(right)
    left["v_template"] = right["v_template"] * [-1, 1, 1]
    _write_with_fake_chumpy(folder / "MANO_LEFT.pkl", left)  # same shapedirs x sign: the released bug
    return folder


def test_loads_without_chumpy(mano_dir):
    models = load_mano_models(mano_dir)
    assert "chumpy" not in sys.modules
    right = models["right"]
    assert right.v_template.shape == (778, 3) and right.faces.shape == (1538, 3)
    assert right.shapedirs.shape == (778, 3, 10) and right.posedirs.shape == (778, 3, 135)
    assert list(right.parents) == PARENTS
    np.testing.assert_allclose(models["left"].shapedirs[:, 0], -right.shapedirs[:, 0])  # left-hand fix
    np.testing.assert_allclose(models["left"].shapedirs[:, 1:], right.shapedirs[:, 1:])


def test_zero_pose_gives_rest_shape(mano_dir):
    model = load_mano_file(mano_dir / "MANO_RIGHT.pkl", "right")
    out = mano_layer.forward(model, np.zeros(48))
    np.testing.assert_allclose(out.vertices, model.v_template, atol=1e-12)
    np.testing.assert_allclose(out.joints, hk.rest_joints(), atol=1e-9)
    betas = np.ones(10)
    shaped = mano_layer.forward(model, np.zeros(48), betas)
    np.testing.assert_allclose(shaped.vertices - model.v_template, np.einsum("vck,k->vc", model.shapedirs, betas))


def test_ik_then_fk_reproduces_joints_within_2mm(mano_dir):
    model = load_mano_file(mano_dir / "MANO_RIGHT.pkl", "right")
    rng = np.random.default_rng(1)
    for _ in range(10):
        pose = rng.normal(0, 0.3, 48)
        target = mano_layer.forward(model, pose).joints + rng.normal(0, 0.1, 3)
        recovered = mano_layer.forward(model, mano_pose_from_joints(model, target)).joints
        recovered += target[0] - recovered[0]
        assert np.abs(recovered - target).max() < 0.002
    _, betas, vertices = mano_from_joints(model, target)
    assert vertices.shape == (778, 3) and betas.shape == (10,)
    np.testing.assert_allclose(vertices[FINGERTIP_VERTICES[1]], target[8], atol=0.002)


def test_bad_files_named(tmp_path, mano_dir):
    with pytest.raises(MANOLoadError, match="no MANO_RIGHT.pkl or MANO_LEFT.pkl"):
        load_mano_models(tmp_path)
    broken = tmp_path / "MANO_RIGHT.pkl"
    with open(broken, "wb") as stream:
        pickle.dump({"v_template": np.zeros((10, 3))}, stream)
    with pytest.raises(MANOLoadError, match="missing 'kintree_table'"):
        load_mano_file(broken, "right")
    model = load_mano_file(mano_dir / "MANO_RIGHT.pkl", "right")
    with pytest.raises(mano_layer.MANOInputError, match="pose must be finite"):
        mano_layer.forward(model, np.zeros(45))


def test_lifter_uses_mano_when_the_folder_has_models(mano_dir):
    from hand_recon_ros.pipeline import synthetic_scenes
    from hand_recon_ros.pipeline.refine_lift import RefinementLifter
    from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection, RotatedRect

    intr = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)
    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(3), intr)
    dets = [HandDetection(side=o.side, score=0.9, side_score=0.9, keypoints_2d=o.keypoints_px,
                          keypoints_z=np.zeros(21), world_landmarks=o.world, roi=RotatedRect(0, 0, 200, 200, 0.0))
            for o in scene.observations]
    config = type("Cfg", (), {"mode": "image", "mano_dir": str(mano_dir)})()
    for result in RefinementLifter(config).lift(dets, intr, None, want_mesh=True):
        assert result.mesh.vertices.shape == (778, 3) and result.mesh.faces.shape == (1538, 3)
        assert result.mano_pose.shape == (48,) and result.mano_shape.shape == (10,)
        np.testing.assert_allclose(result.mesh.vertices[FINGERTIP_VERTICES[1]], result.joints_3d[8], atol=0.004)
    without = RefinementLifter(type("Cfg", (), {"mode": "image", "mano_dir": None})())
    result = without.lift(dets, intr, None, want_mesh=True)[0]
    assert result.mano_pose is None and 300 <= len(result.mesh.vertices) <= 1000


def test_shape_fit_recovers_hand_size(mano_dir):
    from hand_recon_ros.models.inverse_kinematics import fit_betas

    model = load_mano_file(mano_dir / "MANO_RIGHT.pkl", "right")
    model.shapedirs[:, :, 0] = 0.05 * model.v_template  # beta 0 scales the hand by 5 % per unit, like MANO's
    rng = np.random.default_rng(4)
    true_betas = np.zeros(10)
    true_betas[0] = 2.0
    target = mano_layer.forward(model, rng.normal(0, 0.3, 48), true_betas).joints
    betas = fit_betas(model, target)
    assert betas[0] == pytest.approx(2.0, abs=0.2)
    fitted = mano_layer.forward(model, np.zeros(48), betas).joints
    plain = mano_layer.forward(model, np.zeros(48)).joints
    err_fit = np.abs(hk.bone_lengths_of(fitted) - hk.bone_lengths_of(target)).max()
    err_plain = np.abs(hk.bone_lengths_of(plain) - hk.bone_lengths_of(target)).max()
    assert err_fit < 0.3 * err_plain and err_fit < 0.002


class _RunsACommand:
    """A pickle payload that runs a shell command when loaded (what a hostile MANO_RIGHT.pkl could hold)."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused_naming_the_global(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "MANO_RIGHT.pkl"
    with open(path, "wb") as stream:
        pickle.dump({"v_template": _RunsACommand(marker)}, stream, protocol=2)
    with pytest.raises(MANOLoadError, match=r"refusing to load (posix|os|nt)\.system"):
        load_mano_file(path, "right")
    assert not marker.exists(), "the pickle's command ran"


def test_a_pickle_calling_builtins_eval_is_refused(tmp_path):
    path = tmp_path / "MANO_LEFT.pkl"
    path.write_bytes(b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.")
    with pytest.raises(MANOLoadError, match=r"builtins\.eval"):
        load_mano_file(path, "left")
