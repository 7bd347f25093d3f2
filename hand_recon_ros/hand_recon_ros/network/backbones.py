"""Backbones giving multi-scale feature maps (strides 8, 16, 32): ResNet-18/34/50 and the MediaPipe trunk.

The ResNets are written here with torchvision's module and state_dict names (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer2.0.downsample.0``...), because PyPI's torchvision does not import beside the
project's CPU torch 2.13 build (``operator torchvision::nms does not exist``). A torchvision ImageNet weights
file therefore loads strictly (its ``fc.*`` classifier is dropped, nothing else). The MediaPipe option is the
hand-landmark network's convolutional trunk imported from the cached TFLite file (pretrained, offline).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hand_recon_ros.network.config import NetworkConfig

# Blocks per stage, and whether the block is a Bottleneck (expansion 4), as in torchvision.
RESNET_LAYOUTS: dict[str, tuple[tuple[int, int, int, int], bool]] = {
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
}
# Output ids of the MediaPipe landmark graph's last tensor at strides 8, 16 and 32 (before its global pooling).
MEDIAPIPE_TAPS: tuple[int, int, int] = (120, 142, 159)
MEDIAPIPE_TRUNK_LAYERS = 56  # layers 0..55 are the convolutional trunk; 56 is the MEAN pooling


class BackboneWeightsError(ValueError):
    """A backbone weights file that is missing, unreadable or does not match the architecture."""


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (two 3x3 convs), same parameter names."""

    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, in_ch, H, W) → (N, ch, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet Bottleneck (1x1, 3x3 with the stride, 1x1 x4), same parameter names."""

    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, ch * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(ch * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, ch * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, in_ch, H, W) → (N, 4·ch, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    """torchvision's projection shortcut (``downsample.0`` conv, ``downsample.1`` BN) when the shape changes."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNetBackbone(nn.Module):
    """ResNet without its classifier: forward(images) → feature maps at strides 8, 16, 32 (layer2..layer4)."""

    def __init__(self, name: str, width: int = 64) -> None:
        super().__init__()
        blocks, bottleneck = RESNET_LAYOUTS[name]
        block = Bottleneck if bottleneck else BasicBlock
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = width
        stages = []
        for i, n in enumerate(blocks):
            ch = width * 2**i
            layers = []
            for j in range(n):
                layers.append(block(in_ch, ch, 2 if (j == 0 and i > 0) else 1))
                in_ch = ch * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = tuple(width * 2**i * block.expansion for i in (1, 2, 3))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # torchvision's zero_init_residual: each block starts as the identity, so a randomly initialised deep
        # ResNet keeps bounded activations (ResNet-34's reach ~250 otherwise, and float32 export parity suffers).
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.bn2.weight if isinstance(m, BasicBlock) else m.bn3.weight)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images (N, 3, S, S) RGB [0, 1] → [(N, C8, S/8, S/8), (N, C16, S/16, S/16), (N, C32, S/32, S/32)]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]

    def load_torchvision_weights(self, path: str | Path) -> None:
        """Load a torchvision ResNet state_dict file (its ``fc.*`` classifier dropped), strictly."""
        path = Path(path)
        if not path.is_file():
            raise BackboneWeightsError(f"backbone_weights: file {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises assorted errors on a corrupt file
            raise BackboneWeightsError(f"backbone_weights: cannot read {path} ({type(exc).__name__}: {exc})") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise BackboneWeightsError(f"backbone_weights: {path} holds {type(state).__name__}, not a state_dict")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise BackboneWeightsError(f"backbone_weights: {path} does not fit this ResNet: {exc}") from exc


class MediaPipeTrunk(nn.Module):
    """The MediaPipe hand-landmark network's convolutional trunk (pretrained), tapped at strides 8, 16, 32."""

    def __init__(self, cache_dir: str | None = None) -> None:
        super().__init__()
        from hand_recon_ros.models.model_files import ensure_models
        from hand_recon_ros.models.tflite_import import load_tflite_module

        graph = load_tflite_module(ensure_models("full", cache_dir, convert=False).landmark_tflite)
        self.input_id = graph.input_id
        self.layers = nn.ModuleList(graph.layers[:MEDIAPIPE_TRUNK_LAYERS])
        _buffers_to_parameters(self.layers)
        self.wiring = [(list(layer.input_ids), layer.output_id) for layer in self.layers]
        with torch.no_grad():
            outs = self.forward(torch.zeros(1, 3, 64, 64))
        self.out_channels = tuple(int(o.shape[1]) for o in outs)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images (N, 3, S, S) RGB [0, 1] (the graph's own input range) → the three tapped feature maps."""
        values = {self.input_id: images}
        for layer, (inputs, output) in zip(self.layers, self.wiring):
            values[output] = layer(*[values[i] for i in inputs])
        return [values[i] for i in MEDIAPIPE_TAPS]


def _buffers_to_parameters(module: nn.Module) -> None:
    """Turn the imported graph's float weight buffers into parameters so the trunk can be fine-tuned."""
    for sub in module.modules():
        for name in [n for n, b in sub._buffers.items() if b is not None and b.is_floating_point()]:
            sub.register_parameter(name, nn.Parameter(sub._buffers.pop(name).clone()))


def create_backbone(cfg: NetworkConfig) -> nn.Module:
    """The backbone ``cfg.backbone`` names (weights loaded when ``cfg.backbone_weights`` is set)."""
    if cfg.backbone == "mediapipe":
        return MediaPipeTrunk()
    if cfg.backbone not in RESNET_LAYOUTS:
        raise ValueError(f"unknown backbone {cfg.backbone!r}; choose one of {sorted(RESNET_LAYOUTS)} or mediapipe")
    net = ResNetBackbone(cfg.backbone, cfg.backbone_width)
    if cfg.backbone_weights:
        net.load_torchvision_weights(cfg.backbone_weights)
    return net
