"""One torchrun worker of the DDP test: trains the tiny contract model on the toy set into RUN_DIR (argv[1])."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_helpers import machinery_config, tiny_factory  # noqa: E402

from hand_recon_ros.training.trainer import train  # noqa: E402

if __name__ == "__main__":
    train(machinery_config(), Path(sys.argv[1]), quiet=True, model_factory=tiny_factory)
