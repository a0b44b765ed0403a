"""Do heatmaps point at what the model uses? Region perturbation (pixel flipping) for a regression.

Patches of the image (PATCHES_PER_SIDE x PATCHES_PER_SIDE) are replaced, step by step, by the
same patches of a reference, and the drop of the predicted rating (original - perturbed) is
tracked. AOPC, the mean drop over the steps, is compared between orders:

- most relevant first (MoRF: largest summed signed relevance first) and least relevant first
  (LeRF, the reverse) for each method in explain.faithfulness_analyzers;
- explain.faithfulness_random_orders random orders, averaged: one baseline per model and image,
  shared by every method (it does not depend on any heatmap).

A faithful map gives AOPC_MoRF > AOPC_random > AOPC_LeRF.

**Two tests, because random order is not a neutral baseline.** Every replaced patch leaves edges
at its border, and conv features respond to edges: a random order scatters patches (many borders),
while a map's order removes neighbouring patches together (few borders). On the demo, with hard
patch borders, the random mosaic alone moved predictions by up to 3.6 rating points at half the
image replaced (benchmarks/results/faithfulness.md), so "MoRF beats random" mixed the map's
faithfulness with how clustered it is. Patches are therefore blended in over a soft border
(perturb), which weakens the new edges but cannot remove them; explain.faithfulness_random:
smooth goes further and draws the random orders from smoothed noise whose neighbour
autocorrelation matches the maps' (the first model's maps of the configured analyzer, or of the
first faithfulness analyzer when that is not among them; every model shares one set of orders):
random orders then leave as few borders as a map's order does. MoRF against LeRF has no such
confound: after k of n steps MoRF has replaced exactly the patches LeRF keeps after n - k, so
both curves together cross the same borders. Both are tested: beats_random (MoRF - random,
the issue's criterion) and separates (AOPC_MoRF - AOPC_LeRF, the "area between the perturbation
curves" of Schulz et al. 2020).

**Reference (explain.faithfulness_reference).** A removed patch should become what the map
measures the face against, or the test scores the reference as much as the map. The head's
centring layer makes the relevance of the features a comparison with the *mean* feature map, so
the default, ``mean_face``, is the dataset's aligned mean face (every face warped onto the mean
landmark shape by a similarity transform, averaged, and warped back onto each face; border pixels
the warp does not cover take the plain mean image). It needs landmarks; images without them are
left out of the sample. ``blur`` (a Gaussian-blurred copy, sigma = BLUR_SIGMA_PER_SIDE x the image
side, 10 px at 224 px as in Fong & Vedaldi 2017) needs none and keeps the face's colour and layout.
Neither is neutral for every model: on the demo, replacing the whole image by the mean face changed
the predictions by -0.05 points (strong models) and +1.0 / +1.15 (warm), by the blurred copy by
+0.9 (strong) and -0.1 / -2.8 (ASD / NT warm); and the two references pass different tests
(benchmarks/results/faithfulness.md). A flat colour (the ImageNet mean) was
dropped earlier: it stamps grey squares on the face, a pattern VGG16 never saw on a face.

**Cost.** Every model with the same frozen VGG16 below its head sees the same randomly perturbed
images, so their conv maps (at the shallowest layer a head reads) are computed once and every
model's head reads them; only the map-ordered perturbations are model-specific.

**Test.** Images are explain.faithfulness_images, seeded, spread over as many identities as
possible (spread_sample). Images of one face are not independent, so each image's
d = AOPC_MoRF - AOPC_random (and AOPC_MoRF - AOPC_LeRF) is averaged within its identity first,
and a one-sided sign-flip permutation test over identities (metrics.sign_flip_p) asks whether the
mean d is above 0. Holm corrects each of the two tests over every model x method of the run;
beats_random = mean d > 0 and p_holm <= explain.significance_level (separates: the same with
p_holm_morf_lerf). Every mean in the tables is over identities (each identity's images averaged
first).

iNNvestigate's Perturbation tools score classifiers (accuracy via test_on_batch), so this small
loop does the regression version.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

import hashlib
import sys

from facetraits import alignment, cli, data, explanations, landmarks, metrics, model, saliency
from facetraits.backend import keras, reset_graph
from facetraits.config import VGG16_LAYERS

PATCHES_PER_SIDE = 16
FEATHER_PER_PATCH = 0.25  # soft patch border: Gaussian sigma as a share of the patch side (3.5 px at 224 px)
BLUR_SIGMA_PER_SIDE = 10 / 224  # Gaussian sigma of the reference, as a share of the image side
PREDICT_BATCH = 16
SIGN_FLIPS = 9999  # random sign vectors of the identity-level test (smallest p 1e-4; exact below 14 identities)
RANDOM = "random"  # analyzer and order name of the random baseline in the curves table
COLUMNS = ("group", "trait", "analyzer", "aopc_morf", "aopc_lerf", "aopc_random", "morf_minus_random",
           "random_minus_lerf", "p_value", "p_holm", "beats_random", "morf_minus_lerf", "p_morf_lerf",
           "p_holm_morf_lerf", "separates", "n_images", "n_identities", "n_random_orders",
           "reference", "blur_sigma_px", "random_baseline", "random_sigma_patches")
SIGMAS = np.arange(0.0, 4.001, 0.05)  # candidate smoothing of the smooth random baseline, in patches
NOISE_FIELDS = 200  # noise fields per candidate when matching the maps' autocorrelation


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


def patch_sums(relevance: np.ndarray, patch: int) -> np.ndarray:
    """(H // patch, W // patch): one (H, W) map's relevance summed per patch (a ragged edge is dropped)."""
    h, w = relevance.shape
    return relevance[: h // patch * patch, : w // patch * patch].reshape(h // patch, patch, w // patch, patch) \
        .sum(axis=(1, 3))


def patch_order(relevance: np.ndarray, patch: int) -> np.ndarray:
    """Patch indices of one (H, W) map, most relevant (largest summed relevance) first."""
    return np.argsort(-patch_sums(relevance, patch).ravel(), kind="stable")


def neighbour_autocorrelation(fields: np.ndarray) -> float:
    """Mean correlation of horizontally and vertically neighbouring cells of (n, k, k) fields: how
    clustered a map's patch order is (near 0 for a shuffle)."""
    f = fields - fields.mean(axis=(1, 2), keepdims=True)
    products = (f[:, :, 1:] * f[:, :, :-1]).sum(axis=(1, 2)) + (f[:, 1:] * f[:, :-1]).sum(axis=(1, 2))
    return float(np.mean(products / np.maximum(2 * (f * f).sum(axis=(1, 2)), 1e-12)))


def matched_sigma(target: float, side: int, seed: int) -> float:
    """The smoothing (Gaussian sigma, in patches) whose smoothed noise on a side x side grid is as
    clustered as `target` (neighbour_autocorrelation)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((NOISE_FIELDS, side, side))
    achieved = [neighbour_autocorrelation(ndimage.gaussian_filter(noise, (0, s, s)) if s else noise) for s in SIGMAS]
    return float(SIGMAS[np.argmin(np.abs(np.array(achieved) - target))])


def smooth_orders(n: int, side: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(n, side * side) patch orders, largest first, of Gaussian-smoothed white noise."""
    noise = ndimage.gaussian_filter(rng.standard_normal((n, side, side)), (0, sigma, sigma))
    return np.argsort(-noise.reshape(n, -1), axis=1, kind="stable")


def perturb(x: np.ndarray, reference: np.ndarray, orders: np.ndarray, removed: int, patch: int) -> np.ndarray:
    """x with the first `removed` patches of each image's order taken from the reference, blended in
    over a soft border (Gaussian, sigma FEATHER_PER_PATCH x the patch side): a hard patch border is an
    edge the face never had, and conv features respond to edges (see the module's "Two tests")."""
    per_side = x.shape[1] // patch
    chosen = np.zeros(orders.shape, bool)
    np.put_along_axis(chosen, orders[:, :removed], True, axis=1)
    mask = np.zeros(x.shape[:3], np.float32)
    mask[:, :per_side * patch, :per_side * patch] = \
        chosen.reshape(len(x), per_side, per_side).repeat(patch, axis=1).repeat(patch, axis=2)
    sigma = FEATHER_PER_PATCH * patch
    weight = ndimage.gaussian_filter(mask, sigma=(0, sigma, sigma), mode="nearest")[..., None]
    return x + weight * (reference - x)


def warp_rgb(image: np.ndarray, source_points, target_points, size: int) -> np.ndarray:
    """An (H, W, 3) image moved so that source_points land on target_points (alignment.warp_to_template per channel)."""
    return np.stack([alignment.warp_to_template(image[..., c], source_points, target_points, (size, size))
                     for c in range(image.shape[-1])], axis=-1)


def mean_face_references(paths, points: list, chosen, size: int, batch: int = 64) -> np.ndarray:
    """The aligned mean face of all images (`points`: their landmarks on the size x size grid),
    warped onto each chosen image's landmarks; where the warp has no data, the plain mean image."""
    template = alignment.mean_face(points)
    total, cover, plain = np.zeros((size, size, 3)), np.zeros((size, size)), np.zeros((size, size, 3))
    ones = np.ones((size, size))
    for start in range(0, len(paths), batch):
        for image, face in zip(data.load_images(paths[start:start + batch], size), points[start:start + batch]):
            total += warp_rgb(image.astype(float), face, template, size)
            cover += alignment.warp_to_template(ones, face, template, (size, size))
            plain += image
    aligned, plain = total / np.maximum(cover, 1e-9)[..., None], plain / len(paths)
    covered = (cover > 0.5 * len(paths)).astype(float)
    references = []
    for k in chosen:
        inside = alignment.warp_to_template(covered, template, points[k], (size, size))[..., None]
        references.append(warp_rgb(aligned * covered[..., None], template, points[k], size) + plain * (1 - inside))
    return np.stack(references).astype(np.float32)


def cut_layer(keras_model) -> str:
    """The shallowest layer whose output the head reads: below it the model is the frozen VGG16, the
    same in every model with the same weights; from it on the model is its own."""
    order = [layer.name for layer in keras_model.layers]
    shared = set(VGG16_LAYERS) | {keras_model.layers[0].name}
    read = set()
    for layer in keras_model.layers:
        if layer.name not in shared:
            inbound = layer.inbound_nodes[0].inbound_layers
            read |= {source.name for source in (inbound if isinstance(inbound, list) else [inbound])} & shared
    return min(read, key=order.index)


def split_at_cut(keras_model):
    """(cut layer name, trunk, head): graph-mode functions image -> conv maps at the cut -> rating,
    called as f([batch])[0] (see batched); a head that reads the image itself has an identity trunk."""
    cut = cut_layer(keras_model)
    if cut == keras_model.layers[0].name:
        def trunk(inputs):
            return inputs
    else:
        trunk = keras.backend.function([keras_model.input], [keras_model.get_layer(cut).output])
    return cut, trunk, keras.backend.function([keras_model.get_layer(cut).output], [keras_model.output])


def trunk_digest(keras_model, cut: str) -> str:
    """sha256 of the weights below (and at) the cut: models with the same digest share the trunk's maps."""
    digest = hashlib.sha256()
    for layer in keras_model.layers[:[layer.name for layer in keras_model.layers].index(cut) + 1]:
        for array in layer.get_weights():
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def batched(function, x: np.ndarray) -> np.ndarray:
    return np.concatenate([function([x[i:i + PREDICT_BATCH]])[0] for i in range(0, len(x), PREDICT_BATCH)])


def aopc(drop: np.ndarray) -> np.ndarray:
    """Area over the perturbation curve per image: mean drop over the perturbation steps."""
    return drop[:, 1:].mean(axis=1)


def compare(morf: np.ndarray, lerf: np.ndarray, random: np.ndarray, identities: np.ndarray, seed: int) -> dict:
    """AOPCs of one method and the random baseline, means over identities, and the one-sided
    sign-flip ps over identities that MoRF removes more of the rating than random order, and than LeRF."""
    _, per_identity = saliency.identity_means(np.c_[aopc(morf), aopc(lerf), aopc(random)], identities)
    a_morf, a_lerf, a_random = per_identity.T
    return {"aopc_morf": a_morf.mean(), "aopc_lerf": a_lerf.mean(), "aopc_random": a_random.mean(),
            "morf_minus_random": (a_morf - a_random).mean(), "random_minus_lerf": (a_random - a_lerf).mean(),
            "p_value": metrics.sign_flip_p(a_morf - a_random, SIGN_FLIPS, seed),
            "morf_minus_lerf": (a_morf - a_lerf).mean(),
            "p_morf_lerf": metrics.sign_flip_p(a_morf - a_lerf, SIGN_FLIPS, seed),
            "n_images": len(identities), "n_identities": len(per_identity)}


class Test:
    """One run's faithfulness test: the sampled images, their reference and random orders, and the
    random-order perturbations' conv maps (per trunk), shared by every model the run explains."""

    def __init__(self, cfg, images: np.ndarray, reference: np.ndarray, identities, sample=None):
        """`images` and their `reference` (RGB, 0-255), the images' identities and, for run_model, their
        indices in the dataset (`sample`). Random orders come from cfg.seed."""
        self.cfg, self.settings = cfg, cfg.explain
        self.images, self.identities, self.sample = images, np.asarray(identities), sample
        self.x, self.reference = model.preprocess(images), model.preprocess(reference)
        self.patch = max(1, self.x.shape[1] // PATCHES_PER_SIDE)
        self.n_patches = (self.x.shape[1] // self.patch) ** 2
        self.random_sigma = np.nan  # smooth baseline: set from the first model's maps (random_orders_for)
        self.random_orders = None
        if self.settings.faithfulness_random == "patches":
            rng = np.random.default_rng(cfg.seed)
            self.random_orders = [np.stack([rng.permutation(self.n_patches) for _ in self.x])
                                  for _ in range(self.settings.faithfulness_random_orders)]
        self.random_maps = {}  # trunk digest -> [order][step - 1] conv maps at the cut

    def random_orders_for(self, relevance: dict) -> list:
        """The random orders, shared by every model; for the smooth baseline drawn once, as clustered
        as these (the first model's) maps of the configured analyzer."""
        if self.random_orders is None:
            maps = relevance.get(self.settings.analyzer, next(iter(relevance.values())))
            sums = np.stack([patch_sums(m, self.patch) for m in maps])
            side = sums.shape[1]
            self.random_sigma = matched_sigma(neighbour_autocorrelation(sums), side, self.cfg.seed)
            rng = np.random.default_rng(self.cfg.seed)
            self.random_orders = [smooth_orders(len(self.x), side, self.random_sigma, rng)
                                  for _ in range(self.settings.faithfulness_random_orders)]
        return self.random_orders

    @classmethod
    def for_dataset(cls, cfg, dataset) -> "Test":
        """The seeded sample of explain.faithfulness_images images and explain.faithfulness_reference."""
        settings, size = cfg.explain, cfg.model.input_size
        usable = np.arange(len(dataset))
        if settings.faithfulness_reference == "mean_face":
            points, missing = landmarks.dataset_landmarks(cfg, dataset, (size, size))
            landmarks.require_some(cfg, missing, len(dataset), "the mean_face faithfulness reference "
                                   "(explain.faithfulness_reference=blur needs none)")
            if missing:
                print(f"faithfulness: {len(missing)} image(s) without landmarks left out of the sample "
                      f"(mean_face reference)", file=sys.stderr)
            usable = np.array([i for i, name in enumerate(dataset.images) if name in points])
        sample = usable[spread_sample(dataset.identities[usable], settings.faithfulness_images, cfg.seed)]
        images = data.load_images([dataset.paths[i] for i in sample], size)
        if settings.faithfulness_reference == "mean_face":
            reference = mean_face_references([dataset.paths[i] for i in usable],
                                             [points[dataset.images[i]] for i in usable],
                                             np.searchsorted(usable, sample), size)
        else:
            reference = blurred(images)
        return cls(cfg, images, reference, dataset.identities[sample], sample)

    def perturbed(self, orders: np.ndarray, step: int) -> np.ndarray:
        removed = round(step / self.settings.faithfulness_steps * self.n_patches)
        return perturb(self.x, self.reference, orders, removed, self.patch)

    def curves(self, keras_model, relevance: dict) -> dict:
        """Prediction drop after each step, (n_images, steps + 1), keyed (method, "morf"), (method, "lerf")
        for each method's maps in `relevance`, and (RANDOM, RANDOM): the mean over the random orders.
        The last step replaces every patch whatever the order, so it is predicted once."""
        steps = self.settings.faithfulness_steps
        cut, trunk, head = split_at_cut(keras_model)

        def predict(x):
            return batched(head, batched(trunk, x)).ravel()

        original = predict(self.x)
        last = original - predict(self.perturbed(np.tile(np.arange(self.n_patches), (len(self.x), 1)), steps))

        def curve(drops):
            return np.column_stack([np.zeros(len(self.x)), *drops, last])

        curves = {}
        for method, maps in relevance.items():
            morf = np.stack([patch_order(r, self.patch) for r in maps])
            for name, orders in (("morf", morf), ("lerf", morf[:, ::-1])):
                curves[(method, name)] = curve([original - predict(self.perturbed(orders, step))
                                                for step in range(1, steps)])
        key = trunk_digest(keras_model, cut)
        if key not in self.random_maps:
            self.random_maps[key] = [[batched(trunk, self.perturbed(orders, step)) for step in range(1, steps)]
                                     for orders in self.random_orders_for(relevance)]
        curves[(RANDOM, RANDOM)] = np.mean([curve([original - batched(head, maps).ravel() for maps in per_order])
                                            for per_order in self.random_maps[key]], axis=0)
        return curves

    def run_model(self, group: str, trait: str, stored) -> tuple[list, list]:
        """Summary rows (one per method, before correction) and curve tables of one model.

        The configured analyzer's maps are the ones this run stored (`stored`, every image), the
        other methods' are computed for the sample."""
        if self.sample is None:
            raise ValueError("run_model needs the images' indices in the dataset: build the test with Test.for_dataset")
        cfg, settings = self.cfg, self.settings
        model_path = cli.model_path(cfg, group, trait)
        maps = {}
        for method in settings.faithfulness_analyzers:
            if method == settings.analyzer:
                maps[method] = np.asarray(stored[self.sample])
                continue
            reset_graph(cfg.seed)  # a fresh graph per analyzer keeps the graph (and its build time) small
            explainer = explanations.Explainer(model.load_full_model(model_path), method)
            maps[method] = np.concatenate([explainer(self.images[i:i + settings.batch_size])
                                           for i in range(0, len(self.images), settings.batch_size)])
        reset_graph(cfg.seed)
        curves = self.curves(model.load_full_model(model_path), maps)
        blur_px = BLUR_SIGMA_PER_SIDE * cfg.model.input_size if settings.faithfulness_reference == "blur" else np.nan
        rows = []
        for method in settings.faithfulness_analyzers:
            result = compare(curves[(method, "morf")], curves[(method, "lerf")], curves[(RANDOM, RANDOM)],
                             self.identities, cfg.seed)
            rows.append({"group": group, "trait": trait, "analyzer": method, **result,
                         "n_random_orders": settings.faithfulness_random_orders,
                         "reference": settings.faithfulness_reference, "blur_sigma_px": blur_px,
                         "random_baseline": settings.faithfulness_random, "random_sigma_patches": self.random_sigma})
            print(f"{group}__{trait} {method}: AOPC most relevant first {result['aopc_morf']:.3f}, least relevant "
                  f"first {result['aopc_lerf']:.3f}, random {result['aopc_random']:.3f} (MoRF > random p = "
                  f"{result['p_value']:.3g}, MoRF > LeRF p = {result['p_morf_lerf']:.3g}, {result['n_identities']} "
                  f"identities)")
        fractions = np.arange(settings.faithfulness_steps + 1) / settings.faithfulness_steps
        lines = [pd.DataFrame({"group": group, "trait": trait, "analyzer": method, "order": order,
                               "fraction_removed": fractions,
                               "mean_change": np.nanmean(saliency.identity_means(drop, self.identities)[1], axis=0)})
                 for (method, order), drop in curves.items()]
        return rows, lines

def summarise(rows: list, significance_level: float) -> pd.DataFrame:
    """faithfulness.csv: Holm over every model x method of the run, and the beats_random and separates verdicts."""
    table = pd.DataFrame(rows)
    table["p_holm"] = metrics.holm(table.p_value)
    table["beats_random"] = (table.morf_minus_random > 0) & (table.p_holm <= significance_level)
    table["p_holm_morf_lerf"] = metrics.holm(table.p_morf_lerf)
    table["separates"] = (table.morf_minus_lerf > 0) & (table.p_holm_morf_lerf <= significance_level)
    return table[list(COLUMNS)]
