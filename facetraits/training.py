"""Fitting the configured head (ridge or mlp), its cross-validated predictions, and its permutation null.

One function fits a head (`fit_head`), one cross-validates it (`cross_val_predict`) and one
builds its null distribution (`permutation_null`), so the r, the p-value and the saved model that
lrp_analysis.py explains all come from the same procedure.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

import numpy as np

from facetraits import cache, data, metrics, model, outputs, provenance, ridge
from facetraits import features as features_module
from facetraits.backend import keras, seed_everything
from facetraits.config import Config, FeatureSet, TrainingConfig


@dataclass
class Study:
    """What cross-validation and the permutation test share: the data, its folds, its features."""
    dataset: data.Dataset
    folds: np.ndarray  # fold number per image, grouped by identity (cv.group_by)
    features: dict  # {VGG16 layer: cached conv maps (N, h, w, c)}, image order


def load_study(cfg: Config, base=None, dataset: data.Dataset | None = None) -> Study:
    dataset = dataset or data.load(cfg)
    return Study(dataset, outer_folds(dataset, cfg), features_module.load_or_extract(dataset, cfg, base))


def check_folds(study: Study, cfg: Config) -> None:
    """Before any fit: warn when test folds are too small for a reliable r, refuse when a training
    part has a single identity and the ridge's inner CV therefore cannot run (naming the file)."""
    metrics.warn_unreliable_folds(study.dataset.identities, study.folds)
    metrics.warn_split_identities(study.dataset.identities, study.folds, cfg.named("cv.group_by"))
    if cfg.model.head == "ridge":
        ridge.check_training_parts(study.dataset.identities, study.folds, study.dataset.source)


def outer_folds(dataset: data.Dataset, cfg: Config) -> np.ndarray:
    """The CV's fold number per image, drawn from cfg.seed (grouped by identity: cv.group_by)."""
    source = str(dataset.source)
    if cfg.data.identities:  # too few identities is then the subset's doing, not the file's
        source = f"the part of {source} that {cfg.named('data.identities')} keeps"
    return metrics.make_folds(dataset.identities, cfg.cv.n_folds, cfg.cv.group_by, cfg.seed, source,
                              setting=cfg.named("cv.n_folds"))


@dataclass
class TrainedHead:
    head: keras.Model  # conv maps -> rating, on the rating scale
    settings: dict  # head, layers, grid, alpha: what was fitted (chosen by inner CV for ridge)
    epochs: int  # epochs run (mlp; early stopping may end sooner); 0 for the closed-form ridge
    seconds: float

    def predict(self, maps: dict) -> np.ndarray:
        return self.head.predict(model.head_inputs(self.head, maps), batch_size=256, verbose=0).ravel().astype(np.float64)


def settings_of(feature_set: FeatureSet, head: str, alpha=None) -> dict:
    return {"head": head, "layers": "+".join(feature_set.layers), "grid": feature_set.grid,
            "alpha": float("nan") if alpha is None else float(alpha)}


def fit_head(maps: dict, y: np.ndarray, identities: np.ndarray, cfg: Config, seed: int) -> TrainedHead:
    """A fresh head on (training) conv maps; every choice it makes uses these rows only."""
    start = time.perf_counter()
    seed_everything(seed)
    fit = fit_ridge if cfg.model.head == "ridge" else fit_mlp
    head, settings, epochs = fit(maps, y, identities, cfg, seed)
    return TrainedHead(head, settings, epochs, time.perf_counter() - start)


def centred_head(maps: dict, rows, feature_set: FeatureSet, cfg: Config, seed: int, kind: str) -> keras.Model:
    """A head whose centring layers hold the mean map of `rows` (see model.build_head)."""
    shapes = {layer: maps[layer].shape[1:] for layer in feature_set.layers}
    means = {layer: maps[layer][rows].mean(axis=0) for layer in feature_set.layers}
    return model.build_head(shapes, feature_set, cfg.model, seed, feature_means=means, kind=kind)


def candidate_features(maps: dict, cfg: Config) -> list[np.ndarray]:
    """Pooled features of every ridge.feature_sets candidate, in config order."""
    return [features_module.pooled(maps, s).astype(np.float64) for s in cfg.ridge.feature_sets]


def fit_ridge(maps, y, identities, cfg: Config, seed: int):
    """Inner CV picks the feature set and penalty; the chosen ridge becomes the head's Dense(1)."""
    linear = ridge.fit(candidate_features(maps, cfg), y, identities, cfg.ridge.alphas, cfg.ridge.inner_folds, seed)
    chosen = cfg.ridge.feature_sets[linear.candidate]
    head = centred_head(maps, slice(None), chosen, cfg, seed, "ridge")
    head.get_layer("head_rating").set_weights([linear.kernel[:, None].astype(np.float32),
                                               np.array([linear.bias], np.float32)])
    return head, settings_of(chosen, "ridge", linear.alpha), 0


def final_settings(maps, y, identities, cfg: Config) -> dict:
    """The settings fit_head chooses on all images (those of the saved, explained model), without Keras."""
    if cfg.model.head == "mlp":
        return settings_of(cfg.model.mlp_features(), "mlp")
    candidate, alpha = ridge.select(candidate_features(maps, cfg), y[:, None], identities, cfg.ridge.alphas,
                                    cfg.ridge.inner_folds, cfg.seed)  # the choice only: no final solve
    return settings_of(cfg.ridge.feature_sets[candidate[0]], "ridge", cfg.ridge.alphas[alpha[0]])


def warn_if_flat(label: str, settings: dict, cfg: Config) -> None:
    """The inner CV chose the largest penalty: the head found no signal it trusts and predicts close
    to the mean rating, so its heatmaps and region importances show noise scaled towards zero."""
    if settings["head"] == "ridge" and len(set(cfg.ridge.alphas)) > 1 and settings["alpha"] >= max(cfg.ridge.alphas):
        print(f"warning: {label}: the inner CV chose the largest penalty (alpha {settings['alpha']:g}, the end of "
              f"ridge.alphas): the head predicts close to the mean rating, so its heatmaps and region importances "
              f"say little (random weights, too few identities, or no signal in these features)", file=sys.stderr)


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


def fit_mlp(maps, y, identities, cfg: Config, seed: int):
    """The reference study's head, trained with Keras; validation identities come out of THIS data only.

    The dense layers train on pooled features standardised with the training part's mean and sd,
    and on standardised ratings; the sd and the rating scale are then folded into the weights of
    the first and last Dense layers and the mean stays in the centring layers. The returned head
    works on raw conv maps. (VGG16 channels differ in scale by orders of magnitude; without
    standardising, Adam fits far worse.)
    """
    held_out = validation_indices(identities, cfg.training.validation_split, seed)
    fit = ~held_out
    feature_set = cfg.model.mlp_features()
    pooled = features_module.pooled(maps, feature_set)
    x_mean, x_sd = ridge.standardisation(pooled[fit])
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
    head = centred_head(maps, fit, feature_set, cfg, seed, "mlp")
    kernel, bias = dense.get_layer("head_dense").get_weights()
    head.get_layer("head_dense").set_weights([kernel / x_sd[:, None], bias])
    kernel, bias = dense.get_layer("head_rating").get_weights()
    head.get_layer("head_rating").set_weights([kernel * y_sd, bias * y_sd + y_mean])
    return head, settings_of(feature_set, "mlp"), len(history.history["loss"])


def cross_val_predict(maps: dict, y: np.ndarray, identities, folds, cfg: Config, label: str = "") -> dict:
    """Out-of-fold predictions (fold k's images predicted by a head that never saw them) and the
    settings each fold's head chose: {"predictions": [...], "settings": [one dict per fold]}."""
    if cfg.model.head == "ridge":
        return ridge_cross_val_predict(maps, y[:, None], identities, folds, cfg)
    predictions = np.full(len(y), np.nan)
    settings, n_folds = [], int(folds.max()) + 1
    for fold in range(n_folds):
        test = folds == fold
        # Graph mode keeps every model ever built in one graph, and each fit gets slower as it
        # grows (about 3x after 20 heads); nothing built before is needed here, so start afresh.
        keras.backend.clear_session()
        trained = fit_head({k: v[~test] for k, v in maps.items()}, y[~test], identities[~test], cfg, cfg.seed + fold)
        predictions[test] = trained.predict({k: v[test] for k, v in maps.items()})
        settings.append(trained.settings)
        if label:
            print(f"  {label} fold {fold + 1}/{n_folds}: {trained.epochs} epochs, {trained.seconds:.1f} s",
                  file=sys.stderr, flush=True)
    return {"predictions": predictions.tolist(), "settings": settings}


def ridge_cross_val_predict(maps, targets: np.ndarray, identities, folds, cfg: Config) -> dict:
    """cross_val_predict of the ridge head for the first column of `targets` (see ridge.cv_predict)."""
    sets = cfg.ridge.feature_sets
    predictions, candidates, alpha_index = ridge.cv_predict(
        candidate_features(maps, cfg), targets, identities, folds, cfg.ridge.alphas, cfg.ridge.inner_folds, cfg.seed)
    settings = [settings_of(sets[c], "ridge", cfg.ridge.alphas[a]) for c, a in zip(candidates[:, 0], alpha_index[:, 0])]
    return {"predictions": predictions[:, 0].tolist(), "settings": settings}


def cached_cross_val_predict(study: Study, y: np.ndarray, cfg: Config, name: str, label: str = "") -> dict:
    """cross_val_predict, computed once per unchanged inputs (features, ratings, identities, folds, settings)."""
    maps, identities = study.features, study.dataset.identities
    key = provenance.inputs_key(cfg, *maps.values(), y, study.folds, identities.tolist())
    return cache.cached_json(cfg.output.cache_dir / "cv" / f"{name}-{key}.json",
                               lambda: cross_val_predict(maps, y, identities, study.folds, cfg, label=label or name))


def repeated_cross_validation(study: Study, y: np.ndarray, cfg: Config, name: str, predictions: np.ndarray) -> list[dict]:
    """Pooled r and MAE on the configured split (``predictions``) and on cv.repeats - 1 further splits.

    Why: with few identities one split's r moves by a tenth or more with the split (3DSK in
    benchmarks/results/real_data.md). The split with seed + k is exactly the CV that ``seed: seed + k``
    runs (outer folds, inner folds, fits) on the same features, so any split can be re-run alone
    (random VGG16 weights, for tests, are drawn from the seed: there the splits keep the configured
    seed's). The permutation test and the saved model stay with the configured split."""
    splits = [predictions]
    for k in range(1, cfg.cv.repeats):
        split_cfg = dataclasses.replace(cfg, seed=cfg.seed + k)
        split = dataclasses.replace(study, folds=outer_folds(study.dataset, split_cfg))
        label = f"{name} split {k + 1}/{cfg.cv.repeats}"
        splits.append(np.array(cached_cross_val_predict(split, y, split_cfg, name, label)["predictions"]))
    return [{"repeat": k + 1, "seed": cfg.seed + k, "pearson_r": metrics.pearson_r(y, p), "mae": metrics.mae(y, p)}
            for k, p in enumerate(splits)]


def permutation_null(study: Study, y: np.ndarray, cfg: Config, name: str) -> np.ndarray:
    """Pooled CV r of the whole procedure (inner selection included) for every identity permutation.

    ridge: all permutations solved at once. mlp: cross-validated Keras fits, one per permutation."""
    permuted = metrics.permuted_by_identity(y, study.dataset.identities, cfg.permutation.n_permutations, cfg.seed)
    identities, folds, maps = study.dataset.identities, study.folds, study.features
    if cfg.model.head == "ridge":
        predictions, _, _ = ridge.cv_predict(candidate_features(maps, cfg), permuted, identities, folds,
                                             cfg.ridge.alphas, cfg.ridge.inner_folds, cfg.seed)
        return metrics.pearson_columns(permuted, predictions)
    scores = []
    progress = outputs.Progress(permuted.shape[1], f"{name} permutations", "fits")
    for column in permuted.T:
        scores.append(metrics.pearson_r(column, np.array(cross_val_predict(maps, column, identities, folds, cfg)["predictions"])))
        progress.update()
    return np.array(scores)
