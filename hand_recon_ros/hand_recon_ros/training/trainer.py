"""The training loop: one process or many (torchrun + DDP), exact resume, atomic checkpoints, CSV/TensorBoard logs.

Global batch ``batch_size`` is split evenly over the processes; batch ``s`` of every run is the same set of
samples (a permutation seeded by (seed, epoch), rank r taking every world-th index), and each sample's
augmentation is seeded by (seed, epoch, index), so a resumed or multi-process run sees the same data as an
uninterrupted single-process one. AMP (float16 autocast + GradScaler) is used on CUDA when ``amp`` is set.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

from hand_recon_ros.config_schema import ConfigError
from hand_recon_ros.training.checkpoint_io import (
    CheckpointError,
    read_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from hand_recon_ros.training.config import TrainConfig, dump_config
from hand_recon_ros.training.crop_dataset import HandCropDataset
from hand_recon_ros.training.data_sources import load_records, split_records
from hand_recon_ros.training.losses import compute_losses, keypoint_error_px
from hand_recon_ros.training.run_log import RunLog

log = logging.getLogger("hand_recon_ros.train")

ModelFactory = Callable[[dict[str, Any]], tuple[nn.Module, dict[str, Any]]]
EVAL_BATCH = 8
LR_FLOOR_FRACTION = 0.05


@dataclass
class TrainResult:
    """Where a run ended: last step, its loss, the last checkpoint, the final held-back 2D error (or NaN)."""

    step: int
    loss: float
    checkpoint: Path
    val_error_2d_px: float


def default_model_factory(network: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The learned network of ``network`` (NetworkConfig.from_dict) and its normalised config dict."""
    from hand_recon_ros.network import build_model
    from hand_recon_ros.network.config import NetworkConfig

    cfg = NetworkConfig.from_dict(network, "config.network")
    return build_model(cfg), cfg.to_dict()


@dataclass
class DistInfo:
    """This process's place in the job (world 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun job when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


class StepBatchSampler(Sampler):
    """Yields this rank's (index, epoch) lists for global steps ``start`` .. ``stop`` − 1."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int, dist_info: DistInfo) -> None:
        """``batch_size`` is the global batch; each rank gets ``batch_size // world`` of it."""
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.dist = start, stop, dist_info
        self.steps_per_epoch = n // batch_size

    def __len__(self) -> int:
        """Steps left."""
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        """One list per step."""
        for step in range(self.start, self.stop):
            epoch, k = divmod(step, self.steps_per_epoch)
            order = np.random.default_rng([self.seed, 7919, epoch]).permutation(self.n)
            chunk = order[k * self.batch_size:(k + 1) * self.batch_size][self.dist.rank::self.dist.world]
            yield [(int(i), epoch) for i in chunk]


def seed_everything(seed: int) -> None:
    """Fix Python, NumPy and torch seeds."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up, then constant or cosine decay to LR_FLOOR_FRACTION of the base rate."""
    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_schedule == "constant":
            return 1.0
        progress = min(step / max(config.max_steps, 1), 1.0)
        return LR_FLOOR_FRACTION + (1 - LR_FLOOR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of ``batch`` on ``device``."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def forward(model: nn.Module, batch: dict[str, torch.Tensor], teacher_forcing: bool, residual: bool = False
            ) -> dict[str, torch.Tensor]:
    """Model outputs for a batch (ground-truth centres when teacher forcing; the pipeline's joints in residual mode)."""
    centers = batch["centers"] if teacher_forcing else None
    if residual:
        return model(batch["image"], centers=centers, prior_joints=batch["prior_joints"])
    return model(batch["image"], centers=centers)


@torch.no_grad()
def evaluate_keypoints(model: nn.Module, dataset: HandCropDataset, device: torch.device, teacher_forcing: bool,
                       residual: bool = False) -> float:
    """Mean 2D keypoint error (input pixels) of ``model`` over ``dataset`` (no augmentation)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    loader = DataLoader(dataset, batch_size=EVAL_BATCH, shuffle=False)
    for batch in loader:
        batch = to_device(batch, device)
        outputs = forward(model, batch, teacher_forcing, residual)
        weight = float(((batch["keypoints_conf"] > 0).float() * batch["present"][..., None]).sum())
        total += float(keypoint_error_px(outputs["keypoints_2d"], batch)) * weight
        count += weight
    model.train(was_training)
    return total / count if count else float("nan")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train(config: TrainConfig, run_dir: Path, device: str = "cpu", resume: bool = False,
          model_factory: ModelFactory | None = None, quiet: bool = False, stop_at_step: int | None = None
          ) -> TrainResult:
    """Run (or continue) training into ``run_dir``; returns where it ended.

    ``stop_at_step`` ends the run early (as an interruption would) without changing the schedule, which
    follows ``config.max_steps``.
    """
    from tqdm import tqdm

    run_dir = Path(run_dir)
    checkpoint_path = run_dir / "checkpoints" / "last.pt"
    payload = None
    if resume:
        payload = read_checkpoint(checkpoint_path)
        saved = TrainConfig.from_dict(payload["train_config"], f"{checkpoint_path}: train_config")
        saved.max_steps = config.max_steps
        config = saved
    torch_device = torch.device(device)
    dist_info = init_distributed(torch_device)
    if torch_device.type == "cuda" and dist_info.world > 1:
        torch_device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(torch_device)
    if config.batch_size % dist_info.world:
        raise ConfigError(f"config.batch_size: {config.batch_size} is not divisible by the {dist_info.world} processes")
    seed_everything(config.seed)
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)

    model, network_dict = (model_factory or default_model_factory)(config.network)
    config.network = network_dict
    input_size = int(network_dict.get("input_size", 256))
    residual = bool(network_dict.get("residual", False))
    records = load_records(config.data)
    if residual and any(h.prior_joints is None for r in records for h in r.hands):
        raise ConfigError(f"config.network.residual: needs the default pipeline's joints as priors; data.kind "
                          f"{config.data.kind!r} has none (train residual mode from a pseudo-label file)")
    train_records, val_records = split_records(records, config.data.val_fraction)
    if len(train_records) < config.batch_size:
        raise ConfigError(f"config.batch_size: {config.batch_size} is larger than the {len(train_records)} "
                          f"training samples of data.kind {config.data.kind!r}")
    train_set = HandCropDataset(train_records, input_size, config.data, config.seed, train=True)
    val_set = HandCropDataset(val_records, input_size, config.data, config.seed, train=False) if val_records else None

    model.to(torch_device)
    if config.init_checkpoint and payload is None:
        init = read_checkpoint(Path(config.init_checkpoint))
        model.load_state_dict(init["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config))
    use_amp = config.amp and torch_device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_step = 0
    if payload is not None:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        scaler.load_state_dict(payload.get("scaler", {}))
        start_step = int(payload["step"])
        restore_rng(payload["rng"])
        log.info("resuming %s at step %d", checkpoint_path, start_step)
    if dist_info.world > 1:
        if torch_device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[torch_device.index] if torch_device.type == "cuda" else None)
    model.train()

    run_log = None
    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(config, run_dir / "config.yaml")
        run_log = RunLog(run_dir, resume_step=start_step if payload is not None else None)
    stop = min(config.max_steps, stop_at_step) if stop_at_step else config.max_steps
    sampler = StepBatchSampler(len(train_set), config.batch_size, config.seed, start_step, stop, dist_info)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=config.data.workers,
                        generator=torch.Generator().manual_seed(config.seed), pin_memory=torch_device.type == "cuda")

    def save(step: int) -> None:
        if dist_info.main:
            save_checkpoint(checkpoint_path, {
                "model": _unwrap(model).state_dict(), "network_config": network_dict,
                "train_config": config.to_dict(), "step": step, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state()})
        if dist_info.world > 1:
            dist.barrier()

    started = time.perf_counter()
    step, loss_value, val_error = start_step, float("nan"), float("nan")
    progress = tqdm(total=config.max_steps, initial=start_step, disable=quiet or not dist_info.main,
                    desc="train", unit="step", dynamic_ncols=True)
    try:
        for batch in loader:
            batch = to_device(batch, torch_device)
            with torch.autocast(device_type=torch_device.type, dtype=torch.float16, enabled=use_amp):
                outputs = forward(model, batch, config.teacher_forcing, residual)
            total, terms = compute_losses(outputs, batch, config.loss, input_size)
            if not torch.isfinite(total):
                raise FloatingPointError(f"step {step + 1}: loss is {float(total)} (terms "
                                         f"{ {k: float(v) for k, v in terms.items()} })")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            loss_value = float(total.detach())
            if dist_info.world > 1:
                reduced = total.detach().clone()
                dist.all_reduce(reduced)
                loss_value = float(reduced) / dist_info.world
            last = step == stop
            every = config.data.val_every_n
            val_due = val_set is not None and (last or bool(every and step % every == 0))
            if val_due and dist_info.main:
                val_error = evaluate_keypoints(_unwrap(model), val_set, torch_device, config.teacher_forcing, residual)
            if run_log is not None and (step % config.log_every == 0 or last or val_due or step == start_step + 1):
                values = {"loss": loss_value, **{k: float(v) for k, v in terms.items()},
                          "error_2d_px": float(keypoint_error_px(outputs["keypoints_2d"].detach(), batch)),
                          "lr": scheduler.get_last_lr()[0], "elapsed_s": time.perf_counter() - started}
                if val_due:
                    values["val_error_2d_px"] = val_error
                run_log.write(step, values)
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.4g}")
            if step % config.checkpoint_every == 0 or last:
                save(step)
    finally:
        progress.close()
        if run_log is not None:
            run_log.close()
        if dist_info.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    if step == start_step and payload is None:
        raise CheckpointError("no training step ran")
    return TrainResult(step, loss_value, checkpoint_path, val_error)
