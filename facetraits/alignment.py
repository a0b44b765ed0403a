"""Alignment of faces by their landmarks: a mean face, and heatmaps warped onto it.

Why: heatmaps of different faces can be averaged, or a mean face laid over a face, only once
the faces' eyes, nose and mouth sit at the same pixels. A similarity transform (rotation,
uniform scale, translation) fitted on stable points does that without distorting a face.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from facetraits.landmarks import N_LANDMARKS, as_landmarks


ALIGN_POINTS = (36, 39, 42, 45, 27, 28, 29, 30, 31, 33, 35, 48, 54)
"""Points used to align faces: eye corners, nose bridge and bottom, mouth corners.
These move little with expression and are localised reliably; the jaw outline (pose-dependent,
poorly localised) and the brows (expression-dependent) are left out."""


def similarity_transform(src_points, dst_points) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation taking ``src`` onto ``dst`` (Umeyama 1991).

    Returns a 2x3 matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``. Reflections are
    excluded, so a face is never mirrored to fit.
    """
    src = np.asarray(src_points, dtype=float)
    dst = np.asarray(dst_points, dtype=float)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ValueError(f"point arrays must both have shape (N, 2), got {src.shape} and {dst.shape}")
    if len(src) < 2:
        raise ValueError("need at least 2 points for a similarity transform")
    src_mean = src.mean(axis=0)
    dst_mean = dst.mean(axis=0)
    src_c = src - src_mean
    dst_c = dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if not src_var > 0:
        raise ValueError("source points are all identical")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src_var
    linear = scale * rotation
    translation = dst_mean - linear @ src_mean
    return np.hstack([linear, translation[:, None]])


def apply_transform(matrix: np.ndarray, points) -> np.ndarray:
    """Apply a 2x3 transform (from :func:`similarity_transform`) to (N, 2) points."""
    pts = np.asarray(points, dtype=float)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp_to_template(
    heatmap,
    landmarks_in_map_coords,
    template_points,
    output_shape: tuple[int, int] | None = None,
    points: Sequence[int] | None = ALIGN_POINTS,
) -> np.ndarray:
    """Resample a heatmap so its face lands on the template face, for averaging across faces.

    Both landmark sets are (68, 2) in heatmap pixel coordinates (use :func:`scale_landmarks`).
    The similarity transform is fitted on ``points`` (default :data:`ALIGN_POINTS`; None for
    all 68). Bilinear interpolation; pixels that come from outside the heatmap are 0, so they
    add no relevance to an average.
    """
    heat = np.asarray(heatmap, dtype=float)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (H, W), got shape {heat.shape}")
    idx = list(range(N_LANDMARKS)) if points is None else list(points)
    src = as_landmarks(landmarks_in_map_coords)[idx]
    dst = as_landmarks(template_points)[idx]
    forward = similarity_transform(src, dst)  # heatmap (x, y) -> template (x, y)
    linear_inv = np.linalg.inv(forward[:, :2])
    # affine_transform maps output (row, col) to input (row, col): invert and swap x/y.
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    matrix = swap @ linear_inv @ swap
    offset = -swap @ linear_inv @ forward[:, 2]
    shape = heat.shape if output_shape is None else tuple(int(s) for s in output_shape)
    return ndimage.affine_transform(heat, matrix, offset=offset, output_shape=shape, order=1, mode="grid-constant", cval=0.0)


def mean_face(landmark_sets: Sequence, points: Sequence[int] | None = ALIGN_POINTS, iterations: int = 3) -> np.ndarray:
    """Average face shape (68, 2) for a heatmap-averaging template (generalised Procrustes).

    Every face is similarity-aligned (on ``points``; default :data:`ALIGN_POINTS`, None for
    all 68) to the current mean, starting from the first face, and averaged; this is
    repeated ``iterations`` times. The result is then made upright (eye line horizontal) and
    given the inputs' mean size and mean centre, so if the inputs are heatmap coordinates the
    template is too.
    """
    shapes = [as_landmarks(s) for s in landmark_sets]
    if not shapes:
        raise ValueError("mean_face needs at least one set of landmarks")
    idx = list(range(N_LANDMARKS)) if points is None else list(points)
    mean = shapes[0].copy()
    for _ in range(max(int(iterations), 1)):
        aligned = [apply_transform(similarity_transform(s[idx], mean[idx]), s) for s in shapes]
        new_mean = np.mean(aligned, axis=0)
        # Keep the mean in the first face's frame so its size cannot drift between iterations.
        mean = apply_transform(similarity_transform(new_mean[idx], shapes[0][idx]), new_mean)

    # Upright, mean size, mean centre (measured on the alignment points).
    eye_axis = mean[42:48].mean(axis=0) - mean[36:42].mean(axis=0)
    angle = -np.arctan2(eye_axis[1], eye_axis[0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    sizes = [np.sqrt(((s[idx] - s[idx].mean(axis=0)) ** 2).sum(axis=1).mean()) for s in shapes]
    centre = np.mean([s[idx].mean(axis=0) for s in shapes], axis=0)
    mean_centred = mean - mean[idx].mean(axis=0)
    mean_size = np.sqrt((mean_centred[idx] ** 2).sum(axis=1).mean())
    return (mean_centred @ rotation.T) * (np.mean(sizes) / mean_size) + centre
