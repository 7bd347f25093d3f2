"""Input/output helpers: image, video and bag readers, JSONL writers, overlays."""
