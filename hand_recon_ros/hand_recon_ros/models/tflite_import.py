"""TFLite flatbuffer -> equivalent torch ``nn.Module`` (for MediaPipe's palm and hand-landmark graphs).

The flatbuffer is read with the ``tflite`` schema bindings; each operator becomes one module from
``tflite_ops`` with its weights converted to torch layout once. The module takes and returns the graph's
NHWC tensors, in the graph's output order, but runs in NCHW inside (one transpose at the input), so the
ONNX export is a plain chain of Conv/PRelu/Add without per-op transposes. The batch axis stays free.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hand_recon_ros.models import tflite_ops as ops

# tflite TensorType enum -> numpy dtype.
TENSOR_DTYPES: dict[int, np.dtype] = {
    0: np.dtype(np.float32),
    1: np.dtype(np.float16),
    2: np.dtype(np.int32),
    3: np.dtype(np.uint8),
    4: np.dtype(np.int64),
    7: np.dtype(np.int16),
    9: np.dtype(np.int8),
}
FLOAT32_TYPE = 0


class TFLiteImportError(ValueError):
    """The TFLite graph cannot be turned into a torch module; the message names the graph and the reason."""


class UnsupportedOpError(TFLiteImportError):
    """The graph uses an op (or op option) this importer does not implement; the message names both."""


def _builtin_op_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


class TFLiteGraphModule(nn.Module):
    """A TFLite graph as a torch module: ``forward(image NHWC) -> tuple`` of outputs in the graph's order."""

    def __init__(
        self,
        graph_name: str,
        layers: list[ops.TFLiteOp],
        input_id: int,
        input_name: str,
        input_shape: tuple[int, ...],
        output_ids: list[int],
        output_names: list[str],
        output_shapes: list[tuple[int, ...]],
        output_nchw: list[bool],
    ) -> None:
        super().__init__()
        self.graph_name = graph_name
        self.layers = nn.ModuleList(layers)
        self.input_id = input_id
        self.input_name = input_name
        self.input_shape = input_shape
        self.output_ids = output_ids
        self.output_names = output_names
        self.output_shapes = output_shapes
        self.output_nchw = output_nchw

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image: (N, H, W, C) float32 as the TFLite input (batch N free) -> the graph outputs, batch N."""
        if not torch.jit.is_tracing() and (image.dim() != 4 or tuple(image.shape[1:]) != self.input_shape[1:]):
            raise ValueError(
                f"{self.graph_name}: input '{self.input_name}' must have shape (N, "
                f"{', '.join(map(str, self.input_shape[1:]))}), got {tuple(image.shape)}"
            )
        values: dict[int, torch.Tensor] = {self.input_id: image.permute(0, 3, 1, 2)}
        for layer in self.layers:
            values[layer.output_id] = layer(*[values[i] for i in layer.input_ids])
        return tuple(
            values[i].permute(0, 2, 3, 1) if nchw else values[i] for i, nchw in zip(self.output_ids, self.output_nchw)
        )

    def run_numpy(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Convenience for tests and tools: numpy NHWC in, ``{output name: array}`` out (no autograd)."""
        with torch.inference_mode():
            outs = self(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)))
        return {name: out.numpy() for name, out in zip(self.output_names, outs)}


def load_tflite_module(path: str | Path) -> TFLiteGraphModule:
    """Read a .tflite file and build its torch module (eval mode, float32 buffers)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TFLiteImportError(f"cannot read TFLite file {path}: {exc}") from exc
    return build_module(data, graph_name=path.name)


def build_module(data: bytes, graph_name: str = "<memory>") -> TFLiteGraphModule:
    """Build the torch module of a TFLite flatbuffer held in memory; ``graph_name`` is used in errors."""
    import tflite

    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        n_subgraphs = model.SubgraphsLength()
    except Exception as exc:  # flatbuffers raises assorted errors on garbage
        raise TFLiteImportError(f"{graph_name}: not a TFLite flatbuffer ({type(exc).__name__}: {exc})") from exc
    if n_subgraphs != 1:
        raise TFLiteImportError(f"{graph_name}: expected 1 subgraph, found {n_subgraphs}")
    return _GraphBuilder(model, data, graph_name).build()


class _GraphBuilder:
    """Walks the operators once, folding constants and creating the torch layers."""

    def __init__(self, model: Any, data: bytes, graph_name: str) -> None:
        self.model = model
        self.data = data
        self.graph_name = graph_name
        self.graph = model.Subgraphs(0)
        self.op_names = _builtin_op_names()
        self.consts: dict[int, np.ndarray] = {}
        self.nchw: set[int] = set()  # 4-D activation tensors, held NCHW inside the module
        self.produced: set[int] = set()
        self.layers: list[ops.TFLiteOp] = []
        self.current_op = ""
        self.handlers: dict[str, Callable[[Any, int, list[int], int], None]] = {
            "DEQUANTIZE": self._dequantize,
            "CONV_2D": self._conv,
            "DEPTHWISE_CONV_2D": self._conv,
            "ADD": self._binary,
            "SUB": self._binary,
            "MUL": self._binary,
            "MEAN": self._mean,
            "FULLY_CONNECTED": self._fully_connected,
            "LOGISTIC": self._logistic,
            "PRELU": self._prelu,
            "MAX_POOL_2D": self._max_pool,
            "PAD": self._pad,
            "RESIZE_BILINEAR": self._resize_bilinear,
            "RESHAPE": self._reshape,
            "CONCATENATION": self._concatenation,
        }
        for i in range(self.graph.TensorsLength()):
            value = self._buffer_value(i)
            if value is not None:
                self.consts[i] = value

    # -- tensors -----------------------------------------------------------------------------------------------
    def _tensor(self, index: int) -> Any:
        return self.graph.Tensors(index)

    def tensor_name(self, index: int) -> str:
        """The tensor's name in the flatbuffer."""
        return self._tensor(index).Name().decode()

    def shape(self, index: int) -> tuple[int, ...]:
        """The tensor's static shape (batch 1 as stored in the file)."""
        t = self._tensor(index)
        return tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    def _buffer_value(self, index: int) -> np.ndarray | None:
        t = self._tensor(index)
        buf = self.model.Buffers(t.Buffer())
        offset = buf.Offset() if hasattr(buf, "Offset") else 0
        if offset > 1:  # large models keep buffers after the flatbuffer, addressed by offset/size
            raw = self.data[offset : offset + buf.Size()]
        elif buf.DataLength() > 0:
            raw = buf.DataAsNumpy().tobytes()
        else:
            return None
        dtype = TENSOR_DTYPES.get(t.Type())
        if dtype is None:
            raise TFLiteImportError(f"{self.graph_name}: constant '{self.tensor_name(index)}' has type {t.Type()}")
        return np.frombuffer(raw, dtype=dtype).reshape(self.shape(index)).copy()

    def const(self, index: int, op_name: str, role: str) -> np.ndarray:
        """The constant value of an op input; non-constant weights are unsupported."""
        if index not in self.consts:
            raise UnsupportedOpError(
                f"{self.graph_name}: {op_name} with a non-constant {role} "
                f"('{self.tensor_name(index)}') is not supported"
            )
        return self.consts[index]

    def _fail(self, op_name: str, detail: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.graph_name}: {op_name} {detail} is not supported by the TFLite importer")

    def _options(self, op: Any, cls: Any) -> Any:
        opts = cls()
        table = op.BuiltinOptions()
        if table is not None:
            opts.Init(table.Bytes, table.Pos)
        return opts

    def _act(self, op_name: str, act: int) -> int:
        if act not in ops.SUPPORTED_ACTIVATIONS:
            raise self._fail(op_name, f"with fused activation {ops.ACTIVATION_NAMES.get(act, act)}")
        return act

    def _add(self, layer: ops.TFLiteOp, out_nchw: bool) -> None:
        self.layers.append(layer)
        if out_nchw:
            self.nchw.add(layer.output_id)
        self.produced.add(layer.output_id)

    # -- build ---------------------------------------------------------------------------------------------------
    def build(self) -> TFLiteGraphModule:
        """Translate every operator, then wrap the layers with the graph's input and outputs."""
        g = self.graph
        if g.InputsLength() != 1:
            raise TFLiteImportError(f"{self.graph_name}: expected 1 input tensor, found {g.InputsLength()}")
        input_id = int(g.Inputs(0))
        input_shape = self.shape(input_id)
        if len(input_shape) != 4 or self._tensor(input_id).Type() != FLOAT32_TYPE:
            raise TFLiteImportError(
                f"{self.graph_name}: input must be a float32 NHWC image tensor, got shape {input_shape}"
            )
        self.nchw.add(input_id)
        self.produced.add(input_id)
        for op_index in range(g.OperatorsLength()):
            op = g.Operators(op_index)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            op_name = self.op_names.get(builtin, f"builtin code {builtin}")
            if op_name == "CUSTOM":
                op_name = f"CUSTOM ({code.CustomCode().decode() if code.CustomCode() else '?'})"
            handler = self.handlers.get(op_name)
            if handler is None:
                raise UnsupportedOpError(
                    f"{self.graph_name}: op #{op_index} {op_name} is not supported by the TFLite importer "
                    f"(supported: {', '.join(sorted(self.handlers))})"
                )
            inputs = [int(op.Inputs(j)) for j in range(op.InputsLength())]
            if op.OutputsLength() != 1:
                raise self._fail(op_name, f"with {op.OutputsLength()} outputs")
            output = int(op.Outputs(0))
            if op_name != "DEQUANTIZE" and self._tensor(output).Type() != FLOAT32_TYPE:
                raise self._fail(op_name, "on quantized (non-float32) activations")
            self.current_op = op_name
            handler(op, op_index, inputs, output)
            op_label = f"op #{op_index} {op_name}"
            for i in inputs:
                if i >= 0 and i not in self.consts and i not in self.produced:
                    raise TFLiteImportError(f"{self.graph_name}: {op_label} reads tensor {i} before it is computed")
        output_ids = [int(g.Outputs(j)) for j in range(g.OutputsLength())]
        for i in output_ids:
            if i not in self.produced:
                raise TFLiteImportError(f"{self.graph_name}: output '{self.tensor_name(i)}' is not computed")
        module = TFLiteGraphModule(
            graph_name=self.graph_name,
            layers=self.layers,
            input_id=input_id,
            input_name=self.tensor_name(input_id),
            input_shape=input_shape,
            output_ids=output_ids,
            output_names=[self.tensor_name(i) for i in output_ids],
            output_shapes=[self.shape(i) for i in output_ids],
            output_nchw=[i in self.nchw for i in output_ids],
        )
        return module.eval()

    # -- op handlers ---------------------------------------------------------------------------------------------
    def _dequantize(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        value = self.const(inputs[0], "DEQUANTIZE", "input")
        if value.dtype == np.float16:
            self.consts[output] = value.astype(np.float32)
            return
        quant = self._tensor(inputs[0]).Quantization()
        if quant is None or quant.ScaleLength() == 0:
            raise self._fail("DEQUANTIZE", f"of {value.dtype} without quantization parameters")
        scale = quant.ScaleAsNumpy().astype(np.float32)
        zero = quant.ZeroPointAsNumpy().astype(np.float32) if quant.ZeroPointLength() else np.zeros_like(scale)
        if scale.size > 1:  # per-axis quantization
            axis = quant.QuantizedDimension()
            bshape = [1] * value.ndim
            bshape[axis] = -1
            scale, zero = scale.reshape(bshape), zero.reshape(bshape)
        self.consts[output] = ((value.astype(np.float32) - zero) * scale).astype(np.float32)

    def _conv(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        import tflite

        name = self.current_op
        depthwise = name == "DEPTHWISE_CONV_2D"
        opts = self._options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
        x = inputs[0]
        if x not in self.nchw:
            raise self._fail(name, "on a non-4-D input")
        weight = self.const(inputs[1], name, "filter")
        bias = self.const(inputs[2], name, "bias") if len(inputs) > 2 and inputs[2] >= 0 else None
        _, in_h, in_w, in_c = self.shape(x)
        stride = (int(opts.StrideH()), int(opts.StrideW()))
        dilation = (int(opts.DilationHFactor()), int(opts.DilationWFactor()))
        if depthwise:  # [1, KH, KW, C*M] -> [C*M, 1, KH, KW], one group per input channel
            torch_weight = weight.transpose(3, 0, 1, 2)
            groups = in_c
        else:  # [O, KH, KW, I] -> [O, I, KH, KW]
            torch_weight = weight.transpose(0, 3, 1, 2)
            groups = in_c // weight.shape[3]
            if groups * weight.shape[3] != in_c:
                raise TFLiteImportError(
                    f"{self.graph_name}: op #{index} CONV_2D filter {weight.shape} does not match input channels {in_c}"
                )
        kh, kw = torch_weight.shape[2:]
        pads = self._pads(name, opts.Padding(), (in_h, in_w), (kh, kw), stride, dilation)
        act = self._act(name, opts.FusedActivationFunction())
        layer = ops.Conv2d(name, [x], output, torch_weight, bias, stride, dilation, pads, groups, act)
        self._add(layer, out_nchw=True)

    def _pads(
        self,
        op_name: str,
        padding: int,
        in_hw: tuple[int, int],
        kernel: tuple[int, int],
        stride: tuple[int, int],
        dilation: tuple[int, int],
    ) -> tuple[int, int, int, int]:
        if padding == ops.PADDING_VALID:
            return (0, 0, 0, 0)
        if padding != ops.PADDING_SAME:
            raise self._fail(op_name, f"with padding mode {padding}")
        top, bottom = ops.same_padding(in_hw[0], kernel[0], stride[0], dilation[0])
        left, right = ops.same_padding(in_hw[1], kernel[1], stride[1], dilation[1])
        return (top, bottom, left, right)

    def _binary(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        import tflite

        name = self.current_op
        opts_cls = {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions}[name]
        act = self._act(name, self._options(op, opts_cls).FusedActivationFunction())
        a, b = inputs
        a_const, b_const = a in self.consts, b in self.consts
        if a_const and b_const:
            raise self._fail(name, "of two constants")
        out_nchw = len(self.shape(output)) == 4
        if not a_const and not b_const:
            if (a in self.nchw) != (b in self.nchw):
                raise self._fail(name, "mixing a 4-D activation with a lower-rank activation")
            self._add(ops.BinaryOp(name, [a, b], output, act), out_nchw)
            return
        act_id, const_id = (b, a) if a_const else (a, b)
        value = self.consts[const_id].astype(np.float32)
        if act_id in self.nchw:
            value = ops.nhwc_const_to_nchw(value)
        layer = ops.BinaryOp(name, [act_id], output, act, constant=value, constant_first=a_const)
        self._add(layer, out_nchw)

    def _mean(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        import tflite

        x = inputs[0]
        rank = len(self.shape(x))
        axes = sorted({int(a) % rank for a in np.asarray(self.const(inputs[1], "MEAN", "axes")).reshape(-1)})
        keep = bool(self._options(op, tflite.ReducerOptions).KeepDims())
        if x in self.nchw:
            if keep or axes == [1, 2]:
                # The kept or remaining axes stay in a consistent order without leaving NCHW.
                self._add(ops.Mean("MEAN", [x], output, [ops.NHWC_TO_NCHW_AXIS[a] for a in axes], keep), keep)
                return
            raise self._fail("MEAN", f"over axes {axes} of a 4-D tensor without keep_dims")
        self._add(ops.Mean("MEAN", [x], output, axes, keep), out_nchw=False)

    def _fully_connected(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        import tflite

        opts = self._options(op, tflite.FullyConnectedOptions)
        if opts.WeightsFormat() != 0:
            raise self._fail("FULLY_CONNECTED", f"with weights format {opts.WeightsFormat()}")
        x = inputs[0]
        keep = bool(opts.KeepNumDims())
        if keep and x in self.nchw:
            raise self._fail("FULLY_CONNECTED", "with keep_num_dims on a 4-D input")
        weight = self.const(inputs[1], "FULLY_CONNECTED", "weights")
        bias = self.const(inputs[2], "FULLY_CONNECTED", "bias") if len(inputs) > 2 and inputs[2] >= 0 else None
        act = self._act("FULLY_CONNECTED", opts.FusedActivationFunction())
        layer = ops.FullyConnected("FULLY_CONNECTED", [x], output, weight, bias, act, x in self.nchw, keep)
        self._add(layer, out_nchw=False)

    def _logistic(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        self._add(ops.Logistic("LOGISTIC", [inputs[0]], output), inputs[0] in self.nchw)

    def _prelu(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        x = inputs[0]
        alpha = self.const(inputs[1], "PRELU", "alpha").astype(np.float32)
        self._add(ops.PRelu("PRELU", [x], output, alpha, len(self.shape(x))), x in self.nchw)

    def _max_pool(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        import tflite

        opts = self._options(op, tflite.Pool2DOptions)
        x = inputs[0]
        if x not in self.nchw:
            raise self._fail("MAX_POOL_2D", "on a non-4-D input")
        _, in_h, in_w, _ = self.shape(x)
        kernel = (int(opts.FilterHeight()), int(opts.FilterWidth()))
        stride = (int(opts.StrideH()), int(opts.StrideW()))
        pads = self._pads("MAX_POOL_2D", opts.Padding(), (in_h, in_w), kernel, stride, (1, 1))
        act = self._act("MAX_POOL_2D", opts.FusedActivationFunction())
        self._add(ops.MaxPool2d("MAX_POOL_2D", [x], output, kernel, stride, pads, act), out_nchw=True)

    def _pad(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        x = inputs[0]
        paddings = np.asarray(self.const(inputs[1], "PAD", "paddings")).astype(int).reshape(-1, 2)
        if x in self.nchw:
            paddings = paddings[[0, 3, 1, 2]]  # rows in NCHW axis order
        torch_pad = tuple(int(v) for row in paddings[::-1] for v in row)
        channels = self.shape(x)[3] if x in self.nchw else 0
        self._add(ops.Pad("PAD", [x], output, torch_pad, channels), x in self.nchw)

    def _resize_bilinear(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        import tflite

        opts = self._options(op, tflite.ResizeBilinearOptions)
        x = inputs[0]
        if x not in self.nchw:
            raise self._fail("RESIZE_BILINEAR", "on a non-4-D input")
        size = tuple(int(v) for v in np.asarray(self.const(inputs[1], "RESIZE_BILINEAR", "size")).reshape(-1))
        _, in_h, in_w, _ = self.shape(x)
        align, half = bool(opts.AlignCorners()), bool(opts.HalfPixelCenters())
        if align and half:
            raise self._fail("RESIZE_BILINEAR", "with both align_corners and half_pixel_centers")
        layer = ops.ResizeBilinear("RESIZE_BILINEAR", [x], output, (in_h, in_w), (size[0], size[1]), align, half)
        self._add(layer, out_nchw=True)

    def _reshape(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        x = inputs[0]
        out_shape = list(self.shape(output))
        if not out_shape or out_shape[0] != self.shape(x)[0]:
            raise self._fail("RESHAPE", f"that changes the batch axis ({self.shape(x)} -> {out_shape})")
        out_nchw = len(out_shape) == 4
        self._add(ops.Reshape("RESHAPE", [x], output, out_shape, x in self.nchw, out_nchw), out_nchw)

    def _concatenation(self, op: Any, index: int, inputs: list[int], output: int) -> None:
        import tflite

        opts = self._options(op, tflite.ConcatenationOptions)
        if any(i in self.consts for i in inputs):
            raise self._fail("CONCATENATION", "with a constant input")
        rank = len(self.shape(output))
        axis = int(opts.Axis()) % rank
        nchw = [i in self.nchw for i in inputs]
        if any(nchw) != all(nchw):
            raise self._fail("CONCATENATION", "mixing 4-D and lower-rank inputs")
        if all(nchw):
            axis = ops.NHWC_TO_NCHW_AXIS[axis]
        act = self._act("CONCATENATION", opts.FusedActivationFunction())
        self._add(ops.Concatenation("CONCATENATION", inputs, output, axis, act), all(nchw))


def run_litert(tflite_path: str | Path, image: np.ndarray, num_threads: int | None = None) -> dict[str, np.ndarray]:
    """Reference outputs from ai-edge-litert's interpreter, batch 1 at a time (the file's static batch)."""
    interpreter = make_litert_interpreter(tflite_path, num_threads)
    return invoke_litert(interpreter, image)


def make_litert_interpreter(tflite_path: str | Path, num_threads: int | None = None) -> Any:
    """An allocated ai-edge-litert interpreter for ``tflite_path`` (import is lazy: a dev/test dependency)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def invoke_litert(interpreter: Any, image: np.ndarray) -> dict[str, np.ndarray]:
    """Run an interpreter on each batch item of ``image`` (N, H, W, C); outputs stacked by name."""
    (inp,) = interpreter.get_input_details()
    results: dict[str, list[np.ndarray]] = {}
    for item in np.asarray(image, np.float32):
        interpreter.set_tensor(inp["index"], item[None])
        interpreter.invoke()
        for out in interpreter.get_output_details():
            results.setdefault(out["name"], []).append(interpreter.get_tensor(out["index"]).copy())
    return {name: np.concatenate(values, axis=0) for name, values in results.items()}
