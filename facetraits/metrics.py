"""Statistics: Pearson r, MAE, identity-grouped folds, identity permutations, sign flips, p-values and their
corrections for multiple tests, bootstrap CIs, the split-half noise ceiling of mean ratings."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy import stats

from facetraits.errors import ConfigError, DataError


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


def make_folds(identities: np.ndarray, n_folds: int, group_by: str, seed: int, source: str = "",
               setting: str = "cv.n_folds") -> np.ndarray:
    """Fold number (0..n_folds-1) per image. group_by=identity keeps each identity in one fold.

    Identities are shuffled with the seed, then dealt out largest first to the fold with the
    fewest images, so folds are balanced even when identities have different image counts.
    """
    identities = np.asarray(identities)
    units = np.unique(identities) if group_by == "identity" else np.arange(len(identities))
    if n_folds > len(units):
        what = "identities" if group_by == "identity" else "images"
        raise ConfigError(f"{n_folds} folds ({setting}) but {source or 'the ratings'} has only {len(units)} {what}")
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


MIN_IMAGES = 10  # overall; fewer and a pooled r is mostly noise
MIN_PER_FOLD = 3  # test images and test identities per fold; with 2 a fold's r is +-1 whatever the model


def warn_split_identities(identities: np.ndarray, folds: np.ndarray, setting: str) -> None:
    """One stderr line when folds put images of one identity on both sides (cv.group_by: none): the
    model can then score by recognising the person rather than reading the trait, so r is inflated."""
    identities = np.asarray(identities)
    split = sum(len(np.unique(folds[identities == unit])) > 1 for unit in np.unique(identities))
    if split:
        print(f"warning: {setting}: {split} identities have images in more than one fold, so the same faces are "
              f"trained on and tested: the cross-validated r is inflated (the permutation test still permutes whole "
              f"identities); use cv.group_by: identity", file=sys.stderr)


def warn_unreliable_folds(identities: np.ndarray, folds: np.ndarray) -> None:
    """One stderr line when the data are too few for a cross-validated r to mean anything.

    A warning, not an error: tiny datasets are legitimate for smoke tests and demos, and the r is
    computed correctly; only its noise is huge (2 images in 2 folds give r = -1 or +1 whatever the
    model). The bootstrap CI shows that too, but only to someone who reads it."""
    identities = np.asarray(identities)
    tests = [(int(np.sum(folds == k)), len(np.unique(identities[folds == k]))) for k in range(int(folds.max()) + 1)]
    fold = min(range(len(tests)), key=lambda k: tests[k])
    images, units = tests[fold]
    if len(identities) >= MIN_IMAGES and images >= MIN_PER_FOLD and units >= MIN_PER_FOLD:
        return
    print(f"warning: {len(identities)} images in {len(tests)} folds, fold {fold + 1} tests only {images} image(s) of "
          f"{units} identit{'y' if units == 1 else 'ies'}: the cross-validated r is unreliable (want >= {MIN_IMAGES} "
          f"images, >= {MIN_PER_FOLD} test images and identities per fold; fewer cv.n_folds helps)", file=sys.stderr)


def permuted_by_identity(y: np.ndarray, identities: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """(n_images, n_permutations): whole identities' ratings moved to other identities.

    Images of one identity are not independent: when ratings cluster by identity, the out-of-fold
    r varies with the number of identities, not of images, and shuffling single images gives a
    null far too narrow (false positives). So the exchangeable unit is the identity: each identity
    receives all ratings of another identity (in random order over its images). An identity can
    only swap with one that has the same number of images (exchangeability blocks, as in
    Winkler et al. 2015); an identity whose image count is unique keeps its own ratings, which
    makes the test conservative, never liberal. With one image per identity this is a plain
    shuffle of all ratings. (Shuffling *within* identity, scikit-learn's permutation_test_score
    with groups, answers another question: whether a model tells apart images of one face.)
    """
    rng = np.random.default_rng(seed)
    _, unit = np.unique(identities, return_inverse=True)
    members = [np.flatnonzero(unit == u) for u in range(unit.max() + 1)]
    sizes = np.array([len(m) for m in members])
    blocks = [np.flatnonzero(sizes == size) for size in np.unique(sizes)]
    permuted = np.empty((len(y), n_permutations))
    for column in permuted.T:
        for block in blocks:
            for target, source in zip(block, block[rng.permutation(len(block))]):
                column[members[target]] = y[members[source]][rng.permutation(sizes[source])]
    return permuted


def unique_sizes(identities: np.ndarray) -> np.ndarray:
    """The image counts that only one identity has: those identities no permutation can move."""
    _, counts = np.unique(identities, return_counts=True)
    sizes, how_often = np.unique(counts, return_counts=True)
    return sizes[how_often == 1]


def fixed_identities(identities: np.ndarray) -> int:
    """How many identities no permutation can move (their image count is unique)."""
    return int(unique_sizes(identities).size)


def check_exchangeable(identities: np.ndarray, source) -> None:
    """Warn (one stderr line) when identity permutations leave some identities in place; refuse when they leave all.

    permuted_by_identity swaps an identity only with one of the same image count, so an identity whose count no
    other identity has keeps its own ratings: with some of them the null is conservative, and the user should know
    by how much of the data. With all of them no rating ever moves between identities: every permutation only
    reorders ratings within identities, a null for another question, so its p-value would mean nothing."""
    sizes = unique_sizes(identities)
    n_identities = len(np.unique(identities))
    counts = ", ".join(str(size) for size in sizes)
    if sizes.size == n_identities:
        raise DataError(f"{source}: each of the {n_identities} identities has an image count no other identity has "
                        f"({counts} images), and identity permutations swap only identities with as many images, so "
                        f"no rating can move between identities and the permutation null is degenerate; give "
                        f"every image count to at least 2 identities (e.g. as many images to each)")
    if sizes.size:
        print(f"warning: {sizes.size} of {n_identities} identities have an image count no other identity has "
              f"({counts} images), so identity permutations (which swap only identities with as many images) leave "
              f"their ratings in place: the p-value is conservative (see n_fixed_identities)", file=sys.stderr)


def bootstrap_r_ci(y, prediction, identities, n_resamples: int = 2000, seed: int = 0, level: float = 0.95):
    """Percentile CI of the pooled r, resampling identities (with all their images) with replacement."""
    rng = np.random.default_rng(seed)
    _, unit = np.unique(identities, return_inverse=True)
    counts = rng.multinomial(unit.max() + 1, np.full(unit.max() + 1, 1 / (unit.max() + 1)), size=n_resamples)
    weights = counts[:, unit].T.astype(np.float64)  # (n_images, n_resamples): times each image is drawn
    y, prediction = np.asarray(y, np.float64)[:, None], np.asarray(prediction, np.float64)[:, None]
    total = weights.sum(axis=0)
    y_c = y - (weights * y).sum(axis=0) / total
    p_c = prediction - (weights * prediction).sum(axis=0) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (weights * y_c * p_c).sum(axis=0) / np.sqrt((weights * y_c ** 2).sum(axis=0) * (weights * p_c ** 2).sum(axis=0))
    tail = (1 - level) / 2 * 100
    return tuple(float(v) for v in np.nanpercentile(r, [tail, 100 - tail])) if np.isfinite(r).any() else (np.nan, np.nan)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the finite values: mean +- t_{(1+confidence)/2, n-1} * sd / sqrt(n);
    NaN bounds when n < 2, NaN mean when n = 0."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n) if n >= 2 else float("nan")
    return mean, mean - half, mean + half


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """p = (#null >= observed + 1) / (N + 1) over the finite null r: never 0, exact under exchangeability.

    NaN when the observed r or every null r is NaN (a constant rating or prediction): the count
    would otherwise report 1 / (N + 1), "significant", where nothing was tested."""
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    return float((np.sum(null >= observed) + 1.0) / (null.size + 1.0))


def sign_flip_p(values, n_flips: int = 9999, seed: int = 0) -> float:
    """One-sided p that the mean of `values`, one per independent unit (e.g. an identity), is above 0.

    Under the null each unit's value is as likely negative as positive, so signs are flipped:
    p is the share of sign vectors whose mean reaches the observed one. Exact over all 2^n
    vectors when there are at most n_flips + 1 of them, else (count + 1) / (n_flips + 1) over
    n_flips seeded random vectors. NaN without values or with a non-finite one."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0 or not np.isfinite(values).all():
        return float("nan")
    # a flip whose sum equals the observed one up to rounding counts as reaching it (conservative)
    observed = values.sum() - 1e-9 * np.abs(values).sum()
    if 2 ** n <= n_flips + 1:
        signs = 1.0 - 2.0 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
        return float(np.mean(signs @ values >= observed))
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_flips, n))
    return permutation_p_value(observed, signs @ values)


def holm(p) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted in the family)."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok):
        order = ok[np.argsort(p[ok], kind="stable")]
        m = len(order)
        stepped = p[order] * (m - np.arange(m))
        q[order] = np.minimum(np.maximum.accumulate(stepped), 1.0)
    return q


SETTING_COLUMNS = ("head", "layers", "grid", "alpha")  # cv_summary.csv's settings, in this order


def cv_summary(group: str, trait: str, y, predictions, folds, identities, fold_settings, final_settings, seed=0):
    """cv_summary.csv rows: one per fold (with that fold's chosen settings), then the pooled row
    ("all": pooled r with a bootstrap CI over identities, and the settings of the final model).
    Settings are put in SETTING_COLUMNS order: CV cache files written before cache.cached_json
    kept key order hold them key-sorted, and the columns must not move between runs."""
    def ordered(settings: dict) -> dict:
        return {key: settings[key] for key in SETTING_COLUMNS}

    rows = []
    for k, settings in enumerate(fold_settings):
        test = folds == k
        rows.append({"group": group, "trait": trait, "fold": str(k + 1), "pearson_r": pearson_r(y[test], predictions[test]),
                     "mae": mae(y[test], predictions[test]), "n_test": int(test.sum()), **ordered(settings)})
    low, high = bootstrap_r_ci(y, predictions, identities, seed=seed)
    fold_r = np.array([row["pearson_r"] for row in rows])
    defined_fold_r = fold_r[~np.isnan(fold_r)]
    rows.append({"group": group, "trait": trait, "fold": "all", "pearson_r": pearson_r(y, predictions),
                 "mae": mae(y, predictions), "n_test": len(y), **ordered(final_settings),
                 "mean_fold_r": float(defined_fold_r.mean()) if defined_fold_r.size else np.nan,
                 "r_ci_low": low, "r_ci_high": high, "n_identities": len(np.unique(identities))})
    return rows


def repeat_columns(repeats: list[dict]) -> dict:
    """cv_summary.csv's pooled-row columns on the spread of r over the CV's repeated splits (over the
    splits whose r is defined: constant predictions have none; cv_repeats.csv shows each split)."""
    r = np.array([row["pearson_r"] for row in repeats])
    r = r[np.isfinite(r)]
    spread = (r.mean(), r.std(ddof=1) if len(r) > 1 else np.nan, r.min(), r.max()) if len(r) else (np.nan,) * 4
    return {"repeats": len(repeats), **{f"r_repeats_{name}": float(value)
                                        for name, value in zip(("mean", "sd", "min", "max"), spread)}}


def split_half_noise_ceiling(per_rater_df: pd.DataFrame, n_splits: int = 100, seed: int = 0) -> pd.DataFrame:
    """Split-half reliability of each group x trait mean rating, and its noise ceiling.

    For each group x trait: split the raters at random into two halves (sizes differ by at most one),
    average each half's ratings per image, correlate the two half means across the images (images
    with no rating in one half are left out of that split), Spearman-Brown correct (2r / (1 + r)),
    and average the corrected values over `n_splits` splits. `noise_ceiling` = sqrt(reliability),
    the highest correlation a model could reach with the full-sample mean ratings (NaN when the
    reliability is negative or cannot be computed, e.g. fewer than 2 raters or 3 images).

    Needs columns image, group, trait, rater, rating. Each group x trait uses a fresh generator
    seeded with `seed`, so results do not depend on which other groups or traits are present.
    """
    missing = [c for c in ("image", "group", "trait", "rater", "rating") if c not in per_rater_df.columns]
    if missing:
        raise DataError(f"split_half_noise_ceiling: missing column(s) {', '.join(missing)}")
    if n_splits < 1:
        raise ValueError("n_splits must be >= 1")
    rows = []
    for (group, trait), part in per_rater_df.groupby(["group", "trait"], sort=False):
        part = part[np.isfinite(part.rating.to_numpy(dtype=float))]
        image_codes, image_names = pd.factorize(part.image)
        rater_codes, rater_names = pd.factorize(part.rater)
        n_images, n_raters = len(image_names), len(rater_names)
        values = part.rating.to_numpy(dtype=float)
        corrected = []
        if n_raters >= 2 and n_images >= 3:
            rng = np.random.default_rng(seed)
            for _ in range(n_splits):
                half = np.zeros(n_raters, dtype=np.int64)
                half[rng.permutation(n_raters)[: n_raters // 2]] = 1
                cell = image_codes * 2 + half[rater_codes]
                sums = np.bincount(cell, weights=values, minlength=2 * n_images).reshape(n_images, 2)
                counts = np.bincount(cell, minlength=2 * n_images).reshape(n_images, 2)
                both = (counts > 0).all(axis=1)
                if both.sum() < 3:
                    continue
                means = sums[both] / counts[both]
                if means[:, 0].std() == 0 or means[:, 1].std() == 0:
                    continue
                r = float(np.corrcoef(means[:, 0], means[:, 1])[0, 1])
                corrected.append(2 * r / (1 + r) if r > -1 else np.nan)
        reliability = float(np.nanmean(corrected)) if corrected else np.nan
        ceiling = float(np.sqrt(reliability)) if np.isfinite(reliability) and reliability >= 0 else np.nan
        rows.append({"group": group, "trait": trait, "reliability": reliability, "noise_ceiling": ceiling})
    return pd.DataFrame(rows, columns=["group", "trait", "reliability", "noise_ceiling"])
