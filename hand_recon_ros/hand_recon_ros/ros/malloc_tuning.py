"""Keep freed frame-sized buffers in the node's process (glibc ``mallopt``), so each camera frame does not fault
its memory in afresh.

Taking one 640x960 rgb8 image allocates three 1.8 MB buffers (Fast DDS's CDR buffer, rcl's serialized message,
Python's bytes) and frees them a frame later. With glibc's defaults the dynamic mmap threshold serves them from a
thread arena whose trim threshold is only twice their size, so the freed top of the arena goes back to the kernel
and the next frame faults ~1300 pages in again: on about half the frames the take then took 3-8 ms instead of
0.9 ms (docs/ros.md, "Node overhead"). A fixed mmap threshold above frame sizes and a trim threshold above a few
frames keep that memory mapped. Only the node's entry points call this (a process-wide setting); a user's own
``GLIBC_TUNABLES`` malloc settings win, and on a C library without ``mallopt`` (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the arenas, not mmap (32 MiB: glibc's maximum, HEAP_MAX_SIZE / 2 on 64-bit;
# a 4K rgb8 frame is 25 MB).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# Free memory at the top of an arena kept rather than returned to the kernel (a few frames' worth of buffers).
TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024


def keep_freed_buffers(mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES
                       ) -> str:
    """Set glibc's mmap and trim thresholds for this process; returns one line saying what was done (for the log)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." in tunables:
        return f"malloc: left as GLIBC_TUNABLES sets it ({tunables})"
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return "malloc: defaults kept (no mallopt in this C library)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, mmap_threshold) and mallopt(M_TRIM_THRESHOLD, trim_threshold)):
        return "malloc: defaults kept (mallopt refused the thresholds)"
    return (f"malloc: blocks up to {mmap_threshold >> 20} MiB from the arenas, up to {trim_threshold >> 20} MiB "
            "of freed memory kept (camera frames are not faulted in afresh)")
