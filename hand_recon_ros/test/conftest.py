"""Shared fixtures: paths to ../shared/data (skipped cleanly when absent) and the cached model files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Real photos with ground truth live outside the repo (their licenses forbid copying them in).
SHARED_DATA = Path(os.environ.get("HAND_RECON_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-photo data not present at {SHARED_DATA} (set HAND_RECON_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def woman_hands_path(shared_data_dir: Path) -> Path:
    path = shared_data_dir / "woman_hands.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def interhand_dir(shared_data_dir: Path) -> Path:
    path = shared_data_dir / "interhand2.6m"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def model_paths():
    """The cached TFLite + ONNX model files (fetched and converted by `make setup`)."""
    from hand_recon_ros.models.model_files import ensure_models

    return ensure_models(variant="full")


@pytest.fixture(scope="session")
def image_mode_pipeline(model_paths):
    """One 2D-only HandPipeline in image mode for the pipeline tests (each module's own fixture resets it)."""
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    pipe = HandPipeline(PipelineConfig(mode="image", refine_3d=False))
    yield pipe
    pipe.close()
