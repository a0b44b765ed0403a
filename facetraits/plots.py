"""Figures. Each function takes tables/arrays and returns a matplotlib Figure; outputs.save_figure saves it."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def cv_pearson(summary: pd.DataFrame):
    """Pearson r per model: one point per fold, a bar for the pooled r."""
    models = summary[["group", "trait"]].drop_duplicates().to_records(index=False).tolist()
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(models), 3.6))
    for i, (group, trait) in enumerate(models):
        rows = summary[(summary.group == group) & (summary.trait == trait)]
        folds = rows[rows.fold != "all"]
        pooled = rows[rows.fold == "all"].pearson_r.iloc[0]
        ax.bar(i, pooled, color="#9ecae1", width=0.6, label="pooled r" if i == 0 else None)
        jitter = np.linspace(-0.15, 0.15, len(folds))
        ax.scatter(i + jitter, folds.pearson_r, color="#08519c", zorder=3, s=18, label="folds" if i == 0 else None)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(models)), [f"{g}\n{t}" for g, t in models])
    ax.set_ylabel("cross-validated Pearson r")
    ax.set_title("Cross-validated accuracy per rater group x trait")
    ax.legend(frameon=False, fontsize=8)
    return fig


def cv_scatter(ratings: np.ndarray, predictions: np.ndarray, folds: np.ndarray, title: str, r: float):
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(ratings, predictions, c=folds, cmap="tab10", s=10, vmin=0, vmax=9)
    low, high = min(ratings.min(), predictions.min()), max(ratings.max(), predictions.max())
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("mean rating")
    ax.set_ylabel("out-of-fold prediction")
    ax.set_title(f"{title}\npooled r = {r:.2f} (colour = fold)")
    return fig


def permutation_null(null: np.ndarray, observed: float, p_value: float, title: str):
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.hist(null, bins=40, color="#bdbdbd", label=f"shuffled labels (n={len(null)})")
    ax.axvline(observed, color="#cb181d", lw=2, label=f"observed r = {observed:.2f}")
    ax.set_xlabel("cross-validated Pearson r")
    ax.set_ylabel("permutations")
    ax.set_title(f"{title}: p = {p_value:.3g}")
    ax.legend(frameon=False, fontsize=8)
    return fig
