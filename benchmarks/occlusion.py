"""Region occlusion on the demo, as a comparison for the tested linear region importance.

Issue "rater-level group comparison" asks to keep occlusion only as a comparison if it can be made
to agree with the planted truth, and otherwise to report how it fails. Each face region of each
image is replaced by a reference over a soft border (Gaussian, sigma FEATHER_PX: a hard border is
an edge the face never had), and the importance of the region is |prediction(original) -
prediction(occluded)|, averaged within identity and then over identities, for each trained group
model (models_dir). Two references, as in facetraits/faithfulness.py: `blur` (the image's
Gaussian-blurred copy) and `mean_face` (the aligned mean face warped onto the face). Reported raw
and per unit of face area (divided by the region's share of the face), with the ASD - NT difference
(95% bootstrap CI over identities), against the planted drivers of data/demo/README.md and against
the sign of compare_groups.py's linear importance (--comparison).

    python benchmarks/occlusion.py --set output.models_dir=$SCRATCH/models --set output.cache_dir=$SCRATCH/cache
"""
from __future__ import annotations

import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import numpy as np
import pandas as pd
from scipy import ndimage

from facetraits import cli, config, data, demo, faithfulness, importance, landmarks, model, regions, saliency
from facetraits.backend import reset_graph

FEATHER_PX = 3.5  # at 224 px: the faithfulness test's soft patch border
BOOTSTRAP = 2000


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "occlusion")
    parser.add_argument("--images-per-identity", type=int, default=2, help="images occluded per identity")
    parser.add_argument("--comparison", type=Path, default=_common.RESULTS / "demo" / "group_comparison.csv",
                        help="compare_groups.py's table, for the sign of the linear importance's differences")
    return parser.parse_args(argv)


def occluded(images: np.ndarray, reference: np.ndarray, masks: list, region: str, size: int) -> np.ndarray:
    """Each image with `region` replaced by its reference over a soft border."""
    sigma = FEATHER_PX * size / 224
    weight = np.stack([ndimage.gaussian_filter(m[region].astype(np.float32), sigma) for m in masks])[..., None]
    return images + weight * (reference - images)


def predictions(models: dict, images_by_case: dict) -> dict:
    """{(model, case): predictions}; the frozen VGG16 trunk runs once per case for every model."""
    _, trunk, _ = faithfulness.split_at_cut(next(iter(models.values())))
    heads = {name: faithfulness.split_at_cut(m)[2] for name, m in models.items()}
    out = {}
    for case, images in images_by_case.items():
        maps = faithfulness.batched(trunk, model.preprocess(images))
        out.update({(name, case): faithfulness.batched(head, maps).ravel() for name, head in heads.items()})
    return out


def identity_bootstrap(values: np.ndarray, identities: np.ndarray, seed: int) -> tuple[float, float, float]:
    """Mean over identities of the per-identity means, and its 95% bootstrap CI (identities resampled)."""
    per_identity = saliency.identity_means(values, identities)[1].ravel()
    rng = np.random.default_rng(seed)
    boot = per_identity[rng.integers(0, len(per_identity), (BOOTSTRAP, len(per_identity)))].mean(axis=1)
    return float(per_identity.mean()), *np.percentile(boot, [2.5, 97.5])


def top_regions(table: pd.DataFrame, measure: str, identities) -> list[dict]:
    """Per reference and model: the regions with the largest mean importance, and the planted region's rank."""
    rows = []
    for (ref_name, group, trait), part in table.groupby(["reference", "group", "trait"], sort=False):
        means = {row.region: float(np.nanmean(saliency.identity_means(row[measure], identities)[1]))
                 for _, row in part.iterrows()}
        ranked = sorted(means, key=lambda region: -means[region])
        planted = demo.PLANTED_WINNERS[(group, trait)]
        rows.append({"reference": ref_name, "model": f"{group} {trait}", "planted": planted,
                     "top region": f"{ranked[0]} ({means[ranked[0]]:.3g})",
                     "runner-up": f"{ranked[1]} ({means[ranked[1]]:.3g})", "planted rank": ranked.index(planted) + 1})
    return rows


def group_differences(table: pd.DataFrame, measure: str, identities, comparison, cfg) -> list[dict]:
    """ASD - NT per reference, trait and region, with its bootstrap CI and the linear importance's sign."""
    a, b = demo.GROUPS
    rows = []
    for (ref_name, trait, region), part in table.groupby(["reference", "trait", "region"], sort=False):
        values = part.set_index("group")[measure]
        mean, low, high = identity_bootstrap(values[a] - values[b], identities, cfg.seed)
        linear = comparison.difference.get((trait, region), np.nan) if comparison is not None else np.nan
        want = demo.PLANTED_DIFFERENCES.get((trait, region), 0)
        rows.append({"reference": ref_name, "trait": trait, "region": region,
                     "planted": {1: f"{a} > {b}", -1: f"{a} < {b}"}.get(want, ""), f"{a} - {b}": mean,
                     "95% CI": f"[{low:.3g}, {high:.3g}]", "CI excludes 0": "yes" if low > 0 or high < 0 else "",
                     "planted direction": ("yes" if mean * want > 0 else "NO") if want else "",
                     "linear importance": f"{linear:+.3g}" if np.isfinite(linear) else "n/a",
                     "same sign": "yes" if np.sign(linear) == np.sign(mean) else "no"})
    return rows


def verdict(tops: list[dict], differences: list[dict], label: str) -> list[dict]:
    rows = []
    for ref_name in dict.fromkeys(row["reference"] for row in tops):
        top = [row for row in tops if row["reference"] == ref_name]
        diff = [row for row in differences if row["reference"] == ref_name]
        planted = [row for row in diff if row["planted"]]
        unplanted = [row for row in diff if not row["planted"]]

        def count(rows_, test):
            return f"{sum(map(test, rows_))} / {len(rows_)}"

        rows.append({"measure": label, "reference": ref_name,
                     "planted region first": count(top, lambda r: r["planted rank"] == 1),
                     "planted ASD - NT direction, CI excludes 0":
                         count(planted, lambda r: r["planted direction"] == "yes" and r["CI excludes 0"] == "yes"),
                     "unplanted regions, CI excludes 0": count(unplanted, lambda r: r["CI excludes 0"] == "yes"),
                     "same sign as linear importance": count(diff, lambda r: r["same sign"] == "yes")})
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = config.load(args.config, [f"model.weights={args.weights}", *args.overrides])
    machine, start = _common.machine(), time.perf_counter()
    size, dataset = cfg.model.input_size, data.load(cfg)
    masks, _ = importance.dataset_masks(cfg, dataset)
    points, _ = landmarks.dataset_landmarks(cfg, dataset, (size, size))
    usable = np.array([i for i, m in enumerate(masks) if m is not None])
    rank = pd.Series(dataset.identities[usable]).groupby(dataset.identities[usable]).cumcount().to_numpy()
    chosen = usable[rank < args.images_per_identity]  # each identity's first images, in file order
    identities = dataset.identities[chosen]
    images = data.load_images([dataset.paths[i] for i in chosen], size).astype(np.float32)
    chosen_masks = [masks[i] for i in chosen]
    area_share = importance.face_area(chosen_masks)
    references = {"blur": faithfulness.blurred(images),
                  "mean_face": faithfulness.mean_face_references(
                      [dataset.paths[i] for i in usable], [points[dataset.images[i]] for i in usable],
                      np.searchsorted(usable, chosen), size)}
    reset_graph(cfg.seed)
    models = {cli.model_name(g, t): model.load_full_model(cli.model_path(cfg, g, t))
              for g in cfg.groups for t in cfg.traits}
    cases = {("original", ""): images}
    for ref_name, reference in references.items():
        for region in regions.FACE_REGIONS:
            cases[(ref_name, region)] = occluded(images, reference, chosen_masks, region, size)
    predicted = predictions(models, cases)
    seconds = time.perf_counter() - start

    rows = []
    for ref_name in references:
        for g in cfg.groups:
            for t in cfg.traits:
                name = cli.model_name(g, t)
                for k, region in enumerate(regions.FACE_REGIONS):
                    change = np.abs(predicted[(name, ("original", ""))] - predicted[(name, (ref_name, region))])
                    rows.append({"reference": ref_name, "group": g, "trait": t, "region": region,
                                 "change": change, "per_area": change / area_share[:, k]})
    table = pd.DataFrame(rows)

    sections = [("Setup", f"{len(chosen)} images ({args.images_per_identity} per identity, {len(set(identities))} "
                          f"identities), {len(regions.FACE_REGIONS)} face regions x 2 references x "
                          f"{len(models)} models from `{_common.relative(cfg.output.models_dir)}`; "
                          f"{_common.seconds(seconds)} for the references and all predictions.\n")]
    comparison = pd.read_csv(args.comparison).set_index(["trait", "region"]) if args.comparison.is_file() else None
    verdicts = []
    for measure, label in (("change", "|prediction change| (rating points)"),
                           ("per_area", "|prediction change| per unit of face area")):
        tops = top_regions(table, measure, identities)
        differences = group_differences(table, measure, identities, comparison, cfg)
        verdicts += verdict(tops, differences, label)
        sections += [(f"Top region per model: {label}", _common.table(tops)),
                     (f"ASD - NT per region: {label}", _common.table(differences))]
    sections.insert(1, ("Verdict (counted from the tables below)", _common.table(verdicts)))
    _common.write_pipeline_report(args, "Region occlusion against the planted truth (demo)", machine, sections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
