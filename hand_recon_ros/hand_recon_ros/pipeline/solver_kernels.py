"""Compiled (numba) inner loops of the two-hand 3D solver (pipeline/refinement.py): same maths, no numpy overhead.

Each kernel reproduces one numpy block of refinement.py exactly (same formulas and output layout), so the numpy
code stays the reference and the solver's structure does not change: refinement.py calls the kernel when
``enabled()`` and its own numpy code otherwise. Kernels are compiled on first use and cached on disk
(``cache=True``, beside this file in ``__pycache__``); ``make setup`` warms the cache (``warm()``), so a node
starts without compiling. Without numba (no wheel for the platform) ``enabled()`` is False, logged once.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from hand_recon_ros.models import hand_kinematics as hk

_LOG = logging.getLogger(__name__)

try:
    import numba
except ImportError as _exc:  # pragma: no cover - numba is in runtime.txt; a platform without a wheel lands here
    numba = None
    _IMPORT_ERROR = str(_exc)
else:
    _IMPORT_ERROR = ""

_enabled = numba is not None
_logged = False

# Constants the kernels read (copied once; numba freezes module-level arrays as compile-time constants).
_CHAIN_BASE = np.ascontiguousarray(hk.CHAIN_BASE_FRAMES)
_SPREAD_FACTORS = np.ascontiguousarray(hk.PALM_SPREAD_FACTORS, dtype=np.float64)
_ACTIVE = np.ascontiguousarray(hk.ACTIVE_ANGLES, dtype=np.int64)
_LIMITS = np.ascontiguousarray(hk.JOINT_LIMITS_RAD.reshape(-1, 2))
_FINGERS = np.array(hk.FINGERS, dtype=np.int64)  # (5, 4) joint indices per chain
_SPREAD_LO, _SPREAD_HI = (float(v) for v in hk.PALM_SPREAD_LIMITS_RAD)
_PALM_DIRECTIONS = np.ascontiguousarray(hk.PALM_DIRECTIONS)
_PALM_JOINTS = np.array(hk.PALM_JOINTS, dtype=np.int64)
_BONES = np.array(hk.BONES, dtype=np.int64)  # (20, 2) parent, child


def enabled() -> bool:
    """Whether refinement.py should call the compiled kernels (numba present and not switched off)."""
    global _logged
    if numba is None and not _logged:
        _logged = True
        _LOG.info("3D solver: numba not installed (%s); using the numpy solver", _IMPORT_ERROR)
    return _enabled


def set_enabled(on: bool) -> bool:
    """Switch the kernels on or off (tests compare both paths); returns the previous state. On needs numba."""
    global _enabled
    previous = _enabled
    _enabled = bool(on) and numba is not None
    return previous


def _jit(fn: Any) -> Any:
    """numba.njit(cache=True) when numba is present, else the plain function (never called then)."""
    return numba.njit(cache=True, nogil=True)(fn) if numba is not None else fn


# -- small helpers ---------------------------------------------------------------------------------------------
@_jit
def _rodrigues(v0: float, v1: float, v2: float, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Rotation matrix of a rotation vector into out (3, 3) (OpenCV's Rodrigues formula)."""
    theta = math.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
    if theta < 2.220446049250313e-16:
        for i in range(3):
            for j in range(3):
                out[i, j] = 1.0 if i == j else 0.0
        return
    k0, k1, k2 = v0 / theta, v1 / theta, v2 / theta
    c, s = math.cos(theta), math.sin(theta)
    c1 = 1.0 - c
    out[0, 0] = c + c1 * k0 * k0
    out[0, 1] = c1 * k0 * k1 - s * k2
    out[0, 2] = c1 * k0 * k2 + s * k1
    out[1, 0] = c1 * k1 * k0 + s * k2
    out[1, 1] = c + c1 * k1 * k1
    out[1, 2] = c1 * k1 * k2 - s * k0
    out[2, 0] = c1 * k2 * k0 - s * k1
    out[2, 1] = c1 * k2 * k1 + s * k0
    out[2, 2] = c + c1 * k2 * k2


@_jit
def _joint_rotation(flex: float, abd: float, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Rz(abduction) @ Rx(flexion) into out (3, 3) (hand_kinematics.joint_rotations)."""
    cf, sf, ca, sa = math.cos(flex), math.sin(flex), math.cos(abd), math.sin(abd)
    out[0, 0], out[0, 1], out[0, 2] = ca, -sa * cf, sa * sf
    out[1, 0], out[1, 1], out[1, 2] = sa, ca * cf, -ca * sf
    out[2, 0], out[2, 1], out[2, 2] = 0.0, sf, cf


@_jit
def _matmul3(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(3):
        for j in range(3):
            out[i, j] = a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j]


# -- forward kinematics and its Jacobian (refinement._pose) ----------------------------------------------------
@_jit
def pose(angles: np.ndarray, lengths: np.ndarray, palm: np.ndarray, spread: np.ndarray, r_ref: np.ndarray,
         mirror: np.ndarray, translation: np.ndarray, want_jacobian: bool
         ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Camera-frame joints (B, 21, 3) and joint Jacobian (B, 28, 21, 3) (zeros (B, 0, 0, 0) when not wanted).

    angles (B, 21) active joint angles; lengths (B, 20); palm (B, 5, 3); spread (B,); r_ref (B, 3, 3);
    mirror (B, 3, 3); translation (B, 3). Same maths as refinement._pose (see its docstring).
    """
    b = angles.shape[0]
    joints = np.empty((b, 21, 3))
    jac = np.zeros((b, 28, 21, 3)) if want_jacobian else np.zeros((b, 0, 0, 0))
    full = np.zeros(30)
    local = np.empty((21, 3))
    rot = np.empty((3, 3))
    fan = np.zeros((3, 3))
    base = np.empty((5, 3, 3))
    frames = np.empty((5, 3, 3, 3))
    linear = np.empty((3, 3))
    rel = np.empty((21, 3))
    d_local = np.zeros((22, 21, 3))
    for h in range(b):
        full[:] = 0.0
        for i in range(21):
            full[_ACTIVE[i]] = angles[h, i]
        local[0, :] = 0.0
        for c in range(5):
            ang = spread[h] * _SPREAD_FACTORS[c]
            cs, sn = math.cos(ang), math.sin(ang)
            fan[0, 0], fan[0, 1], fan[1, 0], fan[1, 1], fan[2, 2] = cs, -sn, sn, cs, 1.0
            _matmul3(fan, _CHAIN_BASE[c], base[c])
            p0 = fan[0, 0] * palm[h, c, 0] + fan[0, 1] * palm[h, c, 1]
            p1 = fan[1, 0] * palm[h, c, 0] + fan[1, 1] * palm[h, c, 1]
            p2 = palm[h, c, 2]
            length = lengths[h, 4 * c]
            px, py, pz = p0 * length, p1 * length, p2 * length
            n = 1 + 4 * c
            local[n, 0], local[n, 1], local[n, 2] = px, py, pz
            for k in range(3):
                _joint_rotation(full[c * 6 + k * 2], full[c * 6 + k * 2 + 1], rot)
                _matmul3(base[c] if k == 0 else frames[c, k - 1], rot, frames[c, k])
                length = lengths[h, 4 * c + k + 1]
                px += frames[c, k, 0, 1] * length
                py += frames[c, k, 1, 1] * length
                pz += frames[c, k, 2, 1] * length
                local[n + k + 1, 0], local[n + k + 1, 1], local[n + k + 1, 2] = px, py, pz
        _matmul3(r_ref[h], mirror[h], linear)
        for n in range(21):
            for i in range(3):
                rel[n, i] = linear[i, 0] * local[n, 0] + linear[i, 1] * local[n, 1] + linear[i, 2] * local[n, 2]
                joints[h, n, i] = rel[n, i] + translation[h, i]
        if not want_jacobian:
            continue
        d_local[:] = 0.0
        for c in range(5):
            f = _SPREAD_FACTORS[c]
            for p in range(4):
                n = 1 + 4 * c + p
                d_local[0, n, 0] = -local[n, 1] * f
                d_local[0, n, 1] = local[n, 0] * f
        for i in range(21):
            a = _ACTIVE[i]
            c, k, which = a // 6, (a % 6) // 2, a % 2
            if which == 0:  # flexion: the bone frame's x axis
                ax0, ax1, ax2 = frames[c, k, 0, 0], frames[c, k, 1, 0], frames[c, k, 2, 0]
            elif k == 0:  # abduction: the parent frame's z axis
                ax0, ax1, ax2 = base[c, 0, 2], base[c, 1, 2], base[c, 2, 2]
            else:
                ax0, ax1, ax2 = frames[c, k - 1, 0, 2], frames[c, k - 1, 1, 2], frames[c, k - 1, 2, 2]
            origin = 1 + 4 * c + k
            for p in range(k + 1, 4):
                n = 1 + 4 * c + p
                l0 = local[n, 0] - local[origin, 0]
                l1 = local[n, 1] - local[origin, 1]
                l2 = local[n, 2] - local[origin, 2]
                d_local[1 + i, n, 0] = ax1 * l2 - ax2 * l1
                d_local[1 + i, n, 1] = ax2 * l0 - ax0 * l2
                d_local[1 + i, n, 2] = ax0 * l1 - ax1 * l0
        for n in range(21):
            for k in range(3):  # rotation increment: (r_ref e_k) × rel
                e0, e1, e2 = r_ref[h, 0, k], r_ref[h, 1, k], r_ref[h, 2, k]
                jac[h, k, n, 0] = e1 * rel[n, 2] - e2 * rel[n, 1]
                jac[h, k, n, 1] = e2 * rel[n, 0] - e0 * rel[n, 2]
                jac[h, k, n, 2] = e0 * rel[n, 1] - e1 * rel[n, 0]
                jac[h, 3 + k, n, k] = 1.0
            for q in range(22):
                for i in range(3):
                    jac[h, 6 + q, n, i] = (linear[i, 0] * d_local[q, n, 0] + linear[i, 1] * d_local[q, n, 1]
                                           + linear[i, 2] * d_local[q, n, 2])
    return joints, jac


# -- 2D-step residuals (refinement._residual_2d) ---------------------------------------------------------------
@_jit
def residual_2d(uv: np.ndarray, intr: np.ndarray, world: np.ndarray, kz: np.ndarray, kz_weight: np.ndarray,
                joints: np.ndarray, jac: np.ndarray, x: np.ndarray, irls: np.ndarray, depth: np.ndarray,
                angle_prior: np.ndarray, sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Residuals (B, 144) and Jacobian (B, 28, 144) laid out as refinement._residual_2d's.

    intr = (fx, fy, cx, cy); sigmas = (reprojection m, world x, world y, world depth, angle prior rad,
    spread prior rad); kz_weight (B,).
    """
    b, p = joints.shape[0], jac.shape[1]
    m = 42 + 60 + 20 + 21 + 1
    res = np.empty((b, m))
    jr = np.zeros((b, p, m))
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    for h in range(b):
        for n in range(21):
            inv_z = 1.0 / max(joints[h, n, 2], 1e-6)
            u, v = joints[h, n, 0] * inv_z, joints[h, n, 1] * inv_z
            scale = depth[h] / sigmas[0] * irls[h, n]
            res[h, 2 * n] = (fx * u + cx - uv[h, n, 0]) * scale / fx
            res[h, 2 * n + 1] = (fy * v + cy - uv[h, n, 1]) * scale / fy
            w = scale * inv_z
            for q in range(p):
                jr[h, q, 2 * n] = (jac[h, q, n, 0] - u * jac[h, q, n, 2]) * w
                jr[h, q, 2 * n + 1] = (jac[h, q, n, 1] - v * jac[h, q, n, 2]) * w
        kz_w = kz_weight[h]
        for n in range(1, 21):
            base = 42 + 3 * (n - 1)
            for i in range(3):
                sig = sigmas[1 + i]
                res[h, base + i] = (joints[h, n, i] - joints[h, 0, i] - world[h, n, i]) / sig
                for q in range(p):
                    jr[h, q, base + i] = (jac[h, q, n, i] - jac[h, q, 0, i]) / sig
            kz_m = kz[h, n] / fx
            res[h, 102 + n - 1] = (joints[h, n, 2] - joints[h, 0, 2] - kz_m * joints[h, 0, 2]) * kz_w
            for q in range(p):
                jr[h, q, 102 + n - 1] = (jac[h, q, n, 2] - jac[h, q, 0, 2]) * kz_w
        for i in range(21):
            res[h, 122 + i] = (x[h, 7 + i] - angle_prior[h, i]) / sigmas[4]
            jr[h, 7 + i, 122 + i] = 1.0 / sigmas[4]
        res[h, 143] = x[h, 6] / sigmas[5]
        jr[h, 6, 143] = 1.0 / sigmas[5]
    return res, jr


# -- one Levenberg–Marquardt update (refinement._lm_update) ----------------------------------------------------
@_jit
def lm_update(x: np.ndarray, r_ref: np.ndarray, r0: np.ndarray, jac: np.ndarray, damping: float,
              limits: np.ndarray, depth_lo: float, depth_hi: float
              ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """New (x, r_ref): damped normal equations solved per hand, rotation folded into r_ref, limits clamped.

    limits (21, 2) of the active angles; spread limits are hand_kinematics.PALM_SPREAD_LIMITS_RAD.
    """
    b, p = jac.shape[0], jac.shape[1]
    x_new = x.copy()
    r_new = np.empty_like(r_ref)
    rot = np.empty((3, 3))
    for h in range(b):
        jh = np.ascontiguousarray(jac[h])
        normal = jh @ jh.T  # BLAS, as numpy's matmul
        gradient = jh @ np.ascontiguousarray(r0[h])
        for i in range(p):
            normal[i, i] += damping * normal[i, i] + 1e-9
        delta = np.linalg.solve(normal, gradient)
        for i in range(p):
            x_new[h, i] = x[h, i] - delta[i]
        _rodrigues(x_new[h, 0], x_new[h, 1], x_new[h, 2], rot)
        _matmul3(r_ref[h], rot, r_new[h])
        x_new[h, 0] = x_new[h, 1] = x_new[h, 2] = 0.0
        for i in range(21):
            x_new[h, 7 + i] = min(max(x_new[h, 7 + i], limits[i, 0]), limits[i, 1])
        x_new[h, 6] = min(max(x_new[h, 6], _SPREAD_LO), _SPREAD_HI)
        x_new[h, 5] = min(max(x_new[h, 5], depth_lo), depth_hi)
    return x_new, r_new


# -- closest points of segment pairs (refinement._segment_closest) ---------------------------------------------
@_jit
def segment_closest(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Distances (K,), first-segment parameters s (K,) and unit directions (K, 3) for segment pairs (K, 3) each."""
    k_count = p1.shape[0]
    dist = np.empty(k_count)
    s_out = np.empty(k_count)
    direction = np.empty((k_count, 3))
    for k in range(k_count):
        d10, d11, d12 = q1[k, 0] - p1[k, 0], q1[k, 1] - p1[k, 1], q1[k, 2] - p1[k, 2]
        d20, d21, d22 = q2[k, 0] - p2[k, 0], q2[k, 1] - p2[k, 1], q2[k, 2] - p2[k, 2]
        r0, r1, r2 = p1[k, 0] - p2[k, 0], p1[k, 1] - p2[k, 1], p1[k, 2] - p2[k, 2]
        a = d10 * d10 + d11 * d11 + d12 * d12
        e = d20 * d20 + d21 * d21 + d22 * d22
        f = d20 * r0 + d21 * r1 + d22 * r2
        c = d10 * r0 + d11 * r1 + d12 * r2
        bb = d10 * d20 + d11 * d21 + d12 * d22
        s = min(max((bb * f - c * e) / max(a * e - bb * bb, 1e-18), 0.0), 1.0)
        t = (bb * s + f) / max(e, 1e-18)
        t_clipped = min(max(t, 0.0), 1.0)
        if t != t_clipped:
            s = min(max((bb * t_clipped - c) / max(a, 1e-18), 0.0), 1.0)
        g0 = (p1[k, 0] + d10 * s) - (p2[k, 0] + d20 * t_clipped)
        g1 = (p1[k, 1] + d11 * s) - (p2[k, 1] + d21 * t_clipped)
        g2 = (p1[k, 2] + d12 * s) - (p2[k, 2] + d22 * t_clipped)
        norm = math.sqrt(g0 * g0 + g1 * g1 + g2 * g2)
        dist[k], s_out[k] = norm, s
        inv = 1.0 / max(norm, 1e-12)
        direction[k, 0], direction[k, 1], direction[k, 2] = g0 * inv, g1 * inv, g2 * inv
    return dist, s_out, direction


# -- world landmarks onto the viewing ray, hand rotation (refinement._observation_frames) -----------------------
@_jit
def observation_frames(world_in: np.ndarray, uv: np.ndarray, intr: np.ndarray, lengths: np.ndarray,
                       mirror: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """(world (B, 21, 3), rotations (B, 3, 3), local_world (B, 21, 3)) as refinement._observation_frames."""
    b = world_in.shape[0]
    world = np.empty((b, 21, 3))
    rotations = np.empty((b, 3, 3))
    local_world = np.empty((b, 21, 3))
    rot = np.empty((3, 3))
    rest = np.empty((21, 3))
    for h in range(b):
        mu, mv = 0.0, 0.0
        for n in range(21):
            mu += uv[h, n, 0]
            mv += uv[h, n, 1]
        r0, r1 = (mu / 21.0 - intr[2]) / intr[0], (mv / 21.0 - intr[3]) / intr[1]
        norm = math.sqrt(r0 * r0 + r1 * r1 + 1.0)
        r0, r1, r2 = r0 / norm, r1 / norm, 1.0 / norm
        a0, a1 = -r1, r0  # (0, 0, 1) × ray
        sin = math.sqrt(a0 * a0 + a1 * a1)
        angle = math.atan2(sin, r2) / max(sin, 1e-12)
        _rodrigues(a0 * angle, a1 * angle, 0.0, rot)
        for n in range(21):
            w0 = world_in[h, n, 0] - world_in[h, 0, 0]
            w1 = world_in[h, n, 1] - world_in[h, 0, 1]
            w2 = world_in[h, n, 2] - world_in[h, 0, 2]
            for i in range(3):
                world[h, n, i] = rot[i, 0] * w0 + rot[i, 1] * w1 + rot[i, 2] * w2
        total, target = 0.0, 0.0
        for k in range(20):
            p, c = _BONES[k, 0], _BONES[k, 1]
            d0 = world[h, c, 0] - world[h, p, 0]
            d1 = world[h, c, 1] - world[h, p, 1]
            d2 = world[h, c, 2] - world[h, p, 2]
            total += math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
            target += lengths[h, k]
        scale = target / max(total, 1e-9)
        for n in range(21):
            for i in range(3):
                world[h, n, i] *= scale
        # Rest joints of the flat hand (zero angles: every bone frame is the chain's base frame), mirrored.
        rest[0, :] = 0.0
        for c in range(5):
            n = 1 + 4 * c
            for i in range(3):
                rest[n, i] = _PALM_DIRECTIONS[c, i] * lengths[h, 4 * c]
            for k in range(1, 4):
                for i in range(3):
                    rest[n + k, i] = rest[n + k - 1, i] + _CHAIN_BASE[c, i, 1] * lengths[h, 4 * c + k]
        src = np.empty((5, 3))
        dst = np.empty((5, 3))
        for j in range(5):
            n = _PALM_JOINTS[j]
            for i in range(3):
                src[j, i] = rest[n, 0] * mirror[h, 0, i] + rest[n, 1] * mirror[h, 1, i] + rest[n, 2] * mirror[h, 2, i]
                dst[j, i] = world[h, n, i]
        for i in range(3):  # centre both point sets (unit weights)
            ms, md = 0.0, 0.0
            for j in range(5):
                ms += src[j, i]
                md += dst[j, i]
            for j in range(5):
                src[j, i] -= ms / 5.0
                dst[j, i] -= md / 5.0
        cov = np.zeros((3, 3))
        for i in range(3):
            for k in range(3):
                for j in range(5):
                    cov[i, k] += dst[j, i] * src[j, k]
        u, _, vt = np.linalg.svd(cov)
        prod = u @ vt
        det = (prod[0, 0] * (prod[1, 1] * prod[2, 2] - prod[1, 2] * prod[2, 1])
               - prod[0, 1] * (prod[1, 0] * prod[2, 2] - prod[1, 2] * prod[2, 0])
               + prod[0, 2] * (prod[1, 0] * prod[2, 1] - prod[1, 1] * prod[2, 0]))
        sign = 1.0 if det > 0 else (-1.0 if det < 0 else 0.0)
        for i in range(3):
            u[i, 2] *= sign
        _matmul3(u, vt, rotations[h])
        _matmul3(rotations[h], mirror[h], rot)
        for n in range(21):
            for i in range(3):
                local_world[h, n, i] = (world[h, n, 0] * rot[0, i] + world[h, n, 1] * rot[1, i]
                                        + world[h, n, 2] * rot[2, i])
    return world, rotations, local_world


# -- initial wrist translation (refinement._initial_translation) -----------------------------------------------
@_jit
def initial_translation(uv: np.ndarray, intr: np.ndarray, conf: np.ndarray, local_cam: np.ndarray, huber_px: float,
                        depth_lo: float, depth_hi: float) -> np.ndarray:  # pragma: no cover - compiled
    """Wrist translations (B, 3) by 3 rounds of Huber-weighted least squares, as refinement._initial_translation."""
    b = uv.shape[0]
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    out = np.zeros((b, 3))
    a = np.zeros((42, 3))
    rhs_b = np.empty(42)
    weights = np.empty(42)
    ata = np.empty((3, 3))
    atb = np.empty(3)
    for h in range(b):
        for n in range(21):
            xn = (uv[h, n, 0] - cx) / fx
            yn = (uv[h, n, 1] - cy) / fy
            a[n, 0], a[n, 1], a[n, 2] = 1.0, 0.0, -xn
            a[21 + n, 0], a[21 + n, 1], a[21 + n, 2] = 0.0, 1.0, -yn
            rhs_b[n] = xn * local_cam[h, n, 2] - local_cam[h, n, 0]
            rhs_b[21 + n] = yn * local_cam[h, n, 2] - local_cam[h, n, 1]
            weights[n] = conf[h, n] + 1e-6
            weights[21 + n] = conf[h, n] + 1e-6
        t = np.zeros(3)
        for _ in range(3):
            for i in range(3):
                s = 0.0
                for k in range(42):
                    s += a[k, i] * weights[k] * rhs_b[k]
                atb[i] = s
                for j in range(3):
                    s = 0.0
                    for k in range(42):
                        s += a[k, i] * weights[k] * a[k, j]
                    ata[i, j] = s + (1e-12 if i == j else 0.0)
            t = np.linalg.solve(ata, atb)
            scale = huber_px / fx * max(t[2], depth_lo)
            for k in range(42):
                res = abs(a[k, 0] * t[0] + a[k, 1] * t[1] + a[k, 2] * t[2] - rhs_b[k])
                weights[k] = (conf[h, k % 21] + 1e-6) * min(1.0, scale / (res + 1e-12))
        out[h, 0], out[h, 1] = t[0], t[1]
        out[h, 2] = min(max(t[2], depth_lo), depth_hi)
    return out


# -- inverse kinematics (hand_kinematics.inverse_kinematics, used by refinement.initialise) -------------------
@_jit
def inverse_kinematics(joints_hand: np.ndarray, limits: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Joint angles (B, 5, 3, 2) of right hands with joints (B, 21, 3) in the hand frame (not clipped).

    limits (30, 2): hand_kinematics.JOINT_LIMITS_RAD flattened (decides two-axis joints vs hinges).
    """
    b = joints_hand.shape[0]
    out = np.zeros((b, 5, 3, 2))
    frame = np.empty((3, 3))
    nxt = np.empty((3, 3))
    rot = np.empty((3, 3))
    for h in range(b):
        for c in range(5):
            frame[:, :] = _CHAIN_BASE[c]
            for k in range(3):
                j0, j1 = _FINGERS[c, k], _FINGERS[c, k + 1]
                b0 = joints_hand[h, j1, 0] - joints_hand[h, j0, 0]
                b1 = joints_hand[h, j1, 1] - joints_hand[h, j0, 1]
                b2 = joints_hand[h, j1, 2] - joints_hand[h, j0, 2]
                d0 = frame[0, 0] * b0 + frame[1, 0] * b1 + frame[2, 0] * b2
                d1 = frame[0, 1] * b0 + frame[1, 1] * b1 + frame[2, 1] * b2
                d2 = frame[0, 2] * b0 + frame[1, 2] * b1 + frame[2, 2] * b2
                norm = max(math.sqrt(d0 * d0 + d1 * d1 + d2 * d2), 1e-12)
                d0, d1, d2 = d0 / norm, d1 / norm, d2 / norm
                row = c * 6 + k * 2 + 1
                if limits[row, 1] > limits[row, 0]:
                    flex = math.asin(min(max(d2, -1.0), 1.0))
                    abd = math.atan2(-d0, d1)
                else:
                    flex = math.atan2(d2, d1)
                    abd = 0.0
                out[h, c, k, 0], out[h, c, k, 1] = flex, abd
                _joint_rotation(flex, abd, rot)
                _matmul3(frame, rot, nxt)
                frame[:, :] = nxt
    return out


# -- the whole solve in one call (refinement.refine: initialise, every iteration, the final pose) ---------------
#: Order of the scalar constants solve() reads from its ``consts`` array (refinement._SOLVE_CONSTS fills it).
SOLVE_CONSTS = ("lm_damping", "huber_px", "min_depth_m", "max_depth_m", "depth_sigma_base_m",
                "depth_sigma_quadratic_per_m", "depth_huber_m", "anchor_sigma_m", "penetration_sigma_m",
                "contact_margin_m", "palm_adapt_weight", "depth_occluded_huber_m")


@_jit
def _project_residual(joints: np.ndarray, uv: np.ndarray, intr: np.ndarray,
                      out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Pixel distance (B, 21) between projected joints and keypoints into out (refinement._project + norm)."""
    for h in range(joints.shape[0]):
        for n in range(21):
            z = max(joints[h, n, 2], 1e-6)
            du = intr[0] * joints[h, n, 0] / z + intr[2] - uv[h, n, 0]
            dv = intr[1] * joints[h, n, 1] / z + intr[3] - uv[h, n, 1]
            out[h, n] = math.sqrt(du * du + dv * dv)


@_jit
def _depth_residual(depth: np.ndarray, depth_sigma: np.ndarray, joints: np.ndarray, jac: np.ndarray,
                    res: np.ndarray, jr: np.ndarray, offset: int,
                    consts: np.ndarray) -> None:  # pragma: no cover - compiled
    """Depth-camera residuals (refinement._residual_depth) into res[:, offset:offset + 21], jr[:, :, offset:...]:
    each reading weighted by its expected error depth_sigma (B, 21), one-sided Huber (nearer = occluder)."""
    huber_m, occluded_huber_m = consts[6], consts[11]
    for h in range(joints.shape[0]):
        for n in range(21):
            d = depth[h, n]
            if math.isfinite(d):
                error = joints[h, n, 2] - d
                threshold = occluded_huber_m if error > 0.0 else huber_m
                weight = math.sqrt(min(1.0, threshold / max(abs(error), 1e-9))) / depth_sigma[h, n]
            else:
                error, weight = joints[h, n, 2], 0.0
            res[h, offset + n] = error * weight
            for q in range(jac.shape[1]):
                jr[h, q, offset + n] = jac[h, q, n, 2] * weight


@_jit
def _contacts(joints: np.ndarray, radii: np.ndarray, margin: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """refinement._contact_pairs for two hands: bone indices of hand 0 (K,), of hand 1 (K,), clearance targets (K,)
    (K = 0 when apart or not two hands)."""
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    if joints.shape[0] != 2:
        return empty_i, empty_i, empty_f
    reach = 2.0 * radii.max() + margin
    for i in range(3):
        lo0, hi0 = joints[0, :, i].min(), joints[0, :, i].max()
        lo1, hi1 = joints[1, :, i].min(), joints[1, :, i].max()
        if lo0 > hi1 + reach or lo1 > hi0 + reach:
            return empty_i, empty_i, empty_f
    p1 = np.empty((400, 3))
    q1 = np.empty((400, 3))
    p2 = np.empty((400, 3))
    q2 = np.empty((400, 3))
    for a in range(20):
        for b in range(20):
            k = a * 20 + b
            for i in range(3):
                p1[k, i] = joints[0, _BONES[a, 0], i]
                q1[k, i] = joints[0, _BONES[a, 1], i]
                p2[k, i] = joints[1, _BONES[b, 0], i]
                q2[k, i] = joints[1, _BONES[b, 1], i]
    raw, _, _ = segment_closest(p1, q1, p2, q2)
    count = 0
    for k in range(400):
        if raw[k] < radii[k // 20] + radii[k % 20] + margin:
            count += 1
    ia = np.empty(count, np.int64)
    ib = np.empty(count, np.int64)
    target = np.empty(count)
    j = 0
    for k in range(400):
        r = radii[k // 20] + radii[k % 20]
        if raw[k] < r + margin:
            ia[j], ib[j] = k // 20, k % 20
            target[j] = r - 0.5 * max(r - raw[k], 0.0)
            j += 1
    return ia, ib, target


@_jit
def _residual_3d(joints: np.ndarray, jac: np.ndarray, ia: np.ndarray, ib: np.ndarray, target: np.ndarray,
                 previous: np.ndarray, has_previous: np.ndarray, temporal_sigma: float, consts: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """refinement._residual_3d with the anchor at the current joints: residuals (B, M), Jacobian (B, P, M)."""
    b, p = joints.shape[0], jac.shape[1]
    count = ia.shape[0]
    temporal = temporal_sigma > 0.0
    m = 63 + count + (63 if temporal else 0)
    res = np.zeros((b, m))
    jr = np.zeros((b, p, m))
    anchor_sigma, pen_sigma = consts[7], consts[8]
    for h in range(b):
        for n in range(21):
            for i in range(3):
                for q in range(p):
                    jr[h, q, 3 * n + i] = jac[h, q, n, i] / anchor_sigma
        if count > 0:
            mine = ia if h == 0 else ib
            theirs = ib if h == 0 else ia
            other = 1 - h
            p1 = np.empty((count, 3))
            q1 = np.empty((count, 3))
            p2 = np.empty((count, 3))
            q2 = np.empty((count, 3))
            for k in range(count):
                for i in range(3):
                    p1[k, i] = joints[h, _BONES[mine[k], 0], i]
                    q1[k, i] = joints[h, _BONES[mine[k], 1], i]
                    p2[k, i] = joints[other, _BONES[theirs[k], 0], i]
                    q2[k, i] = joints[other, _BONES[theirs[k], 1], i]
            dist, s, direction = segment_closest(p1, q1, p2, q2)
            for k in range(count):
                if dist[k] >= target[k]:
                    continue
                res[h, 63 + k] = (target[k] - dist[k]) / pen_sigma
                parent, child = _BONES[mine[k], 0], _BONES[mine[k], 1]
                for q in range(p):
                    grad = 0.0
                    for i in range(3):
                        grad += (jac[h, q, parent, i] * direction[k, i] * (1.0 - s[k])
                                 + jac[h, q, child, i] * direction[k, i] * s[k])
                    jr[h, q, 63 + k] = -grad / pen_sigma
        if temporal:
            start = 63 + count
            for n in range(21):
                for i in range(3):
                    if has_previous[h]:
                        res[h, start + 3 * n + i] = (joints[h, n, i] - previous[h, n, i]) / temporal_sigma
                    for q in range(p):
                        jr[h, q, start + 3 * n + i] = jac[h, q, n, i] / temporal_sigma
    return res, jr


@_jit
def solve(uv: np.ndarray, conf: np.ndarray, intr: np.ndarray, lengths: np.ndarray, mirror: np.ndarray,
          kz: np.ndarray, kz_weight: np.ndarray, world_in: np.ndarray, depth: np.ndarray,
          depth_sigma: np.ndarray, has_depth: bool,
          previous: np.ndarray, has_previous: np.ndarray, warm: np.ndarray, warm_rotation: np.ndarray,
          warm_translation: np.ndarray, warm_spread: np.ndarray, warm_angles: np.ndarray, iterations: int,
          steps_2d: int, temporal_sigma: float, sigmas: np.ndarray, limits_flat: np.ndarray,
          limits_active: np.ndarray, radii: np.ndarray, consts: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """refinement.refine in one compiled call: (joints, initial joints (B, 21, 3), rotations (B, 3, 3), parameters
    (B, 28), reprojection error and initial reprojection error (B, 21) pixels).

    depth (B, 21) NaN where unknown and depth_sigma (B, 21) its expected errors (read only when has_depth);
    previous (B, 21, 3) read where has_previous (B,);
    warm (B,) marks hands starting from warm_rotation (B, 3, 3), warm_translation (B, 3), warm_spread (B,) and
    warm_angles (B, 21 active); temporal_sigma <= 0: no smoothness term; consts in SOLVE_CONSTS order.
    """
    b = uv.shape[0]
    damping, huber_px, depth_lo, depth_hi, palm_weight = consts[0], consts[1], consts[2], consts[3], consts[10]
    world, rotations, local_world = observation_frames(world_in, uv, intr, lengths, mirror)
    palm = np.empty((b, 5, 3))
    for h in range(b):  # hand_kinematics.personal_palm
        for c in range(5):
            n = _FINGERS[c, 0]
            norm = max(math.sqrt(local_world[h, n, 0] ** 2 + local_world[h, n, 1] ** 2 + local_world[h, n, 2] ** 2),
                       1e-9)
            total = 0.0
            for i in range(3):
                palm[h, c, i] = (1.0 - palm_weight) * _PALM_DIRECTIONS[c, i] + palm_weight * local_world[h, n, i] / norm
                total += palm[h, c, i] ** 2
            total = max(math.sqrt(total), 1e-9)
            for i in range(3):
                palm[h, c, i] /= total
    ik = inverse_kinematics(local_world, limits_flat)
    x = np.zeros((b, 28))
    angle_prior = np.empty((b, 21))
    r_ref = rotations.copy()
    for h in range(b):
        for i in range(21):
            a = _ACTIVE[i]
            value = ik[h, a // 6, (a % 6) // 2, a % 2]
            angle_prior[h, i] = min(max(value, limits_flat[a, 0]), limits_flat[a, 1])
            x[h, 7 + i] = angle_prior[h, i]
        if warm[h]:
            r_ref[h] = warm_rotation[h]
            for i in range(3):
                x[h, 3 + i] = warm_translation[h, i]
            x[h, 6] = warm_spread[h]
            for i in range(21):
                x[h, 7 + i] = warm_angles[h, i]
        for i in range(21):  # refinement._clip
            x[h, 7 + i] = min(max(x[h, 7 + i], limits_active[i, 0]), limits_active[i, 1])
        x[h, 6] = min(max(x[h, 6], _SPREAD_LO), _SPREAD_HI)
        x[h, 5] = min(max(x[h, 5], depth_lo), depth_hi)
    joints0, _ = pose(x[:, 7:], lengths, palm, x[:, 6], r_ref, mirror, x[:, 3:6], False)
    relative = np.empty((b, 21, 3))
    for h in range(b):
        for n in range(21):
            for i in range(3):
                relative[h, n, i] = joints0[h, n, i] - x[h, 3 + i]
    translation = initial_translation(uv, intr, conf, relative, huber_px, depth_lo, depth_hi)
    errors = np.empty(21)
    for h in range(b):
        if warm[h]:
            continue
        for i in range(3):
            x[h, 3 + i] = translation[h, i]
        if has_depth:  # refinement._depth_translation
            count = 0
            for n in range(21):
                if math.isfinite(depth[h, n]):
                    errors[count] = depth[h, n] - (relative[h, n, 2] + x[h, 5])
                    count += 1
            shift = np.median(errors[:count]) if count > 0 else 0.0
            factor = min(max(x[h, 5] + shift, depth_lo), depth_hi) / max(x[h, 5], depth_lo)
            for i in range(3):
                x[h, 3 + i] *= factor
        for n in range(21):
            for i in range(3):
                joints0[h, n, i] = relative[h, n, i] + x[h, 3 + i]
    initial_residual = np.empty((b, 21))
    _project_residual(joints0, uv, intr, initial_residual)
    residual = np.empty((b, 21))
    irls = np.empty((b, 21))
    depth_scale = np.empty(b)
    temporal = temporal_sigma > 0.0
    for _ in range(iterations):
        for _ in range(steps_2d):
            joints, jac = pose(x[:, 7:], lengths, palm, x[:, 6], r_ref, mirror, x[:, 3:6], True)
            _project_residual(joints, uv, intr, residual)
            for h in range(b):
                depth_scale[h] = max(x[h, 5], depth_lo)
                for n in range(21):
                    irls[h, n] = math.sqrt(conf[h, n] * min(1.0, huber_px / max(residual[h, n], 1e-9)))
            r2, j2 = residual_2d(uv, intr, world, kz, kz_weight, joints, jac, x, irls, depth_scale, angle_prior,
                                 sigmas)
            if has_depth:
                m2 = r2.shape[1]
                r0 = np.empty((b, m2 + 21))
                jr = np.empty((b, 28, m2 + 21))
                r0[:, :m2] = r2
                jr[:, :, :m2] = j2
                _depth_residual(depth, depth_sigma, joints, jac, r0, jr, m2, consts)
                x, r_ref = lm_update(x, r_ref, r0, jr, damping, limits_active, depth_lo, depth_hi)
            else:
                x, r_ref = lm_update(x, r_ref, r2, j2, damping, limits_active, depth_lo, depth_hi)
        joints, jac = pose(x[:, 7:], lengths, palm, x[:, 6], r_ref, mirror, x[:, 3:6], True)
        ia, ib, target = _contacts(joints, radii, consts[9])
        if ia.shape[0] > 0 or temporal:
            r3, j3 = _residual_3d(joints, jac, ia, ib, target, previous, has_previous, temporal_sigma, consts)
            x, r_ref = lm_update(x, r_ref, r3, j3, damping, limits_active, depth_lo, depth_hi)
    joints, _ = pose(x[:, 7:], lengths, palm, x[:, 6], r_ref, mirror, x[:, 3:6], False)
    _project_residual(joints, uv, intr, residual)
    return joints, joints0, r_ref, x, residual, initial_residual


# -- wrist poses of the refined hands (wrist_pose.wrist_poses) --------------------------------------------------
@_jit
def wrist_quaternions(joints: np.ndarray, right: np.ndarray, min_axis: float
                      ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Wrist-frame quaternions (B, 4) x, y, z, w (w >= 0) of joints (B, 21, 3), and whether each frame is defined
    (B,): wrist_pose.wrist_frame's axes (x wrist→middle MCP, z out of the palm, y = z × x) without its checks'
    exceptions (a frame with an axis shorter than min_axis, or non-finite joints, is not defined)."""
    b = joints.shape[0]
    quats = np.zeros((b, 4))
    ok = np.zeros(b, np.bool_)
    frame = np.empty((3, 3))
    for h in range(b):
        finite = True
        for n in range(21):
            for i in range(3):
                if not math.isfinite(joints[h, n, i]):
                    finite = False
        if not finite:
            continue
        x0, x1, x2 = (joints[h, 9, 0] - joints[h, 0, 0], joints[h, 9, 1] - joints[h, 0, 1],
                      joints[h, 9, 2] - joints[h, 0, 2])
        a0, a1, a2 = (joints[h, 5, 0] - joints[h, 0, 0], joints[h, 5, 1] - joints[h, 0, 1],
                      joints[h, 5, 2] - joints[h, 0, 2])
        c0, c1, c2 = (joints[h, 17, 0] - joints[h, 0, 0], joints[h, 17, 1] - joints[h, 0, 1],
                      joints[h, 17, 2] - joints[h, 0, 2])
        if not right[h]:  # (pinky - wrist) x (index - wrist) on a left hand
            a0, a1, a2, c0, c1, c2 = c0, c1, c2, a0, a1, a2
        n0, n1, n2 = a1 * c2 - a2 * c1, a2 * c0 - a0 * c2, a0 * c1 - a1 * c0
        x_len = math.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
        if x_len < min_axis:
            continue
        x0, x1, x2 = x0 / x_len, x1 / x_len, x2 / x_len
        d = n0 * x0 + n1 * x1 + n2 * x2
        z0, z1, z2 = n0 - d * x0, n1 - d * x1, n2 - d * x2
        z_len = math.sqrt(z0 * z0 + z1 * z1 + z2 * z2)
        if z_len < min_axis:
            continue
        z0, z1, z2 = z0 / z_len, z1 / z_len, z2 / z_len
        y0, y1, y2 = z1 * x2 - z2 * x1, z2 * x0 - z0 * x2, z0 * x1 - z1 * x0
        frame[0, 0], frame[1, 0], frame[2, 0] = x0, x1, x2
        frame[0, 1], frame[1, 1], frame[2, 1] = y0, y1, y2
        frame[0, 2], frame[1, 2], frame[2, 2] = z0, z1, z2
        # Quaternion of the rotation matrix (Shepperd: the largest of w, x, y, z first, for accuracy).
        trace = frame[0, 0] + frame[1, 1] + frame[2, 2]
        if trace >= frame[0, 0] and trace >= frame[1, 1] and trace >= frame[2, 2]:
            w = 0.5 * math.sqrt(max(1.0 + trace, 0.0))
            f = 0.25 / w
            qx, qy, qz = ((frame[2, 1] - frame[1, 2]) * f, (frame[0, 2] - frame[2, 0]) * f,
                          (frame[1, 0] - frame[0, 1]) * f)
        elif frame[0, 0] >= frame[1, 1] and frame[0, 0] >= frame[2, 2]:
            qx = 0.5 * math.sqrt(max(1.0 + 2.0 * frame[0, 0] - trace, 0.0))
            f = 0.25 / qx
            w, qy, qz = ((frame[2, 1] - frame[1, 2]) * f, (frame[0, 1] + frame[1, 0]) * f,
                         (frame[0, 2] + frame[2, 0]) * f)
        elif frame[1, 1] >= frame[2, 2]:
            qy = 0.5 * math.sqrt(max(1.0 + 2.0 * frame[1, 1] - trace, 0.0))
            f = 0.25 / qy
            w, qx, qz = ((frame[0, 2] - frame[2, 0]) * f, (frame[0, 1] + frame[1, 0]) * f,
                         (frame[1, 2] + frame[2, 1]) * f)
        else:
            qz = 0.5 * math.sqrt(max(1.0 + 2.0 * frame[2, 2] - trace, 0.0))
            f = 0.25 / qz
            w, qx, qy = ((frame[1, 0] - frame[0, 1]) * f, (frame[0, 2] + frame[2, 0]) * f,
                         (frame[1, 2] + frame[2, 1]) * f)
        if w < 0.0:
            w, qx, qy, qz = -w, -qx, -qy, -qz
        norm = math.sqrt(w * w + qx * qx + qy * qy + qz * qz)
        quats[h, 0], quats[h, 1], quats[h, 2], quats[h, 3] = qx / norm, qy / norm, qz / norm, w / norm
        ok[h] = True
    return quats, ok


def warm() -> bool:
    """Compile every kernel (or load it from the on-disk cache) on a tiny two-hand problem.

    Returns whether the kernels are in use. Without numba, or when compiling fails (logged once, with the
    reason), the kernels are switched off and the numpy solver is used.
    """
    global _enabled
    if numba is None or not _enabled:
        return False
    from hand_recon_ros.pipeline import refinement, synthetic_scenes
    from hand_recon_ros.pipeline.types import CameraIntrinsics

    intrinsics = CameraIntrinsics.assumed(640, 480)
    try:
        scene = synthetic_scenes.synthetic_scene(np.random.default_rng(0), intrinsics, gap_m=0.03)
        fits = refinement.refine(scene.observations, intrinsics)
        wrist_quaternions(np.stack([fit.joints for fit in fits]), np.array([True, False]), 1e-6)
        from hand_recon_ros.pipeline import prepost_kernels

        prepost_kernels.warm()
    except Exception as exc:  # noqa: BLE001 - any numba/LLVM failure: fall back to the numpy solver
        _enabled = False
        _LOG.warning("3D solver: compiled kernels failed (%s: %s); using the numpy solver", type(exc).__name__, exc)
        return False
    return True
