"""The ridge head in closed form: feature set and penalty chosen by identity-grouped inner CV.

Everything works on many target columns at once (the observed ratings, or a thousand permuted
copies of them): one decomposition per feature matrix serves every column and every penalty,
so a permutation repeats the whole fit, inner selection included, for the cost of a matrix product.
The penalty is given per feature (lambda = alpha x number of features): the singular values of a
standardised matrix grow with its width, so one alpha grid suits every candidate feature set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetraits import metrics
from facetraits.errors import DataError


# Standard deviations are floored at this share of the median one (see `standardisation`).
SD_FLOOR = 0.1


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd) per feature for standardising, with the sd floored at SD_FLOOR x the median sd.

    ReLU maps are often zero at the image border in almost every training face; such a feature's
    tiny sd would blow a test face's rare non-zero value up to a huge standardised value and one
    feature would swamp the prediction (on the demo: CV r 0.08 instead of 0.83 for 4 x 4 cells)."""
    mean, sd = x.mean(axis=0), x.std(axis=0)
    positive = sd[sd > 0]
    sd = np.maximum(sd, SD_FLOOR * np.median(positive)) if positive.size else sd
    sd[sd == 0] = 1.0
    return mean, sd


class Solver:
    """One training matrix X, standardised on itself and decomposed once: X = U diag(s) V'.

    The ridge is then w = X' U diag(1 / (s2 + lambda)) U' y, with X' U = V diag(s) (`basis`). With
    more features than faces (4,608 block4 cells of 400 faces) U and s2 come from the n x n matrix
    X X', several times faster than an SVD of X; with fewer (64 simulated features of 500 images),
    from the SVD of X. Neither divides by a small singular value."""

    def __init__(self, x: np.ndarray):
        self.mean, self.sd = standardisation(x)
        standardised = (x - self.mean) / self.sd
        self.n_features = x.shape[1]
        if x.shape[1] <= x.shape[0]:
            self.u, s, vt = np.linalg.svd(standardised, full_matrices=False)
            self.s2, self.basis = s ** 2, vt.T * s
        else:
            eigenvalues, self.u = np.linalg.eigh(standardised @ standardised.T)
            self.s2 = np.clip(eigenvalues, 0.0, None)  # rounding can leave the zero ones slightly negative
            self.basis = standardised.T @ self.u

    def shrink(self, alpha: float) -> np.ndarray:
        return 1.0 / (self.s2 + alpha * self.n_features)

    def in_basis(self, standardised_rows: np.ndarray) -> np.ndarray:
        """Rows already in standardised units, times X' U."""
        return standardised_rows @ self.basis

    def project(self, x_test: np.ndarray) -> np.ndarray:
        """Test rows standardised as the training rows were, then `in_basis`."""
        return self.in_basis((x_test - self.mean) / self.sd)

    def predictions(self, x_test: np.ndarray, y_centred: np.ndarray, alphas) -> np.ndarray:
        """(len(alphas), n_test, n_targets): test predictions minus the training mean rating."""
        projected = self.project(x_test)
        uty = self.u.T @ y_centred
        return np.stack([projected @ (self.shrink(alpha)[:, None] * uty) for alpha in alphas])

    def coefficients(self, y_centred: np.ndarray, alpha: float) -> np.ndarray:
        """Weights on the standardised features, (n_features, n_targets)."""
        return self.basis @ (self.shrink(alpha)[:, None] * (self.u.T @ y_centred))


def single_identity(part: str, source="") -> DataError:
    """The error for a training part of one identity: the inner CV that picks the ridge's setting splits by identity.

    select sees arrays only, so its error cannot name the ratings file; scripts call check_training_parts up front
    with the file as `source`."""
    where = f"{source}: " if source else ""
    return DataError(f"{where}ridge: {part} holds a single identity, but the inner cross-validation "
                     f"(ridge.inner_folds) that chooses ridge.feature_sets and ridge.alphas splits by identity and "
                     f"needs at least 2: use fewer cv.n_folds (at least 2), more identities, or model.head: mlp")


def check_training_parts(identities: np.ndarray, folds: np.ndarray, source) -> None:
    """Every outer training part has 2+ identities for select's inner CV: said before any fit, naming the file."""
    identities = np.asarray(identities)
    for fold in np.unique(folds):
        if len(np.unique(identities[folds != fold])) < 2:
            raise single_identity(f"with cv.n_folds={int(folds.max()) + 1}, the training part of fold {fold + 1} (the "
                                  f"other folds' images)", source)


def select(xs: list[np.ndarray], y: np.ndarray, identities: np.ndarray, alphas, inner_folds: int,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(candidate index, alpha index) per target column: the lowest inner-CV squared error.

    Inner folds are grouped by identity and cut from the rows given, so when those rows are an
    outer training part, the outer test identities never take part in the choice."""
    n_units = len(np.unique(identities))
    if n_units < 2:
        raise single_identity(f"a training part of {len(identities)} image(s)")
    inner = metrics.make_folds(identities, min(inner_folds, n_units), "identity", seed)
    errors = np.zeros((len(xs), len(alphas), y.shape[1]))
    for candidate, x in enumerate(xs):
        for fold in np.unique(inner):
            train = inner != fold
            y_mean = y[train].mean(axis=0)
            predicted = Solver(x[train]).predictions(x[~train], y[train] - y_mean, alphas) + y_mean
            errors[candidate] += ((predicted - y[~train]) ** 2).sum(axis=1)
    best = errors.reshape(-1, y.shape[1]).argmin(axis=0)
    return best // len(alphas), best % len(alphas)


def select_in_training_parts(xs, y, identities, folds, alphas, inner_folds: int, seed: int):
    """`select` inside each outer fold's training part alone (inner seed: seed + fold), as cv_predict
    chooses. Returns (candidate index, alpha index), each (n_folds, n_targets)."""
    identities = np.asarray(identities)
    choices = [select([x[folds != fold] for x in xs], y[folds != fold], identities[folds != fold], alphas,
                      inner_folds, seed + fold) for fold in range(int(folds.max()) + 1)]
    return np.array([c for c, _ in choices]), np.array([a for _, a in choices])


def refit_predict(xs_train, y, xs_test, candidates, alpha_index, alphas) -> np.ndarray:
    """Each column's chosen ridge refitted on all training rows: predictions (n_test, n_targets) of the test rows."""
    predictions = np.empty((len(xs_test[0]), y.shape[1]))
    y_mean = y.mean(axis=0)
    for candidate in np.unique(candidates):
        solver = Solver(xs_train[candidate])
        for a in np.unique(alpha_index[candidates == candidate]):
            columns = (candidates == candidate) & (alpha_index == a)
            predictions[:, columns] = solver.predictions(
                xs_test[candidate], y[:, columns] - y_mean[columns], [alphas[a]])[0] + y_mean[columns]
    return predictions


def cv_predict(xs, y, identities, folds, alphas, inner_folds: int, seed: int):
    """Out-of-fold predictions of the whole procedure for every column of y (observed or permuted).

    Returns (predictions (n, n_targets), candidate index (n_folds, n_targets), alpha index (n_folds, n_targets))."""
    candidates, alpha_index = select_in_training_parts(xs, y, identities, folds, alphas, inner_folds, seed)
    predictions = np.empty(y.shape)
    for fold in range(len(candidates)):
        test = folds == fold
        predictions[test] = refit_predict([x[~test] for x in xs], y[~test], [x[test] for x in xs], candidates[fold],
                                          alpha_index[fold], alphas)
    return predictions, candidates, alpha_index


@dataclass
class LinearFit:
    """The chosen ridge on raw pooled features: prediction = (x - mean) @ kernel + bias."""
    candidate: int
    alpha: float
    mean: np.ndarray
    kernel: np.ndarray  # weights on raw (unstandardised) pooled features
    bias: float  # the mean training rating


def fit(xs, y: np.ndarray, identities, alphas, inner_folds: int, seed: int) -> LinearFit:
    """Choose by inner CV on all rows given, then fit the chosen ridge on all of them."""
    candidates, alpha_index = select(xs, y[:, None], identities, alphas, inner_folds, seed)
    candidate, alpha = int(candidates[0]), float(alphas[alpha_index[0]])
    solver = Solver(xs[candidate])
    weights = solver.coefficients((y - y.mean())[:, None], alpha)[:, 0]
    return LinearFit(candidate, alpha, solver.mean, weights / solver.sd, float(y.mean()))
