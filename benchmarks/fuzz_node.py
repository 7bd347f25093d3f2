"""Fuzz hand_recon_node over real DDS: >= 10,000 malformed Image / CompressedImage / CameraInfo messages.

Good frames (a 640x480 crop of shared/data/woman_hands.jpg, or a synthetic frame with --fake) are
interleaved one in ten; the node runs the real pipeline in its own process (``--fake``: the test double).
Half the messages go to a raw node (Image + CameraInfo), half to a compressed one (CompressedImage +
CameraInfo). Reported per phase: messages sent by kind, good frames answered during the fuzz, malformed
messages that still produced a HandArray (decodable garbage), good frames answered after it (each awaited),
crashes / tracebacks, and the error counters from /diagnostics.

    python benchmarks/fuzz_node.py [--messages 10000] [--fake] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

TEST_DIR = Path(__file__).resolve().parents[1] / "hand_recon_ros" / "test"
sys.path.insert(0, str(TEST_DIR))
from fuzz_messages import GOOD_EVERY, run_phase  # noqa: E402
from test_ros_peer import first_pixel_image  # noqa: E402

from hand_recon_ros.commands.bench import cpu_description  # noqa: E402
from hand_recon_ros.io.image_source import read_image  # noqa: E402

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "woman_hands.jpg"
# Rows of woman_hands.jpg (640x960) kept for a 640x480 frame that still shows both hands.
CROP_ROWS = (280, 760)
DOMAIN_ID = 165
MIN_MESSAGES = 10_000


def _good_frame(path: Path, fake: bool) -> np.ndarray:
    if fake:
        return first_pixel_image(3)
    rgb = read_image(path)
    if rgb.shape[:2] == (960, 640):
        rgb = rgb[CROP_ROWS[0]:CROP_ROWS[1]]
    return np.ascontiguousarray(rgb)


def main(argv: list[str] | None = None) -> int:
    """Run both phases and print the table; exit 1 when the node crashed or stopped answering."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=MIN_MESSAGES, help="total messages, both phases")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--fake", action="store_true", help="fake pipeline (input handling only)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.messages < 2:
        parser.error(f"--messages must be >= 2, got {args.messages}")
    if not args.fake and not args.image.is_file():
        parser.error(f"--image {args.image} not found (or use --fake)")
    rgb = _good_frame(args.image, args.fake)
    print(f"CPU: {cpu_description()}")
    print(f"{args.messages} messages, one good frame in {GOOD_EVERY}, pipeline: {'fake' if args.fake else 'real'}")
    reports = []
    for i, transport in enumerate(("raw", "compressed")):
        count = args.messages // 2 + (args.messages % 2 if i == 0 else 0)
        print(f"phase {transport}: {count} messages ...", flush=True)
        reports.append(run_phase(DOMAIN_ID + i, transport, count, rgb, fake=args.fake, log=print))
    print()
    print("| phase | messages | good sent | good answered during | malformed answered | answered after | "
          "crashes | tracebacks | send s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in reports:
        print(f"| {r.transport} | {r.sent} | {r.good_sent} | {r.good_answered_during} | {r.bad_answered} | "
              f"{r.after_answered}/{r.after_sent} | {int(r.crashed)} | {r.tracebacks} | {r.seconds:.1f} |")
    for r in reports:
        print(f"{r.transport} diagnostics: {r.errors}")
        print(f"{r.transport} kinds: {dict(sorted(r.kinds.items()))}")
    if args.json:
        phases = [{**dataclasses.asdict(r), "kinds": dict(r.kinds)} for r in reports]
        args.json.write_text(json.dumps({"cpu": cpu_description(), "fake": args.fake, "phases": phases}, indent=1))
    healthy = all(not r.crashed and r.tracebacks == 0 and r.after_answered == r.after_sent for r in reports)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
