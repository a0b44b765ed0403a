"""Facial landmarks: read them from a table, check them, or detect them with dlib.

Why a module of its own: every later step (region masks, alignment, region statistics) trusts
the 68 points, so a malformed row, points of another image size or a face dlib missed must be
caught here, once, and named (file and line, or image) instead of turning up as a strange mask.

Conventions used throughout the package:

* Landmarks are the 68 iBUG/dlib points as an array of shape (68, 2), columns (x, y):
  0-16 jaw, 17-21 / 22-26 brows, 27-30 nose bridge, 31-35 nose bottom, 36-41 / 42-47 eyes,
  48-59 outer lip, 60-67 inner lip.
* Coordinates are pixel-index coordinates: the centre of pixel (row r, column c) is at
  x = c, y = r. This is what dlib returns and what ``scipy.ndimage`` uses, so masks and
  warps line up without half-pixel shifts.
* Images are resized (not cropped) to the model input, so original-image landmarks are
  mapped to heatmap coordinates with :func:`scale_landmarks`.

dlib is imported only inside :func:`detect_landmarks`.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from facetraits import cache, data, outputs
from facetraits.errors import DataError, FacetraitsError

N_LANDMARKS = 68
MISSING_COLUMNS = ("image", "reason")
# Landmarks may lie this far (share of the image width / height) outside the image: dlib puts jaw
# points of tightly cropped faces there. Farther out they belong to another image size.
LANDMARK_MARGIN = 0.25
# A face whose 68 points span less than this (pixels, both ways) is no face: such coordinates are
# fractions of the image (0-1, as e.g. MediaPipe writes them), which would put every region in one pixel.
MIN_FACE_SPAN = 2.0


class LandmarkError(DataError, ValueError):
    """Landmarks missing or malformed for an image (also a ValueError)."""


class MissingDependencyError(FacetraitsError, ImportError):
    """An optional package needed for this feature is not installed (also an ImportError)."""


# ----------------------------------------------------------------------------- checking


def as_landmarks(landmarks) -> np.ndarray:
    """Return landmarks as a float (68, 2) array, or raise a ValueError saying what is wrong."""
    points = np.asarray(landmarks, dtype=float)
    if points.shape != (N_LANDMARKS, 2):
        raise LandmarkError(f"landmarks must have shape (68, 2), got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise LandmarkError("landmarks contain NaN or infinite coordinates")
    return points


def eye_width(points: np.ndarray) -> float:
    """Mean eye width (corners 36-39 and 42-45), the unit of region sizes; LandmarkError when it is 0,
    as no region can be sized on such a face."""
    width = 0.5 * (np.linalg.norm(points[39] - points[36]) + np.linalg.norm(points[45] - points[42]))
    if not width > 0:
        raise LandmarkError("degenerate landmarks: eye corners coincide (eye width 0)")
    return width


def check_pixels(points: np.ndarray, image: str) -> None:
    """LandmarkError for points that span under MIN_FACE_SPAN pixels: fractions of the image, not pixels."""
    width, height = np.ptp(points, axis=0)
    if max(width, height) < MIN_FACE_SPAN:
        raise LandmarkError(f"landmarks for image {image!r} span only {width:.2g} x {height:.2g} pixels: "
                            f"coordinates look like fractions of the image, expected pixels")


def scale_landmarks(landmarks, image_size: tuple[int, int], map_shape: tuple[int, int]) -> np.ndarray:
    """Map landmarks from the original image (width, height) to a (H, W) heatmap.

    The image is resized, not cropped, so x scales by W / width and y by H / height. The
    half-pixel correction ``(x + 0.5) * W / width - 0.5`` keeps pixel centres on pixel centres,
    matching PIL and ``tf.image.resize`` (it differs from plain scaling by under one pixel).
    """
    points = as_landmarks(landmarks)
    width, height = image_size
    map_h, map_w = map_shape
    if min(width, height, map_h, map_w) <= 0:
        raise ValueError(f"sizes must be positive: image_size={image_size}, map_shape={map_shape}")
    scale = np.array([map_w / width, map_h / height])
    return (points + 0.5) * scale - 0.5


# ----------------------------------------------------------------------------- reading


def landmarks_from_frame(df, image) -> np.ndarray:
    """Landmarks of one image from a long table with columns ``image, point, x, y``.

    Raises LandmarkError (a ValueError) naming the image when the table does not hold
    exactly the points 0..67 once each with finite coordinates, so a bad row is found at
    once instead of as a strange mask later.
    """
    missing_columns = {"image", "point", "x", "y"} - set(df.columns)
    if missing_columns:
        raise LandmarkError(f"landmarks table lacks column(s) {sorted(missing_columns)}")
    rows = df[df["image"].astype(str) == str(image)]
    if rows.empty:
        raise LandmarkError(f"no landmarks for image {image!r}")
    try:
        points = rows["point"].astype(int).to_numpy()
    except (TypeError, ValueError):
        raise LandmarkError(f"landmarks for image {image!r}: 'point' must hold integers 0..67") from None
    problems = []
    missing = sorted(set(range(N_LANDMARKS)) - set(points.tolist()))
    if missing:
        problems.append(f"missing points {_short_list(missing)}")
    unknown = sorted(set(points.tolist()) - set(range(N_LANDMARKS)))
    if unknown:
        problems.append(f"unknown points {_short_list(unknown)}")
    values, counts = np.unique(points, return_counts=True)
    duplicated = values[counts > 1].tolist()
    if duplicated:
        problems.append(f"duplicated points {_short_list(duplicated)}")
    if problems:
        raise LandmarkError(
            f"landmarks for image {image!r}: expected 68 points 0..67, got {len(points)} rows; "
            + "; ".join(problems)
        )
    order = np.argsort(points)
    xy = rows[["x", "y"]].to_numpy(dtype=float)[order]
    if not np.all(np.isfinite(xy)):
        raise LandmarkError(f"landmarks for image {image!r}: x/y contain NaN or infinite values")
    return xy


def _short_list(values: list, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def read_landmark_table(path) -> pd.DataFrame:
    """The landmarks file with its line numbers (header = line 1); a non-numeric x or y is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: landmarks file not found (set data.landmarks: null to detect faces with dlib)")
    try:
        table = pd.read_csv(path, dtype={"image": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    table.columns = [str(c).strip() for c in table.columns]
    absent = [c for c in ("image", "point", "x", "y") if c not in table.columns]
    if absent:
        raise DataError(f"{path}: missing column(s) {', '.join(absent)} (expected image,point,x,y; "
                        f"found {', '.join(table.columns)})")
    table["image"] = table["image"].astype(str).str.strip()
    table["line"] = data.line_numbers(path, len(table))
    for column in ("x", "y"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = table[values.isna() & table[column].notna()]
        if len(bad):
            raise DataError(f"{path} line {bad.line.iloc[0]}: {column} {bad[column].iloc[0]!r} is not a number")
        table[column] = values
    return table


def check_inside(rows: pd.DataFrame, size: tuple[int, int], path, image: str) -> None:
    """Landmarks far outside their image (e.g. of the uncropped photo) would make every region background."""
    width, height = size
    margin_x, margin_y = LANDMARK_MARGIN * width, LANDMARK_MARGIN * height
    outside = rows[(rows.x < -margin_x) | (rows.x > width - 1 + margin_x)
                   | (rows.y < -margin_y) | (rows.y > height - 1 + margin_y)]
    if len(outside):
        row = outside.iloc[0]
        raise DataError(f"{path} line {row.line}: point {int(row.point)} of image {image} at ({row.x:g}, {row.y:g}) "
                        f"lies outside the {width}x{height} image")


# ----------------------------------------------------------------------------- detection


@functools.lru_cache(maxsize=1)
def _dlib_models():
    """Load dlib's face detector and 68-point predictor once (the model file is ~100 MB)."""
    try:
        import dlib
        import face_recognition_models
    except ImportError as error:
        raise MissingDependencyError(
            "landmark detection needs the optional packages dlib-bin and face-recognition-models: "
            "pip install dlib-bin face-recognition-models"
        ) from error
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    return detector, predictor


def detect_landmarks(image_rgb_uint8, upsample: int = 1) -> np.ndarray | None:
    """68 landmarks (x, y) of the largest face in an RGB uint8 image, or None if no face is found.

    Uses dlib's HOG face detector and 68-point shape predictor, for images that come
    without landmarks. Needs the optional packages ``dlib-bin`` and
    ``face-recognition-models`` (raises MissingDependencyError, an ImportError, otherwise).
    ``upsample`` > 0 lets the detector find smaller faces, at some cost in speed.
    """
    image = np.asarray(image_rgb_uint8)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected an RGB (H, W, 3) or grey (H, W) uint8 image, got {image.dtype} {image.shape}")
    detector, predictor = _dlib_models()
    image = np.ascontiguousarray(image)
    faces = detector(image, int(upsample))
    if len(faces) == 0:
        return None
    face = max(faces, key=lambda rect: rect.area())
    shape = predictor(image, face)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=float)


def _detect(path: Path) -> np.ndarray:
    """dlib landmarks of one image file, or an empty (0, 2) array when no face is found (cacheable)."""
    with Image.open(path) as image:
        rgb = np.asarray(data.as_rgb(image), dtype=np.uint8)
    points = detect_landmarks(rgb)
    return np.zeros((0, 2)) if points is None else points


# ----------------------------------------------------------------------------- per dataset


def image_landmarks(cfg, dataset: data.Dataset) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """68 landmarks per image in ORIGINAL image pixels, and the images without usable ones.

    From ``cfg.data.landmarks`` when set (an image with no rows, with malformed rows, or with
    coordinates in fractions of the image, is missing; the reason says which); otherwise detected
    with dlib, cached per image content under ``cache_dir/landmarks`` (an image where no face is
    found is missing).
    """
    found, missing = {}, []
    if cfg.data.landmarks is not None:
        table = read_landmark_table(cfg.data.landmarks)
        by_image = {str(name): rows for name, rows in table.groupby("image", sort=False)}
        empty = table.iloc[:0]
        for name, path in zip(dataset.images, dataset.paths):
            rows = by_image.get(name, empty)
            if rows.empty:
                missing.append((name, f"no landmarks in {cfg.data.landmarks}"))
                continue
            try:
                points = landmarks_from_frame(rows, name)
                check_pixels(points, name)
            except LandmarkError as err:
                missing.append((name, str(err)))
                continue
            check_inside(rows, data.image_size(path), cfg.data.landmarks, name)
            found[name] = points
        return found, missing

    folder = Path(cfg.output.cache_dir) / "landmarks"
    entries = cache.checked_entries(folder)
    cached = sum(f"{digest}.npy" in entries for digest in dataset.digests)
    label = "landmarks (dlib)" + (f", {cached} of {len(dataset.images)} cached" if cached else ", detecting")
    progress = outputs.Progress(len(dataset.images), label, "images")
    for name, path, digest in zip(dataset.images, dataset.paths, dataset.digests):
        points = cache.cached_array(folder / f"{digest}.npy", lambda: _detect(path))
        progress.update()
        if points.shape == (N_LANDMARKS, 2):
            found[name] = points.astype(float)
        else:
            missing.append((name, "no face found by dlib"))
    return found, missing


def dataset_landmarks(cfg, dataset: data.Dataset, map_shape: tuple[int, int]):
    """Landmarks per image mapped onto the (H, W) heatmap grid, and the images without usable ones.

    Returns ``(landmarks, missing)``: ``landmarks`` maps image name -> (68, 2) array in heatmap
    pixel coordinates (images are resized, not cropped: :func:`scale_landmarks`);
    ``missing`` is a list of ``(image, reason)`` in dataset order. Callers must report
    ``missing`` (:func:`report_missing`) and leave those images out of region statistics and
    alignment.
    """
    original, missing = image_landmarks(cfg, dataset)
    path_of = dict(zip(dataset.images, dataset.paths))
    scaled = {}
    for name in dataset.images:
        if name in original:
            try:
                points = scale_landmarks(original[name], data.image_size(path_of[name]), map_shape)
                eye_width(points)  # a degenerate face has no regions
                scaled[name] = points
            except ValueError as err:  # LandmarkError is a ValueError
                missing.append((name, str(err)))
    order = {name: i for i, name in enumerate(dataset.images)}
    missing.sort(key=lambda item: order[item[0]])
    return scaled, missing


def require_some(cfg, missing: Sequence[tuple[str, str]], n_images: int, needed_by: str) -> None:
    """A DataError when no image has usable landmarks (every region statistic would be empty or 0),
    naming where the landmarks came from and the first image's reason."""
    if len(missing) == n_images:
        source = cfg.data.landmarks or "dlib landmark detection"
        instead = "" if cfg.data.landmarks else " (or give data.landmarks: 68 points per image)"
        raise DataError(f"{source}: none of the {n_images} images has usable landmarks (first reason: {missing[0][1]}); "
                        f"{needed_by} needs them{instead}")


def report_missing(missing: Sequence[tuple[str, str]], path, n_images: int, run_id: str) -> Path:
    """Write ``image,reason,run`` for every image without landmarks (header only when none) and say so on stderr."""
    outputs.write_table(path, pd.DataFrame(list(missing), columns=list(MISSING_COLUMNS)), run_id)
    if missing:
        first = ", ".join(name for name, _ in missing[:3]) + (", ..." if len(missing) > 3 else "")
        print(f"warning: {len(missing)} of {n_images} image(s) have no usable landmarks and are left out of "
              f"region statistics and alignment (first: {first}; reasons in {path})", file=sys.stderr)
    return Path(path)
