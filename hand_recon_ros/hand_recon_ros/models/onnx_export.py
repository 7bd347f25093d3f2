"""Export the imported palm and hand-landmark torch modules to ONNX (input ``image``, TFLite output names).

The palm network is exported with batch 1 (one letterboxed frame per call); the landmark network with a
dynamic batch axis so every hand of a frame runs in one call. Each file is checked with ``onnx.checker`` and
carries its source sha256 and exporter version in the model metadata.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import onnx
import torch

from hand_recon_ros.models.model_files import EXPORTER_VERSION, ONNX_OPSET
from hand_recon_ros.models.tflite_import import TFLiteGraphModule, load_tflite_module

INPUT_NAME = "image"
BATCH_AXIS_NAME = "batch"
PALM_OUTPUT_NAMES: tuple[str, ...] = ("Identity", "Identity_1")
LANDMARK_OUTPUT_NAMES: tuple[str, ...] = ("Identity", "Identity_1", "Identity_2", "Identity_3")


class OnnxExportError(RuntimeError):
    """Exporting a network to ONNX failed or produced an invalid model; the message names the file."""


def export_module(
    module: TFLiteGraphModule,
    onnx_path: str | Path,
    dynamic_batch: bool,
    opset: int = ONNX_OPSET,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Trace ``module`` to ONNX at ``onnx_path`` (one self-contained file), check it, return the path."""
    onnx_path = Path(onnx_path)
    example = torch.zeros((2 if dynamic_batch else 1, *module.input_shape[1:]), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=list(module.output_names),
            opset_version=opset,
            dynamic_axes=(
                {name: {0: BATCH_AXIS_NAME} for name in (INPUT_NAME, *module.output_names)} if dynamic_batch else None
            ),
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.doc_string = f"{module.graph_name} imported from TFLite by hand_recon_ros"
    for key, value in {"exporter_version": EXPORTER_VERSION, **(metadata or {})}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise OnnxExportError(f"ONNX export of {module.graph_name} to {onnx_path} is invalid: {exc}") from exc
    onnx.save_model(model, str(onnx_path))
    return onnx_path


def _export_file(tflite_path: str | Path, onnx_path: str | Path, dynamic_batch: bool, names: tuple[str, ...]) -> Path:
    tflite_path = Path(tflite_path)
    module = load_tflite_module(tflite_path)
    if tuple(module.output_names) != names:
        raise OnnxExportError(f"{tflite_path}: outputs {module.output_names}, expected {list(names)}")
    sha = hashlib.sha256(tflite_path.read_bytes()).hexdigest()
    meta = {"source": tflite_path.name, "source_sha256": sha, "batch": "dynamic" if dynamic_batch else "1"}
    return export_module(module, onnx_path, dynamic_batch=dynamic_batch, metadata=meta)


def export_palm(tflite_path: str | Path, onnx_path: str | Path) -> Path:
    """Palm detector -> ONNX: ``image`` [1,192,192,3] -> ``Identity`` [1,2016,18], ``Identity_1`` [1,2016,1]."""
    return _export_file(tflite_path, onnx_path, dynamic_batch=False, names=PALM_OUTPUT_NAMES)


def export_landmark(tflite_path: str | Path, onnx_path: str | Path) -> Path:
    """Hand landmarks -> ONNX with dynamic batch: ``image`` [N,224,224,3] -> Identity..Identity_3 [N,63|1|1|63]."""
    return _export_file(tflite_path, onnx_path, dynamic_batch=True, names=LANDMARK_OUTPUT_NAMES)


def onnx_io_summary(onnx_path: str | Path) -> dict[str, list[tuple[str, list[int | str]]]]:
    """``{"inputs": [(name, shape)], "outputs": [...]}`` of an ONNX file; dynamic axes appear by name."""
    model = onnx.load(str(onnx_path), load_external_data=False)

    def shape(value: onnx.ValueInfoProto) -> list[int | str]:
        dims = value.type.tensor_type.shape.dim
        return [d.dim_param if d.dim_param else int(d.dim_value) for d in dims]

    initializers = {i.name for i in model.graph.initializer}
    return {
        "inputs": [(v.name, shape(v)) for v in model.graph.input if v.name not in initializers],
        "outputs": [(v.name, shape(v)) for v in model.graph.output],
    }
