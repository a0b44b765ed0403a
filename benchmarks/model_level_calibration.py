"""Does the model-level region test (average_saliency.py) tell rater groups apart from training noise?

Calibration against two models of the SAME group: split one group's raters into two random
halves, fit a ridge head to each half's mean rating, and run the identity-level sign-flip test
of facetraits/model_comparison.py between the two heads, region by region. Nothing but rater
sampling and training noise separates the two heads, so a calibrated test would call about 5%
of the splits significant at .05. The same test between the two real groups' heads is shown
beside the same-group spread of its statistic: only differences beyond that spread count.

Cheap stand-in for LRP: refitting heads and re-running LRP hundreds of times is too expensive
here, so each head's per-image region relevance is the linear region importance of
facetraits/importance.py (the quantity compare_groups.py tests), not LRP region shares.

    python benchmarks/model_level_calibration.py --group ASD --splits 200 --set output.cache_dir=PATH
"""
from __future__ import annotations

import copy
import dataclasses

import _common  # first: puts the repository root on sys.path
import numpy as np

from facetraits import config, group_comparison, importance, model_comparison, regions, training


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "model_level_calibration")
    parser.add_argument("--group", default="ASD", help="the group whose raters are split (default: %(default)s)")
    parser.add_argument("--splits", type=int, default=200, help="random half splits per trait (default: %(default)s)")
    return parser.parse_args(argv)


def per_identity(head: group_comparison.FixedHead, y: np.ndarray, identities: np.ndarray) -> np.ndarray:
    """(identities, face regions, columns): each head's region importance averaged over one identity's images.

    RidgeRegions averages over images with fixed weights; one shallow copy per identity, with
    weights on that identity's images only, reuses its precomputed projection."""
    inputs = head.regions.inputs
    values = []
    for name in np.unique(identities):
        weights = np.where(identities == name, inputs.image_weights, 0.0)
        one = copy.copy(head.regions)
        one.inputs = dataclasses.replace(inputs, image_weights=weights / weights.sum())
        values.append(one(y))
    return np.stack(values)


def main(argv=None):
    args = parse_args(argv)
    machine = _common.machine()  # now: the commit and load the numbers come from
    cfg = config.load(args.config, [f"model.weights={args.weights}", *args.overrides])
    study = training.load_study(cfg)
    dataset = study.dataset
    masks, _ = importance.dataset_masks(cfg, dataset)
    other = next(group for group in cfg.groups if group != args.group)
    alpha, n_flips = cfg.explain.significance_level, cfg.explain.n_sign_flips
    rows, region_rows = [], []
    for trait in cfg.traits:
        split_half = dataset.raters[(dataset.raters.trait == trait) & (dataset.raters.group == args.group)]
        names = sorted(split_half.rater.unique())
        halves = split_half.assign(group=split_half.rater.map(lambda r: "a" if names.index(r) < len(names) // 2 else "b"))
        raters, head = group_comparison.common_head(halves, dataset.images, dataset.identities, study.features,
                                                    study.folds, masks, trait, "a", "b", cfg, dataset.source)
        labels = group_comparison.label_permutations(raters.n_a, raters.n_b, args.splits, cfg.seed)[:, 1:]
        values = per_identity(head, np.hstack([raters.means(labels), raters.means(1 - labels)]), dataset.identities)
        tests = [model_comparison.sign_flip_test(values[:, :, s] - values[:, :, args.splits + s], n_flips, cfg.seed + s)
                 for s in range(args.splits)]
        p = np.array([t.p for t in tests])
        p_fwer = np.array([t.p_fwer for t in tests])
        max_t = np.array([np.nanmax(np.abs(t.t)) for t in tests])

        groups, group_head = group_comparison.common_head(dataset.raters, dataset.images, dataset.identities,
                                                          study.features, study.folds, masks, trait, args.group,
                                                          other, cfg, dataset.source)
        a = np.r_[np.ones(groups.n_a), np.zeros(groups.n_b)][:, None]
        both = per_identity(group_head, np.hstack([groups.means(a), groups.means(1 - a)]), dataset.identities)
        real = model_comparison.sign_flip_test(both[:, :, 0] - both[:, :, 1], n_flips, cfg.seed)
        threshold = float(np.quantile(max_t, 1 - alpha))
        rows.append({"trait": trait, "raters split": f"{args.group}: {raters.n_a} vs {raters.n_b}",
                     "splits": args.splits, "any region p_fwer < .05": float((p_fwer < alpha).any(axis=1).mean()),
                     "region tests p < .05": float((p < alpha).mean()),
                     "median max abs t": float(np.median(max_t)), "95% of max abs t": threshold,
                     **head.settings})
        for k, region in enumerate(regions.FACE_REGIONS):
            region_rows.append({"trait": trait, "region": region, "same-group p < .05": float((p[:, k] < alpha).mean()),
                                f"{args.group} - {other} t": float(real.t[k]), "p_fwer": float(real.p_fwer[k]),
                                "beyond same-group spread": "yes" if abs(real.t[k]) > threshold else "no"})
    note = (f"{_common.WEIGHTS_NOTE.format(weights=_common.relative(args.weights))} Data: "
            f"{_common.relative(cfg.data.ratings)}. Region importance: ridge head (feature set and penalty chosen by "
            f"inner CV on the split group's mean rating), scale `{cfg.compare.scale}`, averaged within identity; "
            f"{n_flips} sign flips of {len(np.unique(dataset.identities))} identities per test; max-statistic over the "
            f"{len(regions.FACE_REGIONS)} face regions; seed {cfg.seed}.")
    sections = [("Set-up", note), ("False-positive rate, same group split in halves", _common.table(rows)),
                (f"{args.group} vs {other} beside the same-group spread", _common.table(region_rows))]
    _common.write_report(args.out, "Calibration of the model-level region test: two halves of one group",
                         _common.command_line(), machine, sections)


if __name__ == "__main__":
    main()
