"""The learned two-hand network inside HandPipeline and `hand-recon run/bench`: real photo, real ONNX Runtime."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from hand_recon_ros.cli import main
from hand_recon_ros.network import NetworkConfig, build_model
from hand_recon_ros.network.config import TINY_NETWORK_CONFIG
from hand_recon_ros.network.export import export_onnx
from hand_recon_ros.pipeline.config import ConfigError, PipelineConfig
from hand_recon_ros.pipeline.hand_pipeline import HandPipeline


def export_tiny(path, **changes):
    torch.manual_seed(0)
    model = build_model(NetworkConfig.from_dict({**TINY_NETWORK_CONFIG, **changes}))
    export_onnx(model, path)
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("learned") / "tiny.onnx")


@pytest.fixture(scope="module")
def tiny_residual_onnx(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("learned") / "tiny_residual.onnx", residual=True)


@pytest.fixture(scope="module")
def woman_rgb(woman_hands_path):
    return cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)


def run_pipeline(image, **settings):
    pipe = HandPipeline(PipelineConfig(mode="image", **settings))
    try:
        return pipe.process(image), pipe.backend_description
    finally:
        pipe.close()


def test_learned_reconstructor_replaces_2d_and_3d_keeping_the_hands(model_paths, tiny_onnx, woman_rgb):
    base, _ = run_pipeline(woman_rgb)
    learned, description = run_pipeline(woman_rgb, reconstructor="learned", learned_model=str(tiny_onnx))
    assert "learned: onnxruntime-cpu" in description
    assert len(base.hands) == 2
    assert [h.detection.side for h in learned.hands] == [h.detection.side for h in base.hands]
    assert "learned" in learned.timing_ms and "learned" not in base.timing_ms
    pts = np.concatenate([h.detection.keypoints_2d for h in base.hands])
    lo, hi = pts.min(0), pts.max(0)
    half = (hi - lo).max() * 1.4 / 2 + 1.0
    centre = (lo + hi) / 2
    for a, b in zip(base.hands, learned.hands):
        kp = b.detection.keypoints_2d
        assert not np.allclose(kp, a.detection.keypoints_2d)  # the network's 2D, not the landmark network's
        # an untrained model still maps into the crop square around both hands, in image pixels
        assert np.all(np.abs(kp - centre) <= half * 1.5)
        assert b.joints_3d is not None and np.all(np.isfinite(b.joints_3d))  # placed in the camera frame
        np.testing.assert_allclose(b.detection.world_landmarks[0], 0.0, atol=1e-6)  # network's wrist-relative 3D


def test_untrained_residual_model_leaves_the_landmark_results_unchanged(model_paths, tiny_residual_onnx, woman_rgb):
    base, _ = run_pipeline(woman_rgb)
    learned, _ = run_pipeline(woman_rgb, reconstructor="learned", learned_model=str(tiny_residual_onnx))
    assert len(learned.hands) == len(base.hands) == 2
    for a, b in zip(base.hands, learned.hands):
        np.testing.assert_allclose(b.detection.world_landmarks, a.detection.world_landmarks, atol=1e-6)
        np.testing.assert_allclose(b.detection.keypoints_2d, a.detection.keypoints_2d, atol=1e-3)
        np.testing.assert_allclose(b.joints_3d, a.joints_3d, atol=1e-5)


def test_single_stage_mode_reads_hands_from_the_whole_image(model_paths, tiny_onnx):
    pipe = HandPipeline(PipelineConfig(mode="image", reconstructor="learned", learned_model=str(tiny_onnx)))
    try:
        blank = np.full((240, 320, 3), 90, np.uint8)
        everything = pipe.learned.reconstruct(blank, [], min_presence=0.0)
        nothing = pipe.learned.reconstruct(blank, [], min_presence=1.0)
        frame = pipe.process(blank)  # no detections: the whole image; an untrained model reports no hands
    finally:
        pipe.close()
    assert [d.side for d in everything] == ["left", "right"] and nothing == []
    assert frame.hands == [] and "learned" in frame.timing_ms
    for det in everything:
        assert det.keypoints_2d.shape == (21, 2) and np.all(np.isfinite(det.keypoints_2d))
        assert 0.0 <= det.score <= 1.0


def test_bad_learned_settings_name_the_problem(model_paths, tmp_path):
    with pytest.raises(ConfigError, match="reconstructor must be one of"):
        PipelineConfig(reconstructor="mano").validate()
    with pytest.raises(ConfigError, match="needs learned_model"):
        PipelineConfig(reconstructor="learned").validate()
    with pytest.raises(ConfigError, match="missing.onnx does not exist"):
        HandPipeline(PipelineConfig(reconstructor="learned", learned_model=str(tmp_path / "missing.onnx")))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file at all")
    with pytest.raises(ConfigError, match="corrupt.onnx is not a readable ONNX file"):
        HandPipeline(PipelineConfig(reconstructor="learned", learned_model=str(corrupt)))
    with pytest.raises(ConfigError, match="not made by `hand-recon export`"):
        HandPipeline(PipelineConfig(reconstructor="learned", learned_model=str(model_paths.landmark_onnx)))


def test_run_and_bench_commands_with_the_learned_model(model_paths, tiny_onnx, woman_hands_path, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["run", str(woman_hands_path), "--reconstructor", "learned", "--learned-model", str(tiny_onnx),
                 "-o", str(out), "--quiet"]) == 0
    record = json.loads(out.read_text().splitlines()[0])
    assert len(record["hands"]) == 2 and "learned" in record["timing_ms"]
    assert {"keypoints_2d", "joints_3d", "world_landmarks"} <= set(record["hands"][0])
    assert main(["bench", str(woman_hands_path), "--reconstructor", "learned", "--learned-model", str(tiny_onnx),
                 "--repeat", "1", "--warmup", "0"]) == 0
    assert "learned" in capsys.readouterr().out
    assert main(["run", str(woman_hands_path), "--reconstructor", "learned", "-o", str(out)]) == 2
    assert main(["run", str(woman_hands_path), "--reconstructor", "learned", "--learned-model",
                 str(tmp_path / "gone.onnx"), "-o", str(out)]) == 2


def test_eval_with_the_learned_reconstructor(model_paths, interhand_dir, tiny_onnx, tiny_residual_onnx, tmp_path):
    reports = {}
    learned = ["--reconstructor", "learned", "--learned-model"]
    for name, extra in (("landmarks", []), ("learned", [*learned, str(tiny_onnx)]),
                        ("residual", [*learned, str(tiny_residual_onnx)])):
        out = tmp_path / f"{name}.json"
        assert main(["eval", str(interhand_dir), "--lifter", "pnp", "-o", str(out), *extra]) == 0
        reports[name] = json.loads(out.read_text())["lifters"]["pnp"]
    # The untrained residual model reproduces the landmark pipeline's scores; the untrained full model does not.
    for key in ("error_2d_px", "mpjpe_mm", "pa_mpjpe_mm"):
        assert reports["residual"][key]["mean"] == pytest.approx(reports["landmarks"][key]["mean"], abs=0.05), key
    assert reports["learned"]["error_2d_px"]["mean"] != pytest.approx(reports["landmarks"]["error_2d_px"]["mean"],
                                                                      abs=0.05)
    assert main(["eval", str(interhand_dir), "--reconstructor", "learned"]) == 2
