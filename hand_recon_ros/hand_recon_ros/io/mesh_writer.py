"""Write a HandMesh as Wavefront OBJ or binary little-endian PLY (vertices in metres, camera optical frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_recon_ros.pipeline.types import HandMesh

MESH_FORMATS: tuple[str, ...] = (".obj", ".ply")


class MeshWriteError(ValueError):
    """A mesh that cannot be written (bad shapes, face indices out of range) or an unknown file suffix."""


def _checked(mesh: HandMesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float32 and faces (F, 3) int32 of ``mesh``, or MeshWriteError naming the problem."""
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    faces = np.asarray(mesh.faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.all(np.isfinite(vertices)):
        raise MeshWriteError(f"mesh vertices must be finite (V, 3), got shape {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise MeshWriteError(f"mesh faces must be integer (F, 3), got {faces.dtype} {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise MeshWriteError(f"mesh face indices must be in [0, {len(vertices) - 1}], got {faces.min()}..{faces.max()}")
    return vertices, faces.astype(np.int32)


def write_mesh(path: str | Path, mesh: HandMesh) -> Path:
    """Write ``mesh`` to ``path``; the suffix (.obj or .ply) picks the format. Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise MeshWriteError(f"mesh file must end in one of {MESH_FORMATS}, got {path.name!r}")
    vertices, faces = _checked(mesh)
    if suffix == ".obj":
        lines = ["# hand_recon_ros hand mesh, metres, camera optical frame"]
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment hand_recon_ros hand mesh, metres, camera optical frame\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    face_records = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face_records["n"], face_records["idx"] = 3, faces
    with path.open("wb") as stream:
        stream.write(header.encode("ascii"))
        stream.write(vertices.astype("<f4").tobytes())
        stream.write(face_records.tobytes())
    return path


def read_mesh(path: str | Path) -> HandMesh:
    """Read an OBJ or PLY written by ``write_mesh`` (triangles only); for tests and tools."""
    path = Path(path)
    if path.suffix.lower() == ".obj":
        verts, faces = [], []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("v "):
                verts.append([float(v) for v in line.split()[1:4]])
            elif line.startswith("f "):
                faces.append([int(v.split("/")[0]) - 1 for v in line.split()[1:4]])
        return HandMesh(np.array(verts, np.float32).reshape(-1, 3), np.array(faces, np.int32).reshape(-1, 3))
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    n_v = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    n_f = int(next(h for h in header if h.startswith("element face")).split()[-1])
    vertices = np.frombuffer(data, "<f4", n_v * 3, end).reshape(n_v, 3)
    records = np.frombuffer(data, [("n", "u1"), ("idx", "<i4", (3,))], n_f, end + n_v * 12)
    if np.any(records["n"] != 3):
        raise MeshWriteError(f"{path}: only triangle PLY files are supported")
    return HandMesh(vertices.copy(), records["idx"].astype(np.int32))
