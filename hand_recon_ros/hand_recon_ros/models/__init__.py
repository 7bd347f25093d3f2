"""Networks, weight import (TFLite → torch → ONNX) and hand model layers."""
