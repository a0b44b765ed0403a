"""Probe on the demo: where the planted drivers are drawn, and a head that sees each face region on its own.

compare_groups.py's region importance (facetraits/importance.py) splits every conv feature over
the face regions its image block covers. On the demo, 8 of 12 unplanted trait x region rows still
differ between the groups at p_fwer < .05 (benchmarks/results/group_comparison.md). Two questions:

1. Can the pixels explain it? The demo's faces are re-drawn with one driver moved by half an SD
   (everything else kept) and the |pixel change| is summed per face region (facetraits/demo.py
   draws them; the regions are the ones compare_groups.py uses, from each image's landmarks).
2. Does a head without receptive fields across regions keep the drivers apart? Each region of each
   image is shown on its own (region kept, the rest of the image = the dataset's mean image, hard
   border) and goes through the frozen VGG16; each ridge candidate pools these maps as it pools
   the whole image's, and reads all regions' pooled features side by side. A region's signed
   relevance is then exactly w_r . z_r (its own features only). Feature set and penalty are chosen
   as compare_groups.py chooses them (inner CV on all raters' mean rating); the same rater
   permutations, bootstrap, p-values and checks follow (benchmarks/group_comparison.py's), with the
   split-half calibration on a smaller number of splits.

A probe, not part of compare_groups.py: it costs one VGG16 pass per image and region (8 x the
images), the head it tests is not the one train_regression.py saves and LRP explains, and the
region masks themselves follow each face's landmarks, so a mask's outline carries the geometry of
its neighbours (the cheeks' outer edge is the jaw line, the forehead's lower edge the brows).

    python benchmarks/region_only_features.py --set output.cache_dir=$SCRATCH/cache
"""
from __future__ import annotations

import math
import time

import _common  # first: puts the repository root on sys.path
import group_comparison as group_benchmark  # benchmarks/group_comparison.py: planted checks, calibration
import numpy as np
import pandas as pd

from facetraits import (config, data, demo, features, group_comparison, importance, model, outputs, regions, ridge,
                        training)
from facetraits.backend import keras

BATCH = 25
DRIVER_STEP_SD = 0.5  # how far each driver moves when its pixels are located


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "region_only_features")
    parser.add_argument("--splits", type=int, default=100, help="split-half calibration splits per group x trait")
    parser.add_argument("--split-permutations", type=int, default=1000, help="rater permutations per split")
    parser.add_argument("--pixel-every", type=int, default=5, help="re-draw every k-th demo image for question 1")
    parser.set_defaults(calibration_groups=None)
    return parser.parse_args(argv)


def moved(ident: dict, img: dict, driver: str) -> tuple[dict, dict]:
    """Copies of one demo face's parameters with `driver`'s latent variable DRIVER_STEP_SD higher."""
    ident, img = dict(ident), dict(img)
    if driver == "jaw_width":  # identity level: jaw_n = 2.5 exp(0.28 latent), clipped as sample_parameters does
        ident["jaw_n"] = min(5.0, max(1.4, ident["jaw_n"] * math.exp(0.28 * DRIVER_STEP_SD)))
    elif driver == "smile":
        img["smile"] = float(np.clip(img["smile"] + DRIVER_STEP_SD * demo.SMILE_PER_SD, -demo.SMILE_MAX, demo.SMILE_MAX))
    elif driver == "eye_openness":
        img["eye_openness"] = float(np.clip(img["eye_openness"] + DRIVER_STEP_SD * demo.EYE_OPENNESS_PER_SD,
                                            *demo.EYE_OPENNESS_RANGE))
    else:
        img["brow_angle"] = float(np.clip(img["brow_angle"] + DRIVER_STEP_SD * demo.BROW_DEG_PER_SD,
                                          -demo.BROW_MAX_DEG, demo.BROW_MAX_DEG))
    return ident, img


def demo_faces(cfg) -> tuple[list[dict], list[dict], int]:
    """The demo's drawn parameters (identities, images) and image side, re-drawn as `python -m facetraits.demo` did."""
    parameters = pd.read_csv(group_benchmark.planted_parameters(cfg)).set_index("image")
    side = data.image_size(cfg.data.images / parameters.index[0])[0]
    identities, images = demo.sample_parameters(np.random.default_rng(0), parameters.identity.nunique(),
                                                len(parameters) // parameters.identity.nunique(), side)
    drawn = parameters.loc[[im["image"] for im in images], "smile"].to_numpy()
    if not np.allclose(drawn, [im["smile"] for im in images], atol=1e-4):
        raise SystemExit(f"{_common.relative(cfg.data.ratings.parent)} is not `python -m facetraits.demo` with seed 0")
    return identities, images, side


def identity_confounds(identities: list[dict]) -> list[dict]:
    """Correlation over identities of the jaw width (the one identity-level driver) with each other identity-level
    property: what a head fitted on this many identities cannot tell apart from the jaw."""
    jaw = [ident["jaw_width"] for ident in identities]
    properties = ("W", "Hu", "Hl", "eye_sep", "eye_a", "mouth_w", "nose_w", "nose_len", "skin_tone", "hair_style")
    return [{"identity property": name, "r with jaw width": float(np.corrcoef(jaw, [i[name] for i in identities])[0, 1])}
            for name in properties]


def extent_correlations(masks: list, parameters: pd.DataFrame) -> list[dict]:
    """Correlation over images of each region's share of the face with each driver's z-score: a region whose extent
    follows a driver (its landmarks move with it) carries that driver in its outline and in the per-area scaling."""
    face_area, _ = importance.area_and_weights(masks, np.zeros(len(masks)))
    return [{"region": name, **{term: float(np.corrcoef(face_area[:, r], parameters[term])[0, 1])
                                for term in ("smile_z", "eye_openness_z", "brow_angle_z", "jaw_width_z")}}
            for r, name in enumerate(regions.FACE_REGIONS)]


def driver_pixels(identities: list[dict], images: list[dict], side: int, every: int) -> list[dict]:
    """Share of each driver's |pixel change| per region (and per unit of face area), over every k-th demo image."""
    change = {driver: np.zeros(len(regions.REGIONS)) for driver in demo.DRIVERS}
    area = np.zeros(len(regions.REGIONS))
    for img in images[::every]:
        ident = identities[img["id_index"]]
        masks = regions.region_masks(demo.image_landmarks(ident, img, side), (side, side), (side, side))
        area += [masks[name].sum() for name in regions.REGIONS]
        original = np.asarray(demo.render(ident, img, side), dtype=float)
        for driver in demo.DRIVERS:
            difference = np.abs(np.asarray(demo.render(*moved(ident, img, driver), side), dtype=float) - original)
            change[driver] += [difference.sum(axis=2)[masks[name]].sum() for name in regions.REGIONS]
    face_share = area[:-1] / area[:-1].sum()
    rows = []
    for driver, total in change.items():
        share = total / total.sum()
        row = {"driver": driver, "planted region": demo.TERM_REGIONS.get(f"{driver}_z", "brows")}
        row.update({name: f"{s:.3f} ({s / a:.2f})" for name, s, a in zip(regions.FACE_REGIONS, share, face_share)})
        rows.append({**row, "background": f"{share[-1]:.3f}"})
    return rows


def region_only_features(cfg, dataset, masks: list) -> list[np.ndarray]:
    """Per ridge candidate feature set: (images, face regions, features) pooled from region-only images."""
    if any(m is None for m in masks):
        raise SystemExit("every image needs landmarks for region-only images")
    base = model.build_base(cfg.model, cfg.seed)
    layers = features.needed_layers(cfg)
    tapped = keras.Model(base.input, [base.get_layer(layer).output for layer in layers])
    images = data.load_images(dataset.paths, cfg.model.input_size).astype(np.float32)
    mean_image = images.mean(axis=0)
    candidates = cfg.ridge.feature_sets
    pooled = [[] for _ in candidates]
    progress = outputs.Progress(len(regions.FACE_REGIONS) * len(images), "region-only images", "images")
    for name in regions.FACE_REGIONS:
        per_candidate = [[] for _ in candidates]
        for first in range(0, len(images), BATCH):
            chunk = slice(first, first + BATCH)
            keep = np.stack([m[name] for m in masks[chunk]]).astype(np.float32)[..., None]
            composite = images[chunk] * keep + mean_image * (1 - keep)
            maps = tapped.predict(model.preprocess(composite), batch_size=BATCH, verbose=0)
            maps = dict(zip(layers, maps if len(layers) > 1 else [maps]))
            for k, feature_set in enumerate(candidates):
                per_candidate[k].append(features.pooled(maps, feature_set))
            progress.update(len(composite))
        for k in range(len(candidates)):
            pooled[k].append(np.concatenate(per_candidate[k]))
    return [np.stack(parts, axis=1) for parts in pooled]


def region_only_head(xs: list[np.ndarray], y_all: np.ndarray, identities, folds, masks: list, cfg):
    """compare_groups.py's FixedHead for region-only features: feature set and penalty by inner CV on `y_all`;
    region r's relevance in an image = its own standardised features x their weights."""
    flat = [x.reshape(len(x), -1) for x in xs]
    candidate, alpha_index = ridge.select(flat, y_all[:, None], identities, cfg.ridge.alphas, cfg.ridge.inner_folds,
                                          cfg.seed)
    k, alpha = candidate[0], cfg.ridge.alphas[alpha_index[0]]
    x = flat[k]
    solver = ridge.Solver(x)
    n_images, n_regions, n_features = xs[k].shape
    standardised = ((x - solver.mean) / solver.sd).reshape(n_images, n_regions, n_features)
    matrices = np.zeros((n_images, n_regions, n_regions * n_features))
    for r in range(n_regions):
        matrices[:, r, r * n_features:(r + 1) * n_features] = standardised[:, r]
    face_area, image_weights = importance.area_and_weights(masks, identities)
    inputs = importance.RegionInputs(matrices, face_area, image_weights, cfg.compare.scale)
    feature_set = cfg.ridge.feature_sets[k]
    return group_comparison.FixedHead(importance.RidgeRegions(inputs, solver, alpha),
                                      group_comparison.FixedRidgeCV(x, folds, alpha),
                                      {"layers": "+".join(feature_set.layers) + " (region-only)",
                                       "grid": feature_set.grid, "alpha": alpha})


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = config.load(args.config, [f"model.weights={args.weights}", *args.overrides])
    machine = _common.machine()
    faces = demo_faces(cfg)
    pixels = driver_pixels(*faces, args.pixel_every)
    dataset = data.load(cfg)
    identities = np.asarray(dataset.identities)
    folds = training.outer_folds(dataset, cfg)
    masks, _ = importance.dataset_masks(cfg, dataset)
    parameters = pd.read_csv(group_benchmark.planted_parameters(cfg)).set_index("image").loc[list(dataset.images)]
    start = time.perf_counter()
    xs = region_only_features(cfg, dataset, masks)
    extraction = time.perf_counter() - start

    def make_head(y_all):
        return region_only_head(xs, y_all, identities, folds, masks, cfg)

    def rater_table(trait, group_a, group_b):
        return group_comparison.rater_table(dataset.raters, dataset.images, trait, group_a, group_b, dataset.source,
                                            cfg.compare)

    def trait_head(trait, group_a, group_b):
        table = rater_table(trait, group_a, group_b)
        return make_head(table.means(np.ones((table.n_a + table.n_b, 1)))[:, 0])

    group_a, group_b = cfg.groups[:2]
    start = time.perf_counter()
    comparisons = [group_comparison.compare_with_head(dataset, rater_table(trait, group_a, group_b),
                                                      trait_head(trait, group_a, group_b), group_a, group_b, trait, cfg)
                   for trait in cfg.traits]
    seconds = time.perf_counter() - start
    table = pd.concat([c.table for c in comparisons], ignore_index=True)
    rows = group_benchmark.planted_rows(table)
    verdict = "all hold" if all(r["holds"] == "yes" for r in rows) else "NOT all hold (rows marked NO)"
    differences, spreads = group_benchmark.noise_free(cfg, dataset, table, trait_head)
    sections = [
        ("1. Where the demo draws each driver",
         f"Share of the |pixel change| when one driver moves by {DRIVER_STEP_SD} SD (every {args.pixel_every}th "
         f"image re-drawn), per region; in brackets per unit of face area (1 = as much as the region's size "
         f"predicts). Background: outside every face region.\n\n" + _common.table(pixels)),
        ("Region extents that follow a driver",
         "Correlation over images of each region's share of the face's pixels with each driver's z-score.\n\n"
         + _common.table(extent_correlations(masks, parameters))),
        ("The jaw width's identity-level confounds",
         f"The jaw width is drawn once per identity, so a head sees {len(faces[0])} values of it; correlation over "
         f"identities with the other identity-level properties (facetraits/demo.py: face width W, upper and lower "
         f"face height Hu, Hl, eye separation and size, mouth width, nose width and length, skin tone, hair "
         f"style).\n\n" + _common.table(identity_confounds(faces[0]))),
        ("2. Region-only features: the planted truth " + verdict,
         f"Features of {len(dataset)} images x {len(regions.FACE_REGIONS)} regions extracted in "
         f"{_common.seconds(extraction)}; both traits' comparisons ({cfg.compare.n_permutations} rater permutations "
         f"each) in {_common.seconds(seconds)}.\n\n" + _common.table(rows)),
        ("The same importance without raters: the planted rating functions themselves",
         group_benchmark.NOISE_FREE_NOTE + _common.table(differences)),
        ("One planted term alone (rating gain x its z-score), through the same head", _common.table(spreads)),
        ("Group comparison with region-only features (compare_groups.py's columns)",
         _common.table(table.to_dict("records"))),
        ("Accuracy of each group's head, and its difference under the same null",
         _common.table([c.accuracy for c in comparisons])),
    ]
    if args.splits:
        sections += group_benchmark.calibration_sections(cfg, args, dataset, make_head)
    _common.write_pipeline_report(args, "Region-only features (probe)", machine, sections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
