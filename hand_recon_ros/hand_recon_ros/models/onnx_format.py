"""Cache-key inputs of the converted ONNX files, shared by model_files (keys) and onnx_export (metadata).

Their own module so that onnx_export (torch) and model_files (no torch) need not import each other.
"""

from __future__ import annotations

# Bump EXPORTER_VERSION whenever onnx_export's output changes: every cached ONNX file gets a new key.
EXPORTER_VERSION = "2"
ONNX_OPSET = 17
