"""torch implementations of the TFLite ops used by MediaPipe's palm and hand-landmark graphs.

Activations run in NCHW (4-D tensors) so torch's and ONNX Runtime's fast convolution kernels apply; each op
knows the TFLite (NHWC) semantics it reproduces. Weights are converted to torch layout once, at build time,
and kept as buffers. Batch is never baked in: shapes use -1 (or the input's own size) on the batch axis.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)
from torch import nn

# TFLite Padding enum values and the NHWC -> NCHW axis map for 4-D activations.
PADDING_SAME = 0
PADDING_VALID = 1
NHWC_TO_NCHW_AXIS: dict[int, int] = {0: 0, 1: 2, 2: 3, 3: 1}

# TFLite ActivationFunctionType values.
ACT_NONE = 0
ACT_RELU = 1
ACT_RELU_N1_TO_1 = 2
ACT_RELU6 = 3
ACT_TANH = 4
ACTIVATION_NAMES: dict[int, str] = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
SUPPORTED_ACTIVATIONS: frozenset[int] = frozenset({ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH})


def apply_activation(x: torch.Tensor, act: int) -> torch.Tensor:
    """Apply a TFLite fused activation (NONE, RELU, RELU_N1_TO_1, RELU6, TANH)."""
    if act == ACT_NONE:
        return x
    if act == ACT_RELU:
        return F.relu(x)
    if act == ACT_RELU6:
        return torch.clamp(x, 0.0, 6.0)
    if act == ACT_RELU_N1_TO_1:
        return torch.clamp(x, -1.0, 1.0)
    if act == ACT_TANH:
        return torch.tanh(x)
    raise ValueError(f"unsupported fused activation {ACTIVATION_NAMES.get(act, act)}")


def same_padding(in_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite/TensorFlow SAME padding (before, after) along one axis: the odd extra pixel goes after."""
    out_size = -(-in_size // stride)
    effective_kernel = (kernel - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective_kernel - in_size, 0)
    return total // 2, total - total // 2


def nhwc_const_to_nchw(value: np.ndarray, rank: int = 4) -> np.ndarray:
    """A constant broadcast against an NHWC activation, laid out to broadcast against the NCHW one."""
    value = np.asarray(value, dtype=np.float32)
    if value.ndim > rank:
        raise ValueError(f"constant of shape {value.shape} has more than {rank} dimensions")
    value = value.reshape((1,) * (rank - value.ndim) + value.shape)
    return np.ascontiguousarray(value.transpose(0, 3, 1, 2)) if rank == 4 else value


class TFLiteOp(nn.Module):
    """Base of every op: the tensor indices it reads and the one it writes, and the TFLite op name."""

    def __init__(self, op_name: str, input_ids: list[int], output_id: int) -> None:
        super().__init__()
        self.op_name = op_name
        self.input_ids = list(input_ids)
        self.output_id = output_id

    def extra_repr(self) -> str:
        """Shown by print(module): the TFLite op and its tensor indices."""
        return f"{self.op_name}: {self.input_ids} -> {self.output_id}"


class Conv2d(TFLiteOp):
    """CONV_2D / DEPTHWISE_CONV_2D on NCHW with TFLite padding and a fused activation."""

    def __init__(
        self,
        op_name: str,
        input_ids: list[int],
        output_id: int,
        weight: np.ndarray,
        bias: np.ndarray | None,
        stride: tuple[int, int],
        dilation: tuple[int, int],
        pads: tuple[int, int, int, int],
        groups: int,
        act: int,
    ) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
        self.register_buffer("bias", None if bias is None else torch.from_numpy(np.asarray(bias, np.float32)))
        self.stride = stride
        self.dilation = dilation
        top, bottom, left, right = pads
        # Symmetric padding goes into the conv itself; TFLite's asymmetric SAME padding needs an explicit pad.
        self.symmetric = top == bottom and left == right
        self.conv_padding = (top, left) if self.symmetric else (0, 0)
        self.explicit_pad = (left, right, top, bottom)
        self.groups = groups
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 -> (N, C_out, H_out, W_out)."""
        if not self.symmetric:
            x = F.pad(x, self.explicit_pad)
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.conv_padding, self.dilation, self.groups)
        return apply_activation(y, self.act)


class MaxPool2d(TFLiteOp):
    """MAX_POOL_2D on NCHW; SAME padding pads with -inf so padded cells never win, as in TFLite."""

    def __init__(
        self,
        op_name: str,
        input_ids: list[int],
        output_id: int,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        pads: tuple[int, int, int, int],
        act: int,
    ) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.kernel = kernel
        self.stride = stride
        top, bottom, left, right = pads
        self.explicit_pad = (left, right, top, bottom)
        self.needs_pad = any(pads)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        if self.needs_pad:
            x = F.pad(x, self.explicit_pad, value=float("-inf"))
        return apply_activation(F.max_pool2d(x, self.kernel, self.stride), self.act)


class BinaryOp(TFLiteOp):
    """ADD (and friends) of two activations, or of an activation and a layout-converted constant."""

    def __init__(
        self,
        op_name: str,
        input_ids: list[int],
        output_id: int,
        act: int,
        constant: np.ndarray | None = None,
        constant_first: bool = False,
    ) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.act = act
        self.register_buffer("constant", None if constant is None else torch.from_numpy(constant))
        self.constant_first = constant_first

    def _combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.op_name == "ADD":
            return a + b
        if self.op_name == "SUB":
            return a - b
        if self.op_name == "MUL":
            return a * b
        raise ValueError(f"BinaryOp cannot compute {self.op_name}")

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """Elementwise with broadcasting; fused activation applied after."""
        if self.constant is None:
            a, b = xs
        elif self.constant_first:
            a, b = self.constant, xs[0]
        else:
            a, b = xs[0], self.constant
        return apply_activation(self._combine(a, b), self.act)


class PRelu(TFLiteOp):
    """PRELU with a per-channel slope (F.prelu -> one ONNX PRelu), or a general broadcast slope."""

    def __init__(self, op_name: str, input_ids: list[int], output_id: int, alpha: np.ndarray, rank: int) -> None:
        super().__init__(op_name, input_ids, output_id)
        alpha = np.asarray(alpha, np.float32)
        self.per_channel = rank == 4 and alpha.ndim >= 1 and alpha.size == alpha.shape[-1]
        if self.per_channel:
            self.register_buffer("alpha", torch.from_numpy(np.ascontiguousarray(alpha.reshape(-1))))
        elif rank == 4:
            self.register_buffer("alpha", torch.from_numpy(nhwc_const_to_nchw(alpha)))
        else:
            self.register_buffer("alpha", torch.from_numpy(alpha))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """max(x, 0) + alpha * min(x, 0)."""
        if self.per_channel and torch.jit.is_tracing():
            # For ONNX: alpha*x + (1-alpha)*relu(x) is Mul/Relu/Mul/Add, which ONNX Runtime keeps in its blocked
            # NCHWc layout (PRelu is not, and costs a layout reorder on each side); equal up to rounding.
            alpha = self.alpha.reshape(1, -1, 1, 1)
            return x * alpha + F.relu(x) * (1.0 - alpha)
        if self.per_channel:
            return F.prelu(x, self.alpha)
        return torch.where(x >= 0, x, x * self.alpha)


class Logistic(TFLiteOp):
    """LOGISTIC: the sigmoid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise 1 / (1 + exp(-x))."""
        return torch.sigmoid(x)


class Mean(TFLiteOp):
    """MEAN over constant axes (given in NHWC terms, mapped to the internal layout)."""

    def __init__(self, op_name: str, input_ids: list[int], output_id: int, dims: list[int], keep_dims: bool) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.dims = dims
        self.keep_dims = keep_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over ``dims``; a reduced 4-D result is rank < 4 and therefore in natural (NHWC) order."""
        return torch.mean(x, dim=self.dims, keepdim=self.keep_dims)


class FullyConnected(TFLiteOp):
    """FULLY_CONNECTED: weights [out, in]; a 4-D NCHW input is flattened in NHWC order as TFLite does."""

    def __init__(
        self,
        op_name: str,
        input_ids: list[int],
        output_id: int,
        weight: np.ndarray,
        bias: np.ndarray | None,
        act: int,
        input_is_nchw: bool,
        keep_num_dims: bool,
    ) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
        self.register_buffer("bias", None if bias is None else torch.from_numpy(np.asarray(bias, np.float32)))
        self.act = act
        self.input_is_nchw = input_is_nchw
        self.keep_num_dims = keep_num_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) or (N, ...) -> (N, out), or (..., out) with keep_num_dims."""
        if self.input_is_nchw:
            x = x.permute(0, 2, 3, 1)
        if not self.keep_num_dims:
            x = x.reshape(-1, self.weight.shape[1])
        return apply_activation(F.linear(x, self.weight, self.bias), self.act)


class Pad(TFLiteOp):
    """PAD with constant zeros; paddings given per NHWC axis, mapped to the internal layout."""

    def __init__(
        self, op_name: str, input_ids: list[int], output_id: int, torch_pad: tuple[int, ...], channels: int = 0
    ) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.torch_pad = torch_pad
        # Channel-only padding of an NCHW tensor (the palm graph's residual widening) is also a 1x1 conv with a
        # 0/1 matrix: exact, and ONNX Runtime fuses it with the following Add instead of leaving its fast layout.
        self.channel_only = channels > 0 and len(torch_pad) == 8 and not any(torch_pad[:4]) and not any(torch_pad[6:])
        if self.channel_only:
            before, after = torch_pad[4], torch_pad[5]
            eye = np.zeros((before + channels + after, channels, 1, 1), np.float32)
            eye[before + np.arange(channels), np.arange(channels)] = 1.0
            self.register_buffer("channel_matrix", torch.from_numpy(eye))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero padding (F.pad order: last axis first)."""
        if self.channel_only and torch.jit.is_tracing():
            return F.conv2d(x, self.channel_matrix)
        return F.pad(x, self.torch_pad)


class ResizeBilinear(TFLiteOp):
    """RESIZE_BILINEAR on NCHW honouring align_corners and half_pixel_centers exactly."""

    def __init__(
        self,
        op_name: str,
        input_ids: list[int],
        output_id: int,
        in_size: tuple[int, int],
        out_size: tuple[int, int],
        align_corners: bool,
        half_pixel_centers: bool,
    ) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.out_size = out_size
        self.align_corners = align_corners
        self.half_pixel_centers = half_pixel_centers
        self.legacy = not align_corners and not half_pixel_centers
        if self.legacy:
            # TF's legacy (asymmetric) sampling src = dst * in/out has no torch mode: use interpolation matrices.
            self.register_buffer("rows", torch.from_numpy(_legacy_resize_matrix(in_size[0], out_size[0])))
            self.register_buffer("cols", torch.from_numpy(_legacy_resize_matrix(in_size[1], out_size[1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        if self.legacy:
            return torch.matmul(torch.matmul(self.rows, x), self.cols.transpose(0, 1))
        # torch's align_corners=False is TF's half_pixel_centers=True (clamped at the border like TF).
        return F.interpolate(x, size=self.out_size, mode="bilinear", align_corners=self.align_corners)


def _legacy_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of TF's legacy bilinear resize along one axis: src = dst * in / out."""
    matrix = np.zeros((out_size, in_size), np.float32)
    scale = in_size / out_size
    for dst in range(out_size):
        src = dst * scale
        lo = min(int(np.floor(src)), in_size - 1)
        hi = min(lo + 1, in_size - 1)
        frac = src - lo
        matrix[dst, lo] += 1.0 - frac
        matrix[dst, hi] += frac
    return matrix


class Reshape(TFLiteOp):
    """RESHAPE to the graph's static output shape with the batch axis left free (-1).

    A 4-D NCHW input is first put back in NHWC order, and a 4-D output is moved to NCHW, so the element
    order is TFLite's.
    """

    def __init__(
        self, op_name: str, input_ids: list[int], output_id: int, shape: list[int], in_nchw: bool, out_nchw: bool
    ) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.shape = [-1, *shape[1:]]
        self.in_nchw = in_nchw
        self.out_nchw = out_nchw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Element order preserved in NHWC terms."""
        if self.in_nchw:
            x = x.permute(0, 2, 3, 1)
        y = x.reshape(self.shape)
        return y.permute(0, 3, 1, 2) if self.out_nchw else y


class Concatenation(TFLiteOp):
    """CONCATENATION along an axis (mapped to NCHW for 4-D tensors) with a fused activation."""

    def __init__(self, op_name: str, input_ids: list[int], output_id: int, axis: int, act: int) -> None:
        super().__init__(op_name, input_ids, output_id)
        self.axis = axis
        self.act = act

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """torch.cat of the inputs."""
        return apply_activation(torch.cat(xs, dim=self.axis), self.act)
