"""The litert backend: the original .tflite files through LiteRT/XNNPACK, against ONNX Runtime and torch.

Real weights from the model cache, real LiteRT; a missing wheel is simulated by hiding the module (what is
under test is the unavailable path and `auto` skipping it, not LiteRT).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from hand_recon_ros.engines import auto_select
from hand_recon_ros.engines.base import BackendError, BackendUnavailableError
from hand_recon_ros.engines.litert_backend import LiteRTBackend, litert_unavailable_reason
from hand_recon_ros.engines.registry import create_backend
from hand_recon_ros.pipeline.config import PipelineConfig
from hand_recon_ros.pipeline.hand_pipeline import HandPipeline, backend_options

# LiteRT vs ONNX Runtime / torch on the same input: fp32 reordering only (outputs are pixels in [0, 224] or
# logits; the largest difference seen was 2.4e-4).
PARITY_ATOL = 2e-3
# The same photo through the whole 2D pipeline on litert and on onnxruntime-cpu: keypoints in image pixels.
PIPELINE_KEYPOINT_TOL_PX = 0.05


def _real_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A smooth image-like input in [0, 1] (random noise is not what the networks see)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0.0, 1.0, (shape[0], 8, 8, 3)).astype(np.float32)
    return np.stack([cv2.resize(s, (shape[2], shape[1]), interpolation=cv2.INTER_CUBIC) for s in small]).clip(0, 1)


@pytest.fixture
def hidden_litert(monkeypatch):
    """Make `import ai_edge_litert` fail the way it does where no wheel exists for the platform."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)


@pytest.mark.parametrize("network", ["palm", "landmark"])
def test_litert_matches_onnxruntime_and_torch_on_the_real_networks(model_paths, network):
    onnx_path = model_paths.palm_onnx if network == "palm" else model_paths.landmark_onnx
    batches = [1] if network == "palm" else [1, 2, 8]
    with create_backend("litert", onnx_path, intra_op_threads=2) as lite, \
            create_backend("onnxruntime-cpu", onnx_path) as ort, create_backend("torch", onnx_path) as torch_b:
        assert lite.inputs == ort.inputs and lite.outputs == ort.outputs  # the ONNX file's interface
        for batch in batches:
            x = _real_input((batch, *lite.inputs[0].shape[1:]), seed=batch)
            got = lite.run({"image": x})
            for reference in (ort.run({"image": x}), torch_b.run({"image": x})):
                assert set(got) == set(reference)
                for name, value in got.items():
                    assert value.shape == reference[name].shape and value.dtype == np.float32
                    np.testing.assert_allclose(value, reference[name], atol=PARITY_ATOL, err_msg=name)


def test_tflite_path_runs_with_the_files_own_names(model_paths):
    with create_backend("litert", model_paths.palm_tflite) as backend:
        assert backend.input_names == ["input_1"] and backend.inputs[0].shape == (1, 192, 192, 3)
        out = backend.run({"input_1": np.zeros((1, 192, 192, 3), np.float32)})
    assert out["Identity"].shape == (1, 2016, 18) and out["Identity_1"].shape == (1, 2016, 1)


def test_input_checks_and_describe(model_paths):
    backend = LiteRTBackend(model_paths.palm_onnx, intra_op_threads=1).load()
    assert backend.describe() == "litert (XNNPACK fp32, 1 threads, palm_detection_full.tflite)"
    with pytest.raises(BackendError, match=r"input 'image' has shape \(1, 96, 96, 3\), expected \(1, 192, 192, 3\)"):
        backend.run({"image": np.zeros((1, 96, 96, 3), np.float32)})
    with pytest.raises(BackendError, match="input 'image' has dtype float64, expected float32"):
        backend.run({"image": np.zeros((1, 192, 192, 3))})
    backend.close()
    backend.close()  # idempotent


@pytest.mark.parametrize("threads", [-1, 2.5, True])
def test_bad_thread_count_is_one_error_naming_the_value(model_paths, threads):
    with pytest.raises(BackendError, match=rf"litert: intra_op_threads must be an integer >= 0 .*got {threads!r}"):
        create_backend("litert", model_paths.palm_onnx, intra_op_threads=threads)


def test_thread_count_the_runtime_refuses_is_one_error_naming_the_value(model_paths):
    with pytest.raises(BackendError, match=r"litert: LiteRT refused intra_op_threads=2147483648"):
        create_backend("litert", model_paths.palm_onnx, intra_op_threads=2**31).load()


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_precision_it_cannot_run_is_an_error(model_paths, precision):
    with pytest.raises(BackendError, match=rf"litert: precision '{precision}' is not supported: .*fp32 or fp16 only"):
        create_backend("litert", model_paths.palm_onnx, precision=precision)
    assert create_backend("litert", model_paths.palm_onnx, precision="fp32").load().inputs


def _woman_inputs(model_paths, woman_hands_path) -> tuple[np.ndarray, np.ndarray]:
    """The photo's letterboxed palm input (1, 192, 192, 3) and its two hands' landmark crops (2, 224, 224, 3)."""
    from hand_recon_ros.pipeline.landmark_estimator import LandmarkEstimator
    from hand_recon_ros.pipeline.palm_detector import PalmDetector
    from hand_recon_ros.pipeline.roi import palm_to_roi

    rgb = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    with create_backend("litert", model_paths.palm_onnx) as palm_b, \
            create_backend("litert", model_paths.landmark_onnx) as landmark_b:
        detector = PalmDetector(palm_b)
        palm_input = detector.preprocess(rgb)[0].copy()
        rois = [palm_to_roi(p) for p in detector.detect(rgb, 0.5)]
        crops = LandmarkEstimator(landmark_b).crops(rgb, rois)
    assert crops.shape[0] == 2
    return palm_input, crops


# XNNPACK fp16 against fp32 on the photo's own inputs (measured: landmark pixels 0.73, palm box pixels 1.3 and logits
# 0.16, presence/handedness 3e-4, world landmarks 1.8 mm): fp16 arithmetic, so close but never bit-equal.
FP16_PIXEL_ATOL = 3.0
FP16_LOGIT_ATOL = 0.5
FP16_PROBABILITY_ATOL = 0.01
FP16_WORLD_ATOL_M = 0.005


def test_fp16_runs_both_networks_in_fp16_close_to_fp32(model_paths, woman_hands_path):
    palm_input, crops = _woman_inputs(model_paths, woman_hands_path)
    with create_backend("litert", model_paths.palm_onnx, precision="fp16") as p16, \
            create_backend("litert", model_paths.palm_onnx, precision="fp32") as p32:
        assert p16.describe().startswith("litert (XNNPACK fp16,") and p16.inputs == p32.inputs
        got, want = p16.run({"image": palm_input}), p32.run({"image": palm_input})
        np.testing.assert_allclose(got["Identity"], want["Identity"], atol=FP16_PIXEL_ATOL)
        np.testing.assert_allclose(got["Identity_1"], want["Identity_1"], atol=FP16_LOGIT_ATOL)
        assert np.abs(got["Identity"] - want["Identity"]).max() > 0  # really fp16: fp32 would be bit-equal
    tolerance = {"Identity": FP16_PIXEL_ATOL, "Identity_1": FP16_PROBABILITY_ATOL,
                 "Identity_2": FP16_PROBABILITY_ATOL, "Identity_3": FP16_WORLD_ATOL_M}
    with create_backend("litert", model_paths.landmark_onnx, precision="fp16", max_batch=8) as l16, \
            create_backend("litert", model_paths.landmark_onnx, precision="fp32", max_batch=8) as l32:
        for batch in (2, 1, 3, 8):  # the kept sizes 1, 2, 8 and a chunked 3
            x = np.concatenate([crops] * 4)[:batch]
            got, want = l16.run({"image": x}), l32.run({"image": x})
            filled = l16.run_filled(batch, lambda buffer, x=x: buffer.__setitem__(Ellipsis, x))
            for name, atol in tolerance.items():
                assert got[name].shape == want[name].shape and got[name].dtype == np.float32
                np.testing.assert_allclose(got[name], want[name], atol=atol, err_msg=f"{name} batch {batch}")
                np.testing.assert_array_equal(filled[name], got[name], err_msg=f"{name} batch {batch}")
            assert np.abs(got["Identity"] - want["Identity"]).max() > 0


def test_fp16_pipeline_finds_the_same_hands_within_a_pixel(woman_hands_path):
    image = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    hands = {}
    for precision in ("fp32", "fp16"):
        pipe = HandPipeline(PipelineConfig(backend="litert", mode="image", precision=precision))
        try:
            assert f"XNNPACK {precision}," in pipe.backend_description
            hands[precision] = {h.side: h for h in pipe.process(image).hands}
        finally:
            pipe.close()
    assert set(hands["fp16"]) == set(hands["fp32"]) == {"left", "right"}
    dist = np.concatenate([np.linalg.norm(hands["fp16"][s].detection.keypoints_2d
                                          - hands["fp32"][s].detection.keypoints_2d, axis=1) for s in hands["fp32"]])
    assert np.percentile(dist, 95) <= 1.5, dist  # measured p95 0.9, max 1.0 px on this 640x960 photo
    depth = [abs(hands["fp16"][s].joints_3d[0, 2] - hands["fp32"][s].joints_3d[0, 2]) for s in hands["fp32"]]
    assert max(depth) < 0.02, depth  # wrist depth within 2 cm (measured 3D joint differences: p95 4.4 mm)


def test_fp16_arithmetic_check_reads_the_cpu_flags():
    from hand_recon_ros.engines.litert_compiled import fp16_arithmetic_missing

    assert fp16_arithmetic_missing("flags\t\t: fpu sse avx2 avx512f avx512_fp16 amx_tile\n", "x86_64") is None
    assert fp16_arithmetic_missing("flags\t\t: fpu sse avx2 avx512f\n", "x86_64") == "this x86_64 CPU lacks avx512_fp16"
    assert fp16_arithmetic_missing("Features\t: fp asimd evtstrm asimdhp\n", "aarch64") is None
    assert "lacks asimdhp" in fp16_arithmetic_missing("Features\t: fp asimd\n", "aarch64")
    assert "no fp16 check" in fp16_arithmetic_missing("", "riscv64")


def test_fp16_on_a_broken_model_file_is_one_error_naming_it(model_paths, tmp_path):
    bad_onnx = tmp_path / "palm_detection_full.abc.onnx"
    bad_onnx.write_bytes(model_paths.palm_onnx.read_bytes())
    (tmp_path / "palm_detection_full.tflite").write_bytes(b"not a model" * 10)
    with pytest.raises(BackendError, match=r"litert: .*palm_detection_full\.tflite"):
        create_backend("litert", bad_onnx, precision="fp16").load()


def test_missing_tflite_beside_the_onnx_names_the_expected_file(model_paths, tmp_path):
    onnx_copy = tmp_path / "palm_detection_full.abc.onnx"
    onnx_copy.write_bytes(model_paths.palm_onnx.read_bytes())
    with pytest.raises(BackendError, match=r"litert: no TFLite file for .*expected .*palm_detection_full\.tflite"):
        create_backend("litert", onnx_copy).load()


def test_missing_wheel_makes_litert_unavailable_and_auto_skips_it(model_paths, hidden_litert):
    reason = litert_unavailable_reason()
    assert reason is not None and "ai_edge_litert not installed" in reason and "pip install ai-edge-litert" in reason
    with pytest.raises(BackendUnavailableError, match="litert: module ai_edge_litert not installed"):
        create_backend("litert", model_paths.palm_onnx).load()
    auto_select._logged_messages.clear()
    backend, message = auto_select.select_backend(model_paths.palm_onnx)
    assert backend.name != "litert"
    assert "litert: module ai_edge_litert not installed" in message


def test_auto_picks_litert_before_onnxruntime_cpu_with_the_pipelines_options(model_paths):
    order = auto_select.AUTO_ORDER
    assert order.index("litert") < order.index("onnxruntime-cpu")
    # The pipeline's default precision (auto: fp16 on TensorRT, fp32 elsewhere) must not keep auto off litert ...
    options = backend_options(PipelineConfig(backend="auto"), "palm")
    assert options["precision"] == "auto"
    backend, _ = auto_select.select_backend(model_paths.palm_onnx, options, order=("litert", "onnxruntime-cpu"))
    assert backend.name == "litert"
    # ... and an explicit fp16 request runs in fp16 on litert (int8, which it cannot run: see the tests above).
    fp16 = backend_options(PipelineConfig(backend="auto", precision="fp16"), "palm")
    backend, _ = auto_select.select_backend(model_paths.palm_onnx, fp16, order=("litert", "onnxruntime-cpu"))
    assert backend.name == "litert" and backend.precision == "fp16"
    backend.close()


def test_pipeline_backend_options_for_litert(model_paths, tmp_path):
    assert backend_options(PipelineConfig(backend="litert"))["precision"] == "auto"  # = fp32 on litert
    int8 = PipelineConfig(backend="litert", precision="int8", calib_dir=str(tmp_path), refine_3d=False)
    assert backend_options(int8)["precision"] == "int8"
    with pytest.raises(BackendError, match="litert: precision 'int8' is not supported"):
        HandPipeline(int8)


def test_pipeline_on_litert_finds_the_same_hands_as_onnxruntime(woman_hands_path):
    image = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    results = {}
    for name in ("litert", "onnxruntime-cpu"):
        pipe = HandPipeline(PipelineConfig(backend=name, mode="image", refine_3d=False))
        try:
            results[name] = pipe.process(image)
        finally:
            pipe.close()
    lite, ort = results["litert"], results["onnxruntime-cpu"]
    assert len(lite.hands) == len(ort.hands) == 2
    for a, b in zip(sorted(lite.hands, key=lambda h: h.side), sorted(ort.hands, key=lambda h: h.side)):
        assert a.side == b.side
        np.testing.assert_allclose(a.detection.keypoints_2d, b.detection.keypoints_2d, atol=PIPELINE_KEYPOINT_TOL_PX)


def test_other_batches_run_as_chunks_of_few_kept_interpreters(model_paths):
    with create_backend("litert", model_paths.landmark_onnx, max_batch=8) as lite, \
            create_backend("onnxruntime-cpu", model_paths.landmark_onnx) as ort:
        assert lite.chunk_sizes(8) == [8] and lite.chunk_sizes(5) == [2, 2, 1] and lite.chunk_sizes(11) == [8, 2, 1]
        for batch in (3, 5, 9):
            x = _real_input((batch, 224, 224, 3), seed=batch)
            got, want = lite.run({"image": x}), ort.run({"image": x})
            for name in want:
                assert got[name].shape == want[name].shape
                np.testing.assert_allclose(got[name], want[name], atol=PARITY_ATOL, err_msg=f"{name} batch {batch}")
        assert sorted(lite._interpreters) == [1, 2, 8]  # never one interpreter per batch size
    with pytest.raises(BackendError, match="litert: max_batch must be >= 1, got 0"):
        create_backend("litert", model_paths.landmark_onnx, max_batch=0)


@pytest.mark.parametrize("backend_name", ["litert", "onnxruntime-cpu", "auto"])
def test_run_filled_gives_what_run_gives(model_paths, backend_name):
    # litert fills the interpreter's own input tensor; the others a kept buffer; batch 3 is chunked on litert
    with create_backend(backend_name, model_paths.landmark_onnx, max_batch=8) as backend:
        for batch in (2, 1, 3, 2):
            x = _real_input((batch, *backend.inputs[0].shape[1:]), seed=10 + batch)
            reference = backend.run({"image": x})

            def fill(buffer: np.ndarray, x: np.ndarray = x) -> None:
                assert buffer.shape == x.shape and buffer.dtype == np.float32
                buffer[...] = x

            got = backend.run_filled(batch, fill)
            assert set(got) == set(reference)
            for name, value in got.items():
                np.testing.assert_array_equal(value, reference[name], err_msg=name)


def test_run_filled_that_keeps_the_buffer_is_a_clear_error(model_paths):
    kept = []
    with create_backend("litert", model_paths.palm_onnx) as backend:
        with pytest.raises(BackendError, match="inference failed"):
            backend.run_filled(1, kept.append)
        kept.clear()
        assert backend.run_filled(1, lambda buffer: buffer.fill(0.5))  # usable again once the array is let go


def test_palm_detector_rewrites_the_letterbox_border_every_frame(model_paths, woman_hands_path):
    from hand_recon_ros.pipeline.palm_detector import PalmDetector

    rgb = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    with create_backend("litert", model_paths.palm_onnx) as backend:
        detector = PalmDetector(backend)
        first = detector.detect(rgb, 0.5)
        backend.run_filled(1, lambda buffer: buffer.fill(1.0))  # garbage left in the interpreter's input tensor
        again = detector.detect(rgb, 0.5)
        interpreter, inputs, _ = backend._interpreters[1]
        np.testing.assert_array_equal(interpreter.get_tensor(inputs[0]), detector.preprocess(rgb)[0])  # border 0
        assert len(first) == len(again) == 2
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a.box, b.box)
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
