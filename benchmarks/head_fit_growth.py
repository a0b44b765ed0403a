"""Do head fits slow down as the TF1 graph grows? fit_head in one graph vs with reset_graph vs CV.

In TF1 graph mode every model ever built stays in the default graph. cross_validate.py fits
5 folds x every model in one process; since commit e02cfd8 training.cross_val_predict clears the
Keras graph before each fold (permutation_test.py with null_model=same resets it before every
permutation). Each fit adds a
new model, optimizer and training function to the default graph. This fits the configured head
--fits times on the same cached features (fold 1's training part of one model) in ONE graph, then
--fits times with `facetraits.backend.reset_graph` before each, then runs cross_val_predict for
every model as cross_validate.py does, and reports seconds per epoch per fit, repeated --rounds
times (order reversed in even rounds). Needs a filled feature cache (e.g. the one
study_cost.py leaves).

    flock /tmp/facetraits-cpu.lock .venv/bin/python benchmarks/head_fit_growth.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import numpy as np

from facetraits import config as config_module
from facetraits import training
from facetraits.backend import reset_graph, tf


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__)
    parser.add_argument("--cache-dir", default="/tmp/facetraits-bench/study_cost/cache",
                        help="a feature cache holding every image (default: %(default)s)")
    parser.add_argument("--fits", type=int, default=20, help="fits per series (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="(default: %(default)s)")
    parser.add_argument("--out", default=str(_common.RESULTS / "head_fit_growth.md"), help="(default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def series(conv, y, identities, cfg, n, reset: bool) -> list[dict]:
    rows = []
    if not reset:
        reset_graph(cfg.seed)
    for i in range(n):
        if reset:
            reset_graph(cfg.seed)
        ops = len(tf.compat.v1.get_default_graph().get_operations())
        trained = training.fit_head(conv, y, identities, cfg, seed=cfg.seed)
        rows.append({"fit": i + 1, "graph ops before": ops, "epochs": trained.epochs,
                     "seconds": trained.seconds, "s/epoch": trained.seconds / trained.epochs})
    return rows


def series_cross_val_predict(study, cfg) -> list[dict]:
    """What cross_validate.py does: cross_val_predict for every group x trait, one graph, no reset."""
    rows, original = [], training.fit_head

    def recorded(*a, **k):
        ops = len(tf.compat.v1.get_default_graph().get_operations())
        trained = original(*a, **k)
        rows.append({"fit": len(rows) + 1, "graph ops before": ops, "epochs": trained.epochs,
                     "seconds": trained.seconds, "s/epoch": trained.seconds / trained.epochs})
        return trained
    reset_graph(cfg.seed)
    training.fit_head = recorded
    try:
        for group in cfg.groups:
            for trait in cfg.traits:
                training.cross_val_predict(study.features, study.dataset.target(group, trait),
                                           study.dataset.identities, study.folds, cfg)
    finally:
        training.fit_head = original
    return rows


def main(argv=None):
    args = parse_args(argv)
    contention = _common.Contention()
    info = _common.machine()
    command = _common.command_line()
    cfg = config_module.load(args.config, [f"model.weights={args.weights}", f"output.cache_dir={args.cache_dir}",
                                           *args.overrides])
    study = training.load_study(cfg)
    group, trait = cfg.groups[0], cfg.traits[0]
    train = study.folds != 0
    conv, y = study.features[train], study.dataset.target(group, trait)[train]
    identities = study.dataset.identities[train]
    summary, detail = [], []
    labels = {"loop": "fit_head in a loop, one graph, no reset", "reset": "fit_head in a loop, reset_graph before each fit",
              "cvp": "cross_val_predict for every model (= cross_validate.py)"}
    for round_ in range(1, args.rounds + 1):
        order = ("loop", "reset", "cvp") if round_ % 2 else ("cvp", "reset", "loop")
        for kind in order:
            label = labels[kind]
            print(f"round {round_}: {label} ...", file=sys.stderr)
            if kind == "cvp":
                rows = series_cross_val_predict(study, cfg)
            else:
                rows = series(conv, y, identities, cfg, args.fits, kind == "reset")
            per = np.array([r["s/epoch"] for r in rows])
            k = max(1, min(5, len(rows) // 3))
            summary.append({"round": round_, "series": label, "fits": len(rows),
                            "epochs per fit": f"{min(r['epochs'] for r in rows)}-{max(r['epochs'] for r in rows)}",
                            "k": k, "s/epoch, first k fits": float(per[:k].mean()),
                            "s/epoch, last k fits": float(per[-k:].mean()),
                            "last / first": float(per[-k:].mean() / per[:k].mean()),
                            "graph ops before last fit": rows[-1]["graph ops before"],
                            "total s": float(sum(r["seconds"] for r in rows))})
            detail += [{"round": round_, "series": kind, **r} for r in rows]
    reset_graph(cfg.seed)
    setup = (f"Series 'loop' and 'reset': fit_head (the configured head: {cfg.model.dense_units} units, dropout {cfg.model.dropout}, "
             f"{cfg.training.optimizer}, up to {cfg.training.epochs} epochs with early stopping) on the cached "
             f"features of fold 1's training part of {group}__{trait} ({int(train.sum())} images, input "
             f"{cfg.model.input_size} px), same seed every fit, so every fit runs the same epochs. Series 'cvp': "
             f"training.cross_val_predict for each of the {len(cfg.groups) * len(cfg.traits)} models in turn "
             f"({cfg.cv.n_folds} folds each, epochs vary by fold), exactly what cross_validate.py runs.\n\n"
             + _common.WEIGHTS_NOTE.format(weights=args.weights))
    _common.write_report(Path(args.out), "Head fits: one growing graph vs reset_graph", command, info,
                         [("Set-up", setup), ("Summary", _common.table(summary)),
                          ("Every fit", _common.table(detail))], contention)


if __name__ == "__main__":
    main()
