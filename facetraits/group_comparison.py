"""Do two rater groups rely on different face regions? A permutation test with raters as the unit.

Why raters: the claim is about rater populations, so the null hypothesis is that group
membership does not matter, i.e. raters are exchangeable between the groups. Each permutation
reassigns the raters' group labels (group sizes kept), recomputes both groups' mean ratings,
refits both ridge heads and recomputes the statistic; a bootstrap of raters within each group
gives the confidence intervals. Training noise and rater sampling are both in the null.

Both heads use one setting per trait (feature set and penalty), chosen by identity-grouped inner
CV on the mean rating of all raters of both groups: the choice does not depend on the labels, so
the permutation test stays exact, and both groups' importances live on one scale. The groups'
cross-validated r uses the same rule inside each outer training part only (one setting per fold,
shared by both groups and every permutation), so no test face takes part in choosing what predicts it.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from facetraits import importance, metrics, outputs, regions, ridge, training
from facetraits.config import CompareConfig
from facetraits.errors import DataError

COLUMNS = ("trait", "region", "group_a", "group_b", "importance_a", "importance_b", "difference", "ci_low", "ci_high",
           "p", "p_fwer", "scale", "layers", "grid", "alpha", "n_raters_a", "n_raters_b", "n_permutations")
ACCURACY_COLUMNS = ("trait", "group_a", "group_b", "r_a", "r_b", "difference", "p", "noise_ceiling_a",
                    "noise_ceiling_b", "n_raters_a", "n_raters_b", "n_permutations")
# Both go to results/ with a last column `run`; COLUMNS also name the common setting (layers, grid, alpha).
ROUNDING = 1e-9  # relative size below which a difference is rounding noise, not a difference
TIES = 1e-9  # relative tolerance within which a permuted statistic equals the observed one
CHUNK = 500  # target columns solved at once (memory: images x regions x CHUNK floats)


@dataclass
class Raters:
    """One trait's ratings as an (images x raters) table, the raters of group a first."""
    sums: np.ndarray  # (images, raters): sum of the rater's ratings of the image (0 if unrated)
    counts: np.ndarray  # (images, raters): how many ratings
    n_a: int
    n_b: int

    def means(self, weights: np.ndarray) -> np.ndarray:
        """(images, columns) mean rating per image for rater weights (raters, columns), e.g. 0/1 labels."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.sums @ weights) / (self.counts @ weights)

    def everyone(self) -> np.ndarray:
        """(images,) the mean rating of all raters of both groups: what the common head setting is chosen on,
        so that the choice does not depend on the group labels."""
        return self.means(np.ones((self.n_a + self.n_b, 1)))[:, 0]

    def rated_by(self) -> tuple[np.ndarray, np.ndarray]:
        """(images,) how many raters of group a, and of group b, rated each image."""
        rated = self.counts > 0
        return rated[:, :self.n_a].sum(axis=1), rated[:, self.n_a:].sum(axis=1)


def rating_matrices(part: pd.DataFrame, images, groups) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """(sums, counts) as (images, raters) and each rater's group, raters ordered by `groups`, then name."""
    order = {group: i for i, group in enumerate(groups)}
    keys = part.assign(order=part.group.map(order))[["order", "group", "rater"]].drop_duplicates().sort_values(
        ["order", "rater"])
    rater_index = {(g, r): i for i, (g, r) in enumerate(zip(keys.group, keys.rater))}
    image_index = {name: i for i, name in enumerate(images)}
    rows = part.image.map(image_index).to_numpy()
    columns = np.array([rater_index[(g, r)] for g, r in zip(part.group, part.rater)])
    sums = np.zeros((len(images), len(rater_index)))
    counts = np.zeros_like(sums)
    np.add.at(sums, (rows, columns), part.rating.to_numpy(dtype=float))
    np.add.at(counts, (rows, columns), 1.0)
    return sums, counts, keys.group.reset_index(drop=True)


def rater_table(raters: pd.DataFrame, images, trait: str, group_a: str, group_b: str, source,
                compare: CompareConfig) -> Raters:
    """One trait's Raters for two groups, refused (DataError naming `source`) when the run's draws of
    raters (`compare`: permutations and bootstrap resamples) could leave an image unrated."""
    part = raters[(raters.trait == trait) & raters.group.isin([group_a, group_b])]
    sums, counts, group_of = rating_matrices(part, images, [group_a, group_b])
    n_a = int((group_of == group_a).sum())
    if n_a < 2 or len(group_of) - n_a < 2:
        raise DataError(f"{source}: trait {trait} has {n_a} rater(s) in {group_a} and {len(group_of) - n_a} in "
                        f"{group_b}; a rater-level comparison needs at least 2 per group")
    table = Raters(sums, counts, n_a, len(group_of) - n_a)
    check_coverage(table, images, f"{source}: trait {trait}", group_a, group_b, compare)
    warn_few_raters(table, f"{source}: trait {trait}", group_a, group_b, compare)
    return table


FEW_RATERS = 5  # fewer in a group: its bootstrap CI rests on resampling a handful of people


def warn_few_raters(table: Raters, where: str, group_a: str, group_b: str, compare: CompareConfig) -> None:
    """Allowed (2 per group suffice to run), but said: with few raters the bootstrap CIs are not worth much,
    and with few distinct ways to split them the p-value cannot get small."""
    if min(table.n_a, table.n_b) < FEW_RATERS:
        print(f"warning: {where}: only {table.n_a} rater(s) in {group_a} and {table.n_b} in {group_b}: the bootstrap "
              f"CIs rest on resampling so few people", file=sys.stderr)
    # comb(n, k) >= comb(2k, k) > 1e17 for k >= 30: more splits than any run draws, and no slow big-number product
    splits = math.comb(table.n_a + table.n_b, table.n_a) if min(table.n_a, table.n_b) < 30 else math.inf
    if splits <= compare.n_permutations:
        mirrored = 2 if table.n_a == table.n_b else 1  # equal sizes: a split and its mirror give the same |difference|
        print(f"warning: {where}: {table.n_a} + {table.n_b} raters can be split into only {splits} distinct groups "
              f"(compare.n_permutations={compare.n_permutations}), so no p-value can be below about "
              f"{mirrored / splits:.2g}", file=sys.stderr)


RUN_UNRATED_CHANCE = 0.01  # largest accepted chance that some draw of a run leaves some image unrated


def unrated_chance(table: Raters, compare: CompareConfig) -> np.ndarray:
    """Per image, an upper bound on the chance that one of the run's draws leaves it without a rating
    in a group (the union bound over draws): a bootstrap resample of a group's n raters (with
    replacement) misses the image's k of them with chance (1 - k/n)^n; a permuted group of n raters,
    drawn from both groups' N, misses all its raters with a hypergeometric chance."""
    k_a, k_b = table.rated_by()
    n_all = table.n_a + table.n_b
    bootstrap = (1 - k_a / table.n_a) ** table.n_a + (1 - k_b / table.n_b) ** table.n_b
    permuted = stats.hypergeom.pmf(0, n_all, k_a + k_b, table.n_a) + stats.hypergeom.pmf(0, n_all, k_a + k_b, table.n_b)
    return np.minimum(1.0, compare.n_bootstrap * bootstrap + compare.n_permutations * permuted)


def check_coverage(table: Raters, images, where: str, group_a: str, group_b: str, compare: CompareConfig) -> None:
    """Refuse a design whose run could leave an image unrated in some draw (its mean rating, and so
    the statistic, would be undefined), naming the worst image: sparse designs pass as long as the
    whole run stays below RUN_UNRATED_CHANCE."""
    chance = unrated_chance(table, compare)
    if chance.sum() > RUN_UNRATED_CHANCE:
        worst = int(np.argmax(chance))
        k_a, k_b = table.rated_by()
        raise DataError(f"{where}: image {images[worst]} is rated by {k_a[worst]} of the {table.n_a} "
                        f"{group_a} raters and {k_b[worst]} of the {table.n_b} {group_b} raters; with "
                        f"compare.n_permutations={compare.n_permutations} and compare.n_bootstrap="
                        f"{compare.n_bootstrap}, some draw of raters would leave an image unrated with chance "
                        f"{min(chance.sum(), 1.0):.2g} (accepted: {RUN_UNRATED_CHANCE:g}); more raters per image, "
                        f"or fewer draws")


def label_permutations(n_a: int, n_b: int, n: int, seed: int) -> np.ndarray:
    """(raters, n + 1) 0/1 membership of group a: column 0 the observed labels, then n permutations."""
    rng = np.random.default_rng(seed)
    observed = np.r_[np.ones(n_a), np.zeros(n_b)]
    return np.column_stack([observed] + [rng.permutation(observed) for _ in range(n)])


def bootstrap_counts(n_a: int, n_b: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(raters, n) times each rater is drawn, resampling raters within group a and within group b."""
    rng = np.random.default_rng(seed)
    a = np.vstack([rng.multinomial(n_a, np.full(n_a, 1 / n_a), size=n).T, np.zeros((n_b, n))])
    b = np.vstack([np.zeros((n_a, n)), rng.multinomial(n_b, np.full(n_b, 1 / n_b), size=n).T])
    return a, b


def p_values(statistic: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided permutation p per row, and max-statistic (FWER) p across rows (never below p).

    ``statistic`` is (rows, 1 + permutations), column 0 observed. The max statistic uses each
    row's |value| divided by its null sd, so regions with a wide null cannot dominate the max.
    Values smaller than ROUNDING x ``scale`` (the size of the quantities compared) count as 0:
    they are rounding noise of two equal importances, and divided by a null sd of the same noise
    they would otherwise look like a large standardised difference."""
    statistic = np.where(np.abs(statistic) < ROUNDING * scale, 0.0, statistic)
    defined = np.isfinite(statistic).all(axis=1)  # a row with an undefined value has no p, nor a say in the max
    p, p_fwer = np.full(len(statistic), np.nan), np.full(len(statistic), np.nan)
    if not defined.any():
        return p, p_fwer
    kept = statistic[defined]
    sd = kept[:, 1:].std(axis=1, keepdims=True)
    sd[sd == 0] = 1.0
    observed, null = np.abs(kept[:, :1]) / sd, np.abs(kept[:, 1:]) / sd
    at_least = observed * (1 - TIES)  # a permutation equal to the observed statistic counts
    n = null.shape[1]
    p[defined] = (1 + (null >= at_least).sum(axis=1)) / (n + 1)
    p_fwer[defined] = (1 + (null.max(axis=0)[None, :] >= at_least).sum(axis=1)) / (n + 1)
    return p, p_fwer


def region_p_values(stats: Statistics) -> tuple[np.ndarray, np.ndarray]:
    """p_values of the region differences, on the scale of the larger group importance."""
    scale = np.nanmax(np.abs(np.r_[stats.importance_a, stats.importance_b]), initial=0.0)
    return p_values(stats.differences, float(scale) if np.isfinite(scale) and scale > 0 else 1.0)


class FixedRidgeCV:
    """Pooled out-of-fold r of a ridge whose features and penalty are fixed per fold, for many target columns.

    `settings` holds one (feature matrix, alpha) per fold. Each fold's training matrix is
    standardised and decomposed once (ridge.Solver); a set of targets then costs two small matrix
    products per fold."""

    def __init__(self, settings: list[tuple[np.ndarray, float]], folds: np.ndarray):
        self.folds = [folds == fold for fold in np.unique(folds)]
        self.parts = []
        for test, (x, alpha) in zip(self.folds, settings):
            solver = ridge.Solver(x[~test])
            self.parts.append((solver.project(x[test]) * solver.shrink(alpha), solver.u.T))

    def __call__(self, y: np.ndarray) -> np.ndarray:
        predictions = np.empty_like(y)
        for test, (projected, ut) in zip(self.folds, self.parts):
            mean = y[~test].mean(axis=0)
            predictions[test] = projected @ (ut @ (y[~test] - mean)) + mean
        return metrics.pearson_columns(y, predictions)


def settings_per_fold(xs: list[np.ndarray], y_all: np.ndarray, identities, folds: np.ndarray,
                      cfg) -> list[tuple[np.ndarray, float]]:
    """(feature matrix, alpha) per outer fold, chosen by inner CV on that fold's training part of
    `y_all` alone, as ridge.cv_predict chooses: the groups' CV r then has no test face in its choice."""
    candidates, alpha_index = ridge.select_in_training_parts(xs, y_all[:, None], identities, folds, cfg.ridge.alphas,
                                                             cfg.ridge.inner_folds, cfg.seed)
    return [(xs[c], cfg.ridge.alphas[a]) for c, a in zip(candidates[:, 0], alpha_index[:, 0])]


@dataclass
class FixedHead:
    """One trait's ridge setting, shared by both groups: region importance and CV r for any targets."""
    regions: importance.RidgeRegions
    cv_r: FixedRidgeCV
    settings: dict  # layers, grid, alpha


def fixed_head(features: dict, y_all: np.ndarray, identities, folds, masks: list, cfg) -> FixedHead:
    """Choose feature set and penalty by inner CV on `y_all` (all raters' mean rating) for the region
    importance, and per outer training part for the CV r; then set up both computations."""
    xs = training.candidate_features(features, cfg)
    candidate, alpha_index = ridge.select(xs, y_all[:, None], identities, cfg.ridge.alphas, cfg.ridge.inner_folds,
                                          cfg.seed)
    feature_set, alpha, x = cfg.ridge.feature_sets[candidate[0]], cfg.ridge.alphas[alpha_index[0]], xs[candidate[0]]
    solver = ridge.Solver(x)
    inputs = importance.region_inputs(features, feature_set, solver.sd, masks, identities, cfg.compare.scale)
    cv_r = FixedRidgeCV(settings_per_fold(xs, y_all, identities, folds, cfg), folds)
    return FixedHead(importance.RidgeRegions(inputs, solver, alpha), cv_r,
                     {"layers": "+".join(feature_set.layers), "grid": feature_set.grid, "alpha": alpha})


def common_head(raters: pd.DataFrame, images, identities, features: dict, folds, masks: list, trait: str,
                group_a: str, group_b: str, cfg, source) -> tuple[Raters, FixedHead]:
    """The two groups' rater table for one trait and the head setting both share (chosen on all their raters)."""
    table = rater_table(raters, images, trait, group_a, group_b, source, cfg.compare)
    return table, fixed_head(features, table.everyone(), identities, folds, masks, cfg)


@dataclass
class Statistics:
    differences: np.ndarray  # (face regions, 1 + permutations): importance a - b, column 0 observed
    r_differences: np.ndarray  # (1 + permutations,): CV r a - b
    importance_a: np.ndarray  # (face regions,) observed
    importance_b: np.ndarray
    r_a: float
    r_b: float
    ci: np.ndarray  # (2, face regions): 95% bootstrap CI of the difference (raters resampled within group)


def require_rated(means: np.ndarray, label: str) -> np.ndarray:
    """`means` unchanged, or a DataError if a draw of raters left an image unrated (NaN): rare after
    check_coverage, but a NaN must never reach a p-value or a CI silently."""
    if not np.isfinite(means).all():
        raise DataError(f"{label}: a random draw of raters left an image without a rating in one group, so its mean "
                        f"rating is undefined; another seed (--set seed=...) draws again")
    return means


def permutation_statistics(raters: Raters, head: FixedHead, n_permutations: int, n_bootstrap: int, seed: int,
                           label: str) -> Statistics:
    """The statistics for the observed labels and every permutation of them, and bootstrap CIs."""
    labels = label_permutations(raters.n_a, raters.n_b, n_permutations, seed)
    columns = []
    progress = outputs.Progress(labels.shape[1], f"{label} rater permutations", "permutations")
    for start in range(0, labels.shape[1], CHUNK):
        a = labels[:, start:start + CHUNK]
        y_a, y_b = require_rated(raters.means(a), label), require_rated(raters.means(1 - a), label)
        columns.append((head.regions(y_a), head.regions(y_b), head.cv_r(y_a), head.cv_r(y_b)))
        progress.update(a.shape[1])
    importance_a, importance_b, r_a, r_b = (np.concatenate(part, axis=-1) for part in zip(*columns))
    boot_a, boot_b = bootstrap_counts(raters.n_a, raters.n_b, n_bootstrap, seed + 1)
    boot = np.hstack([head.regions(require_rated(raters.means(boot_a[:, i:i + CHUNK]), label))
                      - head.regions(require_rated(raters.means(boot_b[:, i:i + CHUNK]), label))
                      for i in range(0, n_bootstrap, CHUNK)])
    return Statistics(importance_a - importance_b, r_a - r_b, importance_a[:, 0], importance_b[:, 0], float(r_a[0]),
                      float(r_b[0]), np.percentile(boot, [2.5, 97.5], axis=1))


@dataclass
class TraitComparison:
    table: pd.DataFrame  # COLUMNS, one row per face region
    accuracy: dict  # ACCURACY_COLUMNS
    null: np.ndarray  # (regions, permutations) differences under the null, for the figure


def compare(dataset, raters: Raters, features: dict, folds: np.ndarray, masks: list, group_a: str, group_b: str,
            trait: str, cfg) -> TraitComparison:
    """Rater-level comparison of two groups on one trait (see the module docstring); `raters` is their
    rater_table, built (and so checked) before the features are loaded."""
    head = fixed_head(features, raters.everyone(), dataset.identities, folds, masks, cfg)
    return compare_with_head(dataset, raters, head, group_a, group_b, trait, cfg)


def compare_with_head(dataset, raters: Raters, head: FixedHead, group_a: str, group_b: str, trait: str,
                      cfg) -> TraitComparison:
    """compare() with the rater table and head given, so another head (e.g. a benchmark's probe) goes through
    exactly the same permutations, CIs, tables and accuracy."""
    label = f"{trait} {group_a} vs {group_b}"
    training.warn_if_flat(f"{label} (common head)", {"head": "ridge", **head.settings}, cfg)
    stats = permutation_statistics(raters, head, cfg.compare.n_permutations, cfg.compare.n_bootstrap, cfg.seed, label)
    p, p_fwer = region_p_values(stats)
    n = stats.differences.shape[1] - 1
    common = {"n_raters_a": raters.n_a, "n_raters_b": raters.n_b, "n_permutations": n}
    table = pd.DataFrame({"trait": trait, "region": regions.FACE_REGIONS, "group_a": group_a, "group_b": group_b,
                          "importance_a": stats.importance_a, "importance_b": stats.importance_b,
                          "difference": stats.differences[:, 0], "ci_low": stats.ci[0], "ci_high": stats.ci[1],
                          "p": p, "p_fwer": p_fwer, "scale": cfg.compare.scale, **head.settings, **common})[list(COLUMNS)]
    ceilings = metrics.split_half_noise_ceiling(dataset.raters[dataset.raters.trait == trait], seed=cfg.seed)
    ceiling = dict(zip(ceilings.group, ceilings.noise_ceiling))
    accuracy = {"trait": trait, "group_a": group_a, "group_b": group_b, "r_a": stats.r_a, "r_b": stats.r_b,
                "difference": stats.r_differences[0], "p": p_values(stats.r_differences[None, :])[0][0],
                "noise_ceiling_a": ceiling.get(group_a, np.nan), "noise_ceiling_b": ceiling.get(group_b, np.nan),
                **common}
    print(f"{label}, {n} rater permutations: " + ", ".join(
        f"{row.region} {row.difference:+.3g} (p_fwer {row.p_fwer:.3g})" for row in table.itertuples()))
    return TraitComparison(table, accuracy, stats.differences[:, 1:])
