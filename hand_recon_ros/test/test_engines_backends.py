"""Backends that run on this machine: ONNX Runtime across the providers present, torch, input checks and errors.

Small models are built here with onnx.helper (results checked against numpy); the real palm and landmark
networks come from the model cache and are compared across backends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from hand_recon_ros.engines.base import BackendError, BackendUnavailableError
from hand_recon_ros.engines.onnxruntime_backend import OnnxRuntimeTensorRTBackend
from hand_recon_ros.engines.registry import create_backend
from hand_recon_ros.engines.torch_backend import register_torch_factory

RNG_SEED = 7
WEIGHTS = np.random.default_rng(RNG_SEED).standard_normal((4, 3)).astype(np.float32)
BIAS = np.array([0.5, -0.25, 0.0], np.float32)
PARITY_ATOL = 1e-5
REAL_MODEL_ATOL = 1e-3  # torch reference vs exported ONNX on ORT: float32 reordering only


def _reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = x @ WEIGHTS + BIAS
    return np.maximum(y, 0), (y.sum(axis=1, keepdims=True) > 0)


def _write_model(path: Path, batch: int | str = "batch") -> Path:
    """image [batch,4] float32 → relu(image@W+b) [batch,3] float32 and positive [batch,1] bool."""
    nodes = [
        helper.make_node("MatMul", ["image", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["y"]),
        helper.make_node("Relu", ["y"], ["scores"]),
        helper.make_node("ReduceSum", ["y", "axes"], ["total"], keepdims=1),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 3]),
         helper.make_tensor_value_info("positive", TensorProto.BOOL, [batch, 1])],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b"),
         numpy_helper.from_array(np.array([1], np.int64), "axes"),
         numpy_helper.from_array(np.array(0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class TinyModule(torch.nn.Module):
    """The same function as the tiny ONNX graph, in torch."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weights", torch.from_numpy(WEIGHTS))
        self.register_buffer("bias", torch.from_numpy(BIAS))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = image @ self.weights + self.bias
        return torch.relu(y), y.sum(dim=1, keepdim=True) > 0


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    return _write_model(tmp_path / "tiny.onnx")


def _present_ort_backends() -> list[str]:
    import onnxruntime as ort

    present = ort.get_available_providers()
    names = ["onnxruntime-cpu"]
    if "CUDAExecutionProvider" in present:
        names.append("onnxruntime-cuda")
    if "TensorrtExecutionProvider" in present:
        names.append("onnxruntime-tensorrt")
    return names


# -- interface -----------------------------------------------------------------------------------------------
def test_specs_names_and_dtypes(tiny_onnx):
    with create_backend("onnxruntime-cpu", tiny_onnx, intra_op_threads=1) as backend:
        assert backend.input_names == ["image"] and backend.output_names == ["scores", "positive"]
        assert backend.inputs[0].shape == ("batch", 4) and backend.inputs[0].dtype == np.float32
        assert backend.outputs[1].dtype == np.bool_
        assert backend.describe() == "onnxruntime-cpu (fp32, CPUExecutionProvider)"
    assert not backend._loaded
    backend.close()  # idempotent


@pytest.mark.parametrize("name", _present_ort_backends())
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_ort_parity_with_numpy_across_present_providers(tiny_onnx, tmp_path, name, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
    with create_backend(name, tiny_onnx, cache_dir=str(tmp_path / "cache"), max_batch=8) as backend:
        out = backend.run({"image": x})
    scores, positive = _reference(x)
    np.testing.assert_allclose(out["scores"], scores, atol=PARITY_ATOL)
    np.testing.assert_array_equal(out["positive"], positive)


def test_intra_op_threads_option(tiny_onnx):
    x = np.ones((3, 4), np.float32)
    one = create_backend("onnxruntime-cpu", tiny_onnx, intra_op_threads=1).load().run({"image": x})
    two = create_backend("onnxruntime-cpu", tiny_onnx, intra_op_threads=2).load().run({"image": x})
    np.testing.assert_array_equal(one["scores"], two["scores"])
    with pytest.raises(BackendError, match="intra_op_threads must be >= 0, got -1"):
        create_backend("onnxruntime-cpu", tiny_onnx, intra_op_threads=-1).load()


# -- input checks (messages name the tensor) -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["onnxruntime-cpu", "torch"])
def test_input_checks_name_the_tensor(tmp_path, name):
    model = _write_model(tmp_path / "fixed.onnx", batch=1)
    backend = create_backend(name, model, **({"module": TinyModule()} if name == "torch" else {})).load()
    good = np.zeros((1, 4), np.float32)
    with pytest.raises(BackendError, match=r"inputs do not match the model: missing \['image'\], unexpected "
                                           r"\['img'\], expected \['image'\]"):
        backend.run({"img": good})
    with pytest.raises(BackendError, match="input 'image' has dtype float64, expected float32"):
        backend.run({"image": good.astype(np.float64)})
    with pytest.raises(BackendError, match=r"input 'image' has shape \(4,\), expected rank 2 \(1, 4\)"):
        backend.run({"image": good[0]})
    with pytest.raises(BackendError, match=r"input 'image' has shape \(1, 5\), expected \(1, 4\) \(axis 1 must "
                                           r"be 4\)"):
        backend.run({"image": np.zeros((1, 5), np.float32)})
    assert backend.run({"image": good})["scores"].shape == (1, 3)


def test_missing_and_invalid_model_files(tmp_path):
    with pytest.raises(BackendError, match="onnxruntime-cpu: model file not found: .*nope.onnx"):
        create_backend("onnxruntime-cpu", tmp_path / "nope.onnx").load()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(BackendError, match="onnxruntime-cpu: cannot load .*bad.onnx"):
        create_backend("onnxruntime-cpu", bad).load()


# -- ORT TensorRT provider options (built on CPU; the provider itself needs a GPU) -----------------------------
def test_ort_tensorrt_provider_options(tiny_onnx, tmp_path):
    backend = OnnxRuntimeTensorRTBackend(tiny_onnx, cache_dir=str(tmp_path), max_batch=2, workspace_mb=256)
    options = backend.trt_provider_options()
    assert options["trt_engine_cache_enable"] and options["trt_timing_cache_enable"]
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(tmp_path / "ort_tensorrt")
    assert options["trt_fp16_enable"] is True and options["trt_max_workspace_size"] == 256 << 20
    assert (options["trt_profile_min_shapes"], options["trt_profile_opt_shapes"],
            options["trt_profile_max_shapes"]) == ("image:1x4", "image:2x4", "image:2x4")
    fp32 = OnnxRuntimeTensorRTBackend(_write_model(tmp_path / "fixed.onnx", batch=1), precision="fp32")
    options = fp32.trt_provider_options()
    assert options["trt_fp16_enable"] is False and "trt_profile_min_shapes" not in options
    assert options["trt_int8_enable"] is False and options["trt_int8_use_native_calibration_table"] is False
    with pytest.raises(BackendError, match=r"onnxruntime-tensorrt: precision int8 needs calib_dir"):
        OnnxRuntimeTensorRTBackend(tiny_onnx, precision="int8")


# -- torch backend -------------------------------------------------------------------------------------------
def test_torch_module_option_matches_ort(tiny_onnx):
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    with create_backend("torch", tiny_onnx, module=TinyModule()) as backend:
        assert backend.describe() == "torch (cpu, module option)"
        out = backend.run({"image": x})
    ort_out = create_backend("onnxruntime-cpu", tiny_onnx).load().run({"image": x})
    np.testing.assert_allclose(out["scores"], ort_out["scores"], atol=PARITY_ATOL)
    np.testing.assert_array_equal(out["positive"], ort_out["positive"])
    assert out["positive"].dtype == np.bool_


def test_torch_loads_exported_program_beside_the_onnx(tiny_onnx):
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(TinyModule(), (torch.ones(2, 4),), dynamic_shapes={"image": {0: batch}})
    torch.export.save(program, str(tiny_onnx.with_suffix(".pt2")))
    backend = create_backend("torch", tiny_onnx).load()
    assert backend.describe() == "torch (cpu, exported program tiny.pt2)"
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    out = backend.run({"image": x})
    np.testing.assert_allclose(out["scores"], _reference(x)[0], atol=PARITY_ATOL)
    np.testing.assert_array_equal(out["positive"], _reference(x)[1])


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_torch_loads_torchscript_beside_the_onnx(tiny_onnx):
    torch.jit.script(TinyModule()).save(str(tiny_onnx.with_suffix(".pt")))
    backend = create_backend("torch", tiny_onnx).load()
    assert backend.describe() == "torch (cpu, TorchScript tiny.pt)"
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(backend.run({"image": x})["scores"], _reference(x)[0], atol=PARITY_ATOL)


def test_torch_registered_factory(tmp_path):
    model = _write_model(tmp_path / "registered_tiny.abc.onnx")
    seen = []

    def factory(path: Path) -> torch.nn.Module:
        seen.append(path)
        return TinyModule()

    register_torch_factory("registered_tiny", factory)
    backend = create_backend("torch", model).load()
    assert seen == [model] and "factory" in backend.describe()


def test_torch_errors(tiny_onnx):
    with pytest.raises(BackendUnavailableError, match="torch: no torch module for tiny.onnx: pass module="):
        create_backend("torch", tiny_onnx).load()
    with pytest.raises(BackendError, match="option 'module' must be a torch.nn.Module, got str"):
        create_backend("torch", tiny_onnx, module="not a module").load()

    class OneOutput(TinyModule):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return super().forward(image)[0]

    backend = create_backend("torch", tiny_onnx, module=OneOutput()).load()
    with pytest.raises(BackendError, match=r"the module returned 1 output\(s\), the ONNX file declares 2 "
                                           r"\(scores, positive\)"):
        backend.run({"image": np.ones((1, 4), np.float32)})
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="device 'cuda' requested but torch .* has no CUDA device"):
            create_backend("torch", tiny_onnx, module=TinyModule(), device="cuda").load()


# -- the real networks ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_models(model_paths):
    """The real networks (conftest's model_paths: a missing or broken cache is an error, never a skip)."""
    return model_paths


def _image_batch(shape: tuple, batch: int) -> np.ndarray:
    return np.random.default_rng(batch).random((batch, *shape[1:]), dtype=np.float32)


@pytest.mark.parametrize("network", ["palm_onnx", "landmark_onnx"])
def test_real_networks_torch_reference_matches_ort(real_models, network):
    path = getattr(real_models, network)
    ort_backend = create_backend("onnxruntime-cpu", path, intra_op_threads=1).load()
    torch_backend = create_backend("torch", path).load()
    assert ort_backend.input_names == torch_backend.input_names == ["image"]
    assert ort_backend.output_names == torch_backend.output_names
    batch = 2 if network == "landmark_onnx" else 1
    x = _image_batch(ort_backend.inputs[0].shape, batch)
    a, b = ort_backend.run({"image": x}), torch_backend.run({"image": x})
    for name in ort_backend.output_names:
        assert a[name].shape[0] == batch
        np.testing.assert_allclose(a[name], b[name], atol=REAL_MODEL_ATOL, err_msg=f"{network}:{name}")


def test_real_landmark_batch_is_dynamic_and_rows_independent(real_models):
    backend = create_backend("auto", real_models.landmark_onnx, intra_op_threads=1).load()
    x = _image_batch(backend.inputs[0].shape, 2)
    pair = backend.run({"image": x})
    single = backend.run({"image": x[1:2]})
    for name in backend.output_names:
        np.testing.assert_allclose(pair[name][1:2], single[name], atol=1e-4)
    palm = create_backend("onnxruntime-cpu", real_models.palm_onnx).load()
    with pytest.raises(BackendError, match=r"input 'image' has shape \(2, 192, 192, 3\), expected \(1, 192, 192, "
                                           r"3\) \(axis 0 must be 1\)"):
        palm.run({"image": _image_batch(palm.inputs[0].shape, 2)})
