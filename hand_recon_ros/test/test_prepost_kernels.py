"""The compiled palm decode/NMS/un-letterbox and landmark back-projection against their numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from hand_recon_ros.pipeline import palm_decode as pd
from hand_recon_ros.pipeline import prepost_kernels as pk
from hand_recon_ros.pipeline.anchors import generate_anchors
from hand_recon_ros.pipeline.landmark_estimator import LANDMARK_INPUT_SIZE_PX, NORMALIZE_Z, _landmarks_to_image

ANCHORS = generate_anchors()
# The same float32 arithmetic; a cluster of 8 or more boxes is summed in another order than numpy's pairwise sum,
# which moves a weighted mean by float32 rounding (3e-4 px seen with every one of the 2016 anchors kept).
PALM_RTOL, PALM_ATOL_PX = 1e-5, 1e-3


def _palm_outputs(rng: np.random.Generator, palms: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw palm outputs with ``palms`` clusters of overlapping confident anchors among low-score noise."""
    boxes = rng.normal(0.0, 4.0, (len(ANCHORS), 18)).astype(np.float32)
    boxes[:, 2:4] = rng.uniform(10.0, 60.0, (len(ANCHORS), 2))
    logits = rng.normal(-8.0, 2.0, len(ANCHORS)).astype(np.float32)
    for _ in range(palms):
        centre = rng.integers(0, len(ANCHORS))
        members = np.clip(centre + rng.integers(-3, 4, 9), 0, len(ANCHORS) - 1)
        logits[members] = rng.uniform(-0.5, 6.0, len(members))
    logits[rng.integers(0, len(ANCHORS), 3)] = np.float32(0.0)  # exactly at the 0.5 threshold
    return boxes, logits


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("min_score", [0.5, 0.7, 0.0, 1.0])
def test_palm_kernel_matches_decode_nms_unletterbox(seed, min_score):
    rng = np.random.default_rng(seed)
    boxes, logits = _palm_outputs(rng, palms=int(rng.integers(0, 5)))
    box = pd.Letterbox.for_image(int(rng.integers(100, 2000)), int(rng.integers(100, 2000)))
    max_count = None if seed % 3 else 2
    decoded = pd.decode_palms(boxes, logits, ANCHORS, min_score)
    reference = pd.unletterbox(*pd.weighted_nms(*decoded, max_count=max_count), box)
    compiled = pd.compiled_palms(boxes, logits, ANCHORS, min_score, box, max_count)
    assert len(compiled) == len(reference)
    for a, b in zip(reference, compiled):
        assert b.score == a.score
        assert b.box.dtype == b.keypoints.dtype == np.float32 and b.keypoints.shape == (7, 2)
        np.testing.assert_allclose(b.box, a.box, rtol=PALM_RTOL, atol=PALM_ATOL_PX)
        np.testing.assert_allclose(b.keypoints, a.keypoints, rtol=PALM_RTOL, atol=PALM_ATOL_PX)


def test_palm_kernel_checks_the_output_sizes():
    with pytest.raises(ValueError, match="do not match the anchors"):
        pd.compiled_palms(np.zeros((10, 18), np.float32), np.zeros(10, np.float32), ANCHORS, 0.5,
                          pd.Letterbox.for_image(640, 480))


def test_landmark_kernel_matches_its_numpy_reference():
    rng = np.random.default_rng(4)
    raw = rng.uniform(0.0, 224.0, (5, 21, 3)).astype(np.float32)
    world = rng.normal(0.0, 0.05, (5, 21, 3)).astype(np.float32)
    rois = np.column_stack([rng.uniform(0, 900, (5, 2)), rng.uniform(50, 400, (5, 2)), rng.uniform(-3.1, 3.1, 5)])
    reference = _landmarks_to_image(raw, world, rois)
    compiled = pk.landmarks_to_image(raw, world, rois, float(LANDMARK_INPUT_SIZE_PX), NORMALIZE_Z)
    for a, b in zip(reference, compiled):
        assert b.dtype == np.float32 and b.shape == a.shape
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


def test_a_prepost_kernel_that_fails_switches_the_kernels_off(monkeypatch, caplog):
    from hand_recon_ros.pipeline import solver_kernels as sk

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - stands in for a numba compile error
        raise RuntimeError("LLVM said no")

    previous = sk.set_enabled(True)
    try:
        monkeypatch.setattr(pk, "palm_detections", broken)
        with caplog.at_level("WARNING", logger="hand_recon_ros.pipeline.solver_kernels"):
            assert sk.warm() is False
        assert not sk.enabled()  # so the palm detector and landmark estimator take their numpy paths
        assert "compiled kernels failed (RuntimeError: LLVM said no)" in caplog.text
    finally:
        sk.set_enabled(previous)
