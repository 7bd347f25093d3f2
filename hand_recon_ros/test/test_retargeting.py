"""Retargeting to robot hands: the operator-frame mapping and the dex-retargeting wrapper on the real
Allegro and LEAP URDFs from ../shared/robots (never copied into the repository)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import missing

from hand_recon_ros.models.hand_kinematics import BONE_LENGTH_PRIOR_M, JOINT_LIMITS_RAD, pose_joints, random_angles
from hand_recon_ros.retargeting.operator_frame import OPERATOR_FROM_WRIST, OperatorFrameError, to_operator_frame
from hand_recon_ros.retargeting.robot_retargeter import (
    HandRetargeter,
    RetargetingError,
    RetargetingUnavailableError,
    RobotRetargeting,
    config_side,
    resolve_config_path,
)

ROBOTS_DIR = Path(os.environ.get("HAND_RECON_ROBOTS_DIR", Path(__file__).resolve().parents[3] / "shared" / "robots"))
MIRROR_X = np.array([-1.0, 1.0, 1.0])


def robots_dir() -> Path:
    """../shared/robots, or a skip (a failure under CI=true) when it is absent."""
    if not (ROBOTS_DIR / "allegro_hand_right.urdf").is_file():
        missing(f"robot URDFs not present at {ROBOTS_DIR} (set HAND_RECON_ROBOTS_DIR)")
    return ROBOTS_DIR


def hand(side: str, angles: np.ndarray, rotation: np.ndarray | None = None,
         position: tuple[float, float, float] = (0.05, -0.02, 0.5)) -> np.ndarray:
    """Camera-frame joints (21, 3) of a ``side`` hand posed by the project's own hand model."""
    rotation = np.eye(3) if rotation is None else rotation
    return pose_joints(rotation, np.array(position), angles, BONE_LENGTH_PRIOR_M, side)


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


OPEN = np.zeros((5, 3, 2))
FIST = np.zeros((5, 3, 2))
FIST[1:, :, 0] = 0.9 * JOINT_LIMITS_RAD[1:, :, 0, 1]  # fingers (not the thumb) flexed to 90 % of their range


# -- operator frame (pure numpy) -----------------------------------------------------------------------------
def test_operator_matrices_are_the_librarys() -> None:
    import dex_retargeting.constants as constants  # requirements/teleop.txt, installed by make setup
    np.testing.assert_array_equal(OPERATOR_FROM_WRIST["right"], constants.OPERATOR2MANO_RIGHT)
    np.testing.assert_array_equal(OPERATOR_FROM_WRIST["left"], constants.OPERATOR2MANO_LEFT)


def test_operator_frame_ignores_where_the_hand_is_and_how_it_is_turned() -> None:
    angles = random_angles(np.random.default_rng(3))
    base = to_operator_frame(hand("right", angles), "right")
    turned = hand("right", angles, rotation_about(np.array([0.3, -1.0, 0.4]), 2.1), (-0.2, 0.1, 0.9))
    np.testing.assert_allclose(to_operator_frame(turned, "right"), base, atol=1e-9)
    np.testing.assert_allclose(base[0], 0.0, atol=1e-12)  # wrist at the origin


def test_operator_frame_axes_follow_the_library_convention() -> None:
    """Operator frame: z from the wrist to the middle MCP, x out of the palm (a fist curls towards +x),
    y towards the index side on a right hand (the pinky side on a left hand)."""
    for side, index_y_sign in (("right", 1.0), ("left", -1.0)):
        flat = to_operator_frame(hand(side, OPEN), side)
        fist = to_operator_frame(hand(side, FIST), side)
        assert flat[9, 2] > 0.05 and np.allclose(flat[9, :2], 0.0, atol=1e-9)
        assert index_y_sign * flat[5, 1] > 0.01 and index_y_sign * flat[17, 1] < -0.01
        assert np.all(fist[[8, 12, 16, 20], 0] > 0.01)


def test_left_hand_is_the_mirror_of_the_right_in_operator_frame() -> None:
    """A left hand (the right mirrored in camera x) maps to the right hand's operator points with y negated."""
    right = hand("right", random_angles(np.random.default_rng(5)))
    left_ops = to_operator_frame(right * MIRROR_X, "left")
    np.testing.assert_allclose(left_ops, to_operator_frame(right, "right") * np.array([1.0, -1.0, 1.0]), atol=1e-9)


def test_mirrored_input_restores_the_chirality() -> None:
    right = hand("right", random_angles(np.random.default_rng(6)))
    np.testing.assert_allclose(to_operator_frame(right * MIRROR_X, "right", mirrored=True),
                               to_operator_frame(right, "right"), atol=1e-9)


@pytest.mark.parametrize("joints, message", [
    (np.zeros((20, 3)), "shape"), (np.full((21, 3), np.nan), "NaN"), (np.zeros((21, 3)), "degenerate"),
])
def test_operator_frame_refuses_unusable_joints(joints: np.ndarray, message: str) -> None:
    with pytest.raises(OperatorFrameError, match=message):
        to_operator_frame(joints, "right")


# -- config names and side rules ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, side", [
    ("allegro_hand_right", "right"), ("leap_hand_left", "left"), ("allegro_hand_left_dexpilot", "left"),
    ("/some/where/my_hand_right.yml", "right"), ("panda_gripper", None), ("rightmost.yml", None),
])
def test_config_side_rule(name: str, side: str | None) -> None:
    assert config_side(name) == side


def test_unknown_config_name_is_named_with_the_choices() -> None:
    with pytest.raises(RetargetingError, match="unknown retargeting config 'allegro_hand_middle'.*allegro_hand_right"):
        resolve_config_path("allegro_hand_middle")


def test_missing_yaml_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(RetargetingError, match=f"{tmp_path / 'nope.yml'} does not exist"):
        resolve_config_path(str(tmp_path / "nope.yml"))


def test_missing_library_gives_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dex_retargeting", None)  # import of it now raises ImportError
    with pytest.raises(RetargetingUnavailableError, match="requirements/teleop.txt"):
        RobotRetargeting(["allegro_hand_right"], "/nonexistent")


# -- the wrapper on the real URDFs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def allegro_leap() -> RobotRetargeting:
    return RobotRetargeting(["allegro_hand_right", "leap_hand_left"], robots_dir())


def test_loading_leaves_no_temporary_urdf_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # dex-retargeting writes each URDF to a mkdtemp folder it never removes: a node restarting, or the tests,
    # would fill /tmp with one folder per config load.
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    RobotRetargeting(["allegro_hand_right"], robots_dir())
    assert list(tmp_path.iterdir()) == []
    assert tempfile.tempdir == str(tmp_path)  # restored


def test_configs_load_per_side_with_the_robot_joint_names(allegro_leap: RobotRetargeting) -> None:
    right, left = allegro_leap.by_side["right"], allegro_leap.by_side["left"]
    assert right.urdf_path.name == "allegro_hand_right.urdf" and left.urdf_path.name == "leap_hand_left.urdf"
    assert len(right.joint_names) == 16 and "joint_0.0" in right.joint_names
    assert len(left.joint_names) == 16 and set(left.joint_names) == {str(i) for i in range(16)}
    assert right.joint_limits.shape == (16, 2) and np.all(right.joint_limits[:, 0] < right.joint_limits[:, 1])


def _settled(retargeting: RobotRetargeting, side: str, joints: np.ndarray, frames: int = 30) -> np.ndarray:
    """The joint positions after holding one pose for ``frames`` frames (past the library's low-pass filter)."""
    retargeting.reset(side)
    out = None
    for _ in range(frames):
        out = retargeting.retarget(side, joints)
        assert out is not None
    return out.positions


@pytest.mark.parametrize("side", ["right", "left"])
def test_fist_flexes_the_robot_fingers_more_than_an_open_hand(allegro_leap: RobotRetargeting, side: str) -> None:
    retargeter = allegro_leap.by_side[side]
    low, high = retargeter.joint_limits.T
    open_q = _settled(allegro_leap, side, hand(side, OPEN))
    fist_q = _settled(allegro_leap, side, hand(side, FIST))
    for q in (open_q, fist_q):
        assert np.all(np.isfinite(q)) and np.all(q >= low) and np.all(q <= high)
    # normalised position in each joint's range, averaged over all joints: a fist sits far nearer the top
    span = (fist_q - low) / (high - low) - (open_q - low) / (high - low)
    assert span.mean() > 0.15, span.round(2)


def test_retargeting_does_not_depend_on_the_wrist_pose(allegro_leap: RobotRetargeting) -> None:
    angles = random_angles(np.random.default_rng(11), spread=0.5)
    q0 = _settled(allegro_leap, "right", hand("right", angles))
    q1 = _settled(allegro_leap, "right", hand("right", angles, rotation_about(np.array([1.0, 0.2, -0.5]), 1.3),
                                               (0.2, 0.1, 0.8)))
    np.testing.assert_allclose(q1, q0, atol=2e-3)


def test_unusable_hands_give_nothing_and_are_counted(allegro_leap: RobotRetargeting) -> None:
    bad = hand("right", OPEN)
    bad[7] = np.nan
    assert allegro_leap.retarget("right", bad) is None
    assert allegro_leap.retarget("right", None) is None
    assert allegro_leap.retarget("left", np.zeros((21, 3))) is None  # degenerate palm
    failures = allegro_leap.failures()
    assert failures["right: joints hold NaN or inf"] >= 1 and failures["right: no 3D joints"] >= 1
    assert any(key.startswith("left: degenerate palm") for key in failures)


def test_failed_optimisation_publishes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """nlopt's failures (raised, or a negative status with the old answer returned) give None, never values."""
    import nlopt

    retargeter = HandRetargeter("allegro_hand_right", robots_dir(), "right")
    joints = hand("right", OPEN)
    assert retargeter.retarget(joints) is not None
    opt = retargeter._retargeting.optimizer.opt
    monkeypatch.setattr(retargeter._retargeting.optimizer, "opt", _FailingOpt(opt, nlopt.ROUNDOFF_LIMITED))
    assert retargeter.retarget(joints) is None
    assert retargeter.failures == {f"nlopt status {nlopt.ROUNDOFF_LIMITED}": 1}

    def raising(*_args: object, **_kwargs: object) -> None:
        raise nlopt.RoundoffLimited("forced")

    monkeypatch.setattr(retargeter._retargeting, "retarget", raising)
    assert retargeter.retarget(joints) is None
    assert retargeter.failures["optimisation raised RoundoffLimited"] == 1


def test_out_of_limit_results_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    retargeter = HandRetargeter("allegro_hand_right", robots_dir(), "right")
    assert retargeter.retarget(hand("right", OPEN)) is not None  # one real run: nlopt's status is a success
    beyond = retargeter.joint_limits[:, 1] + 0.1
    monkeypatch.setattr(retargeter._retargeting, "retarget", lambda *_a, **_k: beyond.copy())
    assert retargeter.retarget(hand("right", OPEN)) is None
    assert retargeter.failures == {"result outside the joint limits": 1}


class _FailingOpt:
    """nlopt.opt whose optimize() runs but whose status reads as a failure (what nlopt reports on roundoff)."""

    def __init__(self, opt: object, status: int) -> None:
        self._opt, self._status = opt, status

    def __getattr__(self, name: str) -> object:
        return getattr(self._opt, name)

    def last_optimize_result(self) -> int:
        return self._status


# -- loading errors name the file --------------------------------------------------------------------------------
def test_missing_urdf_names_the_config_and_the_paths_tried(tmp_path: Path) -> None:
    with pytest.raises(RetargetingError, match=r"URDF for retargeting config .*allegro_hand_right.yml not found: "
                                               rf"tried {tmp_path}/allegro_hand/allegro_hand_right.urdf"):
        RobotRetargeting(["allegro_hand_right"], tmp_path)


def test_missing_urdf_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(RetargetingError, match=f"URDF folder {tmp_path / 'robots'} does not exist"):
        RobotRetargeting(["allegro_hand_right"], tmp_path / "robots")


def test_broken_urdf_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "allegro_hand_right.urdf").write_text("<robot name='x'><link name='a'/><joint", encoding="utf-8")
    with pytest.raises(RetargetingError, match=f"with URDF {tmp_path / 'allegro_hand_right.urdf'} cannot be loaded"):
        RobotRetargeting(["allegro_hand_right"], tmp_path)


def test_yaml_without_retargeting_section_is_named(tmp_path: Path) -> None:
    config = tmp_path / "my_hand_right.yml"
    config.write_text("something: 1\n", encoding="utf-8")
    with pytest.raises(RetargetingError, match=f"{config} has no 'retargeting' mapping"):
        RobotRetargeting([str(config)], robots_dir())


def test_two_configs_for_one_side_are_refused() -> None:
    with pytest.raises(RetargetingError, match="two retargeting configs for the right hand"):
        RobotRetargeting(["allegro_hand_right", "leap_hand_right"], robots_dir())


def test_a_config_without_side_serves_both_hands(tmp_path: Path) -> None:
    source = resolve_config_path("allegro_hand_right").read_text(encoding="utf-8")
    config = tmp_path / "allegro_any.yml"
    config.write_text(source, encoding="utf-8")
    both = RobotRetargeting([str(config)], robots_dir())
    assert set(both.by_side) == {"left", "right"}
    assert both.by_side["left"] is not both.by_side["right"]  # each side keeps its own warm start
