"""Every CameraInfo distortion model: known 3D points projected through it are recovered (rays, PnP, messages).

plumb_bob and rational_polynomial are projected with cv2.projectPoints, equidistant with
cv2.fisheye.projectPoints; undistort_keypoints must give back the pinhole pixels and the viewing rays.
input_rectified uses P and no undistortion; an unknown model is used without undistortion and reported.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import sensor_msgs.msg  # noqa: F401 - required (the ROS wheels), never skipped
from sensor_msgs.msg import CameraInfo  # noqa: E402

from hand_recon_ros.pipeline.camera import pixel_rays, project, undistort_keypoints
from hand_recon_ros.pipeline.types import CameraIntrinsics, IntrinsicsError
from hand_recon_ros.ros.message_conversion import intrinsics_to_camera_info, read_camera_info  # noqa: E402

WIDTH, HEIGHT = 1280, 800
K_VALUES = (612.0, 615.0, 641.5, 402.0)  # fx, fy, cx, cy
# Realistic coefficients for each model (a wide-angle lens, so the distortion is many pixels at the edges).
DISTORTIONS = {
    "plumb_bob": (-0.28, 0.09, 0.0012, -0.0008, -0.012),
    "rational_polynomial": (0.35, -0.02, 0.0007, -0.0004, 0.001, 0.72, 0.05, 0.002),
    "equidistant": (-0.012, 0.004, -0.0021, 0.0003),
}
# Pixel error allowed after undistortion, and ray error (radians).
PIXEL_TOL_PX = 0.05
RAY_TOL_RAD = 1e-4
# Smallest distortion the test points must see at the image edge (px), so the test is not trivially passing.
MIN_EDGE_DISTORTION_PX = 5.0


def _points() -> np.ndarray:
    """3D points (N, 3) spread over the field of view, 0.3 .. 1.2 m in front of the camera."""
    rng = np.random.default_rng(13)
    xy = rng.uniform(-0.8, 0.8, size=(200, 2)) * np.array([1.0, 0.6])
    z = rng.uniform(0.3, 1.2, size=(200, 1))
    return np.concatenate([xy * z, z], axis=1)


def _distorted_pixels(points: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    dist = np.asarray(intr.distortion, dtype=np.float64)
    if intr.distortion_model == "equidistant":
        px, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), intr.matrix, dist)
    else:
        px, _ = cv2.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), intr.matrix, dist)
    return px.reshape(-1, 2)


def _camera_info(model: str, d: tuple[float, ...], p: tuple[float, ...] | None = None) -> CameraInfo:
    fx, fy, cx, cy = K_VALUES
    msg = CameraInfo()
    msg.width, msg.height = WIDTH, HEIGHT
    msg.distortion_model = model
    msg.d = [float(v) for v in d]
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.p = list(p) if p is not None else [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_points_projected_through_each_model_are_recovered(model: str) -> None:
    intr, warning = read_camera_info(_camera_info(model, DISTORTIONS[model]))
    assert warning is None and intr is not None
    assert intr.distortion_model == model and intr.distortion == DISTORTIONS[model]
    points = _points()
    distorted = _distorted_pixels(points, intr)
    ideal = project(points, intr)
    assert np.max(np.linalg.norm(distorted - ideal, axis=1)) > MIN_EDGE_DISTORTION_PX, "distortion too small"
    recovered = undistort_keypoints(distorted, intr)
    np.testing.assert_allclose(recovered, ideal, atol=PIXEL_TOL_PX)
    rays = pixel_rays(recovered, intr)
    truth = points / np.linalg.norm(points, axis=1, keepdims=True)
    angles = np.arccos(np.clip(np.sum(rays * truth, axis=1), -1.0, 1.0))
    assert float(np.max(angles)) < RAY_TOL_RAD


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_pnp_lift_recovers_a_hand_through_each_model(model: str) -> None:
    """The PnP lifter places a hand-sized point set seen through the distorted lens where it was."""
    from hand_recon_ros.pipeline.pnp_lift import PnPLifter
    from hand_recon_ros.pipeline.types import HandDetection, RotatedRect

    intr, _ = read_camera_info(_camera_info(model, DISTORTIONS[model]))
    rng = np.random.default_rng(7)
    local = rng.uniform(-0.08, 0.08, size=(21, 3)) * np.array([1.0, 1.0, 0.3])
    offset = np.array([0.25, -0.15, 0.45])  # off-axis, where the lens distorts most
    truth = local + offset
    det = HandDetection("right", 0.9, 0.9, _distorted_pixels(truth, intr).astype(np.float32), np.zeros(21),
                        local.astype(np.float32), RotatedRect(0, 0, 100, 100, 0), 0)
    joints = PnPLifter().lift_one(det, intr).joints_3d
    assert joints is not None
    np.testing.assert_allclose(joints, truth, atol=2e-3)


def test_rectified_input_uses_p_and_no_undistortion() -> None:
    p = (580.0, 0.0, 630.0, 0.0, 0.0, 580.0, 395.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    msg = _camera_info("plumb_bob", DISTORTIONS["plumb_bob"], p)
    intr, warning = read_camera_info(msg, rectified=True)
    assert warning is None
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (580.0, 580.0, 630.0, 395.0)
    assert not intr.has_distortion
    points = _points()
    rect_px = project(points, intr)  # a rectified image is a pinhole image with P
    np.testing.assert_array_equal(undistort_keypoints(rect_px, intr), rect_px)
    raw, _ = read_camera_info(msg)
    assert (raw.fx, raw.cx) == (K_VALUES[0], K_VALUES[2]) and raw.has_distortion


def test_rectified_input_with_zero_p_is_refused_naming_p() -> None:
    msg = _camera_info("plumb_bob", DISTORTIONS["plumb_bob"], (0.0,) * 12)
    with pytest.raises(IntrinsicsError, match="CameraInfo.p"):
        read_camera_info(msg, rectified=True)


def test_unknown_model_is_used_without_undistortion_and_reported() -> None:
    intr, warning = read_camera_info(_camera_info("kannala_brandt_8", (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)))
    assert warning is not None and "kannala_brandt_8" in warning and "distortion_model" in warning
    assert not intr.has_distortion
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == K_VALUES


@pytest.mark.parametrize(("model", "d"), [("equidistant", (0.1, 0.2, 0.3, 0.4, 0.5)), ("plumb_bob", (0.1, 0.2, 0.3)),
                                          ("rational_polynomial", (0.1, float("nan"), 0, 0, 0, 0, 0, 0))])
def test_wrong_coefficients_are_refused_naming_the_field(model: str, d: tuple[float, ...]) -> None:
    with pytest.raises(IntrinsicsError, match="CameraInfo.d"):
        read_camera_info(_camera_info(model, d))


def test_fisheye_intrinsics_round_trip_through_camera_info() -> None:
    intr, _ = read_camera_info(_camera_info("equidistant", DISTORTIONS["equidistant"]))
    back, warning = read_camera_info(intrinsics_to_camera_info(intr))
    assert warning is None and back.distortion_model == "equidistant" and back.distortion == intr.distortion


def test_calibration_yaml_reads_the_distortion_model(tmp_path) -> None:
    """`hand-recon run --intrinsics calib.yaml` (camera_calibration format) keeps a fisheye model a fisheye."""
    from hand_recon_ros.io.intrinsics_input import load_camera_info_yaml

    text = ("image_width: 1280\nimage_height: 800\ndistortion_model: {model}\n"
            "camera_matrix: {{rows: 3, cols: 3, data: [612, 0, 641.5, 0, 615, 402, 0, 0, 1]}}\n"
            "distortion_coefficients: {{rows: 1, cols: 4, data: [-0.012, 0.004, -0.0021, 0.0003]}}\n")
    path = tmp_path / "calib.yaml"
    path.write_text(text.format(model="equidistant"), encoding="utf-8")
    intr = load_camera_info_yaml(path)
    assert intr.distortion_model == "equidistant" and len(intr.distortion) == 4
    path.write_text(text.format(model="pinhole_radtan_custom"), encoding="utf-8")
    with pytest.raises(IntrinsicsError, match="distortion_model 'pinhole_radtan_custom'"):
        load_camera_info_yaml(path)
