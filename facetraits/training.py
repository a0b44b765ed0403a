"""The one head-fitting loop, cross-validated predictions, and the closed-form ridge null model."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from facetraits import config, data, metrics, model, outputs
from facetraits import features as features_module
from facetraits.backend import keras, seed_everything
from facetraits.config import Config, TrainingConfig


@dataclass
class Study:
    """What cross-validation and the permutation test share: the data, its folds, its features."""
    dataset: data.Dataset
    folds: np.ndarray  # fold number per image, grouped by identity (cv.group_by)
    features: np.ndarray  # cached conv features, image order


def load_study(cfg: Config) -> Study:
    dataset = data.load(cfg)
    folds = metrics.make_folds(dataset.identities, cfg.cv.n_folds, cfg.cv.group_by, cfg.seed, str(dataset.source))
    conv = features_module.load_or_extract(dataset, cfg.model, cfg.output.cache_dir, seed=cfg.seed)
    return Study(dataset, folds, conv)


@dataclass
class TrainedHead:
    head: keras.Model  # predicts ratings on the rating scale
    epochs: int  # epochs actually run (early stopping may end sooner)
    seconds: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.head.predict(features, batch_size=256, verbose=0).ravel().astype(np.float64)


def optimizer(cfg: TrainingConfig):
    kinds = {"adam": keras.optimizers.legacy.Adam, "sgd": keras.optimizers.legacy.SGD,
             "rmsprop": keras.optimizers.legacy.RMSprop}
    return kinds[cfg.optimizer](learning_rate=cfg.learning_rate)


def validation_indices(identities: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A mask of whole identities (about `fraction` of the images) held out for early stopping."""
    mask = np.zeros(len(identities), dtype=bool)
    if fraction <= 0:
        return mask
    units = np.unique(identities)
    rng = np.random.default_rng(seed)
    for unit in units[rng.permutation(len(units))]:
        if mask.mean() >= fraction or len(units) < 2:
            break
        mask |= identities == unit
    return mask if mask.sum() < len(mask) else np.zeros(len(identities), dtype=bool)


def fit_head(features: np.ndarray, y: np.ndarray, identities: np.ndarray, cfg: Config, seed: int) -> TrainedHead:
    """Train a fresh head on (training) features. Validation identities come out of THIS data only.

    The dense layers train on pooled features standardised with the training part's mean and sd,
    and on standardised ratings; both scalings are then folded into the weights of the head's
    first and last Dense layers, except the mean, which stays in the head's centring layer as a
    mean feature map (see `model.build_head`). The returned head works on raw conv features and predicts ratings
    directly. (VGG16 channels differ in scale by orders of magnitude; without standardising,
    Adam fits far worse.)
    """
    start = time.perf_counter()
    seed_everything(seed)
    held_out = validation_indices(identities, cfg.training.validation_split, seed)
    fit = ~held_out
    pooled = features_module.pooled(features, cfg.model.pooling)
    x_mean, x_sd = pooled[fit].mean(axis=0), pooled[fit].std(axis=0)
    x_sd[x_sd == 0] = 1.0
    x = ((pooled - x_mean) / x_sd).astype(np.float32)
    y_mean, y_sd = float(y[fit].mean()), float(y[fit].std()) or 1.0
    z = ((y - y_mean) / y_sd).astype(np.float32)
    dense = model.build_dense(x.shape[1], cfg.model, seed)
    dense.compile(optimizer=optimizer(cfg.training), loss="mse")
    callbacks, validation = [], None
    if held_out.any():
        validation = (x[held_out], z[held_out])
        if cfg.training.early_stopping_patience > 0:
            callbacks.append(keras.callbacks.EarlyStopping(
                patience=cfg.training.early_stopping_patience, restore_best_weights=True))
    history = dense.fit(x[fit], z[fit], validation_data=validation, epochs=cfg.training.epochs,
                        batch_size=cfg.training.batch_size, shuffle=True, callbacks=callbacks,
                        verbose=2 if cfg.training.verbose else 0)
    head = model.build_head(features.shape[1:], cfg.model, seed, feature_mean=features[fit].mean(axis=0))
    kernel, bias = dense.get_layer("head_dense").get_weights()
    head.get_layer("head_dense").set_weights([kernel / x_sd[:, None], bias])
    kernel, bias = dense.get_layer("head_rating").get_weights()
    head.get_layer("head_rating").set_weights([kernel * y_sd, bias * y_sd + y_mean])
    return TrainedHead(head, len(history.history["loss"]), time.perf_counter() - start)


def cross_val_predict(features, y, identities, folds, cfg: Config, label: str = "") -> np.ndarray:
    """Out-of-fold predictions: fold k's images are predicted by a head that never saw them."""
    predictions = np.full(len(y), np.nan)
    n_folds = int(folds.max()) + 1
    for fold in range(n_folds):
        test = folds == fold
        # Graph mode keeps every model ever built in one graph, and each fit gets slower as it
        # grows (about 3x after 20 heads); nothing built before is needed here, so start afresh.
        keras.backend.clear_session()
        trained = fit_head(features[~test], y[~test], identities[~test], cfg, seed=cfg.seed + fold)
        predictions[test] = trained.predict(features[test])
        if label:
            print(f"  {label} fold {fold + 1}/{n_folds}: {trained.epochs} epochs, {trained.seconds:.1f} s",
                  file=sys.stderr, flush=True)
    return predictions


def cached_cross_val_predict(features, y, identities, folds, cfg: Config, name: str) -> np.ndarray:
    """cross_val_predict, computed once per unchanged inputs (features, ratings, folds, settings)."""
    key = outputs.digest(features, y, folds, config.as_dict(cfg.model), config.as_dict(cfg.training), cfg.seed)
    return outputs.cached_array(cfg.output.cache_dir / "cv" / f"{name}-{key}.npy",
                                lambda: cross_val_predict(features, y, identities, folds, cfg, label=name))


def ridge_cv_predict(x: np.ndarray, targets: np.ndarray, folds: np.ndarray, alpha: float) -> np.ndarray:
    """Out-of-fold ridge predictions for many target columns at once (observed + permutations).

    Per fold: standardise features on the training part, one SVD, then every column's solution
    is a matrix product, so 1000 permutations cost about as much as one fit.
    """
    predictions = np.empty_like(targets, dtype=np.float64)
    for fold in np.unique(folds):
        test = folds == fold
        mean, sd = x[~test].mean(axis=0), x[~test].std(axis=0)
        sd[sd == 0] = 1.0
        train_x, test_x = (x[~test] - mean) / sd, (x[test] - mean) / sd
        y_mean = targets[~test].mean(axis=0)
        u, s, vt = np.linalg.svd(train_x, full_matrices=False)
        shrink = s / (s ** 2 + alpha * len(train_x))
        coefficients = vt.T @ (shrink[:, None] * (u.T @ (targets[~test] - y_mean)))
        predictions[test] = test_x @ coefficients + y_mean
    return predictions
