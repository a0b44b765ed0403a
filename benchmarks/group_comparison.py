"""Rater-level group comparison (compare_groups.py): speed, planted truth, and calibration.

1. Runs compare_groups.py on the configured data (features must be cached for a fair
   speed number: run cross_validate.py once with the same settings) and times it.
2. With --planted (the demo only), checks the planted differences of data/demo/README.md: each
   must come out with p_fwer < .01 in the planted direction; no unplanted region may reach
   p_fwer < .05. Beside it, the same importance for the planted rating functions themselves
   (no raters, no noise) and for each planted term alone: which differences the importance
   itself shows, whatever the raters do.
3. Calibration: one group's raters are split into two random halves, which are then compared
   exactly as two groups are (same common setting, same rater permutations). Both halves come
   from one population, so a calibrated test calls about 5% of the regions significant at .05.
   Repeated over --splits splits per group x trait.

    python benchmarks/group_comparison.py --planted --set output.cache_dir=$SCRATCH/demo/cache \
        --set output.results_dir=$SCRATCH/demo/results --set output.fig_dir=$SCRATCH/demo/fig
"""
from __future__ import annotations

import subprocess
import sys
import time

import _common  # first: puts the repository root on sys.path
import numpy as np
import pandas as pd

from facetraits import config, data, demo, group_comparison, importance, regions, training

PLANTED = demo.PLANTED_DIFFERENCES
NOISE_FREE_NOTE = ("Each group's planted weights (data/demo/README.md) applied to the drawn face parameters, without "
                   "rater spread, noise, rounding or clipping, through the same common head; beside it the "
                   "rater-level result above. A region that differs here is one the importance cannot keep apart "
                   "from a planted driver, whatever the raters do.\n\n")


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "group_comparison")
    parser.add_argument("--planted", action="store_true", help="check the demo's planted differences")
    parser.add_argument("--splits", type=int, default=200, help="split-half calibration splits per group x trait")
    parser.add_argument("--split-permutations", type=int, default=1000, help="rater permutations per split")
    parser.add_argument("--calibration-groups", nargs="*", help="groups whose raters are split (default: all)")
    return parser.parse_args(argv)


def planted_rows(table: pd.DataFrame) -> list[dict]:
    rows = []
    for row in table.itertuples():
        sign = PLANTED.get((row.trait, row.region), 0)
        if sign:
            holds = row.difference * sign > 0 and row.p_fwer < 0.01
            want = f"{row.group_a} {'>' if sign > 0 else '<'} {row.group_b}, p_fwer < .01"
        else:
            holds = row.p_fwer >= 0.05
            want = "no difference (p_fwer >= .05)"
        rows.append({"trait": row.trait, "region": row.region, "planted": want, "difference": row.difference,
                     "95% CI": f"[{row.ci_low:.3g}, {row.ci_high:.3g}]", "p_fwer": row.p_fwer,
                     "holds": "yes" if holds else "NO"})
    return rows


def planted_parameters(cfg):
    """The demo's drawn face parameters (written next to its ratings by `python -m facetraits.demo`)."""
    path = cfg.data.ratings.parent / "face_parameters.csv"
    if not path.is_file():
        raise SystemExit(f"--planted: {_common.relative(path)} not found; the planted truth exists for the demo only "
                         f"(python -m facetraits.demo writes it next to the ratings)")
    return path


def noise_free(cfg, dataset, table: pd.DataFrame, trait_head) -> tuple[list[dict], list[dict]]:
    """What the importance reports for the planted rating functions themselves: no rater spread, no noise.

    Each group's planted function (facetraits/demo.py WEIGHTS on the drawn parameters' z-scores: the mean
    rating of infinitely many raters, before rounding and clipping) goes through the trait's common head.
    A region that differs here differs because of how far the importance localises (conv blocks, receptive
    fields, where a driver's pixels lie), not because of the raters. Second table: each planted term
    alone, at the ratings' gain, i.e. how one driver's importance spreads over the regions.
    ``trait_head(trait, group_a, group_b)`` gives the trait's common head (FixedHead)."""
    params = pd.read_csv(planted_parameters(cfg)).set_index("image").loc[list(dataset.images)]
    terms = {"smile_z": params.smile_z, "eye_openness_z": params.eye_openness_z, "jaw_width_z": params.jaw_width_z,
             "brow_lowering_z": -params.brow_angle_z}
    differences, spreads = [], []
    for trait in cfg.traits:
        observed = table[table.trait == trait].set_index("region")
        group_a, group_b = observed.group_a.iloc[0], observed.group_b.iloc[0]  # the comparison's order and sign
        head = trait_head(trait, group_a, group_b)
        planted = [sum(w * terms[k].to_numpy() for k, w in demo.WEIGHTS[(g, trait)].items()) * demo.RATING_GAIN
                   for g in (group_a, group_b)]
        values = head.regions(np.column_stack(planted))
        for region, a, b in zip(regions.FACE_REGIONS, values[:, 0], values[:, 1]):
            differences.append({"trait": trait, "region": region, "planted": "yes" if (trait, region) in PLANTED else "",
                                f"{group_a} noise-free": a, f"{group_b} noise-free": b, "difference noise-free": a - b,
                                "difference raters": observed.difference[region],
                                "p_fwer raters": observed.p_fwer[region]})
        singles = sorted({k for g in (group_a, group_b) for k in demo.WEIGHTS[(g, trait)]})
        values = head.regions(np.column_stack([terms[k].to_numpy() * demo.RATING_GAIN for k in singles]))
        spreads += [{"trait": trait, "term alone": k, **dict(zip(regions.FACE_REGIONS, column))}
                    for k, column in zip(singles, values.T)]
    return differences, spreads


def calibration(cfg, dataset, make_head, splits: int, permutations: int, groups=None) -> tuple[list[dict], list[dict]]:
    """False-positive rates of half-against-half comparisons within each group (`groups`, default all), `splits`
    splits each with `permutations` rater permutations; ``make_head(y_all)`` gives the head setting chosen on one
    group's mean rating (FixedHead)."""
    rng = np.random.default_rng([cfg.seed, 1])  # not cfg.seed: the label permutations of split 0 use that stream
    summary, detail = [], []
    for trait in cfg.traits:
        for group in groups or cfg.groups:
            part = dataset.raters[(dataset.raters.trait == trait) & (dataset.raters.group == group)]
            sums, counts, _ = group_comparison.rating_matrices(part, dataset.images, [group])
            n = sums.shape[1]
            head = make_head(group_comparison.Raters(sums, counts, n, 0).everyone())
            p_all, fwer_all, r_p = [], [], []
            start = time.perf_counter()
            for split in range(splits):
                order = rng.permutation(n)
                halves = group_comparison.Raters(sums[:, order], counts[:, order], n // 2, n - n // 2)
                stats = group_comparison.permutation_statistics(halves, head, permutations, 1,
                                                                cfg.seed + split, "")
                p, p_fwer = group_comparison.region_p_values(stats)
                p_all.append(p)
                fwer_all.append(p_fwer)
                r_p.append(group_comparison.p_values(stats.r_differences[None, :])[0][0])
            p_all, fwer_all = np.array(p_all), np.array(fwer_all)
            summary.append({"trait": trait, "group split": f"{group} ({n} raters)", "splits": splits,
                            "FPR per region (p < .05)": float((p_all < 0.05).mean()),
                            "FPR family-wise (any p_fwer < .05)": float((fwer_all < 0.05).any(axis=1).mean()),
                            "FPR CV r difference": float((np.array(r_p) < 0.05).mean()),
                            "seconds": round(time.perf_counter() - start, 1), **head.settings})
            detail.append({"trait": trait, "group split": group,
                           **dict(zip(regions.FACE_REGIONS, (p_all < 0.05).mean(axis=0).astype(float)))})
    return summary, detail


def calibration_sections(cfg, dataset, make_head, splits: int, permutations: int, groups=None) -> list[tuple[str, str]]:
    """The report's two calibration tables (see calibration)."""
    summary, detail = calibration(cfg, dataset, make_head, splits, permutations, groups)
    return [(f"Calibration: half against half of one group ({permutations} rater permutations per split); "
             f"target FPR in [.02, .08]", _common.table(summary)),
            ("Calibration: false-positive rate (p < .05) per region", _common.table(detail))]


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = [f"model.weights={args.weights}", *args.overrides]
    cfg = config.load(args.config, overrides)
    if args.planted:
        planted_parameters(cfg)  # before the expensive part
    machine = _common.machine()  # now: the commit and load the numbers below come from
    start = time.perf_counter()
    subprocess.run([sys.executable, str(_common.ROOT / "compare_groups.py"), "--config", args.config,
                    *[item for o in overrides for item in ("--set", o)]], check=True)
    seconds = time.perf_counter() - start
    table = pd.read_csv(cfg.output.results_dir / "group_comparison.csv")
    accuracy = pd.read_csv(cfg.output.results_dir / "group_comparison_accuracy.csv")
    n_perm = int(table.n_permutations.iloc[0])
    sections = [("Speed", f"compare_groups.py, {len(set(table.trait))} trait(s) x {len(regions.FACE_REGIONS)} face "
                          f"regions, {n_perm} rater permutations each (features cached; the whole script, "
                          f"Python and TensorFlow start-up included): **{_common.seconds(seconds)}**\n"),
                ("Group comparison (results/group_comparison.csv)",
                 _common.table(table.drop(columns=["run"]).to_dict("records"))),
                ("Accuracy of each group's head, and its difference under the same null",
                 _common.table(accuracy.drop(columns=["run"]).to_dict("records")))]
    if args.planted or args.splits:
        study = training.load_study(cfg, dataset=data.load(cfg))
        dataset = study.dataset
        masks, _ = importance.dataset_masks(cfg, dataset)

        def make_head(y_all):
            return group_comparison.fixed_head(study.features, y_all, dataset.identities, study.folds, masks, cfg)

        def trait_head(trait, group_a, group_b):
            return group_comparison.common_head(dataset.raters, dataset.images, dataset.identities, study.features,
                                                study.folds, masks, trait, group_a, group_b, cfg, dataset.source)[1]
    if args.planted:
        rows = planted_rows(table)
        verdict = "all hold" if all(r["holds"] == "yes" for r in rows) else "NOT all hold (rows marked NO)"
        differences, spreads = noise_free(cfg, dataset, table, trait_head)
        sections[1:1] = [(f"Planted truth: {verdict}", _common.table(rows)),
                         ("The same importance without raters: the planted rating functions themselves",
                          NOISE_FREE_NOTE + _common.table(differences)),
                         ("One planted term alone (rating gain x its z-score), through the same head",
                          _common.table(spreads))]
    if args.splits:
        sections += calibration_sections(cfg, dataset, make_head, args.splits, args.split_permutations,
                                         args.calibration_groups)
    _common.write_pipeline_report(args, "Rater-level group comparison", machine, sections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
