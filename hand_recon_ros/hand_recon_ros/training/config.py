"""Training configuration: data, losses, optimisation and the network section, loaded strictly from YAML.

A CONFIG argument is a YAML path or the name of a shipped config (``training/configs/NAME.yaml``). The
``network`` mapping is handed to ``NetworkConfig.from_dict`` unchanged (the network package checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hand_recon_ros.config_schema import ConfigError, from_dict, to_dict

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DATA_KINDS = ("toy", "interhand", "coco_wholebody", "pseudo_label")


@dataclass
class DataConfig:
    """Where samples come from and how they are cropped and augmented."""

    kind: Literal["toy", "interhand", "coco_wholebody", "pseudo_label"] = "toy"
    path: str | None = None
    images_dir: str | None = None
    toy_samples: int = 32
    toy_seed: int = 0
    val_fraction: float = 0.0
    val_every_n: int = 0
    crop_margin: float = 1.5
    augment: bool = True
    scale_range: list[float] = field(default_factory=lambda: [0.85, 1.15])
    rotation_deg: float = 30.0
    translation_fraction: float = 0.1
    colour_jitter: float = 0.2
    flip_probability: float = 0.5
    min_joint_confidence: float = 0.0
    workers: int = 0


@dataclass
class LossConfig:
    """Weight of each loss term (0 turns a term off); the weak mode sets every 3D term to 0."""

    joints_3d: float = 1.0
    vertices: float = 0.0
    keypoints_2d: float = 1.0
    heatmap: float = 1.0
    presence: float = 0.1
    root_offset: float = 1.0
    pose_prior: float = 0.01
    shape_prior: float = 0.01
    bone_length: float = 1.0
    joint_limits: float = 0.1
    penetration: float = 0.1
    deep_supervision: bool = True


@dataclass
class TrainConfig:
    """Everything one training run needs; saved as RUN_DIR/config.yaml and inside every checkpoint."""

    network: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    mode: Literal["full", "weak"] = "full"
    teacher_forcing: bool = True
    batch_size: int = 8
    max_steps: int = 1000
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = 0
    grad_clip: float = 1.0
    seed: int = 0
    amp: bool = True
    cpu_threads: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    init_checkpoint: str | None = None

    def validate(self) -> None:
        """ConfigError naming the key for values out of range."""
        checks = [
            ("batch_size", self.batch_size >= 1), ("max_steps", self.max_steps >= 1),
            ("learning_rate", self.learning_rate > 0), ("log_every", self.log_every >= 1),
            ("checkpoint_every", self.checkpoint_every >= 1), ("warmup_steps", self.warmup_steps >= 0),
            ("data.toy_samples", self.data.toy_samples >= 1), ("data.crop_margin", self.data.crop_margin >= 1.0),
            ("data.val_fraction", 0.0 <= self.data.val_fraction < 1.0),
            ("data.flip_probability", 0.0 <= self.data.flip_probability <= 1.0),
            ("data.scale_range", len(self.data.scale_range) == 2 and 0 < self.data.scale_range[0]
             <= self.data.scale_range[1]),
            ("data.workers", self.data.workers >= 0), ("cpu_threads", self.cpu_threads >= 0),
        ]
        for key, ok in checks:
            if not ok:
                raise ConfigError(f"config.{key}: value {_get(self, key)!r} is out of range")
        if self.data.kind != "toy" and not self.data.path:
            raise ConfigError(f"config.data.path: required for data.kind {self.data.kind!r}")
        if self.mode == "weak":
            for key in ("joints_3d", "vertices", "root_offset"):
                if getattr(self.loss, key) != 0.0:
                    raise ConfigError(f"config.loss.{key}: must be 0 in mode 'weak' (2D + priors only)")

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> TrainConfig:
        """Strictly parsed and validated config."""
        config = from_dict(cls, data, where)
        config.validate()
        return config

    def to_dict(self) -> dict:
        """Plain dict (YAML / checkpoint)."""
        return to_dict(self)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def shipped_configs() -> list[str]:
    """Names of the configs shipped with the package."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    """A YAML path, or the shipped config of that name; ConfigError listing the shipped names otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(f"{name_or_path}: no such config file and not a shipped config ({', '.join(shipped_configs())})")


def load_config(name_or_path: str, overrides: dict[str, Any] | None = None,
                data_overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Parse a config file (ConfigError naming the file and key) with optional top-level / data overrides."""
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    data.update(overrides or {})
    if data_overrides:
        if not isinstance(data.get("data", {}), dict):
            raise ConfigError(f"{path}: data: expected a mapping")
        data["data"] = {**(data.get("data") or {}), **data_overrides}
    try:
        return TrainConfig.from_dict(data, where=str(path))
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None


def dump_config(config: TrainConfig, path: Path) -> None:
    """Write ``config`` as YAML."""
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
