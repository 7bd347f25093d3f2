"""What a training run writes beside its checkpoints: metrics.csv (one row per logged step) and TensorBoard."""

from __future__ import annotations

import csv
from pathlib import Path

from hand_recon_ros.training.config import LossConfig

LOSS_TERMS: tuple[str, ...] = tuple(f for f in LossConfig.__dataclass_fields__ if f != "deep_supervision")
COLUMNS: tuple[str, ...] = ("step", "loss", *LOSS_TERMS, "error_2d_px", "val_error_2d_px", "lr", "elapsed_s")


class RunLog:
    """metrics.csv and TensorBoard event files in ``run_dir``; on resume rows after ``resume_step`` are dropped."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        """Open (or, on resume, trim and reopen) the CSV and the TensorBoard writer."""
        from torch.utils.tensorboard import SummaryWriter

        self.csv_path = run_dir / "metrics.csv"
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.csv_path.is_file():
            with self.csv_path.open(newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        self._fh = self.csv_path.open("w", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._fh, fieldnames=COLUMNS)
        self._csv.writeheader()
        for row in rows:
            self._csv.writerow({k: row.get(k, "") for k in COLUMNS})
        self._fh.flush()
        self.tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_step)

    def write(self, step: int, values: dict[str, float]) -> None:
        """One CSV row and one TensorBoard scalar per value."""
        self._csv.writerow({"step": step, **{k: f"{v:.6g}" for k, v in values.items() if k in COLUMNS}})
        self._fh.flush()
        for key, value in values.items():
            if key != "elapsed_s":
                self.tensorboard.add_scalar(f"train/{key}" if key not in ("val_error_2d_px",) else "val/error_2d_px",
                                            value, step)

    def close(self) -> None:
        """Flush and close both outputs."""
        self.tensorboard.close()
        self._fh.close()


def read_metrics(path: Path) -> list[dict[str, float]]:
    """metrics.csv rows as dicts of floats (empty cells omitted), for tests and reports."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]
