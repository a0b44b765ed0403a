"""Heatmaps aggregated over images and identities: average maps, relevance per face region.

Input is what ``lrp_analysis.py`` writes: ``results/relevance/<group>__<trait>.npy``, one signed
relevance map per image (n_images, H, W) at the model input size, in the order of
``results/relevance/index.csv`` (= ``Dataset.images``), and the landmarks of
:func:`landmarks.dataset_landmarks`.

Every statistic averages within identity first (images of one face are not independent):

* average map: mean over identities of per-image normalised maps (:func:`normalise`),
  optionally each warped onto a mean face first (:func:`average_map`);
* regions: per image and model the share of positive / absolute relevance per face region
  (:func:`region_table`), its mean over identities with a t-based 95 % CI (:func:`region_summary`).

The two groups' models are compared in :mod:`facetraits.model_comparison`.

Pure numpy/scipy/pandas: no TensorFlow.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from facetraits import alignment, cache, data, metrics, provenance, regions
from facetraits.errors import FacetraitsError

RELEVANCE_DIR = "relevance"
RELEVANCE_HINT = "run lrp_analysis.py first"
REGION_COLUMNS = ("group", "trait", "image", "region", "share_pos", "share_abs", "area_share", "pos_per_area",
                  "abs_per_area")
SUMMARY_COLUMNS = ("group", "trait", "region", "mean_share_pos", "ci_low", "ci_high", "mean_share_abs",
                   "mean_area_share", "mean_pos_per_area", "mean_abs_per_area", "n_images", "n_identities")
# Shares compared between groups: of positive relevance (evidence for a higher rating) and of
# absolute relevance (evidence either way: a frown at the mouth is negative relevance for
# "warm", yet the mouth is what drives that rating).
GROUP_TEST_MEASURES = ("share_pos", "share_abs")


# ----------------------------------------------------------------------------- inputs


def relevance_path(results_dir, name: str) -> Path:
    return Path(results_dir) / RELEVANCE_DIR / f"{name}.npy"


def load_relevance(results_dir, name: str, dataset: data.Dataset, map_shape: tuple[int, int] | None = None, *,
                   model_path: Path, analyzer: str) -> np.ndarray:
    """The relevance maps of one model, (n_images, H, W) float32, rows in ``dataset.images`` order.

    Checks that ``relevance/index.csv`` lists exactly the dataset's images in the same order, that
    the array has one map per image (of ``map_shape`` when given), and that the maps' record names
    today's images, the model file at ``model_path`` and ``analyzer``: maps are never silently
    paired with the wrong faces, or summarised for a model other than the one that was tested.
    Any problem raises FacetraitsError naming the file.
    """
    folder = Path(results_dir) / RELEVANCE_DIR
    index_path = folder / "index.csv"
    path = relevance_path(results_dir, name)
    if not path.is_file():
        raise FacetraitsError(f"{path}: relevance maps not found; {RELEVANCE_HINT}")
    if not index_path.is_file():
        raise FacetraitsError(f"{index_path}: relevance index not found; {RELEVANCE_HINT}")
    try:
        index = pd.read_csv(index_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FacetraitsError(f"{index_path}: not a readable CSV ({str(err).splitlines()[0]}); "
                              f"{RELEVANCE_HINT}") from None
    if "image" not in index.columns:
        raise FacetraitsError(f"{index_path}: no 'image' column; {RELEVANCE_HINT}")
    listed = tuple(index["image"])
    if listed != tuple(dataset.images):
        if len(listed) != len(dataset.images):
            detail = f"it lists {len(listed)} images, the dataset has {len(dataset.images)}"
        else:
            i = next(k for k, (a, b) in enumerate(zip(listed, dataset.images)) if a != b)
            detail = f"row {i + 2} is {listed[i]!r}, the dataset's image {i + 1} is {dataset.images[i]!r}"
        raise FacetraitsError(f"{index_path}: does not match the dataset ({detail}): the ratings or images "
                              f"changed since the maps were made; {RELEVANCE_HINT}")
    try:
        maps = np.load(path)
    except (OSError, ValueError) as err:
        raise FacetraitsError(f"{path}: not a readable .npy file ({err}); {RELEVANCE_HINT}") from None
    expected = (len(dataset.images),) + (tuple(map_shape) if map_shape is not None else ())
    if maps.ndim != 3 or maps.shape[: len(expected)] != expected:
        raise FacetraitsError(f"{path}: shape {maps.shape}, expected {expected + ((None, None) if map_shape is None else ())} "
                              f"(one map per image at the model input size); {RELEVANCE_HINT}")
    if not np.all(np.isfinite(maps)):
        raise FacetraitsError(f"{path}: contains NaN or infinite relevance; {RELEVANCE_HINT}")
    check_record(path.with_suffix(".json"), dataset, Path(model_path), analyzer)
    return maps.astype(np.float32, copy=False)


def check_record(record_path: Path, dataset: data.Dataset, model_path: Path, analyzer: str) -> None:
    """The maps were made from the images as they are now, by the model file as it is now, with the
    configured analyzer: an image edited since lrp_analysis.py ran keeps its name (so index.csv
    still matches), and a model retrained since keeps its file name, yet the maps explain the old ones."""
    again = "run lrp_analysis.py again (maps of unchanged images and models are reused)"
    record = provenance.read_record(record_path)
    recorded = record.get("image_sha256") if record is not None else None
    if not isinstance(recorded, list) or "model_sha256" not in record:
        raise FacetraitsError(f"{record_path}: no image or model checksums (missing, unreadable, or written by an "
                              f"older lrp_analysis.py); {again}")
    for i, (name, digest) in enumerate(zip(dataset.images, dataset.digests)):
        if i >= len(recorded) or recorded[i] != digest:
            raise FacetraitsError(f"{record_path}: image {name} changed since its relevance map was made "
                                  f"(sha256 differs); {again}")
    if record.get("analyzer") != analyzer:
        raise FacetraitsError(f"{record_path}: maps made with analyzer {record.get('analyzer')!r}, the config says "
                              f"explain.analyzer={analyzer}; {again}")
    if not model_path.is_file():
        raise FacetraitsError(f"{model_path}: not found, so nothing shows the maps in {record_path.parent} belong to "
                              f"the model that was tested; run train_regression.py and lrp_analysis.py")
    if cache.file_digest(model_path) != record["model_sha256"]:
        raise FacetraitsError(f"{record_path}: the maps explain an earlier {model_path.name} (the model file changed "
                              f"since they were made, e.g. retrained); {again}")


# ----------------------------------------------------------------------------- maps


def normalise(maps) -> np.ndarray:
    """Each map divided by its total absolute relevance, so every image weighs the same.

    LRP conserves relevance: a map sums (roughly) to the model's output for that image, so raw
    maps of faces with high predicted ratings, or of a model with a larger output range, are
    bigger overall. Averaged or compared raw, a few such images (or one group's output scale)
    would dominate. After this step each pixel holds the fraction of the image's total evidence
    (for and against) that it carries; the sign is kept. All-zero maps stay zero.
    Accepts (H, W) or (n, H, W); returns float32 of the same shape.
    """
    maps = np.asarray(maps, dtype=np.float32)
    totals = np.abs(maps).sum(axis=(-2, -1), keepdims=True, dtype=np.float64)
    return (maps / np.where(totals > 0, totals, 1.0)).astype(np.float32)


def align(maps, landmarks: Sequence, template) -> np.ndarray:
    """Warp each map onto ``template`` (all landmarks in heatmap coordinates), conserving relevance.

    :func:`alignment.warp_to_template` resamples values; a face enlarged s times would then cover
    s^2 times the pixels and carry s^2 times the relevance, so each warped map is divided by
    the Jacobian s^2: a normalised map keeps total 1 (less what is pushed outside the frame).
    """
    maps = np.asarray(maps, dtype=np.float32)
    if len(maps) != len(landmarks):
        raise ValueError(f"{len(maps)} maps but {len(landmarks)} landmark sets")
    idx = list(alignment.ALIGN_POINTS)
    template = np.asarray(template, dtype=float)
    out = np.empty_like(maps)
    for i, (heat, points) in enumerate(zip(maps, landmarks)):
        points = np.asarray(points, dtype=float)
        jacobian = abs(np.linalg.det(alignment.similarity_transform(points[idx], template[idx])[:, :2]))
        out[i] = alignment.warp_to_template(heat, points, template) / jacobian
    return out


def prepare(maps, landmarks: Sequence | None = None, template=None) -> np.ndarray:
    """Normalised maps, aligned to ``template`` (default: the mean face of ``landmarks``) when landmarks are given."""
    maps = normalise(maps)
    if landmarks is None:
        return maps
    if template is None:
        template = alignment.mean_face(landmarks)
    return align(maps, landmarks, template)


def identity_means(values, identities) -> tuple[np.ndarray, np.ndarray]:
    """(identity names, per-identity mean of ``values`` over its images), NaN ignored.

    ``values`` is (images, ...); an identity whose values are all NaN stays NaN. Every
    statistic here and in model_comparison starts from these, so an identity photographed ten
    times weighs as much as one photographed once."""
    values = np.asarray(values, dtype=np.float64)
    names, index = np.unique(np.asarray(identities), return_inverse=True)
    flat = values.reshape(len(values), -1)
    known = np.isfinite(flat)
    sums = np.zeros((len(names), flat.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, index, np.where(known, flat, 0.0))
    np.add.at(counts, index, known)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return names, means.reshape((len(names),) + values.shape[1:])


def average_map(maps, identities, landmarks: Sequence | None = None, template=None) -> np.ndarray:
    """Mean over identities of the identity-mean normalised map, each map first warped onto ``template``
    if landmarks are given.

    ``maps`` is (n, H, W) with ``identities`` its n identities; ``landmarks`` a sequence of n
    (68, 2) arrays in heatmap coordinates (only images that have them); ``template`` defaults to
    :func:`alignment.mean_face` of them.
    """
    maps = np.asarray(maps)
    if len(maps) == 0:
        raise ValueError("average_map needs at least one map")
    return identity_means(prepare(maps, landmarks, template), identities)[1].mean(axis=0)


def mean_image(images, landmarks: Sequence | None = None, template=None) -> np.ndarray:
    """Mean grey face (H, W) in [0, 1] to draw heatmaps on, aligned like the maps when landmarks are given."""
    grey = np.asarray(images, dtype=np.float32)
    if grey.ndim == 4:
        grey = grey.mean(axis=-1)
    grey = grey / 255.0
    if landmarks is not None:
        if template is None:
            template = alignment.mean_face(landmarks)
        grey = np.stack([alignment.warp_to_template(g, p, template) for g, p in zip(grey, landmarks)])
    return grey.mean(axis=0)


@dataclass(frozen=True)
class Faces:
    """The images the maps are averaged and compared over, and the face they are aligned to.

    Aligned maps (``explain.align``) can use only images with landmarks, each warped onto their
    mean face; unaligned maps use every image."""
    keep: np.ndarray  # bool per dataset image
    identities: np.ndarray  # of the kept images
    points: list | None  # landmarks of the kept images (aligned only)
    template: np.ndarray | None  # the mean face (aligned only)
    background: np.ndarray  # mean grey face to draw the maps on

    def average(self, maps) -> np.ndarray:
        """:func:`average_map` of one model's maps (all dataset images) over the kept images, float32."""
        return average_map(np.asarray(maps)[self.keep], self.identities, self.points, self.template).astype(np.float32)


def faces(dataset: data.Dataset, landmarks: Mapping[str, np.ndarray], aligned: bool, size: int) -> Faces:
    """:class:`Faces` of ``dataset`` (``landmarks`` in heatmap coordinates, images without are left out when aligned)."""
    keep = np.array([name in landmarks for name in dataset.images]) if aligned else np.ones(len(dataset), bool)
    points = [landmarks[name] for name in np.array(dataset.images)[keep]] if aligned else None
    template = alignment.mean_face(points) if aligned else None
    images = data.load_images([path for path, kept in zip(dataset.paths, keep) if kept], size)
    return Faces(keep, np.asarray(dataset.identities)[keep], points, template, mean_image(images, points, template))


# ----------------------------------------------------------------------------- regions


def region_table(relevance: Mapping[tuple[str, str], np.ndarray], images: Sequence[str],
                 landmarks: Mapping[str, np.ndarray], map_shape: tuple[int, int]) -> pd.DataFrame:
    """Relevance share per face region, per model and image with landmarks (long form).

    ``relevance`` maps (group, trait) -> (n_images, H, W) raw maps in ``images`` order;
    ``landmarks`` maps image -> (68, 2) in heatmap coordinates (images without are skipped).
    Columns :data:`REGION_COLUMNS`: share_pos (share of the image's positive relevance),
    share_abs (of its absolute relevance), area_share (of its pixels), pos_per_area =
    share_pos / area_share (> 1: more relevance than the region's size predicts) and
    abs_per_area = share_abs / area_share. Regions
    partition the map, so each share sums to 1 per model x image (NaN if a map has no
    positive / no non-zero relevance).
    """
    height, width = map_shape
    rows = []
    for i, image in enumerate(images):
        if image not in landmarks:
            continue
        masks = regions.region_masks(landmarks[image], (width, height), map_shape)
        for (group, trait), maps in relevance.items():
            for region, share in regions.relevance_shares(maps[i], masks).items():
                rows.append((group, trait, image, region, share["share_pos"], share["share_abs"],
                             share["area_share"], share["pos_per_area"], share["abs_per_area"]))
    return pd.DataFrame(rows, columns=list(REGION_COLUMNS))


def report_empty_maps(table: pd.DataFrame) -> None:
    """Say which heatmaps have no positive relevance: their share_pos is undefined (NaN), so they
    drop out of the share_pos statistics and a model's n_images there is smaller than its maps."""
    empty = table[table.region == table.region.iloc[0]] if len(table) else table
    empty = empty[empty.share_pos.isna()]
    for (group, trait), rows in empty.groupby(["group", "trait"]):
        print(f"warning: {group} {trait}: {len(rows)} heatmap(s) have no positive relevance and are left out "
              f"of the share_pos statistics (first: {rows.image.iloc[0]})", file=sys.stderr)


def region_summary(table: pd.DataFrame, identities: Mapping[str, str], confidence: float = 0.95) -> pd.DataFrame:
    """Mean shares per model x region over identities (each the mean of its images), with a CI of mean share_pos.

    ``identities`` maps image -> identity. The CI is mean +- t_{(1+confidence)/2, k-1} * sd /
    sqrt(k) over the k identities with a defined share_pos (NaN bounds when k < 2); n_images
    counts the images behind them. Columns :data:`SUMMARY_COLUMNS`.
    """
    rows = []
    measures = ["share_pos", "share_abs", "area_share", "pos_per_area", "abs_per_area"]
    for (group, trait, region), part in table.groupby(["group", "trait", "region"], sort=False):
        _, means = identity_means(part[measures], part["image"].map(identities))
        _, low, high = metrics.mean_ci(means[:, 0], confidence)
        mean = pd.DataFrame(means, columns=measures).mean().to_numpy()  # NaN: that identity left out
        rows.append((group, trait, region, mean[0], low, high, *mean[1:], int(part["share_pos"].notna().sum()),
                     int(np.isfinite(means[:, 0]).sum())))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def top_region(summary: pd.DataFrame, group: str, trait: str, exclude=(),
               measure: str = "mean_pos_per_area") -> pd.Series | None:
    """The summary row of the region with the highest ``measure`` (a per-unit-area column;
    ``exclude``: region names to skip)."""
    rows = summary[(summary.group == group) & (summary.trait == trait) & ~summary.region.isin(exclude)]
    rows = rows.dropna(subset=[measure])
    return None if rows.empty else rows.loc[rows[measure].idxmax()]


def describe_top_regions(summary: pd.DataFrame, models) -> list[str]:
    """One line per model: the region with most absolute and most positive relevance per unit area,
    and the share of absolute relevance off the face (a model may read mostly hair, collar or
    image corners, which the regions' ranking alone would hide)."""
    lines = []
    for group, trait in models:
        positive = top_region(summary, group, trait, measure="mean_pos_per_area")
        absolute = top_region(summary, group, trait, measure="mean_abs_per_area")
        background = summary[(summary.group == group) & (summary.trait == trait) & (summary.region == "background")]
        if positive is not None and absolute is not None:
            off_face = (f"; {background.mean_share_abs.iloc[0]:.0%} of absolute relevance is off the face (background)"
                        if len(background) else "")
            lines.append(f"{group} {trait}: most relevance per unit area on the {absolute.region} (absolute: "
                         f"{absolute.mean_abs_per_area:.2f} x its area share), most positive relevance on the "
                         f"{positive.region} ({positive.mean_pos_per_area:.2f} x), {positive.n_identities} identities"
                         f"{off_face}")
    return lines
