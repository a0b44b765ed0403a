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

DRIVER_STEP_SD = 0.5  # how far each driver's latent variable moves when its pixels are located
# Where facetraits/demo.py keeps each driver's drawn value, its log-scale (jaw) or linear step per latent SD, and
# the range it is clipped to; and the region it is drawn in (the brow angle is rated as brow_lowering_z).
DRIVER_VALUES = {"smile": ("image", "smile", False, demo.SMILE_PER_SD, (-demo.SMILE_MAX, demo.SMILE_MAX)),
                 "eye_openness": ("image", "eye_openness", False, demo.EYE_OPENNESS_PER_SD, demo.EYE_OPENNESS_RANGE),
                 "brow_angle": ("image", "brow_angle", False, demo.BROW_DEG_PER_SD,
                                (-demo.BROW_MAX_DEG, demo.BROW_MAX_DEG)),
                 "jaw_width": ("identity", "jaw_n", True, demo.JAW_N_LOG_PER_SD, demo.JAW_N_RANGE)}
DRIVER_REGIONS = {"smile": "mouth", "eye_openness": "eyes", "brow_angle": "brows", "jaw_width": "jaw"}
TERMS = ("smile_z", "eye_openness_z", "brow_angle_z", "jaw_width_z")


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "region_only_features")
    parser.add_argument("--splits", type=int, default=100, help="split-half calibration splits per group x trait")
    parser.add_argument("--split-permutations", type=int, default=1000, help="rater permutations per split")
    parser.add_argument("--pixel-every", type=int, default=5, help="re-draw every k-th demo image for question 1")
    return parser.parse_args(argv)


def moved(ident: dict, img: dict, driver: str) -> tuple[dict, dict] | None:
    """Copies of one demo face's parameters with `driver`'s latent variable DRIVER_STEP_SD higher; None when the
    drawn value sits at its clip bound (its latent, and so where a step would take it, is unknown)."""
    level, key, log_scale, per_sd, (low, high) = DRIVER_VALUES[driver]
    ident, img = dict(ident), dict(img)
    values = ident if level == "identity" else img
    if values[key] <= low or values[key] >= high:
        return None
    step = DRIVER_STEP_SD * per_sd
    values[key] = float(np.clip(values[key] * math.exp(step) if log_scale else values[key] + step, low, high))
    return ident, img


def demo_faces(cfg) -> tuple[list[dict], list[dict], int, pd.DataFrame]:
    """The demo's drawn parameters (identities, images) re-drawn as `python -m facetraits.demo` did, the image
    side, and face_parameters.csv (checked against the re-drawn values)."""
    parameters = pd.read_csv(group_benchmark.planted_parameters(cfg)).set_index("image")
    side = data.image_size(cfg.data.images / parameters.index[0])[0]
    identities, images = demo.sample_parameters(np.random.default_rng(0), parameters.identity.nunique(),
                                                len(parameters) // parameters.identity.nunique(), side)
    drawn = parameters.loc[[im["image"] for im in images], "smile"].to_numpy()
    if not np.allclose(drawn, [im["smile"] for im in images], atol=1e-4):
        raise SystemExit(f"{_common.relative(cfg.data.ratings.parent)} is not `python -m facetraits.demo` with seed 0")
    return identities, images, side, parameters


def identity_confounds(identities: list[dict]) -> list[dict]:
    """Correlation over identities of the jaw width (the one identity-level driver) with each other identity-level
    property: what a head fitted on this many identities cannot tell apart from the jaw."""
    jaw = [ident["jaw_width"] for ident in identities]
    properties = {name: [ident[name] for ident in identities]
                  for name in ("W", "Hu", "Hl", "eye_sep", "eye_a", "mouth_w", "nose_w", "nose_len", "skin_tone",
                               "hair_style", "hairline")}
    properties.update({f"{name} brightness": [float(np.mean(ident[name])) for ident in identities]
                       for name in ("hair", "shirt")})
    return [{"identity property": name, "r with jaw width": float(np.corrcoef(jaw, values)[0, 1])}
            for name, values in properties.items()]


def extent_correlations(masks: list, parameters: pd.DataFrame) -> list[dict]:
    """Correlation over images of each region's share of the face with each driver's z-score: a region whose extent
    follows a driver (its landmarks move with it) carries that driver in its outline and in the per-area scaling."""
    area = importance.face_area(masks)
    return [{"region": name, **{term: float(np.corrcoef(area[:, r], parameters[term])[0, 1]) for term in TERMS}}
            for r, name in enumerate(regions.FACE_REGIONS)]


def region_pixels(ident: dict, img: dict, side: int) -> tuple[np.ndarray, dict]:
    """One demo face drawn (float RGB) and its region masks."""
    masks = regions.region_masks(demo.image_landmarks(ident, img, side), (side, side), (side, side))
    return np.asarray(demo.render(ident, img, side), dtype=float), masks


def driver_pixels(identities: list[dict], images: list[dict], side: int, every: int) -> list[dict]:
    """Share of each driver's |pixel change| per region (and per unit of face area), over every k-th demo image.

    A changed pixel counts half for its region in the original face and half for its region in the moved one:
    a driver that moves landmarks (the jaw outline) moves the regions too."""
    change = {driver: np.zeros(len(regions.REGIONS)) for driver in demo.DRIVERS}
    faces = {driver: 0 for driver in demo.DRIVERS}
    area = np.zeros(len(regions.REGIONS))
    for img in images[::every]:
        ident = identities[img["id_index"]]
        original, masks = region_pixels(ident, img, side)
        area += [masks[name].sum() for name in regions.REGIONS]
        for driver in demo.DRIVERS:
            step = moved(ident, img, driver)
            if step is None:
                continue
            drawn, moved_masks = region_pixels(*step, side)
            difference = np.abs(drawn - original).sum(axis=2)
            change[driver] += [(difference[masks[name]].sum() + difference[moved_masks[name]].sum()) / 2
                               for name in regions.REGIONS]
            faces[driver] += 1
    face_share = area[:-1] / area[:-1].sum()
    rows = []
    for driver, total in change.items():
        share = total / total.sum()
        row = {"driver": driver, "faces": faces[driver], "planted region": DRIVER_REGIONS[driver]}
        row.update({name: f"{s:.3f} ({s / a:.2f})" for name, s, a in zip(regions.FACE_REGIONS, share, face_share)})
        rows.append({**row, "background": f"{share[-1]:.3f}"})
    return rows


def region_only_features(cfg, dataset, masks: list) -> list[np.ndarray]:
    """Per ridge candidate feature set: (images, face regions, features) pooled from region-only images, float64
    as training.candidate_features gives the shipped head's."""
    base = model.build_base(cfg.model, cfg.seed)
    layers = features.needed_layers(cfg)  # the ridge's candidates' layers (main requires model.head: ridge)
    read = features.layer_reader(base, layers)
    images = data.load_images(dataset.paths, cfg.model.input_size).astype(np.float32)
    mean_image = images.mean(axis=0)
    candidates = cfg.ridge.feature_sets
    pooled = [[] for _ in candidates]
    progress = outputs.Progress(len(regions.FACE_REGIONS) * len(images), "region-only images", "images")
    for name in regions.FACE_REGIONS:
        per_candidate = [[] for _ in candidates]
        for first in range(0, len(images), features.EXTRACTION_BATCH):
            chunk = slice(first, first + features.EXTRACTION_BATCH)
            keep = np.stack([m[name] for m in masks[chunk]]).astype(np.float32)[..., None]
            composite = images[chunk] * keep + mean_image * (1 - keep)
            maps = read(composite)
            for k, feature_set in enumerate(candidates):
                per_candidate[k].append(features.pooled(maps, feature_set))
            progress.update(len(composite))
        for k in range(len(candidates)):
            pooled[k].append(np.concatenate(per_candidate[k]))
    return [np.stack(parts, axis=1).astype(np.float64) for parts in pooled]


def region_only_head(xs: list[np.ndarray], y_all: np.ndarray, identities, folds, masks: list, cfg):
    """compare_groups.py's FixedHead for region-only features: feature set and penalty by inner CV on `y_all`
    (for the CV r, inside each outer training part);
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
    inputs = importance.RegionInputs(matrices, importance.face_area(masks),
                                     importance.identity_weights(identities, np.ones(n_images, dtype=bool)),
                                     cfg.compare.scale)
    feature_set = cfg.ridge.feature_sets[k]
    return group_comparison.FixedHead(importance.RidgeRegions(inputs, solver, alpha),
                                      group_comparison.FixedRidgeCV(
                                          group_comparison.settings_per_fold(flat, y_all, identities, folds, cfg), folds),
                                      {"layers": "+".join(feature_set.layers) + " (region-only)",
                                       "grid": feature_set.grid, "alpha": alpha})


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = config.load(args.config, [f"model.weights={args.weights}", *args.overrides])
    if cfg.model.head != "ridge":
        raise SystemExit("the probe compares ridge heads: run it with model.head: ridge")
    machine = _common.machine()
    demo_identities, demo_images, side, parameters = demo_faces(cfg)
    pixels = driver_pixels(demo_identities, demo_images, side, args.pixel_every)
    dataset = data.load(cfg)
    identities = np.asarray(dataset.identities)
    folds = training.outer_folds(dataset, cfg)
    masks, missing = importance.dataset_masks(cfg, dataset)
    if missing:
        raise SystemExit(f"every image needs landmarks for region-only images ({len(missing)} have none)")
    parameters = parameters.loc[list(dataset.images)]
    start = time.perf_counter()
    xs = region_only_features(cfg, dataset, masks)
    extraction = time.perf_counter() - start

    def make_head(y_all):
        return region_only_head(xs, y_all, identities, folds, masks, cfg)

    group_a, group_b = cfg.groups[:2]
    tables = {trait: group_comparison.rater_table(dataset.raters, dataset.images, trait, group_a, group_b,
                                                  dataset.source, cfg.compare) for trait in cfg.traits}
    heads = {trait: make_head(table.everyone()) for trait, table in tables.items()}
    start = time.perf_counter()
    comparisons = [group_comparison.compare_with_head(dataset, tables[trait], heads[trait], group_a, group_b, trait,
                                                      cfg) for trait in cfg.traits]
    seconds = time.perf_counter() - start
    table = pd.concat([c.table for c in comparisons], ignore_index=True)
    rows = group_benchmark.planted_rows(table)
    verdict = "all hold" if all(r["holds"] == "yes" for r in rows) else "NOT all hold (rows marked NO)"
    differences, spreads = group_benchmark.noise_free(cfg, dataset, table, lambda trait, a, b: heads[trait])
    sections = [
        ("1. Where the demo draws each driver",
         f"Share of the |pixel change| when one driver's latent variable moves by {DRIVER_STEP_SD} SD (every "
         f"{args.pixel_every}th image re-drawn; faces whose drawn value sits at its clip bound left out: `faces` "
         f"counts the rest), per region, each changed pixel half in its region before and half after the move; in "
         f"brackets per unit of face area (1 = as much as the region's size predicts). Background: outside every "
         f"face region.\n\n" + _common.table(pixels)),
        ("Region extents that follow a driver",
         "Correlation over images of each region's share of the face's pixels with each driver's z-score.\n\n"
         + _common.table(extent_correlations(masks, parameters))),
        ("The jaw width's identity-level confounds",
         f"The jaw width is drawn once per identity, so a head sees {len(demo_identities)} values of it; "
         f"correlation over identities with the other identity-level properties (facetraits/demo.py: face width "
         f"W, upper and lower face height Hu, Hl, eye separation and size, mouth width, nose width and length, skin "
         f"tone, hair style, hairline height, hair and shirt brightness).\n\n"
         + _common.table(identity_confounds(demo_identities))),
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
        sections += group_benchmark.calibration_sections(cfg, dataset, make_head, args.splits,
                                                         args.split_permutations)
    _common.write_pipeline_report(args, "Region-only features (probe)", machine, sections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
