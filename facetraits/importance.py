"""Region importance that is linear in a ridge head's weights: the quantity the group tests compare.

Why: a rater-level test refits the head thousands of times (once per permutation of raters), so
the importance of a face region must be cheap to recompute for any new weights. The head
predicts rating = mean + sum_f w_f z_f, with z_f a standardised pooled feature. Each pooled
feature is an average over conv map positions of (map - mean training map), so its
contribution w_f z_f splits exactly over those positions, and each position's share over the
face regions its image block covers (CAM at the conv map's resolution). Per image this gives a
(regions x features) matrix M with sum over regions of M[:, f] = z_f; any refitted head's
signed relevance per region is M @ w, one matrix product.

Importance of a region in one image = |signed relevance of the region| per unit of face area
(region pixels / face pixels), on one of two scales (`compare.scale`):

* ``rating_per_area``: rating points. Both groups rate on the same scale, so the two groups'
  numbers are directly comparable; a group whose mean ratings are noisier gets a more shrunken
  head and so smaller numbers everywhere.
* ``share_per_area``: divided by the sum over face regions of |relevance|, so 1 = the region
  carries as much as its size predicts; free of the head's overall size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetraits import landmarks, regions, ridge
from facetraits.config import FeatureSet, cell_bounds


def block_shares(masks: dict[str, np.ndarray], map_shape: tuple[int, int]) -> np.ndarray:
    """(regions, h, w): the share of each conv position's image block that lies in each region.

    Masks are at the model's input resolution; position (i, j) of an h x w map covers the
    i-th of h equal bands of rows and the j-th of w bands of columns (VGG16's pooling halves the
    map exactly for input sizes divisible by 32)."""
    stacked = np.stack([np.asarray(m, dtype=np.float64) for m in masks.values()])
    rows = np.round(np.linspace(0, stacked.shape[1], map_shape[0] + 1)).astype(int)
    cols = np.round(np.linspace(0, stacked.shape[2], map_shape[1] + 1)).astype(int)
    sums = np.add.reduceat(np.add.reduceat(stacked, rows[:-1], axis=1), cols[:-1], axis=2)
    return sums / np.outer(np.diff(rows), np.diff(cols))


def region_matrices(maps: dict[str, np.ndarray], feature_set: FeatureSet, sd: np.ndarray, shares: dict) -> np.ndarray:
    """(images, regions, features): each standardised feature of each image, split over the regions.

    ``maps`` are the conv maps of every image (the centring uses their mean, as the saved head's
    does when fitted on all images); ``sd`` the ridge's feature sd (ridge.standardisation);
    ``shares[layer]`` the (images, regions, h, w) block shares of that layer's map."""
    parts = []
    for layer in feature_set.layers:
        centred = maps[layer] - maps[layer].mean(axis=0)
        share = shares[layer]
        if feature_set.grid == 1:
            cells = [((0, centred.shape[1]), (0, centred.shape[2]))]
        else:
            cells = [(r, c) for r in cell_bounds(centred.shape[1], feature_set.grid)
                     for c in cell_bounds(centred.shape[2], feature_set.grid)]  # pool()'s order: row-major cells
        for (r0, r1), (c0, c1) in cells:
            block = centred[:, r0:r1, c0:c1].reshape(len(centred), -1, centred.shape[3])
            weights = share[:, :, r0:r1, c0:c1].reshape(len(centred), share.shape[1], -1) / block.shape[1]
            parts.append(np.einsum("nrp,npc->nrc", weights, block))
    return np.concatenate(parts, axis=2) / sd


@dataclass
class RegionInputs:
    """Everything region importance needs besides the head's weights, computed once per study."""
    matrices: np.ndarray  # (images, regions, features), see region_matrices
    face_area: np.ndarray  # (images, face regions): region pixels / face pixels
    image_weights: np.ndarray  # (images,): 1 / (identities x images of the identity); 0 = no landmarks
    scale: str

    def average(self, signed: np.ndarray) -> np.ndarray:
        """(face regions, columns) from signed relevance (images, face regions, columns): the
        identity-weighted mean over images of |relevance| per unit of face area."""
        per_area = np.abs(signed)
        if self.scale == "share_per_area":
            total = per_area.sum(axis=1, keepdims=True)
            per_area = np.divide(per_area, total, out=np.zeros_like(per_area), where=total > 0)
        area = self.face_area[:, :, None]
        per_area = np.divide(per_area, area, out=np.zeros_like(per_area), where=area > 0)
        return np.einsum("n,nrt->rt", self.image_weights, per_area)


class RidgeRegions:
    """Region importance of a ridge with fixed features and penalty, for many target columns at once.

    The ridge's weights are X' U diag(shrink) U' y (ridge.Solver), so M w = (M X' U diag(shrink)) (U' y):
    the first factor is computed once, and each new set of targets costs one matrix product."""

    def __init__(self, inputs: RegionInputs, solver: ridge.Solver, alpha: float):
        self.inputs = inputs
        self.solver = solver
        n_images, n_face = inputs.face_area.shape
        flat = inputs.matrices[:, :n_face].reshape(n_images * n_face, -1)
        self.projection = solver.in_basis(flat) * solver.shrink(alpha)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """(face regions, columns) for targets y (images, columns)."""
        n_images, n_face = self.inputs.face_area.shape
        signed = self.projection @ (self.solver.u.T @ (y - y.mean(axis=0)))
        return self.inputs.average(signed.reshape(n_images, n_face, y.shape[1]))


def identity_weights(identities: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per-image weights that average within identity first, then over identities (usable images only)."""
    weights = np.zeros(len(identities))
    kept = np.asarray(identities)[usable]
    names, counts = np.unique(kept, return_counts=True)
    per_identity = dict(zip(names, counts))
    for i in np.flatnonzero(usable):
        weights[i] = 1.0 / (len(names) * per_identity[identities[i]])
    return weights


def region_inputs(maps: dict, feature_set: FeatureSet, sd: np.ndarray, masks: list, identities, scale: str) -> RegionInputs:
    """RegionInputs for images with region masks (``masks[i]`` is None for an image without landmarks)."""
    layer_shapes = {layer: maps[layer].shape[1:3] for layer in feature_set.layers}
    n_regions = len(regions.REGIONS)
    empty = {layer: np.zeros((n_regions, *shape)) for layer, shape in layer_shapes.items()}
    shares = {layer: np.stack([block_shares(m, shape) if m is not None else empty[layer] for m in masks])
              for layer, shape in layer_shapes.items()}
    usable = np.array([m is not None for m in masks])
    return RegionInputs(region_matrices(maps, feature_set, sd, shares), face_area(masks),
                        identity_weights(np.asarray(identities), usable), scale)


def face_area(masks: list) -> np.ndarray:
    """(images, face regions): each face region's share of the face's pixels (0 without landmarks), the
    per-area scaling: a region's relevance is judged against how much of the face it covers."""
    area = np.zeros((len(masks), len(regions.FACE_REGIONS)))
    for i, m in enumerate(masks):
        if m is not None:
            pixels = np.array([m[name].sum() for name in regions.FACE_REGIONS], dtype=np.float64)
            area[i] = pixels / max(pixels.sum(), 1.0)
    return area


def dataset_masks(cfg, dataset) -> tuple[list, list]:
    """Region masks at the model's input size per image (None for an image without landmarks), and
    the (image, reason) pairs of those without, which the caller reports or ignores."""
    size = cfg.model.input_size
    points, missing = landmarks.dataset_landmarks(cfg, dataset, (size, size))
    masks = [regions.region_masks(points[name], (size, size), (size, size)) if name in points else None
             for name in dataset.images]
    return masks, missing
