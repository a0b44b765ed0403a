"""Do head fits slow down as the TF1 graph grows? fit_head N times in one graph vs with reset_graph.

cross_validate.py fits 5 folds x every model in one process without resetting the Keras graph
(permutation_test.py with null_model=same resets it before every permutation). Each fit adds a
new model, optimizer and training function to the default graph. This fits the configured head
--fits times on the same cached features (fold 1's training part of one model) in ONE graph, then
--fits times with `facetraits.backend.reset_graph` before each, and reports seconds per epoch per
fit, repeated --rounds times alternating the order. Needs a filled feature cache (e.g. the one
study_cost.py leaves).

    flock /tmp/facetraits-cpu.lock .venv/bin/python benchmarks/head_fit_growth.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import numpy as np

from facetraits import config as config_module
from facetraits import training
from facetraits.backend import reset_graph, tf


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(_common.ROOT / "config.yaml"), help="settings file (default: %(default)s)")
    parser.add_argument("--weights", default=str(_common.DEFAULT_WEIGHTS), help="(default: %(default)s; HED, not ImageNet)")
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
    for round_ in range(1, args.rounds + 1):
        order = (False, True) if round_ % 2 else (True, False)
        for reset in order:
            label = "reset_graph before each fit" if reset else "one graph, no reset (as cross_validate.py)"
            print(f"round {round_}: {label} ...", file=sys.stderr)
            rows = series(conv, y, identities, cfg, args.fits, reset)
            per = np.array([r["s/epoch"] for r in rows])
            k = max(1, min(5, len(rows) // 3))
            summary.append({"round": round_, "series": label, "fits": len(rows), "epochs per fit": rows[0]["epochs"],
                            f"s/epoch, fits 1-{k}": float(per[:k].mean()),
                            f"s/epoch, last {k} fits": float(per[-k:].mean()),
                            "last / first": float(per[-k:].mean() / per[:k].mean()),
                            "graph ops at last fit": rows[-1]["graph ops before"],
                            "total s": float(sum(r["seconds"] for r in rows))})
            detail += [{"round": round_, "series": "reset" if reset else "one graph", **r} for r in rows]
    reset_graph(cfg.seed)
    setup = (f"fit_head (the configured head: {cfg.model.dense_units} units, dropout {cfg.model.dropout}, "
             f"{cfg.training.optimizer}, up to {cfg.training.epochs} epochs with early stopping) on the cached "
             f"features of fold 1's training part of {group}__{trait} ({int(train.sum())} images, input "
             f"{cfg.model.input_size} px), same seed every fit, so every fit runs the same epochs.\n\n"
             + _common.WEIGHTS_NOTE.format(weights=args.weights))
    _common.write_report(Path(args.out), "Head fits: one growing graph vs reset_graph", command, info,
                         [("Set-up", setup), ("Summary", _common.table(summary)),
                          ("Every fit", _common.table(detail))], contention)


if __name__ == "__main__":
    main()
