"""Which TensorRT releases the backend supports (10.x: JetPack 6; 11.x: pip on x86) and the one check of it.

The backend uses only the strongly typed API both share (precision comes from the ONNX graph); this module is the
one place that knows the supported majors, so the probe, the import and the error message cannot disagree.
"""

from __future__ import annotations

SUPPORTED_MAJORS: tuple[int, ...] = (10, 11)
TENSORRT_FIX = (
    "install TensorRT 10.x or 11.x Python bindings ('pip install \"tensorrt>=10,<12\"') on a machine with an NVIDIA "
    "GPU, or on Jetson use JetPack 6's python3-libnvinfer (TensorRT 10); or choose backend onnxruntime-cpu"
)


def tensorrt_major(version: str) -> int | None:
    """The major number of a TensorRT version string, None when it does not parse."""
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def unsupported_version_reason(version: str) -> str | None:
    """None for a supported TensorRT version, else a sentence naming the version, what is supported and the fix."""
    major = tensorrt_major(version)
    if major in SUPPORTED_MAJORS:
        return None
    supported = " and ".join(f"{m}.x" for m in SUPPORTED_MAJORS)
    return f"tensorrt {version} is not supported (this backend supports TensorRT {supported}); fix: {TENSORRT_FIX}"
