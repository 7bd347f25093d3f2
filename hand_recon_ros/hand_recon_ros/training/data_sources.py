"""TrainRecords for a DataConfig (toy, InterHand2.6M, COCO-WholeBody, pseudo-labels), split into train / held-back.

The held-back part is the last ``val_fraction`` of the records in file order (for video pseudo-labels: the last
frames, so no training frame is a near-duplicate neighbour of a held-back one except at the boundary).
"""

from __future__ import annotations

from hand_recon_ros.training.config import DataConfig
from hand_recon_ros.training.records import DataError, TrainRecord


def load_records(data: DataConfig) -> list[TrainRecord]:
    """Every record of the configured source (DataError naming the file and field on bad data)."""
    if data.kind == "toy":
        from hand_recon_ros.training.toy_data import toy_records

        return toy_records(data.toy_samples, data.toy_seed)
    if data.kind == "interhand":
        from hand_recon_ros.training.interhand_records import interhand_records

        return interhand_records(data.path, data.images_dir)
    if data.kind == "coco_wholebody":
        from hand_recon_ros.training.coco_wholebody import coco_wholebody_records

        return coco_wholebody_records(data.path, data.images_dir)
    if data.kind == "pseudo_label":
        from hand_recon_ros.training.pseudo_labels import pseudo_label_records

        return pseudo_label_records(data.path)
    raise DataError(f"data.kind: unknown source {data.kind!r}")


def split_records(records: list[TrainRecord], val_fraction: float) -> tuple[list[TrainRecord], list[TrainRecord]]:
    """(train, held back): the last ``val_fraction`` of the records are held back."""
    n_val = int(round(len(records) * val_fraction))
    if n_val == 0:
        return records, []
    return records[:-n_val], records[-n_val:]
