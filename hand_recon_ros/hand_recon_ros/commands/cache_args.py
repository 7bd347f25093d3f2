"""`--models-dir` (model files) and `--engine-cache-dir` (built engines), shared by the commands.

`--cache-dir` is the deprecated name of `--models-dir` (models fetch/info, build-engine): it still works and
the command logs one WARNING naming the new option.
"""

from __future__ import annotations

import argparse
from typing import Any

DEPRECATION_WARNINGS_DEST = "deprecation_warnings"  # list of messages cli.main logs once logging is set up


class _DeprecatedCacheDir(argparse.Action):
    """``--cache-dir DIR``: stores DIR as ``models_dir`` and queues one deprecation warning."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        """Store the folder under the new name and remember to warn about the old one."""
        namespace.models_dir = values
        queued = list(getattr(namespace, DEPRECATION_WARNINGS_DEST, None) or [])
        message = f"{option_string} is deprecated: use --models-dir (the folder of the model files)"
        if message not in queued:
            queued.append(message)
        setattr(namespace, DEPRECATION_WARNINGS_DEST, queued)


def add_models_dir_argument(parser: argparse.ArgumentParser, deprecated_cache_dir: bool = False,
                            help_text: str = "folder of the model files (default: $HAND_RECON_CACHE_DIR, else "
                                             "~/.cache/hand_recon_ros)") -> None:
    """Add ``--models-dir DIR`` (and, where it used to exist, the deprecated ``--cache-dir DIR`` alias)."""
    parser.add_argument("--models-dir", default=None, metavar="DIR", help=help_text)
    if deprecated_cache_dir:
        parser.add_argument("--cache-dir", action=_DeprecatedCacheDir, metavar="DIR",
                            help="deprecated name of --models-dir")


def add_engine_cache_dir_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--engine-cache-dir DIR``: built engines and precision graphs only (the node's engine_cache_dir)."""
    parser.add_argument("--engine-cache-dir", default=None, metavar="DIR",
                        help="folder for built engines and precision graphs (default: engines/ beside the model "
                             "files; the node's engine_cache_dir)")
