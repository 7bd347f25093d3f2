"""NetworkConfig: every setting of the learned two-hand network, checked key by key (saved beside the weights)."""

from __future__ import annotations

import dataclasses
from typing import Any

from hand_recon_ros.config_schema import ConfigError, from_dict

BACKBONES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "mediapipe")
HAND_MODELS: tuple[str, ...] = ("kinematic", "mano")
# The backbone's coarsest feature map is 1/32 of the input, so the input must be a multiple of this.
INPUT_SIZE_MULTIPLE_PX = 32


class NetworkConfigError(ConfigError):
    """A network config with an unknown key, a value of the wrong type or out of range; the message names it."""


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Architecture of the learned two-hand network (see docs/learned_model.md for what each part does).

    backbone: "resnet18" | "resnet34" | "resnet50" (random init, or ``backbone_weights``: a torchvision
    state_dict file) | "mediapipe" (the MediaPipe landmark network's convolutional trunk, pretrained).
    backbone_width: ResNet base channel count (64 = torchvision; smaller only for tiny test models).
    input_size: square input side in pixels. iterations: K refinement iterations. residual: refine the
    landmark pipeline's joints (``prior_joints``) instead of the model's own initialisation.
    """

    backbone: str = "resnet18"
    backbone_weights: str | None = None
    backbone_width: int = 64
    input_size: int = 256
    iterations: int = 3
    residual: bool = False
    feature_dim: int = 128
    joint_dim: int = 64
    global_hidden: int = 256
    gcn_layers: int = 2
    transformer_layers: int = 1
    transformer_heads: int = 4
    mesh: bool = False
    # "kinematic": the project's 21-joint hand and open mesh; "mano": MANO from mano_dir (your licensed files).
    hand_model: str = "kinematic"
    mano_dir: str | None = None
    # Gaussian window (fraction of the feature map side) pooling each hand's features around its centre.
    center_window: float = 0.15
    # Width (feature-map cells) of each bone's footprint when joint features are projected back.
    bone_sigma_cells: float = 1.0

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """All config keys, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "network config") -> NetworkConfig:
        """Build and validate from a plain dict; unknown keys and wrong types are errors naming the key."""
        try:
            config = from_dict(cls, data, source)
        except ConfigError as exc:
            raise NetworkConfigError(str(exc)) from None
        config.validate(source)
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON/checkpoint friendly) that from_dict turns back into this config."""
        return dataclasses.asdict(self)

    def validate(self, source: str = "network config") -> None:
        """Raise NetworkConfigError naming the first field whose value is out of range."""
        if self.backbone not in BACKBONES:
            raise NetworkConfigError(f"{source}: backbone must be one of {list(BACKBONES)}, got {self.backbone!r}")
        if self.backbone == "mediapipe" and self.backbone_weights is not None:
            raise NetworkConfigError(f"{source}: backbone_weights is for ResNet backbones; the mediapipe trunk "
                                     "loads its own pretrained weights")
        if self.input_size < 64 or self.input_size % INPUT_SIZE_MULTIPLE_PX:
            raise NetworkConfigError(f"{source}: input_size must be a multiple of {INPUT_SIZE_MULTIPLE_PX} and "
                                     f">= 64, got {self.input_size}")
        for name in ("backbone_width", "feature_dim", "joint_dim", "global_hidden", "transformer_heads"):
            if getattr(self, name) < 1:
                raise NetworkConfigError(f"{source}: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("iterations", "gcn_layers", "transformer_layers"):
            if getattr(self, name) < 0:
                raise NetworkConfigError(f"{source}: {name} must be >= 0, got {getattr(self, name)}")
        if self.joint_dim % self.transformer_heads:
            raise NetworkConfigError(f"{source}: joint_dim ({self.joint_dim}) must be a multiple of "
                                     f"transformer_heads ({self.transformer_heads})")
        if self.hand_model not in HAND_MODELS:
            raise NetworkConfigError(f"{source}: hand_model must be one of {list(HAND_MODELS)}, got "
                                     f"{self.hand_model!r}")
        if self.hand_model == "mano" and not self.mano_dir:
            raise NetworkConfigError(f"{source}: hand_model 'mano' needs mano_dir (the folder with MANO_LEFT.pkl "
                                     "and MANO_RIGHT.pkl)")
        if not 0.0 < self.center_window <= 1.0:
            raise NetworkConfigError(f"{source}: center_window must be in (0, 1], got {self.center_window}")
        if self.bone_sigma_cells <= 0.0:
            raise NetworkConfigError(f"{source}: bone_sigma_cells must be > 0, got {self.bone_sigma_cells}")


# A network small enough to train on a CPU in tests and the tiny-synthetic config (~0.1 M parameters).
TINY_NETWORK_CONFIG: dict[str, Any] = {
    "backbone": "resnet18",
    "backbone_width": 8,
    "input_size": 64,
    "iterations": 2,
    "feature_dim": 16,
    "joint_dim": 16,
    "global_hidden": 32,
    "gcn_layers": 1,
    "transformer_layers": 1,
    "transformer_heads": 2,
}
