"""ONNX export: names, shapes, checker, ORT-vs-torch parity (landmark batch 1 and 3), graph clean-ups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from hand_recon_ros.engines.registry import create_backend
from hand_recon_ros.models import model_files as mf
from hand_recon_ros.models.onnx_export import (
    export_landmark,
    fold_constants,
    fuse_pads_into_convs,
    onnx_io_summary,
)
from hand_recon_ros.models.tflite_import import load_tflite_module

# ORT vs torch (same float32 maths, different kernels; the export's PReLU is alpha*x + (1-alpha)*relu(x)):
# |a - b| <= ATOL + RTOL * max|torch|. Measured: palm Identity 1.2e-4 (values up to ~130), Identity_1 2e-5;
# landmark Identity 5e-5 (values up to ~220), Identity_1..3 <= 2e-6.
ORT_ATOL = 1e-4
ORT_RTOL = 2e-5


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_close(ort_out: dict[str, np.ndarray], torch_out: dict[str, np.ndarray], label: str) -> None:
    for name, expected in torch_out.items():
        assert ort_out[name].shape == expected.shape, f"{label} {name}"
        err = float(np.abs(ort_out[name] - expected).max())
        tol = ORT_ATOL + ORT_RTOL * float(np.abs(expected).max())
        assert err <= tol, f"{label} {name}: max abs error {err:.3g} > {tol:.3g}"


def test_io_names_and_shapes(model_paths: mf.ModelPaths) -> None:
    palm = onnx_io_summary(model_paths.palm_onnx)
    assert palm == {
        "inputs": [("image", [1, 192, 192, 3])],
        "outputs": [("Identity", [1, 2016, 18]), ("Identity_1", [1, 2016, 1])],
    }
    landmark = onnx_io_summary(model_paths.landmark_onnx)
    assert landmark["inputs"] == [("image", ["batch", 224, 224, 3])]
    assert landmark["outputs"] == [
        ("Identity", ["batch", 63]),
        ("Identity_1", ["batch", 1]),
        ("Identity_2", ["batch", 1]),
        ("Identity_3", ["batch", 63]),
    ]
    for path in (model_paths.palm_onnx, model_paths.landmark_onnx):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["exporter_version"] == mf.EXPORTER_VERSION
    palm_meta = {p.key: p.value for p in onnx.load(str(model_paths.palm_onnx)).metadata_props}
    assert palm_meta["source_sha256"] == mf.TFLITE_FILES["palm_detection_full"].sha256


def test_palm_ort_matches_torch(model_paths: mf.ModelPaths) -> None:
    module = load_tflite_module(model_paths.palm_tflite)
    x = np.random.default_rng(5).random((1, 192, 192, 3), dtype=np.float32)
    session = _session(model_paths.palm_onnx)
    got = dict(zip(module.output_names, session.run(module.output_names, {"image": x})))
    _assert_close(got, module.run_numpy(x), "palm batch 1")


@pytest.mark.parametrize("batch", [1, 3])
def test_landmark_ort_matches_torch_dynamic_batch(model_paths: mf.ModelPaths, batch: int) -> None:
    module = load_tflite_module(model_paths.landmark_tflite)
    x = np.random.default_rng(batch).random((batch, 224, 224, 3), dtype=np.float32)
    session = _session(model_paths.landmark_onnx)
    got = dict(zip(module.output_names, session.run(module.output_names, {"image": x})))
    _assert_close(got, module.run_numpy(x), f"landmark batch {batch}")


def test_runs_through_project_backend(model_paths: mf.ModelPaths) -> None:
    x = np.random.default_rng(2).random((2, 224, 224, 3), dtype=np.float32)
    with create_backend("onnxruntime-cpu", model_paths.landmark_onnx) as backend:
        out = backend.run({"image": x})
    assert out["Identity"].shape == (2, 63) and out["Identity_3"].shape == (2, 63)
    assert ((out["Identity_1"] >= 0) & (out["Identity_1"] <= 1)).all()  # presence is a sigmoid
    with create_backend("onnxruntime-cpu", model_paths.palm_onnx) as backend:
        with pytest.raises(Exception, match="axis 0 must be 1"):
            backend.run({"image": np.zeros((2, 192, 192, 3), np.float32)})


def test_export_graph_has_no_per_op_layout_changes(model_paths: mf.ModelPaths) -> None:
    for path, max_transposes in ((model_paths.palm_onnx, 5), (model_paths.landmark_onnx, 1)):
        ops = [n.op_type for n in onnx.load(str(path)).graph.node]
        # One transpose at the input (plus one per palm reshape head); pads folded into convs; no PRelu.
        assert ops.count("Transpose") <= max_transposes, path.name
        assert "Pad" not in ops and "PRelu" not in ops and "Constant" not in ops, path.name


def test_export_landmark_to_new_file(tmp_path: Path, model_paths: mf.ModelPaths) -> None:
    out = export_landmark(model_paths.landmark_tflite, tmp_path / "lm.onnx")
    x = np.random.default_rng(9).random((2, 224, 224, 3), dtype=np.float32)
    a = _session(out).run(None, {"image": x})
    b = _session(model_paths.landmark_onnx).run(None, {"image": x})
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)  # the export is deterministic


def _pad_conv_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w")
    shape = helper.make_node(
        "Constant", [], ["pads_raw"], value=numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1]))
    )
    reshape = helper.make_node("Identity", ["pads_raw"], ["pads"])
    pad = helper.make_node("Pad", ["x", "pads"], ["xp"], mode="constant")
    conv = helper.make_node("Conv", ["xp", "w"], ["y"], strides=[2, 2])
    graph = helper.make_graph(
        [shape, reshape, pad, conv],
        "pad_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_fold_and_fuse_keep_the_result() -> None:
    model = _pad_conv_model()
    x = np.random.default_rng(1).random((1, 2, 8, 8), dtype=np.float32)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert fold_constants(model) == 2
    assert fuse_pads_into_convs(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    pads = next(list(a.ints) for a in model.graph.node[0].attribute if a.name == "pads")
    assert pads == [0, 0, 1, 1]  # asymmetric: bottom/right only, as TFLite's SAME
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
