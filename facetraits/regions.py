"""Face regions from 68 landmarks, and relevance shares per region.

Why: an LRP heatmap says *where* a model looked; to compare rater groups we need numbers
("40 % of the positive relevance falls on the eyes, which cover 6 % of the image") and
heatmaps averaged over many faces, which only makes sense after aligning the faces
(facetraits/alignment.py).

Landmarks follow the conventions of :mod:`facetraits.landmarks` ((68, 2) iBUG points, pixel-index
coordinates; original-image points are mapped onto a heatmap with
:func:`~facetraits.landmarks.scale_landmarks`).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from facetraits.landmarks import eye_width, scale_landmarks

REGIONS = ("eyes", "brows", "nose", "mouth", "jaw", "forehead", "cheeks", "face", "background")
"""Region names, in the order :func:`region_masks` returns them. "face" is the rest of the face."""

FACE_REGIONS = REGIONS[:-1]
"""Every region on the face (all but the background): the regions a group comparison tests."""

# Landmark index groups (iBUG 68-point scheme).
JAW = tuple(range(0, 17))
BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))
NOSE_BRIDGE_TOP = 27
NOSE_BOTTOM = tuple(range(31, 36))
EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
OUTER_LIP = tuple(range(48, 60))
LOWER_JAW = tuple(range(3, 14))  # jaw line from below the ear lobe to below the other, through the chin
CHEEKS = ((1, 2, 3, 4, 48, 31, 40, 41, 36), (15, 14, 13, 12, 54, 35, 47, 46, 45))  # jaw side - mouth corner - nostril - lower lid

# Region sizes, as fractions of the mean eye width (corner 36-39 / 42-45), so regions scale
# with the face whatever the image and face size.
EYE_MARGIN = 0.35  # eye polygon grown by this much: includes the lids and lashes
BROW_HALF_WIDTH = 0.25  # brows: band of this half-thickness around each brow polyline
NOSE_TOP_HALF_WIDTH = 0.2  # nose polygon starts this far either side of point 27
NOSE_MARGIN = 0.2  # nose polygon grown by this much: includes the nostril wings
MOUTH_MARGIN = 0.15  # outer-lip polygon grown by this much
FOREHEAD_LIFT = 2.0  # brows lifted by this many brow-to-eye distances to reach the forehead
JAW_HALF_WIDTH = 0.35  # jaw: band of this half-width around the lower jaw line, both sides of the outline


# ----------------------------------------------------------------------------- masks


def _near_shape(vertices: np.ndarray, margin: float, shape: tuple[int, int], closed: bool) -> np.ndarray:
    """Pixels whose centre lies inside the polygon (if ``closed``) or within ``margin`` of its outline.

    Distances are measured exactly to the segments, so this works at any map size (a
    pixel-based dilation would round margins to whole pixels and fail on tiny shapes).
    """
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    lo = np.floor(vertices.min(axis=0) - margin).astype(int)
    hi = np.ceil(vertices.max(axis=0) + margin).astype(int)
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], width - 1), min(hi[1], height - 1)
    if x0 > x1 or y0 > y1:
        return mask  # entirely outside the map
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(float)

    starts = vertices
    ends = np.roll(vertices, -1, axis=0) if closed else vertices[1:]
    starts = starts[: len(ends)]

    inside = np.zeros(xs.shape, dtype=bool)
    if closed and len(vertices) >= 3:
        # Even-odd rule: count crossings of a ray going right from each pixel centre.
        for (xa, ya), (xb, yb) in zip(starts, ends):
            crosses = (ya > ys) != (yb > ys)
            if not crosses.any():
                continue
            x_cross = xa + (ys - ya) * (xb - xa) / np.where(yb == ya, 1.0, yb - ya)
            inside ^= crosses & (xs < x_cross)

    near = np.zeros(xs.shape, dtype=bool)
    if margin > 0:
        for a, b in zip(starts, ends):
            d = b - a
            length2 = float(d @ d)
            if length2 == 0.0:
                t = 0.0
            else:
                t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / length2, 0.0, 1.0)
            near |= np.hypot(xs - a[0] - t * d[0], ys - a[1] - t * d[1]) <= margin

    mask[y0 : y1 + 1, x0 : x1 + 1] = inside | near
    return mask


def _hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels inside the convex hull of ``points``; none when the points lie on one line (no area)."""
    try:
        hull = ConvexHull(points)
    except QhullError:
        return np.zeros(shape, dtype=bool)
    return _near_shape(points[hull.vertices], 0.0, shape, closed=True)


def region_masks(landmarks, image_size: tuple[int, int], map_shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean (H, W) masks for :data:`REGIONS`, from landmarks of the original image.

    ``image_size`` is the original (width, height); ``map_shape`` the heatmap's (H, W). The
    masks are mutually exclusive and together cover every pixel, so relevance shares over
    them add up to 1. All sizes are relative to the mean eye width, so the regions follow
    the face, not the image:

    * eyes: each eye's 6-point polygon grown by ``EYE_MARGIN`` (takes in the lids);
    * brows: band of half-width ``BROW_HALF_WIDTH`` around each brow polyline;
    * mouth: outer-lip polygon (48-59) grown by ``MOUTH_MARGIN``;
    * nose: polygon of the bridge top (27, widened sideways) and the nose bottom 31-35,
      grown by ``NOSE_MARGIN``;
    * jaw: band of half-width ``JAW_HALF_WIDTH`` around the lower jaw line and chin (3-13),
      on both sides of the outline, since a jaw's shape shows as the edge against the neck;
    * forehead: between the brows and the brows lifted by ``FOREHEAD_LIFT`` brow-to-eye
      distances;
    * cheeks: each the polygon jaw side (1-4) - mouth corner - nostril - lower eye lid;
    * face: the rest of the convex hull of the jaw (0-16), the brows and the forehead;
    * background: everything else.

    Where regions overlap the priority is eyes > brows > mouth > nose > jaw > forehead > cheeks > face.
    """
    points = scale_landmarks(landmarks, image_size, map_shape)
    shape = (int(map_shape[0]), int(map_shape[1]))

    left_eye, right_eye = (points[list(idx)] for idx in EYES)
    unit = eye_width(points)

    # Face axes: "across" runs from the image-left eye to the image-right eye, "up" is
    # perpendicular to it, pointing from the chin towards the eyes (handles tilted faces).
    across = right_eye.mean(axis=0) - left_eye.mean(axis=0)
    across /= np.linalg.norm(across) or 1.0
    up = np.array([across[1], -across[0]])
    if np.dot(points[[36, 39, 42, 45]].mean(axis=0) - points[8], up) < 0:
        up = -up

    eyes = _near_shape(left_eye, EYE_MARGIN * unit, shape, closed=True)
    eyes |= _near_shape(right_eye, EYE_MARGIN * unit, shape, closed=True)

    brows = np.zeros(shape, dtype=bool)
    for idx in BROWS:
        brows |= _near_shape(points[list(idx)], BROW_HALF_WIDTH * unit, shape, closed=False)

    mouth = _near_shape(points[list(OUTER_LIP)], MOUTH_MARGIN * unit, shape, closed=True)

    half_top = NOSE_TOP_HALF_WIDTH * unit * across
    nose_polygon = np.vstack(
        [points[NOSE_BRIDGE_TOP] - half_top, points[list(NOSE_BOTTOM)], points[NOSE_BRIDGE_TOP] + half_top]
    )
    nose = _near_shape(nose_polygon, NOSE_MARGIN * unit, shape, closed=True)

    brow_points = points[17:27]
    eye_points = points[36:48]
    brow_to_eye = max(float(np.dot(brow_points.mean(axis=0) - eye_points.mean(axis=0), up)), 0.0)
    lifted_brows = brow_points + FOREHEAD_LIFT * brow_to_eye * up
    face = _hull_mask(np.vstack([points[list(JAW)], brow_points, lifted_brows]), shape)
    forehead = _hull_mask(np.vstack([brow_points, lifted_brows]), shape)
    jaw = _near_shape(points[list(LOWER_JAW)], JAW_HALF_WIDTH * unit, shape, closed=False)
    cheeks = np.zeros(shape, dtype=bool)
    for idx in CHEEKS:
        cheeks |= _near_shape(points[list(idx)], 0.0, shape, closed=True)

    taken = np.zeros(shape, dtype=bool)
    masks = {}
    for name, mask in (("eyes", eyes), ("brows", brows), ("mouth", mouth), ("nose", nose), ("jaw", jaw),
                       ("forehead", forehead), ("cheeks", cheeks), ("face", face)):
        masks[name] = mask & ~taken
        taken |= mask
    masks["background"] = ~taken
    return {name: masks[name] for name in REGIONS}


# ----------------------------------------------------------------------------- shares


def per_unit_area(share: float, area_share: float) -> float:
    """Relevance share divided by area share: 1 means "as much as its size predicts".

    NaN for an empty region (area share 0) or a NaN share.
    """
    if not area_share > 0:
        return float("nan")
    return float(share) / float(area_share)


def relevance_shares(relevance, masks: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """How the relevance of one heatmap divides over regions.

    For each region (in the order of ``masks``):

    * ``share_pos``: positive relevance in the region / all positive relevance (negative
      relevance, evidence against the prediction, is ignored);
    * ``share_abs``: the same with absolute relevance (counts evidence both ways);
    * ``area_share``: pixels in the region / all pixels;
    * ``pos_per_area`` and ``abs_per_area``: share / area_share (NaN for empty regions).

    With masks from :func:`region_masks` (a partition) each share sums to 1 over regions.
    When the heatmap has no positive (or no non-zero) relevance at all, the corresponding
    shares are NaN rather than a misleading 0.
    """
    rel = np.asarray(relevance, dtype=float)
    if rel.ndim != 2:
        raise ValueError(f"relevance must be a 2-D (H, W) map, got shape {rel.shape}")
    if not np.all(np.isfinite(rel)):
        raise ValueError("relevance contains NaN or infinite values")
    positive = np.clip(rel, 0.0, None)
    absolute = np.abs(rel)
    total_pos = positive.sum()
    total_abs = absolute.sum()
    n_pixels = rel.size

    shares = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != rel.shape:
            raise ValueError(f"mask {name!r} has shape {mask.shape}, relevance has {rel.shape}")
        share_pos = positive[mask].sum() / total_pos if total_pos > 0 else float("nan")
        share_abs = absolute[mask].sum() / total_abs if total_abs > 0 else float("nan")
        area_share = mask.sum() / n_pixels
        shares[name] = {
            "share_pos": float(share_pos),
            "share_abs": float(share_abs),
            "area_share": float(area_share),
            "pos_per_area": per_unit_area(share_pos, area_share),
            "abs_per_area": per_unit_area(share_abs, area_share),
        }
    return shares
