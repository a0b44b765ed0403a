"""Two fitted models compared face by face: sign-flip permutation tests over identities, max-statistic FWER.

Why this unit: the two groups' models explained the same images, so their maps pair up. But
images of one identity are not independent (same face, other expression or light), so each
model's normalised map, or region share, is first averaged within identity, and the identity
is the unit of every test. Under the null hypothesis "the two models do not differ
systematically across faces", each identity's a - b difference is as likely to have either
sign, so flipping the signs of whole identities at random gives the null distribution (as
nilearn's ``permuted_ols`` and MNE's ``permutation_cluster_1samp_test`` do for subjects).

The statistic is the one-sample t of the identity differences, so pixels or regions with
different spreads weigh alike in the maximum; the family-wise p (``p_fwer``) compares each
observed |t| with the maximum |t| over the whole family in every flip.

What this can claim: that the two *fitted models* differ consistently across faces. The
models' training noise is not in the null, so it says nothing about the rater populations;
compare_groups.py (raters permuted) does that, and benchmarks/model_level_calibration.py
measures how often this test "finds" a difference between two models of the same group.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facetraits import alignment, outputs, saliency

UNIT = "identity"
TEST_COLUMNS = ("trait", "region", "measure", "group_a", "group_b", "mean_difference", "statistic", "p", "p_fwer",
                "unit", "n_identities", "n_flips")
FLIP_CELLS = 2 ** 22  # flips x columns evaluated at once (memory: ~5 arrays of this many floats)


def sign_flips(n_identities: int, n_flips: int, seed: int) -> np.ndarray:
    """(n_flips, n_identities) of +-1, independent draws; the observed signs count once more in each p's +1."""
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_flips, n_identities))


@dataclass(frozen=True)
class SignFlipTest:
    """Per column: mean identity difference, its one-sample t, and two-sided permutation p-values."""
    mean: np.ndarray
    t: np.ndarray
    p: np.ndarray  # (1 + #flips with |t*| >= |t|) / (n_flips + 1)
    p_fwer: np.ndarray  # same against the maximum |t*| over all columns of the family
    n_identities: np.ndarray  # identities with a defined difference, per column
    n_flips: int


def _t_squared(sums: np.ndarray, n_squares: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Squared one-sample t from the sum of n differences and n x their sum of squares.

    t^2 = S^2 (n - 1) / (n Q - S^2). Flipping signs changes S only, so a flip costs one
    matrix product and four element-wise operations. ``n_squares`` must be 1 where all
    differences are 0 (t = 0 there); inf where every difference has the same size and sign."""
    with np.errstate(divide="ignore", invalid="ignore"):
        squared = sums * sums
        return squared * (n - 1) / np.maximum(n_squares - squared, 0.0)


def sign_flip_test(differences, n_flips: int, seed: int) -> SignFlipTest:
    """Sign-flip test of every column of ``differences`` (identities x columns; NaN = identity left out).

    All columns share the same flips, so ``p_fwer`` controls the family-wise error over them.
    A column with fewer than 2 identities is untestable: NaN t and p, and outside the family.
    With k identities there are only 2^k distinct flips: the smallest p attainable is about
    2 / 2^k (e.g. 0.03 with 6 identities)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"differences must be (identities, columns), got shape {d.shape}")
    n = np.isfinite(d).sum(axis=0)
    testable = n >= 2
    d = np.where(np.isfinite(d) & testable, d, 0.0)  # a left-out identity adds nothing to either sum
    n_squares = n * (d ** 2).sum(axis=0)
    n_squares[n_squares == 0] = 1.0
    observed = _t_squared(d.sum(axis=0), n_squares, n)
    threshold = observed * (1 - 1e-9)  # ties in floating point count as ties
    exceed = np.zeros(d.shape[1])
    maxima = []
    flips = sign_flips(d.shape[0], n_flips, seed)
    step = max(1, FLIP_CELLS // max(d.shape[1], 1))
    for start in range(0, n_flips, step):
        null = _t_squared(flips[start:start + step] @ d, n_squares, n)
        exceed += (null >= threshold).sum(axis=0)
        maxima.append(null.max(axis=1, initial=0.0))
    maxima = np.sort(np.concatenate(maxima))
    p = (1 + exceed) / (n_flips + 1)
    p_fwer = (1 + n_flips - np.searchsorted(maxima, threshold, side="left")) / (n_flips + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = d.sum(axis=0) / n
    defined = np.where(testable, 1.0, np.nan)
    t = np.sqrt(observed) * np.sign(mean)
    return SignFlipTest(mean * defined, t * defined, p * defined, p_fwer * defined, n, n_flips)


@dataclass(frozen=True)
class DifferenceMap:
    """Per-pixel comparison of two models' normalised maps over identities (A - B)."""
    groups: tuple[str, str]  # (A, B)
    mean_difference: np.ndarray  # (H, W) mean over identities of the identity-mean A - B
    t: np.ndarray  # one-sample t over identities
    p: np.ndarray  # sign-flip p per pixel
    p_fwer: np.ndarray  # max-statistic p over all pixels
    significant: np.ndarray  # bool, p_fwer <= alpha
    alpha: float
    n_identities: int
    n_images: int
    n_flips: int

    def save(self, path, **labels):
        """All arrays, the group names and ``labels`` (e.g. alignment) to one .npz, atomically."""
        fields = {name: value for name, value in vars(self).items() if name != "groups"}
        with outputs.atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **fields, group_a=self.groups[0], group_b=self.groups[1], unit=UNIT, **labels)
        return path

    def describe(self) -> str:
        return (f"the {self.groups[0]} and {self.groups[1]} models' maps differ at {int(self.significant.sum())} of "
                f"{self.significant.size} pixels (max-statistic p_fwer <= {self.alpha:g}, {self.n_identities} "
                f"identities, {self.n_flips} sign flips)")


def difference_map(maps_a, maps_b, identities, alpha: float, n_flips: int, seed: int, landmarks=None,
                   template=None, groups=("A", "B")) -> DifferenceMap:
    """Where do two models' heatmaps of the same images differ consistently across identities?

    Maps are normalised (and aligned when ``landmarks`` are given) as in saliency.average_map,
    averaged within identity, and every pixel's identity differences get a sign-flip test;
    ``significant`` marks pixels whose max-statistic p (FWER over all pixels) <= ``alpha``."""
    maps_a, maps_b = np.asarray(maps_a), np.asarray(maps_b)
    if maps_a.shape != maps_b.shape:
        raise ValueError(f"paired maps must have the same shape, got {maps_a.shape} and {maps_b.shape}")
    if landmarks is not None and template is None:
        template = alignment.mean_face(landmarks)
    paired = saliency.prepare(maps_a, landmarks, template) - saliency.prepare(maps_b, landmarks, template)
    _, diff = saliency.identity_means(paired, identities)
    test = sign_flip_test(diff.reshape(len(diff), -1), n_flips, seed)
    shape = maps_a.shape[1:]
    return DifferenceMap(tuple(groups), test.mean.reshape(shape), test.t.reshape(shape), test.p.reshape(shape),
                         test.p_fwer.reshape(shape), test.p_fwer.reshape(shape) <= alpha, float(alpha), len(diff),
                         len(maps_a), n_flips)


def difference_maps(relevance: dict, faces: saliency.Faces, groups, traits, alpha: float, n_flips: int,
                    seed: int) -> dict:
    """{trait: DifferenceMap} of the first two ``groups``' models (none with fewer than two groups or identities)."""
    pair, n_identities = list(groups)[:2], len(set(faces.identities))
    if len(pair) == 2 and n_identities < 2:
        print(f"warning: group difference maps need 2+ identities, {n_identities} usable; skipped", file=sys.stderr)
    if len(pair) < 2 or n_identities < 2:
        return {}
    return {trait: difference_map(*(relevance[(group, trait)][faces.keep] for group in pair), faces.identities, alpha,
                                  n_flips, seed, faces.points, faces.template, pair) for trait in traits}


def region_tests(table: pd.DataFrame, identities: dict, groups, n_flips: int, seed: int,
                 measures=saliency.GROUP_TEST_MEASURES) -> pd.DataFrame:
    """Per trait x region x measure: the first two ``groups``' region shares (a - b), sign-flip test over identities.

    ``table`` is saliency.region_table's; ``identities`` maps image -> identity. Each image's
    a - b difference is averaged within identity; an image where either model's share is
    undefined (a map without positive relevance) is left out, an identity without any such
    difference too. One family, max-statistic
    p_fwer, over every row (all traits, regions and measures). Columns :data:`TEST_COLUMNS`;
    no rows with fewer than two groups."""
    if len(groups) < 2:
        return pd.DataFrame(columns=list(TEST_COLUMNS))
    group_a, group_b = list(groups)[:2]
    keys, columns = [], []
    order = list(dict.fromkeys(table["region"]))
    for trait in dict.fromkeys(table["trait"]):
        part = table[(table.trait == trait) & table.group.isin([group_a, group_b])]
        for measure in measures:
            wide = part.pivot_table(index="image", columns=["group", "region"], values=measure, aggfunc="first",
                                    dropna=False)
            if group_a not in wide or group_b not in wide:
                continue
            a, b = wide[group_a].reindex(columns=order), wide[group_b].reindex(columns=order)
            _, diff = saliency.identity_means(a - b, wide.index.map(identities))
            for region, values in zip(order, diff.T):
                keys.append((trait, region, measure))
                columns.append(values)
    if not columns:
        return pd.DataFrame(columns=list(TEST_COLUMNS))
    test = sign_flip_test(np.column_stack(columns), n_flips, seed)
    rows = pd.DataFrame(keys, columns=["trait", "region", "measure"])
    return rows.assign(group_a=group_a, group_b=group_b, mean_difference=test.mean, statistic=test.t, p=test.p,
                       p_fwer=test.p_fwer, unit=UNIT, n_identities=test.n_identities, n_flips=n_flips)


def describe(tests: pd.DataFrame, alpha: float) -> list[str]:
    """Lines naming the region tests with p_fwer < ``alpha``, under a header saying what they are evidence of;
    one line saying so when none is (a finding too, not to be left unsaid)."""
    hits = tests[tests.p_fwer < alpha]
    if tests.empty:
        return []
    if hits.empty:
        return [f"the {tests.group_a.iloc[0]} and {tests.group_b.iloc[0]} models do not differ consistently across "
                f"faces in any region ({len(tests)} tests, all p_fwer >= {alpha:g}; the fitted models, not the rater groups)"]
    return ([f"the {hits.group_a.iloc[0]} and {hits.group_b.iloc[0]} models differ consistently across faces "
             f"(p_fwer < {alpha:g}; the fitted models, not the rater groups) in:"]
            + [f"  {row.trait}, {row.region}, {row.measure}: {row.mean_difference:+.3f} (t = {row.statistic:.2f} over "
               f"{row.n_identities} identities, p_fwer = {row.p_fwer:.3g})" for row in hits.itertuples()])
