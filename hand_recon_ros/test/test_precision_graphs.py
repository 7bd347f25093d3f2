"""Precision as ONNX graphs on the CPU: FP16 and INT8 Q/DQ files, their keys and caches, calibration errors, the
CPU default staying FP32, and FP16 accuracy on a real photo."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from test_engines_gpu import _write_conv_model

from hand_recon_ros.cli import main as cli_main
from hand_recon_ros.engines import calibration_set as cs
from hand_recon_ros.engines import precision_graphs as pg
from hand_recon_ros.engines.base import BackendError
from hand_recon_ros.engines.registry import create_backend

FP16_P95_LIMIT_PX = 0.5


@pytest.fixture
def conv_onnx(tmp_path):
    return _write_conv_model(tmp_path / "conv.onnx")


def _write_deep_conv_model(path):
    """image [batch,8,8,3] → 5 × (3×3 conv 16 ch + relu) → mean → dense 4: deeper than INT8's FP32 first convs."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Transpose", ["image"], ["x0"], perm=[0, 3, 1, 2])]
    inits = []
    for i in range(5):
        w = (rng.standard_normal((16, 3 if i == 0 else 16, 3, 3)) * 0.2).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [helper.make_node("Conv", [f"x{i}", f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1], name=f"/c{i}"),
                  helper.make_node("Relu", [f"c{i}"], [f"x{i + 1}"])]
    inits.append(numpy_helper.from_array((rng.standard_normal((16, 4)) * 0.2).astype(np.float32), "dw"))
    nodes += [helper.make_node("GlobalAveragePool", ["x5"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "dw"], ["out"], name="/dense")]
    graph = helper.make_graph(nodes, "deep", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["batch", 8, 8, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _images(folder, count, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.random.default_rng(seed + i).integers(0, 255, (24, 32, 3),
                                                                                              np.uint8))
    return folder


def _ops(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_fp16_graph_keeps_fp32_io_is_cached_and_keyed_on_the_source(conv_onnx, tmp_path):
    cache = tmp_path / "cache"
    path = pg.precision_graph(conv_onnx, "fp16", cache)
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {i.data_type for i in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    stamp = path.stat().st_mtime_ns
    assert pg.precision_graph(conv_onnx, "fp16", cache) == path and path.stat().st_mtime_ns == stamp
    key = pg.graph_key(conv_onnx, "fp16")
    assert key["converter"].startswith("onnxconverter-common ") and key["opset"] == 17 and "Resize" in key["block_ops"]
    _write_conv_model(conv_onnx)  # same bytes: same key
    assert pg.precision_graph(conv_onnx, "fp16", cache) == path
    other = _write_conv_model(tmp_path / "conv2.onnx")
    assert pg.key_digest(pg.graph_key(other, "fp16")) == pg.key_digest(key)  # key is content, not the name
    assert pg.precision_graph(conv_onnx, "fp32", cache) == conv_onnx


def _weight_types(path):
    return {i.name.removesuffix("_quantized"): i.data_type for i in onnx.load(str(path)).graph.initializer
            if i.name.startswith(("w", "dw")) and not i.name.endswith(("_scale", "_zero_point"))}


def _sidecar(path):
    return json.loads(path.with_name(path.name + ".json").read_text())


def test_int8_graph_has_per_channel_qdq_and_is_keyed_on_the_calibration_set(tmp_path):
    conv_onnx = _write_deep_conv_model(tmp_path / "deep.onnx")
    cache = tmp_path / "cache"
    first = pg.precision_graph(conv_onnx, "int8", cache, _images(tmp_path / "a", 10), int8_flavour="cpu")
    ops = _ops(first)
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    weight_scales = [i for i in onnx.load(str(first)).graph.initializer if i.name.endswith("_scale") and i.dims]
    assert any(s.dims[0] == 16 for s in weight_scales), "conv weights are not quantised per channel"
    second = pg.precision_graph(conv_onnx, "int8", cache, _images(tmp_path / "b", 10, seed=50), int8_flavour="cpu")
    assert second != first and second.is_file() and first.is_file()
    assert pg.precision_graph(conv_onnx, "int8", cache, tmp_path / "a", int8_flavour="cpu") == first
    tensorrt_flavour = pg.precision_graph(conv_onnx, "int8", cache, tmp_path / "a", int8_flavour="tensorrt")
    assert tensorrt_flavour != first
    x = np.random.default_rng(1).random((8, 8, 8, 3), dtype=np.float32)
    ref = create_backend("onnxruntime-cpu", conv_onnx).load().run({"image": x})["out"]
    int8 = create_backend("onnxruntime-cpu", conv_onnx, precision="int8", calib_dir=str(tmp_path / "a"),
                          cache_dir=str(cache)).load()
    assert int8.graph_path == first and "int8" in int8.describe()
    out = int8.run({"image": x})["out"]
    assert out.shape == ref.shape and np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.9  # tracks FP32


def test_int8_keeps_the_most_sensitive_nodes_fp32_and_keys_the_rule(tmp_path, monkeypatch):
    conv_onnx = _write_deep_conv_model(tmp_path / "deep.onnx")
    images = _images(tmp_path / "a", 10)
    path = pg.precision_graph(conv_onnx, "int8", tmp_path / "cache", images, int8_flavour="tensorrt")
    recipe = _sidecar(path)["recipe"]
    ranking = recipe["output_sqnr_db_when_alone_int8"]
    names = {"/c0": "w0", "/c1": "w1", "/c2": "w2", "/c3": "w3", "/c4": "w4", "/dense": "dw"}
    assert set(ranking) == set(names)  # every weighted node was ranked by its output SQNR alone in INT8
    # The 35 % lowest-SQNR nodes (ceil(0.35 * 6) = 3) are the FP32 ones, and they are FP32 in the written graph.
    lowest = sorted(ranking, key=ranking.get)[:3]
    assert recipe["fp32_nodes"] == lowest
    types = _weight_types(path)
    assert {names[n] for n in lowest} == {w for w, t in types.items() if t == onnx.TensorProto.FLOAT}, types
    assert {t for w, t in types.items() if w not in {names[n] for n in lowest}} == {onnx.TensorProto.INT8}
    # The rule is in the key: another fraction is another file, never the cached graph of the old recipe.
    calibration = pg.Calibration.from_dir(images)
    key = pg.graph_key(conv_onnx, "int8", calibration, "tensorrt")
    assert key["quant"]["fp32_nodes"] == {"rule": "output-sqnr-when-alone-int8", "ops": ["Conv", "Gemm", "MatMul"],
                                          "fraction": pg.INT8_FP32_SENSITIVE_FRACTION,
                                          "samples": pg.INT8_SENSITIVITY_SAMPLES}
    assert key["quant"]["no_output_qdq_ops"] == ["Conv", "Gemm"]
    monkeypatch.setattr(pg, "INT8_FP32_SENSITIVE_FRACTION", 0.5)
    assert pg.key_digest(pg.graph_key(conv_onnx, "int8", calibration, "tensorrt")) != pg.key_digest(key)
    wider = pg.precision_graph(conv_onnx, "int8", tmp_path / "cache", images, int8_flavour="tensorrt")
    assert wider != path and len(_sidecar(wider)["recipe"]["fp32_nodes"]) == 3  # ceil(0.5 * 6)
    monkeypatch.setattr(pg, "INT8_FP32_SENSITIVE_FRACTION", 0.7)
    widest = pg.precision_graph(conv_onnx, "int8", tmp_path / "cache", images, int8_flavour="tensorrt")
    assert len(_sidecar(widest)["recipe"]["fp32_nodes"]) == 5  # ceil(0.7 * 6)


def test_int8_runs_the_palm_detector_fp32_but_still_needs_a_calibration_set(tmp_path):
    palm = _write_conv_model(tmp_path / "palm_detection_full.onnx")
    images = _images(tmp_path / "a", 10)
    assert pg.int8_keeps_fp32(palm) and not pg.int8_keeps_fp32(tmp_path / "hand_landmark_full.onnx")
    assert pg.precision_graph(palm, "int8", tmp_path / "cache", images) == palm
    key = pg.graph_key(palm, "int8", pg.Calibration.from_dir(images))
    assert key["int8_runs_fp32"] and "quant" not in key
    backend = create_backend("onnxruntime-cpu", palm, precision="int8", calib_dir=str(images),
                             cache_dir=str(tmp_path / "cache")).load()
    assert backend.graph_path == palm and "int8 recipe: this network FP32" in backend.describe()
    with pytest.raises(BackendError, match="precision int8 needs a calibration set"):
        pg.precision_graph(palm, "int8", tmp_path / "cache")
    with pytest.raises(BackendError, match="has no images"):
        pg.precision_graph(palm, "int8", tmp_path / "cache", _images(tmp_path / "empty", 0))


def test_calibration_with_fewer_images_than_one_batch_says_how_many_are_needed(conv_onnx, tmp_path):
    with pytest.raises(BackendError, match=rf"gave 3 calibration sample\(s\), at least {cs.MIN_CALIBRATION_SAMPLES} "
                                           r"are needed \(one calibration batch\)"):
        pg.precision_graph(conv_onnx, "int8", tmp_path / "cache", _images(tmp_path / "few", 3))


def test_calibration_folder_without_readable_images_is_named(conv_onnx, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(4):
        (broken / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(BackendError, match=r"calibration folder .*broken: none of its 4 image files can be read"):
        pg.precision_graph(conv_onnx, "int8", tmp_path / "cache", broken)
    with pytest.raises(BackendError, match="has no images"):
        pg.precision_graph(conv_onnx, "int8", tmp_path / "cache", _images(tmp_path / "empty", 0))


def test_int8_without_a_calibration_set_is_an_error_that_says_so(conv_onnx, tmp_path, woman_hands_path):
    for name in ("onnxruntime-cpu", "tensorrt", "onnxruntime-tensorrt"):
        with pytest.raises(BackendError, match="precision int8 needs calib_dir"):
            create_backend(name, conv_onnx, precision="int8")
    with pytest.raises(BackendError, match="precision int8 needs a calibration set"):
        pg.precision_graph(conv_onnx, "int8", tmp_path)
    for command in ("run", "bench", "eval"):
        assert cli_main([command, str(woman_hands_path), "--precision", "int8"]) == 2, command
    assert cli_main(["run", str(woman_hands_path), "--precision", "fp16", "--calib-dir", str(tmp_path / "no")]) == 2


def test_cpu_default_precision_stays_fp32(conv_onnx):
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import backend_options

    options = backend_options(PipelineConfig())
    assert options["precision"] == "auto"
    cpu = create_backend("onnxruntime-cpu", conv_onnx, **options).load()
    assert cpu.precision == "fp32" and cpu.graph_path == conv_onnx
    assert create_backend("tensorrt", conv_onnx, **options).precision == "fp16"
    assert create_backend("onnxruntime-tensorrt", conv_onnx, **options).precision == "fp16"
    assert create_backend("onnxruntime-cuda", conv_onnx, **options).precision == "fp32"


def test_landmark_calibration_uses_hand_crops_from_the_detector(model_paths, woman_hands_path):
    from hand_recon_ros.pipeline.calibration_crops import landmark_calibration_samples

    rgb = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    from hand_recon_ros.pipeline.calibration_crops import CALIB_PROPOSAL_CROPS_PER_IMAGE

    crops = landmark_calibration_samples(model_paths.landmark_onnx, [rgb, np.zeros_like(rgb)], (224, 224, 3))
    # Two hands: detector crop + landmark-centred crop each; both images: a few generic proposal crops.
    assert crops.shape == (4 + 2 * CALIB_PROPOSAL_CROPS_PER_IMAGE, 224, 224, 3)
    assert crops.dtype == np.float32 and 0.0 <= crops.min() and crops.max() <= 1.0 and crops.std() > 0.05
    assert pg.sample_method(model_paths.landmark_onnx) != pg.sample_method(model_paths.palm_onnx)


def test_fp16_graphs_find_the_same_hands_within_half_a_pixel_on_a_real_photo(model_paths, woman_hands_path, tmp_path):
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    rgb = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    results = {}
    for precision in ("fp32", "fp16"):
        pipeline = HandPipeline(PipelineConfig(backend="onnxruntime-cpu", mode="image", refine_3d=False,
                                               precision=precision, engine_cache_dir=str(tmp_path)))
        results[precision] = {h.detection.side: h.detection.keypoints_2d for h in pipeline.process(rgb).hands}
        assert f"({precision}," in pipeline.backend_description
        pipeline.close()
    assert set(results["fp16"]) == set(results["fp32"]) == {"left", "right"}
    dist = np.concatenate([np.linalg.norm(results["fp16"][s] - results["fp32"][s], axis=1) for s in results["fp32"]])
    assert np.percentile(dist, 95) <= FP16_P95_LIMIT_PX, dist


def test_a_precision_the_backend_cannot_do_is_refused_by_name(conv_onnx):
    with pytest.raises(BackendError, match=r"torch: runs the FP32 reference only, precision 'int8' is not available"):
        create_backend("torch", conv_onnx, precision="int8")
    with pytest.raises(BackendError, match=r"onnxruntime-cpu: precision must be one of auto, fp32, fp16, int8, got "
                                           r"'bf16'"):
        create_backend("onnxruntime-cpu", conv_onnx, precision="bf16")
