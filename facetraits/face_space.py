"""Face space: a t-SNE map of the features each model's head reads, coloured by its group's ratings.

The reference study's stated next step: do the faces a group rates high (or low) sit together in
the space the model sees faces in? One panel per model, because each model reads its own feature
set (the one its inner CV chose: `settings` in models/<group>__<trait>.json). t-SNE keeps
neighbourhoods, not distances: clusters and their colours can be read, gaps and axes cannot.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits  # installed with scikit-learn

from facetraits import cli, config, data, features, ridge
from facetraits.data import Dataset

MAX_PERPLEXITY = 30.0  # scikit-learn's default, for large samples


@dataclass
class FaceSpace:
    """One model's map: 2-D positions of every image, its group's ratings, the extremes marked."""
    title: str
    xy: np.ndarray  # (n, 2) t-SNE coordinates
    ratings: np.ndarray  # (n,) mean rating of the model's rater group
    highest: np.ndarray  # indices of the k highest-rated images
    lowest: np.ndarray  # indices of the k lowest-rated images
    perplexity: float


def perplexity_for(n: int) -> float:
    """scikit-learn's default 30 for large samples, n / 4 for small ones: perplexity must stay
    below n, and about 3 x perplexity neighbours are what t-SNE balances per point."""
    return float(min(MAX_PERPLEXITY, max(1.0, (n - 1) / 4)))


def embed(x: np.ndarray, seed: int) -> np.ndarray:
    """(n, features) -> (n, 2) t-SNE of the standardised features (as the ridge sees them), seeded.

    One OpenMP thread: Barnes-Hut t-SNE's threads spin-wait for each other, and on a busy shared
    2-core machine 24 faces took 25 s instead of 0.2 s (500 faces: 5 s on one thread)."""
    mean, sd = ridge.standardisation(np.asarray(x, dtype=np.float64))  # as the head sees them; no zero sd
    z = (x - mean) / sd
    tsne = TSNE(n_components=2, perplexity=perplexity_for(len(z)), init="pca", learning_rate="auto",
                random_state=seed)
    with threadpool_limits(1):
        return tsne.fit_transform(z)


def model_space(maps: dict, dataset: Dataset, group: str, trait: str, settings: dict, cfg: config.Config) -> FaceSpace:
    """The map of one model: its feature set (settings: layers joined by '+', grid) pooled as its head pools."""
    feature_set = config.FeatureSet(tuple(settings["layers"].split("+")), int(settings["grid"]))
    y = dataset.target(group, trait)
    return FaceSpace(f"{cli.model_name(group, trait)}: {feature_set.label()}", embed(features.pooled(maps, feature_set),
                     cfg.seed), y, *data.extremes(y, cfg.explain.n_extremes), perplexity_for(len(y)))


def trained_spaces(maps: dict, dataset: Dataset, models, cfg: config.Config) -> list[FaceSpace]:
    """Every trained model's map, each with the feature set recorded beside its saved model."""
    spaces = []
    for group, trait in models:
        record = cli.model_path(cfg, group, trait).with_suffix(".json")
        spaces.append(model_space(maps, dataset, group, trait, json.loads(record.read_text())["settings"], cfg))
    return spaces
