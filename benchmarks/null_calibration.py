"""Is the permutation test calibrated when an identity has several images?

Simulates datasets with NO signal: identity-clustered features (each identity has its own
feature vector, each image adds noise) and identity-clustered ratings (a share of the rating
variance belongs to the identity), drawn independently of each other. Each dataset goes through
the tool's own procedure (ridge with inner-CV penalty choice, identity-grouped outer folds) and
its permutation test, once with whole identities permuted (metrics.permuted_by_identity, what
permutation_test.py does) and once with single images shuffled (the old null). A calibrated
test calls about 5% of them significant at .05. Writes a Markdown report and a p-value figure.

    python benchmarks/null_calibration.py --datasets 200 --permutations 1000
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import matplotlib
import numpy as np
from scipy import stats

from facetraits import metrics, outputs, ridge

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=200, help="simulated datasets (default: %(default)s)")
    parser.add_argument("--permutations", type=int, default=1000, help="per dataset and null (default: %(default)s)")
    parser.add_argument("--identities", type=int, default=50)
    parser.add_argument("--images-per-identity", type=int, default=10)
    parser.add_argument("--identity-share", type=float, default=0.8, help="identity share of rating variance")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(_common.RESULTS / "null_calibration.md"))
    return parser.parse_args(argv)


def simulate(rng, args):
    """Features and ratings, both clustered by identity, independent of each other."""
    n_images = args.images_per_identity
    identities = np.repeat(np.arange(args.identities), n_images)
    x = np.repeat(rng.normal(size=(args.identities, args.features)), n_images, axis=0)
    x += 0.5 * rng.normal(size=x.shape)
    y = (np.sqrt(args.identity_share) * np.repeat(rng.normal(size=args.identities), n_images)
         + np.sqrt(1 - args.identity_share) * rng.normal(size=len(identities)))
    return x, y, identities


def p_value(x, y, identities, folds, permuted, seed) -> float:
    targets = np.column_stack([y, permuted])
    predictions = ridge.cv_predict([x], targets, identities, folds, [0.01, 0.1, 1.0, 10.0], 5, seed)[0]
    scores = metrics.pearson_columns(targets, predictions)
    return metrics.permutation_p_value(scores[0], scores[1:])


def main(argv=None):
    args = parse_args(argv)
    machine = _common.machine()  # now: the commit and load the numbers below come from
    rng = np.random.default_rng(args.seed)
    p_values = {"identity": [], "image": []}
    start = time.perf_counter()
    progress = outputs.Progress(args.datasets, "null calibration", "datasets")
    for i in range(args.datasets):
        x, y, identities = simulate(rng, args)
        folds = metrics.make_folds(identities, 5, "identity", i)
        for unit, labels in (("identity", identities), ("image", np.arange(len(y)))):
            permuted = metrics.permuted_by_identity(y, labels, args.permutations, int(rng.integers(1 << 31)))
            p_values[unit].append(p_value(x, y, identities, folds, permuted, i))
        progress.update()
    rows = []
    for unit, values in p_values.items():
        hits = int(np.sum(np.array(values) <= 0.05))
        ci = stats.binomtest(hits, len(values)).proportion_ci(0.95)
        rows.append({"null": "whole identities permuted" if unit == "identity" else "single images shuffled",
                     "datasets": len(values), "false positives at .05": hits,
                     "false-positive rate": hits / len(values), "95% CI": f"{ci.low:.3f}-{ci.high:.3f}",
                     "calibrated (rate in [.02, .08])": "yes" if 0.02 <= hits / len(values) <= 0.08 else "NO"})
    figure, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
    for axis, (unit, values) in zip(axes, p_values.items()):
        axis.hist(values, bins=20, range=(0, 1), color="grey")
        axis.axhline(len(values) / 20, color="black", linestyle=":", label="uniform")
        axis.set(title="whole identities permuted" if unit == "identity" else "single images shuffled", xlabel="p-value")
    axes[0].set_ylabel("datasets")
    axes[0].legend()
    figure_path = Path(args.out).with_suffix(".png")
    outputs.save_figure(figure, figure_path, f"benchmarks/null_calibration.py | {machine['code']} | {args.datasets} "
                                             f"datasets, {args.permutations} permutations, seed {args.seed}")
    setup = (f"{args.datasets} datasets without signal: {args.identities} identities x {args.images_per_identity} "
             f"images, identity share of rating variance {args.identity_share}, {args.features} identity-clustered "
             f"features (identity sd 1, image noise sd 0.5); ridge with inner-CV penalty (alphas 0.01-10 per "
             f"feature, 5 inner folds), 5 identity-grouped outer folds, {args.permutations} permutations per "
             f"dataset and null; seed {args.seed}. Simulated data: no weights involved.")
    _common.write_report(args.out, "Calibration of the permutation null with identity-clustered ratings",
                         _common.command_line(), machine,
                         [("Set-up", setup), ("Result", _common.table(rows)),
                          ("p-values", f"![p-value histograms]({figure_path.name})\n\n"
                                       f"Wall time {_common.seconds(time.perf_counter() - start)}.")])


if __name__ == "__main__":
    main()
