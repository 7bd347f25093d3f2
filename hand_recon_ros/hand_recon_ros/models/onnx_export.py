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
import onnx.numpy_helper
import onnx.shape_inference
import torch

from hand_recon_ros.models.onnx_format import EXPORTER_VERSION, ONNX_OPSET
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
    fold_constants(model)
    fuse_pads_into_convs(model)
    if not dynamic_batch:  # reshapes keep the batch axis free (-1); this file is batch 1, so say so
        for value in model.graph.output:
            dim = value.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_value = 1
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
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


def fold_constants(model: onnx.ModelProto) -> int:
    """Evaluate every node whose inputs are all constants (onnx's reference evaluator) and store the results.

    torch's exporter spells a constant padding as a chain of Constant/Concat/Slice/Reshape nodes; folding it
    leaves plain initializers, so Pad -> Conv can be fused and runtimes see a clean graph. Returns the count.
    """
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    original = set(consts)
    kept: list[onnx.NodeProto] = []
    folded = 0
    for node in graph.node:
        foldable = node.domain in ("", "ai.onnx") and not node.op_type.startswith(("Random", "Multinomial"))
        if foldable and all(name == "" or name in consts for name in node.input):
            inputs = [name for name in node.input if name]
            sub = onnx.helper.make_model(
                onnx.helper.make_graph(
                    [node],
                    "fold",
                    [],
                    [onnx.helper.make_empty_tensor_value_info(name) for name in node.output],
                    [onnx.numpy_helper.from_array(consts[name], name) for name in inputs],
                ),
                opset_imports=model.opset_import,
            )
            values = ReferenceEvaluator(sub).run(None, {})
            consts.update(zip(node.output, values))
            folded += 1
            continue
        kept.append(node)
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    for name in sorted(used & (set(consts) - original)):
        graph.initializer.append(onnx.numpy_helper.from_array(consts[name], name))
    return folded


def fuse_pads_into_convs(model: onnx.ModelProto) -> int:
    """Fold zero-valued spatial Pad nodes into the Conv that reads them (ONNX Conv pads may be asymmetric).

    torch cannot express TFLite's asymmetric SAME padding in its conv, so the export has Pad -> Conv; ONNX
    Conv can, which saves a copy of the activation per strided conv. Returns how many Pads were removed.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    removed: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type != "Pad" or node.output[0] in outputs:
            continue
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "constant")
        users = consumers.get(node.output[0], [])
        if mode != "constant" or len(users) != 1 or users[0].op_type != "Conv" or node.input[1] not in inits:
            continue
        if len(node.input) > 2 and node.input[2]:
            value = inits.get(node.input[2])
            if value is None or onnx.numpy_helper.to_array(value).any():
                continue
        pads = onnx.numpy_helper.to_array(inits[node.input[1]]).astype(int).tolist()
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            continue  # only H/W padding of an NCHW tensor folds into the conv
        conv = users[0]
        if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for a in conv.attribute):
            continue
        old = next((list(a.ints) for a in conv.attribute if a.name == "pads"), [0, 0, 0, 0])
        new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
        kept = [a for a in conv.attribute if a.name != "pads"]
        del conv.attribute[:]
        conv.attribute.extend([*kept, onnx.helper.make_attribute("pads", new)])
        conv.input[0] = node.input[0]
        removed.append(node)
    for node in removed:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return len(removed)


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
