"""Backend names, `auto` selection and fallbacks, unavailable-backend error texts, and `hand-recon build-engine`.

Availability of tensorrt / ORT providers is simulated by injected probes (the selection logic is under test);
every backend that is actually loaded here is the real one.
"""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hand_recon_ros.cli import main as cli_main
from hand_recon_ros.engines import auto_select
from hand_recon_ros.engines.base import BackendError, BackendUnavailableError
from hand_recon_ros.engines.registry import BACKEND_NAMES, DEFAULT_BACKEND, canonical_backend_name, create_backend


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["image", "W"], ["out"])], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(autouse=True)
def _fresh_log_once():
    auto_select._logged_messages.clear()
    yield
    auto_select._logged_messages.clear()


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make `import tensorrt` fail the way it does where it is not installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def _constant_probe(reason: str | None):
    return lambda: reason


def _probes(**reasons: str | None) -> dict:
    return {name: _constant_probe(reasons.get(name)) for name in auto_select.AUTO_ORDER}


# -- names ---------------------------------------------------------------------------------------------------
def test_backend_names_and_aliases():
    assert set(BACKEND_NAMES) == {"auto", "tensorrt", "onnxruntime-tensorrt", "onnxruntime-cuda",
                                  "onnxruntime-cpu", "torch", "litert"}
    assert DEFAULT_BACKEND == "litert"  # faster than onnxruntime-cpu for the whole pipeline (docs/pipeline.md)
    assert canonical_backend_name("tflite") == "litert"
    assert canonical_backend_name("cpu") == canonical_backend_name("onnxruntime") == "onnxruntime-cpu"
    with pytest.raises(BackendError, match="unknown backend 'tensort'; choose one of auto, tensorrt"):
        create_backend("tensort", "x.onnx")


def test_unknown_option_is_an_error_naming_it(tiny_onnx):
    with pytest.raises(BackendError, match=r"onnxruntime-cpu: unknown option\(s\) \['intra_op_thread'\]"):
        create_backend("onnxruntime-cpu", tiny_onnx, intra_op_thread=1)
    # An option another backend reads is accepted (one config serves `auto`); precision is honoured on the CPU too.
    backend = create_backend("onnxruntime-cpu", tiny_onnx, precision="fp16", intra_op_threads=1).load()
    assert backend.run({"image": np.ones((1, 4), np.float32)})["out"].shape == (1, 3)


# -- explicit backends that cannot load: errors, never a fallback -------------------------------------------
def test_explicit_tensorrt_without_module_names_module_and_fix(tiny_onnx, no_tensorrt):
    backend = create_backend("tensorrt", tiny_onnx)
    with pytest.raises(BackendUnavailableError) as info:
        backend.load()
    text = str(info.value)
    assert text.startswith("tensorrt: module not installed (import of tensorrt halted; None in sys.modules)")
    assert 'pip install "tensorrt>=10,<12"' in text and "JetPack 6" in text and "onnxruntime-cpu" in text
    assert not backend._loaded


def test_old_tensorrt_is_refused(tiny_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    with pytest.raises(BackendUnavailableError, match=r"tensorrt 8.6.1 is not supported \(this backend supports "
                                                      r"TensorRT 10.x and 11.x\); fix: install"):
        create_backend("tensorrt", tiny_onnx).load()
    assert auto_select.probe_tensorrt().startswith("tensorrt 8.6.1 is not supported")


@pytest.mark.parametrize("version", ["12.0.0", "9.2.0", "unknown"])
def test_tensorrt_outside_10_and_11_is_refused_by_name(tiny_onnx, monkeypatch, version):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=version))
    with pytest.raises(BackendUnavailableError, match=f"tensorrt {version} is not supported"):
        create_backend("tensorrt", tiny_onnx).load()
    assert auto_select.probe_tensorrt().startswith(f"tensorrt {version} is not supported")


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0.106"])
def test_tensorrt_10_and_11_pass_the_version_gate(tiny_onnx, monkeypatch, version):
    # Past the gate the next step is the device buffers (no GPU here): the version is not the complaint.
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=version))
    reason = auto_select.probe_tensorrt()
    assert reason is None or "not supported" not in reason


def test_tensorrt_without_gpu_names_both_buffer_providers(tiny_onnx, monkeypatch):
    # tensorrt importable, but no GPU: the device-buffer step explains what it tried.
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match=r"no CUDA device buffers: torch .* sees no CUDA device .*"
                                                      r"pycuda not installed"):
        create_backend("tensorrt", tiny_onnx).load()
    assert auto_select.probe_tensorrt().startswith("no CUDA GPU usable: torch")


@pytest.mark.parametrize(("name", "provider"), [("onnxruntime-cuda", "CUDAExecutionProvider"),
                                                ("onnxruntime-tensorrt", "TensorrtExecutionProvider")])
def test_explicit_ort_provider_missing_is_an_error(tiny_onnx, name, provider):
    import onnxruntime as ort

    if provider in ort.get_available_providers():
        pytest.skip(f"{provider} is present in this onnxruntime build")
    with pytest.raises(BackendUnavailableError, match=f"{name}: execution provider\\(s\\) \\['{provider}'"):
        create_backend(name, tiny_onnx, cache_dir=str(tiny_onnx.parent)).load()


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available")
def test_provider_listed_but_not_started_is_refused(tiny_onnx, monkeypatch):
    # ORT falls back to CPU silently when a listed provider cannot start; the backend must say so instead.
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is present")
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: [*real, "CUDAExecutionProvider"])
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider is in this onnxruntime build but did "
                                                      "not start"):
        create_backend("onnxruntime-cuda", tiny_onnx).load()


# -- auto ----------------------------------------------------------------------------------------------------
def test_auto_uses_first_choice_when_it_loads(tiny_onnx, caplog):
    with caplog.at_level(logging.INFO, logger="hand_recon_ros.engines.auto_select"):
        backend, message = auto_select.select_backend(
            tiny_onnx, probes=_probes(), order=("onnxruntime-cpu",))
    assert message == "backend auto: using onnxruntime-cpu (first choice)"
    assert backend.name == "onnxruntime-cpu" and backend._loaded
    assert caplog.messages == [message]


def test_auto_logs_one_line_with_every_reason_in_order(tiny_onnx, caplog):
    probes = _probes(**{
        "tensorrt": "module not installed (No module named 'tensorrt')",
        "onnxruntime-tensorrt": "TensorrtExecutionProvider not in this onnxruntime",
        "onnxruntime-cuda": "CUDAExecutionProvider not in this onnxruntime",
        "litert": "module ai_edge_litert not installed",
    })
    with caplog.at_level(logging.INFO, logger="hand_recon_ros.engines.auto_select"):
        backend = create_backend("auto", tiny_onnx, probes=probes, intra_op_threads=1).load()
    assert caplog.messages == [
        "backend auto: using onnxruntime-cpu; not taken: tensorrt: module not installed (No module named "
        "'tensorrt'); onnxruntime-tensorrt: TensorrtExecutionProvider not in this onnxruntime; onnxruntime-cuda: "
        "CUDAExecutionProvider not in this onnxruntime; litert: module ai_edge_litert not installed"
    ]
    assert backend.describe().startswith("auto → onnxruntime-cpu (fp32, CPUExecutionProvider")
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(backend.run({"image": x})["out"],
                               create_backend("onnxruntime-cpu", tiny_onnx).load().run({"image": x})["out"])
    # Inputs are checked against the chosen backend's declared specs.
    with pytest.raises(BackendError, match="input 'image' has dtype float64, expected float32"):
        backend.run({"image": x.astype(np.float64)})


def test_auto_falls_through_when_a_probed_backend_fails_to_load(tiny_onnx, no_tensorrt, caplog):
    # The tensorrt probe is told "available", but the real load fails: recorded as its reason, next one tried.
    with caplog.at_level(logging.INFO, logger="hand_recon_ros.engines.auto_select"):
        backend, message = auto_select.select_backend(
            tiny_onnx, probes=_probes(**{"onnxruntime-tensorrt": "absent", "onnxruntime-cuda": "absent"}))
    assert backend.name == "onnxruntime-cpu"
    assert message.startswith("backend auto: using onnxruntime-cpu; not taken: tensorrt: loading failed "
                              "(BackendUnavailableError: tensorrt: module not installed")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and len(caplog.records) == 2
    assert "BackendUnavailableError" in warnings[0].getMessage()
    assert warnings[0].getMessage().endswith("using onnxruntime-cpu instead")


def test_auto_logs_the_same_choice_once(tiny_onnx, caplog):
    probes = _probes(tensorrt="no", **{"onnxruntime-tensorrt": "no", "onnxruntime-cuda": "no"})
    with caplog.at_level(logging.INFO, logger="hand_recon_ros.engines.auto_select"):
        for _ in range(3):  # e.g. palm + landmark + a pipeline restart
            create_backend("auto", tiny_onnx, probes=probes).load().run({"image": np.ones((1, 4), np.float32)})
    assert len(caplog.records) == 1


def test_auto_with_nothing_available_lists_every_reason(tiny_onnx):
    probes = _probes(tensorrt="a", **{"onnxruntime-tensorrt": "b", "onnxruntime-cuda": "c", "litert": "e",
                                      "onnxruntime-cpu": "d"})
    with pytest.raises(BackendUnavailableError, match=r"backend auto: no backend can run tiny.onnx: tensorrt: a; "
                                                      r"onnxruntime-tensorrt: b; onnxruntime-cuda: c; litert: e; "
                                                      r"onnxruntime-cpu: d"):
        create_backend("auto", tiny_onnx, probes=probes).load()


def test_real_probes_on_this_machine_agree_with_real_loads(tiny_onnx):
    # Whatever this machine has, auto's choice must be a backend that really runs the model.
    backend, message = auto_select.select_backend(tiny_onnx, options={"cache_dir": str(tiny_onnx.parent)})
    assert message.startswith(f"backend auto: using {backend.name}")
    assert backend.run({"image": np.ones((1, 4), np.float32)})["out"].shape == (1, 3)
    probes = auto_select.default_probes()
    assert probes[backend.name]() is None
    for earlier in auto_select.AUTO_ORDER[: auto_select.AUTO_ORDER.index(backend.name)]:
        assert f"{earlier}: " in message


# -- hand-recon build-engine ---------------------------------------------------------------------------------
def test_build_engine_without_tensorrt_fails_clearly(no_tensorrt, capsys):
    assert cli_main(["build-engine", "--max-batch", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("build-engine: TensorRT not available: module not installed (import of tensorrt halted")


def test_build_engine_argument_errors(tmp_path, capsys):
    assert cli_main(["build-engine", "--precision", "int8"]) == 2
    assert "--precision int8 needs --calib-dir DIR" in capsys.readouterr().err
    assert cli_main(["build-engine", "--precision", "int8", "--calib-dir", str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert cli_main(["build-engine", "--max-batch", "0"]) == 2
    assert "--max-batch must be >= 1, got 0" in capsys.readouterr().err
    assert cli_main(["build-engine", "--max-hands", "0"]) == 2
    assert "--max-hands must be >= 1, got 0" in capsys.readouterr().err
    assert cli_main(["build-engine", "--backend", "onnxruntime-tensorrt", "--print-key"]) == 2
    assert "--print-key needs --backend tensorrt" in capsys.readouterr().err
