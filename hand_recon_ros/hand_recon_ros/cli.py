"""`hand-recon`: the command-line entry point (models, run, bench, eval, build-engine, publish, retarget)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hand_recon_ros import __version__

# Sub-command modules under hand_recon_ros.commands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = ("models", "run", "bench", "eval", "build_engine", "publish", "train",
                                    "pseudo_label", "export", "retarget")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="hand-recon",
        description="Two-hand 3D reconstruction: camera images in, metric 3D hands out (ROS-free tools).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"hand_recon_ros.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for message in getattr(args, "deprecation_warnings", None) or []:  # deprecated option names (cache_args)
        logging.getLogger("hand_recon_ros.cli").warning("%s", message)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
