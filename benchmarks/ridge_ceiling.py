"""Would any fixed ridge setting have reached a missed accuracy target on the same folds?

For each group x trait: the configured procedure's pooled CV r (feature set and penalty chosen by
inner CV, as cross_validate.py), and, for every feature set of a wider list and every penalty of a
fine grid, the pooled r of that one setting held fixed across the configured outer folds. The best
of those, chosen with hindsight on the test folds, is what perfect selection among the settings
tried would give on this split (not a bound on every procedure: one that chooses per fold can beat
it). When even it stays below a target, no selection among these settings reaches the target on
this split. The best of many settings is optimistic by itself (the maximum of many noisy r's), so
the same gain over the nested procedure is computed on ratings permuted over identities (no
signal): a real gain has to stand out from it.

    python benchmarks/ridge_ceiling.py --config $DATA/omi/config.yaml \
        --set "traits=[trustworthy, dominant, attractive, smart, happy]" --out benchmarks/results/ridge_ceiling_omi.md
"""
from __future__ import annotations

import _common  # first: puts the repository root on sys.path
import numpy as np
import yaml

from facetraits import config, features, metrics, ridge, training

# Beyond the configured candidates: coarser and finer cells of block4, both pooled layers in cells,
# and block3 (finer, more local features).
EXTRA_FEATURE_SETS = ("[{layers: [block4_pool], grid: 2}, {layers: [block4_pool], grid: 4}, "
                      "{layers: [block4_pool, block5_pool], grid: 3}, {layers: [block5_pool], grid: 3}, "
                      "{layers: [block3_pool], grid: 3}, {layers: [block3_pool], grid: 4}, "
                      "{layers: [block3_pool, block4_pool], grid: 3}, "
                      "{layers: [block3_pool, block4_pool, block5_pool], grid: 1}]")


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "ridge_ceiling")
    parser.add_argument("--extra-feature-sets", default=EXTRA_FEATURE_SETS,
                        help="YAML list of feature sets tried beside the configured ridge.feature_sets")
    parser.add_argument("--alpha-range", type=float, nargs=2, default=(1e-5, 1e3), metavar=("LOW", "HIGH"),
                        help="lowest and highest penalty per feature (default: %(default)s; wider than ridge.alphas, "
                             "so the hindsight search is not cut off at the configured grid's edge)")
    parser.add_argument("--alphas", type=int, default=33,
                        help="penalties per feature set, log-spaced over --alpha-range (default: %(default)s)")
    parser.add_argument("--null-permutations", type=int, default=20,
                        help="identity permutations of each model's ratings for the hindsight gain without "
                             "signal (default: %(default)s)")
    return parser.parse_args(argv)


def fixed_setting_r(x: np.ndarray, ys: np.ndarray, folds: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """(len(alphas), targets): pooled out-of-fold r of the ridge with each penalty, the feature set fixed
    (no inner selection); one decomposition per training part serves every target column."""
    predicted = np.empty((len(alphas), *ys.shape))
    for fold in np.unique(folds):
        test = folds == fold
        y_mean = ys[~test].mean(axis=0)
        predicted[:, test] = ridge.Solver(x[~test]).predictions(x[test], ys[~test] - y_mean, alphas) + y_mean
    return np.stack([metrics.pearson_columns(ys, p) for p in predicted])


def main(argv=None):
    args = parse_args(argv)
    machine = _common.machine()
    cfg = config.load(args.config, [f"model.weights={args.weights}", *args.overrides])
    if cfg.model.head != "ridge":
        raise SystemExit(f"{args.config}: model.head is {cfg.model.head}; this benchmark bounds the ridge head")
    configured = [{"layers": list(s.layers), "grid": s.grid} for s in cfg.ridge.feature_sets]
    candidates = yaml.safe_dump(configured + yaml.safe_load(args.extra_feature_sets), default_flow_style=True)
    # loaded as config, so every extra set is checked like a configured one (layer names, grid fits the map)
    wide = config.load(args.config, [f"model.weights={args.weights}", *args.overrides,
                                     f"ridge.feature_sets={candidates.strip()}"])
    tried = tuple(dict.fromkeys(wide.ridge.feature_sets))
    study = training.load_study(wide)  # features of every layer tried, from the same cache
    dataset, folds = study.dataset, study.folds
    alphas = np.geomspace(*args.alpha_range, args.alphas)
    models = [(group, trait) for group in cfg.groups for trait in cfg.traits]
    ys = np.stack([dataset.target(group, trait) for group, trait in models], axis=1)
    # every model's ratings permuted with the permutation test's seed (so the models share one set of identity
    # mappings); model k's permutations are columns n_models + k * n ... n_models + (k + 1) * n - 1
    columns = np.hstack([ys] + [metrics.permuted_by_identity(y, dataset.identities, args.null_permutations, cfg.seed)
                                for y in ys.T])
    nested, _, _ = ridge.cv_predict(training.candidate_features(study.features, cfg), columns, dataset.identities,
                                    folds, cfg.ridge.alphas, cfg.ridge.inner_folds, cfg.seed)
    nested_r = metrics.pearson_columns(columns, nested)
    fixed = {}  # feature set: (n features, r per penalty x column)
    for feature_set in tried:
        x = features.pooled(study.features, feature_set).astype(np.float64)
        fixed[feature_set] = x.shape[1], fixed_setting_r(x, columns, folds, alphas)
        print(f"{feature_set.label()}: best r per model", np.round(fixed[feature_set][1][:, :len(models)].max(axis=0), 3),
              flush=True)
    best_r = np.max([r.max(axis=0) for _, r in fixed.values()], axis=0)  # per column, over sets and penalties
    gain = best_r - nested_r
    summary, detail = [], []
    for k, (group, trait) in enumerate(models):
        rows = []
        for feature_set, (n_features, r) in fixed.items():
            top = int(np.argmax(r[:, k]))
            rows.append({"group": group, "trait": trait, "feature set": feature_set.label(),
                         "configured candidate": "yes" if feature_set in cfg.ridge.feature_sets else "no",
                         "n features": n_features, "best alpha (hindsight)": float(alphas[top]),
                         "at grid edge": "yes" if top in (0, len(alphas) - 1) else "", "r": float(r[top, k])})
        best = max(rows, key=lambda row: row["r"])
        detail += rows
        null_gain = gain[len(models) + k * args.null_permutations:len(models) + (k + 1) * args.null_permutations]
        summary.append({"group": group, "trait": trait, "n images": len(ys),
                        "configured procedure (nested CV)": nested_r[k], "best fixed setting (hindsight)": best_r[k],
                        "its feature set": best["feature set"], "its alpha": best["best alpha (hindsight)"],
                        "hindsight gain": gain[k],
                        f"gain without signal: mean (largest of {args.null_permutations})":
                            f"{null_gain.mean():.3f} ({null_gain.max():.3f})"})
    edge = sum(row["at grid edge"] == "yes" for row in detail)
    grid = f"{args.alphas} penalties per feature, log-spaced {args.alpha_range[0]:g}-{args.alpha_range[1]:g}"
    _common.write_pipeline_report(args, "Ridge ceiling: the best fixed setting on the configured folds", machine, [
        ("What this is", f"Outer folds: the configured ones (cv.n_folds {cfg.cv.n_folds}, grouped by "
                         f"{cfg.cv.group_by}, seed {cfg.seed}). Fixed settings: {len(tried)} feature sets x {grid}, "
                         "each held fixed across the folds, fitted on the training folds and scored on the pooled "
                         "test folds; the best is chosen **on the test folds**: what perfect selection among these "
                         "settings would give on this split, not a result. Hindsight gain = that best minus the "
                         "configured procedure's r; the same gain on ratings permuted over identities shows what "
                         f"choosing on the test folds buys without signal. {edge} of {len(detail)} per-set best "
                         "penalties sit at an edge of the grid: at the high end the search is cut off; at the low "
                         "end, with more features than training faces, the fit already nears the minimum-norm "
                         "solution that smaller penalties converge to."),
        ("Per model", _common.table(summary)),
        ("Every feature set (best penalty each, hindsight)", _common.table(detail)),
    ])

if __name__ == "__main__":
    main()
