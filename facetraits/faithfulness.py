"""Do heatmaps point at what the model uses? Region perturbation (pixel flipping) for regression.

Patches are replaced by the ImageNet mean colour (0 after preprocessing) in order of their
relevance, most relevant first (MoRF), and the drop of the predicted rating is tracked; the same
is done in random order. AOPC, the mean drop over the steps, must be larger for MoRF than for
random order if the heatmap is faithful. iNNvestigate's Perturbation tools score classifiers
(accuracy via test_on_batch), so this small loop does the regression version.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from facetraits import model

PATCHES_PER_SIDE = 16


def patch_order(relevance: np.ndarray, patch: int) -> np.ndarray:
    """Patch indices of one (H, W) map, most relevant (largest summed relevance) first."""
    h, w = relevance.shape
    grid = relevance[: h // patch * patch, : w // patch * patch].reshape(h // patch, patch, w // patch, patch)
    return np.argsort(-grid.sum(axis=(1, 3)).ravel(), kind="stable")


def removal_curves(keras_model, images: np.ndarray, relevance: np.ndarray, steps: int, seed: int):
    """Prediction drop after each step, (n_images, steps + 1), for MoRF and for random order."""
    x = model.preprocess(images)
    size = x.shape[1]
    patch = max(1, size // PATCHES_PER_SIDE)
    per_side = size // patch
    n_patches = per_side * per_side
    rng = np.random.default_rng(seed)
    original = keras_model.predict(x, verbose=0).ravel()
    curves = {}
    for order_name in ("morf", "random"):
        orders = [patch_order(r, patch) if order_name == "morf" else rng.permutation(n_patches) for r in relevance]
        drop = np.zeros((len(images), steps + 1))
        for step in range(1, steps + 1):
            perturbed = x.copy()
            removed = int(round(step / steps * n_patches))
            for i, order in enumerate(orders):
                for index in order[:removed]:
                    row, column = divmod(int(index), per_side)
                    perturbed[i, row * patch:(row + 1) * patch, column * patch:(column + 1) * patch] = 0.0
            drop[:, step] = original - keras_model.predict(perturbed, verbose=0).ravel()
        curves[order_name] = drop
    return curves["morf"], curves["random"]


def aopc(drop: np.ndarray) -> np.ndarray:
    """Area over the perturbation curve per image: mean drop over the perturbation steps."""
    return drop[:, 1:].mean(axis=1)


def compare_to_random(morf: np.ndarray, random: np.ndarray) -> dict:
    """AOPC of relevance order vs random order, with a paired Wilcoxon test over images."""
    a, b = aopc(morf), aopc(random)
    difference = a - b
    p_value = float(stats.wilcoxon(difference).pvalue) if len(difference) > 1 and np.any(difference != 0) else float("nan")
    return {"aopc_morf": float(a.mean()), "aopc_random": float(b.mean()), "aopc_difference": float(difference.mean()),
            "p_value": p_value, "beats_random": bool(difference.mean() > 0 and p_value < 0.05), "n_images": len(a)}
