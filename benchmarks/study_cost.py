"""What the whole study costs: one feature-extraction pass vs CV + permutation test of every model.

Runs the package's own functions, as cross_validate.py and permutation_test.py do:
1. extraction: every image through the frozen VGG16 once, for the layers the configured head
   needs, into an EMPTY feature cache (the floor of any method that uses VGG16 features);
2. study: for every group x trait, the configured head's cross-validated predictions and its
   permutation null (the whole fit, inner selection included, per permutation), on that cache;
3. optionally, a few exact permutations of the mlp head (model.head: mlp), to state their cost.
The target for the ridge head: study <= 1.5 x extraction. Steps 1-2 run --repeats times, each from
an empty cache; the report shows the pass with the median study / extraction ratio, and every pass (timings
on a shared machine vary).

    python benchmarks/study_cost.py --permutations 1000 --mlp-permutations 2
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import numpy as np

from facetraits import config, metrics, training
from facetraits.backend import keras


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "study_cost")
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--mlp-permutations", type=int, default=2, help="exact mlp permutations timed (0 = skip)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="whole passes (extraction + study, each from an empty cache); the report shows the pass "
                             "with the median study / extraction ratio")
    parser.add_argument("--work", default=str(_common.SCRATCH / "study_cost"), help="scratch folder (emptied)")
    return parser.parse_args(argv)


def timed_study(args, work: Path):
    """(extraction seconds, study seconds, per-model rows, study, cfg) from an emptied scratch folder."""
    shutil.rmtree(work, ignore_errors=True)
    keras.backend.clear_session()
    cfg = config.load(args.config, [f"model.weights={args.weights}", f"output.cache_dir={work / 'cache'}",
                                    f"permutation.n_permutations={args.permutations}", *args.overrides])
    start = time.perf_counter()
    study = training.load_study(cfg)
    extraction = time.perf_counter() - start
    rows, start = [], time.perf_counter()
    for group, trait in [(g, t) for g in cfg.groups for t in cfg.traits]:
        name, y = f"{group}__{trait}", study.dataset.target(group, trait)
        fit_start = time.perf_counter()
        predictions = np.array(training.cached_cross_val_predict(study, y, cfg, name)["predictions"])
        cv_seconds = time.perf_counter() - fit_start
        null = training.permutation_null(study, y, cfg, name)
        observed = metrics.pearson_r(y, predictions)
        rows.append({"model": name, "CV r": observed, "CV s": cv_seconds,
                     "permutations s": time.perf_counter() - fit_start - cv_seconds,
                     "p": metrics.permutation_p_value(observed, null), "null sd": float(np.std(null))})
    return extraction, time.perf_counter() - start, rows, study, cfg


def main(argv=None):
    args = parse_args(argv)
    machine = _common.machine()  # now: the commit and load the numbers below come from
    work = Path(args.work)
    passes = [timed_study(args, work) for _ in range(args.repeats)]
    ratios = [study_seconds / extraction for extraction, study_seconds, *_ in passes]
    median_pass = int(np.argsort(ratios)[len(ratios) // 2])  # the pass whose study / extraction ratio is the median
    extraction, study_seconds, rows, study, cfg = passes[median_pass]
    summary = [{"quantity": f"one feature-extraction pass ({len(study.dataset)} images, "
                            f"{', '.join(study.features)}, {cfg.model.input_size} px, empty cache)",
                "seconds": extraction},
               {"quantity": f"whole study from the cache: CV + {args.permutations} permutations x {len(rows)} "
                            f"models ({cfg.model.head} head)", "seconds": study_seconds},
               {"quantity": "study / extraction (target for the ridge head: <= 1.5)", "seconds": study_seconds / extraction}]
    sections = [("Set-up", f"{_common.WEIGHTS_NOTE.format(weights=_common.relative(args.weights))} Data: "
                           f"{_common.relative(cfg.data.ratings)}, {cfg.cv.n_folds} identity-grouped folds, "
                           f"ridge candidates {', '.join(s.label() for s in cfg.ridge.feature_sets)}, "
                           f"alphas {list(cfg.ridge.alphas)}, {cfg.ridge.inner_folds} inner folds."),
                ("Result" + (f" (pass {median_pass + 1}: the median study / extraction ratio of {args.repeats} passes)"
                             if args.repeats > 1 else ""),
                 _common.table(summary)),
                ("Per model", _common.table(rows))]
    if args.repeats > 1:
        every_pass = [{"pass": k + 1, "extraction s": e, "study s": t, "study / extraction": t / e}
                      for k, (e, t, *_) in enumerate(passes)]
        sections.append(("Every pass (timings on a shared machine vary)", _common.table(every_pass)))
    if args.mlp_permutations:
        mlp = config.load(args.config, [f"model.weights={args.weights}", f"output.cache_dir={work / 'cache'}",
                                        f"permutation.n_permutations={args.mlp_permutations}", "model.head=mlp",
                                        *args.overrides])
        keras.backend.clear_session()
        y = study.dataset.target(cfg.groups[0], cfg.traits[0])
        start = time.perf_counter()
        training.permutation_null(study, y, mlp, "mlp")
        each = (time.perf_counter() - start) / args.mlp_permutations
        sections.append(("The exact mlp null (model.head: mlp)", _common.table([
            {"quantity": f"seconds per permutation (one model, {cfg.cv.n_folds} Keras fits; {args.mlp_permutations} timed)",
             "value": each},
            {"quantity": f"{args.permutations} permutations x {len(rows)} models, extrapolated",
             "value": _common.seconds(each * args.permutations * len(rows))}])))
    _common.write_report(args.out, "Cost of the whole study", _common.command_line(), machine, sections)


if __name__ == "__main__":
    main()
