"""Do heatmaps point at what the model uses? Region perturbation (pixel flipping) for a regression.

Patches of the image (PATCHES_PER_SIDE x PATCHES_PER_SIDE) are replaced, step by step, by the
same patches of a reference, and the drop of the predicted rating (original - perturbed) is
tracked. AOPC, the mean drop over the steps, is compared between orders:

- most relevant first (MoRF: largest summed signed relevance first) and least relevant first
  (LeRF, the reverse) for each method in explain.faithfulness_analyzers;
- explain.faithfulness_random_orders random orders, averaged: one baseline per model and image,
  shared by every method (it does not depend on any heatmap).

A faithful map gives AOPC_MoRF > AOPC_random > AOPC_LeRF.

**Reference: a Gaussian-blurred copy of the same image** (sigma = BLUR_SIGMA_PER_SIDE x the image
side, 10 px at 224 px as in Fong & Vedaldi 2017). A flat colour (the ImageNet mean, used
before) stamps sharp grey squares on the face, a pattern VGG16 never saw on a face: the rating
then moves for any removal, and the test measures the artefact as much as the evidence. The
blurred copy keeps colour, lighting and the coarse layout of the face and removes the detail
(edges of eyes, brows, mouth) the features respond to, so the perturbed images stay near faces.
The aligned mean face would be closer still, but needs landmarks and a warp for every image;
blur works on every dataset, with or without landmarks.

**Test.** Images are explain.faithfulness_images, seeded, spread over as many identities as
possible (spread_sample). Images of one face are not independent, so each image's
d = AOPC_MoRF - AOPC_random is averaged within its identity first, and a one-sided sign-flip
permutation test over identities (metrics.sign_flip_p) asks whether the mean d is above 0.
Holm corrects over every model x method of the run; beats_random = mean d > 0 and
p_holm <= explain.significance_level. LeRF is reported beside it, not tested. Every mean in
the tables is over identities (each identity's images averaged first).

iNNvestigate's Perturbation tools score classifiers (accuracy via test_on_batch), so this small
loop does the regression version.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from facetraits import cli, data, explanations, metrics, model
from facetraits.backend import reset_graph

PATCHES_PER_SIDE = 16
BLUR_SIGMA_PER_SIDE = 10 / 224  # Gaussian sigma of the reference, as a share of the image side
REFERENCE = "blur"
SIGN_FLIPS = 9999  # random sign vectors of the identity-level test (smallest p 1e-4; exact below 14 identities)
RANDOM = "random"  # analyzer and order name of the random baseline in the curves table
COLUMNS = ("group", "trait", "analyzer", "aopc_morf", "aopc_lerf", "aopc_random", "morf_minus_random",
           "random_minus_lerf", "p_value", "p_holm", "beats_random", "n_images", "n_identities", "n_random_orders",
           "reference", "blur_sigma_px")


def spread_sample(identities: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of n images (sorted), seeded: one image of every identity in random order, then a
    second of each, and so on, so n images cover as many identities as they can."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(identities))
    owner = pd.Series(np.asarray(identities)[shuffled])
    names = owner.unique()
    identity_rank = owner.map(dict(zip(names, rng.permutation(len(names)))))
    image_rank = owner.groupby(owner).cumcount()  # 0 for an identity's first image in the shuffle
    return np.sort(shuffled[np.lexsort((identity_rank.to_numpy(), image_rank.to_numpy()))[:n]])


def blurred(images: np.ndarray) -> np.ndarray:
    """The reference: each RGB image blurred with sigma BLUR_SIGMA_PER_SIDE x its side (float32)."""
    sigma = BLUR_SIGMA_PER_SIDE * images.shape[1]
    return ndimage.gaussian_filter(np.asarray(images, dtype=np.float32), sigma=(0, sigma, sigma, 0), mode="nearest")


def patch_order(relevance: np.ndarray, patch: int) -> np.ndarray:
    """Patch indices of one (H, W) map, most relevant (largest summed relevance) first."""
    h, w = relevance.shape
    grid = relevance[: h // patch * patch, : w // patch * patch].reshape(h // patch, patch, w // patch, patch)
    return np.argsort(-grid.sum(axis=(1, 3)).ravel(), kind="stable")


def perturb(x: np.ndarray, reference: np.ndarray, orders: np.ndarray, removed: int, patch: int) -> np.ndarray:
    """x with the first `removed` patches of each image's order taken from the reference."""
    per_side = x.shape[1] // patch
    chosen = np.zeros(orders.shape, bool)
    np.put_along_axis(chosen, orders[:, :removed], True, axis=1)
    mask = np.zeros(x.shape[:3], bool)
    mask[:, :per_side * patch, :per_side * patch] = \
        chosen.reshape(len(x), per_side, per_side).repeat(patch, axis=1).repeat(patch, axis=2)
    return np.where(mask[..., None], reference, x)


def removal_curves(keras_model, images: np.ndarray, relevance: dict, steps: int, random_orders: int, seed: int) -> dict:
    """Prediction drop after each step, (n_images, steps + 1), keyed (method, "morf"), (method, "lerf")
    for each method's maps in `relevance`, and (RANDOM, RANDOM): the mean over `random_orders`
    seeded random orders. The last step replaces every patch whatever the order, so it is predicted once."""
    x, reference = model.preprocess(images), model.preprocess(blurred(images))
    patch = max(1, x.shape[1] // PATCHES_PER_SIDE)
    n_patches = (x.shape[1] // patch) ** 2

    def predict(batch):
        return keras_model.predict(batch, verbose=0).ravel()

    original = predict(x)
    last = original - predict(perturb(x, reference, np.tile(np.arange(n_patches), (len(x), 1)), n_patches, patch))

    def curve(orders):
        drop = np.zeros((len(x), steps + 1))
        drop[:, steps] = last
        for step in range(1, steps):
            drop[:, step] = original - predict(perturb(x, reference, orders, round(step / steps * n_patches), patch))
        return drop

    curves = {}
    for method, maps in relevance.items():
        morf = np.stack([patch_order(r, patch) for r in maps])
        curves[(method, "morf")], curves[(method, "lerf")] = curve(morf), curve(morf[:, ::-1])
    rng = np.random.default_rng(seed)
    curves[(RANDOM, RANDOM)] = np.mean([curve(np.stack([rng.permutation(n_patches) for _ in x]))
                                        for _ in range(random_orders)], axis=0)
    return curves


def aopc(drop: np.ndarray) -> np.ndarray:
    """Area over the perturbation curve per image: mean drop over the perturbation steps."""
    return drop[:, 1:].mean(axis=1)


def identity_means(values: np.ndarray, identities: np.ndarray) -> pd.DataFrame:
    """Rows of `values` (one per image) averaged within identity: one row per identity."""
    return pd.DataFrame(np.asarray(values).reshape(len(values), -1)).groupby(np.asarray(identities)).mean()


def compare(morf: np.ndarray, lerf: np.ndarray, random: np.ndarray, identities: np.ndarray, seed: int) -> dict:
    """AOPCs of one method and the random baseline, means over identities, and the one-sided
    sign-flip p over identities that MoRF removes more of the rating than random order."""
    per_identity = identity_means(np.c_[aopc(morf), aopc(lerf), aopc(random)], identities)
    a_morf, a_lerf, a_random = per_identity.to_numpy().T
    return {"aopc_morf": a_morf.mean(), "aopc_lerf": a_lerf.mean(), "aopc_random": a_random.mean(),
            "morf_minus_random": (a_morf - a_random).mean(), "random_minus_lerf": (a_random - a_lerf).mean(),
            "p_value": metrics.sign_flip_p(a_morf - a_random, SIGN_FLIPS, seed),
            "n_images": len(identities), "n_identities": len(per_identity)}


def run_model(run, dataset, group: str, trait: str, stored) -> tuple[list, list]:
    """Summary rows (one per method, before correction) and curve tables of one model.

    The configured analyzer's maps are the ones this run stored (`stored`, every image), the
    other methods' are computed for the sample."""
    cfg, settings = run.config, run.config.explain
    model_path = cfg.output.models_dir / f"{cli.model_name(group, trait)}.h5"
    sample = spread_sample(dataset.identities, settings.faithfulness_images, cfg.seed)
    images = data.load_images([dataset.paths[i] for i in sample], cfg.model.input_size)
    identities = dataset.identities[sample]
    maps = {}
    for method in settings.faithfulness_analyzers:
        if method == settings.analyzer:
            maps[method] = np.asarray(stored[sample])
            continue
        reset_graph(cfg.seed)  # a fresh graph per analyzer keeps the graph (and its build time) small
        explainer = explanations.Explainer(model.load_full_model(model_path), method)
        maps[method] = np.concatenate([explainer(images[i:i + settings.batch_size])
                                       for i in range(0, len(images), settings.batch_size)])
    reset_graph(cfg.seed)
    curves = removal_curves(model.load_full_model(model_path), images, maps, settings.faithfulness_steps,
                            settings.faithfulness_random_orders, cfg.seed)
    rows = []
    for method in settings.faithfulness_analyzers:
        result = compare(curves[(method, "morf")], curves[(method, "lerf")], curves[(RANDOM, RANDOM)], identities,
                         cfg.seed)
        rows.append({"group": group, "trait": trait, "analyzer": method, **result,
                     "n_random_orders": settings.faithfulness_random_orders, "reference": REFERENCE,
                     "blur_sigma_px": BLUR_SIGMA_PER_SIDE * cfg.model.input_size})
        print(f"{group}__{trait} {method}: AOPC most relevant first {result['aopc_morf']:.3f}, least relevant first "
              f"{result['aopc_lerf']:.3f}, random {result['aopc_random']:.3f} (p = {result['p_value']:.3g}, "
              f"{result['n_identities']} identities)")
    fractions = np.arange(settings.faithfulness_steps + 1) / settings.faithfulness_steps
    lines = [pd.DataFrame({"group": group, "trait": trait, "analyzer": method, "order": order,
                           "fraction_removed": fractions, "mean_change": identity_means(drop, identities).mean().to_numpy()})
             for (method, order), drop in curves.items()]
    return rows, lines


def summarise(rows: list, significance_level: float) -> pd.DataFrame:
    """faithfulness.csv: Holm over every model x method of the run, and the beats_random verdict."""
    table = pd.DataFrame(rows)
    table["p_holm"] = metrics.holm(table.p_value)
    table["beats_random"] = (table.morf_minus_random > 0) & (table.p_holm <= significance_level)
    return table[list(COLUMNS)]
