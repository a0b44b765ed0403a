"""Statistics: Pearson r, MAE, identity-grouped folds, label shuffles, permutation p-values."""
from __future__ import annotations

import numpy as np

from facetraits.errors import ConfigError


def pearson_r(y: np.ndarray, prediction: np.ndarray) -> float:
    """Pearson's r; NaN when either side is constant (r is undefined there, not 0)."""
    return float(pearson_columns(np.asarray(y)[:, None], np.asarray(prediction)[:, None])[0])


def pearson_columns(y: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """r of each column of `y` with the same column of `predictions` (many permutations at once)."""
    y = y - y.mean(axis=0)
    p = predictions - predictions.mean(axis=0)
    denominator = np.sqrt((y * y).sum(axis=0) * (p * p).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (y * p).sum(axis=0) / denominator, np.nan)


def mae(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(prediction))))


def make_folds(identities: np.ndarray, n_folds: int, group_by: str, seed: int, source: str = "") -> np.ndarray:
    """Fold number (0..n_folds-1) per image. group_by=identity keeps each identity in one fold.

    Identities are shuffled with the seed, then dealt out largest first to the fold with the
    fewest images, so folds are balanced even when identities have different image counts.
    """
    identities = np.asarray(identities)
    units = np.unique(identities) if group_by == "identity" else np.arange(len(identities))
    if n_folds > len(units):
        what = "identities" if group_by == "identity" else "images"
        raise ConfigError(f"cv.n_folds={n_folds} but {source or 'the ratings'} has only {len(units)} {what}")
    rng = np.random.default_rng(seed)
    units = units[rng.permutation(len(units))]
    if group_by != "identity":
        folds = np.empty(len(identities), dtype=int)
        folds[units] = np.arange(len(units)) % n_folds
        return folds
    sizes = {unit: int(np.sum(identities == unit)) for unit in units}
    order = sorted(units, key=lambda unit: -sizes[unit])  # stable: ties keep the shuffled order
    fold_sizes = np.zeros(n_folds, dtype=int)
    fold_of = {}
    for unit in order:
        fold = int(np.argmin(fold_sizes))
        fold_of[unit] = fold
        fold_sizes[fold] += sizes[unit]
    return np.array([fold_of[unit] for unit in identities])


def shuffled_labels(y: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """(n_images, n_permutations): ratings shuffled across ALL images, not within identity.

    Shuffling within identity (scikit-learn's permutation_test_score with groups) would keep every
    between-identity difference in the null and make it far too easy to "beat".
    """
    rng = np.random.default_rng(seed)
    return np.stack([y[rng.permutation(len(y))] for _ in range(n_permutations)], axis=1)


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """p = (#null >= observed + 1) / (N + 1): never 0, exact under exchangeability."""
    null = np.asarray(null)
    return float((np.sum(null >= observed) + 1.0) / (len(null) + 1.0))
