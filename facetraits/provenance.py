"""What a fitted result depends on, so a later step can tell a current model or cached fit from a stale one.

A fit depends on the images (and their identities), the ratings and the fit settings; the
settings name the VGG16 weights by content and carry FIT_VERSION for the code. Pure Python, no
TensorFlow: average_saliency.py checks its models with it too.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from facetraits import cache, config, data
from facetraits.config import Config
from facetraits.errors import FacetraitsError

# Bump when fitting changes in a way that changes results: cached CV predictions and nulls made
# by an older version are then recomputed instead of reused.
FIT_VERSION = 3


@functools.lru_cache(maxsize=None)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return cache.file_digest(path)  # size and mtime in the key: a file replaced in place is read again


def weights_identity(cfg: Config) -> str:
    """A weights keyword as it is; a weights file by the sha256 of its bytes: the same file moved,
    copied or reached by another path (another clone) is the same weights, and a file replaced in
    place is not (its old models, explained as current, would no longer be the ones the config's
    weights give). A missing file is an error naming the setting."""
    weights = cfg.model.weights
    if weights in config.WEIGHT_KEYWORDS:
        return weights
    path = config.weights_file(cfg.model, cfg.origin("model.weights"))
    stat = path.stat()
    return "sha256:" + _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def fit_settings(cfg: Config) -> dict:
    """The settings a fitted head depends on: the configured head's own, not the other head's, not
    training.verbose; the weights by content (weights_identity)."""
    settings = {"weights": weights_identity(cfg), "input_size": cfg.model.input_size, "head": cfg.model.head,
                "seed": cfg.seed, "version": FIT_VERSION}
    if cfg.model.head == "ridge":
        return {**settings, "ridge": config.as_dict(cfg.ridge)}
    mlp = {key: getattr(cfg.model, key) for key in ("layers", "grid", "dense_units", "dropout")}
    training = {key: value for key, value in config.as_dict(cfg.training).items() if key != "verbose"}
    return {**settings, "mlp": mlp, "training": training}


def inputs_key(cfg: Config, *arrays) -> str:
    """Digest of everything a fitted result depends on (not the output or explanation settings)."""
    return cache.digest(*arrays, fit_settings(cfg))


def trained_on(cfg: Config, dataset: data.Dataset, y: np.ndarray) -> dict:
    """What a saved model was fitted on, in parts that later scripts can check without the features:
    so lrp_analysis.py and average_saliency.py refuse a model fitted on other ratings, images or settings."""
    return {"images": cache.digest(list(dataset.digests), dataset.identities.tolist()), "ratings": cache.digest(y),
            "settings": inputs_key(cfg)}


def stale_parts(record: dict, now: dict) -> list[str]:
    """The parts of `now` (a trained_on) that a model's record does not match: every part for a record
    written before it kept them. train_regression.py refits such a model; the later scripts refuse it."""
    fitted_on = record.get("trained_on", {})
    return [part for part in now if fitted_on.get(part) != now[part]]


def read_record(path: Path) -> dict | None:
    """A JSON record (a model's, or its maps'), or None when it is missing, truncated or not an object."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def check_model_record(cfg: Config, dataset: data.Dataset, model_path: Path, y: np.ndarray) -> None:
    """A saved model's record exists and says it was fitted on what `cfg`, `dataset` and its ratings
    `y` give now (trained_on); else one error saying to retrain.

    Without its record nothing says what a model was fitted on (copied alone, or a run stopped
    between saving the model and its record), so it is refused like a stale one."""
    record_path = Path(model_path).with_suffix(".json")
    if not record_path.is_file():
        raise FacetraitsError(f"{record_path}: not found, so nothing says what {Path(model_path).name} was fitted on "
                              f"(copied alone, or training stopped before its record); run train_regression.py again")
    record = read_record(record_path)
    if record is None:
        raise FacetraitsError(f"{record_path}: damaged (not a JSON object), so nothing says what "
                              f"{Path(model_path).name} was fitted on; run train_regression.py again")
    changed = stale_parts(record, trained_on(cfg, dataset, y))
    if changed:
        raise FacetraitsError(f"{model_path}: fitted on other {', '.join(changed)} than {cfg.source} gives now "
                              f"(or by an older version); run train_regression.py again")
