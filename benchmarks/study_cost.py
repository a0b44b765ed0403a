"""Cost of the whole study (CV + permutation test) with the feature cache vs the reference study's way.

Cached side, timed end to end in this process: `cross_validate.py` then `permutation_test.py`
(their own main(), outputs in --work) from an EMPTY feature cache, so the time includes
reading/hashing the images, building VGG16, extracting every image's conv features once, the
configured head's k-fold CV for every group x trait, and the permutation test (default
`permutation.null_model: ridge`, closed form).

Naive side (the reference study's way): one Keras fit of the FULL model (frozen VGG16 + the
same head, `model.mount(base, head)`, compiled) per fold, fed preprocessed images every epoch, so
the conv layers run on every training and validation image every epoch. It is far too slow to run
in full, so it is measured scaled down and extrapolated linearly (see the report's assumptions):
one fold with --naive-epochs epochs on the real ratings and one fold on shuffled ratings.

Also: one bare feature-extraction pass (every image through VGG16 once, nothing written: the
floor of any method that uses VGG16 features), and the cost per permutation of
`permutation.null_model: same` (the exact null, the configured head refitted for every shuffle).

    flock /tmp/facetraits-cpu.lock .venv/bin/python benchmarks/study_cost.py
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import numpy as np
import pandas as pd

import cross_validate
import permutation_test
from facetraits import config as config_module
from facetraits import data, features, metrics, model, training
from facetraits.backend import keras, reset_graph


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__)
    parser.add_argument("--work", default="/tmp/facetraits-bench/study_cost",
                        help="scratch folder for cache, results, figures; its cache is EMPTIED first (default: %(default)s)")
    parser.add_argument("--out", default=str(_common.RESULTS / "study_cost.md"), help="Markdown report (default: %(default)s)")
    parser.add_argument("--folds", type=int, default=5, help="cv.n_folds (default: %(default)s)")
    parser.add_argument("--permutations", type=int, default=1000, help="permutation.n_permutations (default: %(default)s)")
    parser.add_argument("--naive-epochs", type=int, default=2,
                        help="epochs of each measured full-model fit, >= 2 (default: %(default)s)")
    parser.add_argument("--same-permutations", type=int, default=3,
                        help="permutations timed with null_model=same, one model (0 = skip; default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for the whole benchmark, e.g. for a smoke test "
                             "--set model.input_size=32 (repeatable)")
    args = parser.parse_args(argv)
    if args.naive_epochs < 2:
        parser.error("--naive-epochs must be >= 2 (the first epoch includes graph building)")
    return args


class Recorder:
    """Wraps the package's functions to time phases and record the epochs every head fit used."""

    def __init__(self):
        self.fits, self.phases, self.originals = [], {}, []

    def wrap(self, owner, name, phase=None, fit=False):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = original(*args, **kwargs)
            elapsed = time.perf_counter() - start
            if phase:
                self.phases[phase] = self.phases.get(phase, 0.0) + elapsed
            if fit:
                self.fits.append({"epochs": result.epochs, "seconds": result.seconds})
            return result
        setattr(owner, name, wrapper)
        self.originals.append((owner, name, original))

    def restore(self):
        for owner, name, original in reversed(self.originals):
            setattr(owner, name, original)
        self.originals = []


def study_argv(args, work: Path, null_model="ridge", permutations=None) -> list[str]:
    sets = {"model.weights": args.weights, "output.cache_dir": work / "cache", "output.results_dir": work / "results",
            "output.fig_dir": work / "fig", "output.models_dir": work / "models", "cv.n_folds": args.folds,
            "permutation.n_permutations": permutations or args.permutations, "permutation.null_model": null_model}
    argv = ["--config", args.config]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    for item in args.overrides:
        argv += ["--set", item]
    return argv


def run_cached_study(args, work: Path) -> dict:
    """cross_validate.main + permutation_test.main from an empty feature cache, timed."""
    for folder in ("cache", "results", "fig"):
        shutil.rmtree(work / folder, ignore_errors=True)
    recorder = Recorder()
    recorder.wrap(features, "extract", phase="feature extraction (VGG16, writes the cache)")
    recorder.wrap(training, "fit_head", fit=True)
    recorder.wrap(training, "cross_val_predict", phase="CV head fits + predictions")
    recorder.wrap(permutation_test, "null_distribution", phase="permutation null (ridge)")
    argv = study_argv(args, work)
    reset_graph(0)
    try:
        start = time.perf_counter()
        cross_validate.main(argv)
        cv_done = time.perf_counter()
        permutation_test.main(argv)
        end = time.perf_counter()
    finally:
        recorder.restore()
    summary = pd.read_csv(work / "results" / "cv_summary.csv")
    permutation = pd.read_csv(work / "results" / "permutation_summary.csv")
    return {"total": end - start, "cv_script": cv_done - start, "permutation_script": end - cv_done,
            "phases": recorder.phases, "fits": recorder.fits,
            "cv_summary": summary[summary.fold == "all"], "permutation_summary": permutation}


def feature_pass(cfg, dataset) -> dict:
    """Every image through VGG16 once (load, preprocess, predict), nothing written: the floor."""
    reset_graph(cfg.seed)
    start = time.perf_counter()
    base = model.build_base(cfg.model, cfg.seed)
    built = time.perf_counter()
    n, batch = len(dataset), features.EXTRACTION_BATCH
    predict_seconds = 0.0
    for first in range(0, n, batch):
        images = model.preprocess(data.load_images(dataset.paths[first:first + batch], cfg.model.input_size))
        t = time.perf_counter()
        base.predict(images, batch_size=batch, verbose=0)
        predict_seconds += time.perf_counter() - t
    end = time.perf_counter()
    return {"seconds": end - built, "build": built - start, "predict": predict_seconds, "n": n}


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def naive_fold(cfg, images, y, identities, test, epochs: int) -> dict:
    """One fold the reference study's way: build VGG16 + head, compile, fit on images, predict the test fold."""
    reset_graph(cfg.seed)
    t0 = time.perf_counter()
    base = model.build_base(cfg.model, cfg.seed)
    head = model.build_head(base.output_shape[1:], cfg.model, cfg.seed)
    full = model.mount(base, head)
    full.compile(optimizer=training.optimizer(cfg.training), loss="mse")
    t1 = time.perf_counter()
    train = ~test
    held_out = training.validation_indices(identities[train], cfg.training.validation_split, cfg.seed)
    x = model.preprocess(images[train])
    y_train = y[train].astype(np.float32)
    validation = (x[held_out], y_train[held_out]) if held_out.any() else None
    timer = EpochTimer()
    t2 = time.perf_counter()
    full.fit(x[~held_out], y_train[~held_out], validation_data=validation, epochs=epochs,
             batch_size=cfg.training.batch_size, shuffle=True, callbacks=[timer], verbose=0)
    t3 = time.perf_counter()
    prediction = full.predict(model.preprocess(images[test]), batch_size=cfg.training.batch_size, verbose=0).ravel()
    t4 = time.perf_counter()
    return {"build": t1 - t0, "prepare": t2 - t1, "fit": t3 - t2, "predict": t4 - t3, "total": t4 - t0,
            "epoch_times": timer.times, "n_fit": int((~held_out).sum()), "n_val": int(held_out.sum()),
            "n_test": int(test.sum()), "prediction_sd": float(np.std(prediction))}


def naive_time(fold: dict, epochs: float) -> float:
    """Linear extrapolation of one measured naive fit to `epochs` epochs.

    fixed = build + prepare + (fit - sum(epoch times)) + predict, epoch 1 as measured (it holds the
    graph building), every later epoch as the mean of the measured epochs 2..n."""
    times = fold["epoch_times"]
    steady = float(np.mean(times[1:]))
    fixed = fold["build"] + fold["prepare"] + (fold["fit"] - sum(times)) + fold["predict"]
    return fixed + times[0] + max(epochs - 1, 0) * steady


def same_null_cost(args, work: Path, cfg, group: str, trait: str) -> dict:
    """Time a few permutations of null_model=same (the configured head refitted per shuffle, all folds)."""
    recorder = Recorder()
    recorder.wrap(training, "fit_head", fit=True)
    recorder.wrap(training, "cross_val_predict", phase="cv")
    same_cfg = config_module.load(args.config, study_argv(args, work, "same", args.same_permutations)[3::2])
    study = training.load_study(same_cfg)  # features from the (now full) cache
    y = study.dataset.target(group, trait)
    try:
        # entry 0 (observed) is the CV already cached by the study; entries 1.. are the timed shuffles
        training.cached_cross_val_predict(study.features, y, study.dataset.identities, study.folds, same_cfg,
                                          f"{group}__{trait}")
        recorder.fits.clear()
        calls = []
        original = recorder.originals[-1][2]

        def timed_cv(*a, **k):
            start = time.perf_counter()
            result = original(*a, **k)
            calls.append(time.perf_counter() - start)
            return result
        training.cross_val_predict = timed_cv
        start = time.perf_counter()
        scores = permutation_test.null_distribution(study.features, y, study.dataset, study.folds, same_cfg,
                                                    f"{group}__{trait}")
        total = time.perf_counter() - start
    finally:
        recorder.restore()
    return {"per_permutation": calls, "total": total, "fits": recorder.fits, "null_r": scores[1:].tolist()}


def main(argv=None):
    args = parse_args(argv)
    contention = _common.Contention()
    info = _common.machine()
    command = _common.command_line()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"cached study from an empty cache in {work} ...", file=sys.stderr)
    cached = run_cached_study(args, work)
    cfg = config_module.load(args.config, study_argv(args, work)[3::2])
    dataset = data.load(cfg)
    folds = metrics.make_folds(dataset.identities, cfg.cv.n_folds, cfg.cv.group_by, cfg.seed, str(dataset.source))
    models = [(g, t) for g in cfg.groups for t in cfg.traits]
    n_models = len(models)

    print("one bare feature-extraction pass ...", file=sys.stderr)
    floor = feature_pass(cfg, dataset)

    print(f"naive: full-model fits, 1 fold x {args.naive_epochs} epochs, real and shuffled ratings ...", file=sys.stderr)
    load_start = time.perf_counter()
    images = data.load_images(dataset.paths, cfg.model.input_size)
    image_load = time.perf_counter() - load_start
    group, trait = models[0]
    y = dataset.target(group, trait)
    test = folds == 0
    naive_real = naive_fold(cfg, images, y, dataset.identities, test, args.naive_epochs)
    shuffled = metrics.shuffled_labels(y, 1, cfg.seed)[:, 0]
    naive_shuffled = naive_fold(cfg, images, shuffled, dataset.identities, test, args.naive_epochs)
    del images

    same = None
    if args.same_permutations > 0:
        print(f"null_model=same: {args.same_permutations} permutations of {group}__{trait} ...", file=sys.stderr)
        same = same_null_cost(args, work, cfg, group, trait)
    reset_graph(cfg.seed)

    # ---- extrapolation -------------------------------------------------------------------------
    cv_epochs = [f["epochs"] for f in cached["fits"]]
    n_fits_cv = cfg.cv.n_folds * n_models
    assert len(cv_epochs) == n_fits_cv, (len(cv_epochs), n_fits_cv)
    perm_epochs = [f["epochs"] for f in same["fits"]] if same and same["fits"] else cv_epochs
    perm_epoch_source = ("epochs used by the shuffled-label head fits of the null_model=same timing"
                         if same and same["fits"] else "epochs used by the cached CV fits (no same-null timing)")
    naive_cv = image_load + sum(naive_time(naive_real, e) for e in cv_epochs)
    mean_perm_fold = float(np.mean([naive_time(naive_shuffled, e) for e in perm_epochs]))
    naive_perm = cfg.permutation.n_permutations * n_fits_cv * mean_perm_fold
    naive_total = naive_cv + naive_perm
    cached_total = cached["total"]
    phases = cached["phases"]
    extraction = phases.get("feature extraction (VGG16, writes the cache)", 0.0)
    cv_fit = phases.get("CV head fits + predictions", 0.0)
    ridge = phases.get("permutation null (ridge)", 0.0)

    # ---- report ----------------------------------------------------------------------------------
    n = len(dataset)
    setup = (f"{n} images of {len(np.unique(dataset.identities))} identities ({cfg.data.ratings}), input "
             f"{cfg.model.input_size} px, {n_models} models ({', '.join(f'{g}__{t}' for g, t in models)}), "
             f"{cfg.cv.n_folds} folds grouped by {cfg.cv.group_by}, {cfg.permutation.n_permutations} permutations, "
             f"head: pooling={cfg.model.pooling}, dense_units={cfg.model.dense_units}, dropout={cfg.model.dropout}, "
             f"{cfg.training.optimizer} lr={cfg.training.learning_rate}, up to {cfg.training.epochs} epochs, "
             f"batch {cfg.training.batch_size}, early stopping patience {cfg.training.early_stopping_patience} "
             f"on {cfg.training.validation_split:.0%} held-out training identities.\n\n"
             + _common.WEIGHTS_NOTE.format(weights=args.weights))
    headline = [
        {"quantity": "cached study, end to end (CV + permutation test, empty cache)", "seconds": cached_total,
         "readable": _common.seconds(cached_total)},
        {"quantity": "naive study, extrapolated (full-model fits, CV + permutations refitted the same way)",
         "seconds": naive_total, "readable": _common.seconds(naive_total)},
        {"quantity": "ratio naive / cached", "seconds": naive_total / cached_total, "readable": f"{naive_total / cached_total:.3g} x"},
        {"quantity": "one bare feature-extraction pass (every image through VGG16 once; the floor)",
         "seconds": floor["seconds"], "readable": f"{n / floor['seconds']:.1f} images/s"},
        {"quantity": "cached study / one extraction pass", "seconds": cached_total / floor["seconds"],
         "readable": f"{cached_total / floor['seconds']:.2f} x"},
        {"quantity": "naive CV part only (no permutations), extrapolated", "seconds": naive_cv,
         "readable": _common.seconds(naive_cv)},
        {"quantity": "cached CV part only (cross_validate.py incl. extraction)", "seconds": cached["cv_script"],
         "readable": f"naive/cached = {naive_cv / cached['cv_script']:.3g} x"},
    ]
    other = cached["total"] - extraction - cv_fit - ridge
    if same:
        exact = cached_total - ridge + float(np.mean(same["per_permutation"])) * cfg.permutation.n_permutations * n_models
        headline += [
            {"quantity": "cached study with the exact null instead (null_model=same), extrapolated from the timed "
                         "permutations", "seconds": exact, "readable": _common.seconds(exact)},
            {"quantity": "ratio naive / cached with the exact null (like for like: both refit the MLP head per shuffle)",
             "seconds": naive_total / exact, "readable": f"{naive_total / exact:.3g} x"}]
    breakdown = [
        {"phase": "feature extraction (VGG16 on every image once, .npy per image)", "seconds": extraction},
        {"phase": f"CV: {n_fits_cv} head fits (+ test-fold predictions)", "seconds": cv_fit},
        {"phase": f"permutation null: ridge, {cfg.permutation.n_permutations} shuffles x {n_models} models", "seconds": ridge},
        {"phase": "everything else (reading/hashing images twice, building VGG16, loading the cache, "
                  "figures, CSVs)", "seconds": other},
        {"phase": "total (cross_validate.py + permutation_test.py)", "seconds": cached["total"]},
    ]
    fits = pd.DataFrame(cached["fits"])
    def epoch_row(label, frame):
        per_epoch = (frame.seconds / frame.epochs).to_numpy()
        k = max(1, min(5, len(frame) // 2))
        return {"fits": label, "n": len(frame), "epochs mean": float(frame.epochs.mean()),
                "min": int(frame.epochs.min()), "max": int(frame.epochs.max()),
                "seconds per fit (mean)": float(frame.seconds.mean()),
                "k": k, "s/epoch, first k fits": float(per_epoch[:k].mean()),
                "s/epoch, last k fits": float(per_epoch[-k:].mean())}
    epoch_rows = [epoch_row("cached CV heads (cross_validate.py: one graph, no reset between fits)", fits)]
    if same and same["fits"]:
        epoch_rows.append(epoch_row("shuffled-label heads (null_model=same; graph reset per permutation)",
                                    pd.DataFrame(same["fits"])))
    naive_rows = []
    for label, fold, epochs in (("real ratings (CV)", naive_real, cv_epochs),
                                ("shuffled ratings (permutations)", naive_shuffled, perm_epochs)):
        naive_rows.append({"measured fold": label, "train/val/test images": f"{fold['n_fit']}/{fold['n_val']}/{fold['n_test']}",
                           "build+compile s": fold["build"], "epoch 1 s": fold["epoch_times"][0],
                           "later epochs s (mean)": float(np.mean(fold["epoch_times"][1:])),
                           "predict test s": fold["predict"], "measured total s": fold["total"],
                           "mean epochs it stands for": float(np.mean(epochs)),
                           "one fit at those epochs, s (extrapolated)": naive_time(fold, float(np.mean(epochs)))})
    extrapolation = (
        f"Measured: ONE fold (fold 1 of {group}__{trait}, {naive_real['n_fit']} training + {naive_real['n_val']} validation "
        f"images) fitted for {args.naive_epochs} epochs on the real ratings, and the same fold on shuffled ratings "
        f"(the permutation test's unit of work). Extrapolated linearly:\n\n"
        f"- one fit of E epochs = build+compile + preparation + epoch 1 (as measured, holds graph building) "
        f"+ (E - 1) x mean(measured epochs 2..{args.naive_epochs}) + predicting the test fold;\n"
        f"- CV: {n_fits_cv} fits ({cfg.cv.n_folds} folds x {n_models} models), fit i run for exactly the epochs "
        f"the cached run's head fit i used (early stopping; mean {np.mean(cv_epochs):.1f}, range "
        f"{min(cv_epochs)}-{max(cv_epochs)}), all at the measured fold's cost per epoch, plus loading the images "
        f"once ({image_load:.1f} s);\n"
        f"- permutations: {cfg.permutation.n_permutations} x {n_fits_cv} shuffled-label fits, each the mean "
        f"extrapolated cost over the {perm_epoch_source} (mean {np.mean(perm_epochs):.1f} epochs).\n\n"
        f"Assumptions: cost is linear in epochs; every fold and model costs what the measured fold costs (folds "
        f"are within one identity-sized chunk of each other); a full-model fit would early-stop at the same epoch "
        f"as the cached head (same head, optimizer, batch size and validation identities; the cached head also "
        f"standardises its inputs, which if anything makes it converge in fewer epochs); VGG16 is rebuilt for every "
        f"fit (as a fresh model per fold needs); images are decoded once and kept in memory (the naive side gets "
        f"no decoding cost per epoch); nothing else ran on the machine meanwhile (see the 'cpu lock' and 'other processes' CPU' lines above). "
        f"The naive figure is an estimate, not a measurement; only its per-epoch cost is measured.")
    sections = [("Set-up", setup), ("Headline", _common.table(headline, ["quantity", "seconds", "readable"])),
                ("Cached study: where the time goes", _common.table(breakdown, ["phase", "seconds"])),
                ("Epochs actually used", _common.table(epoch_rows) +
                 "\nHead fits in graph mode: every fit adds its model to the TensorFlow graph; the per-epoch "
                 "columns show whether later fits in one graph are slower than early ones."),
                ("Naive side: measured fold", _common.table(naive_rows)),
                ("Extrapolation and its assumptions", extrapolation)]
    if same:
        per = np.array(same["per_permutation"])
        full_same = per.mean() * cfg.permutation.n_permutations * n_models
        same_rows = [{"quantity": f"null_model=same, seconds per permutation ({cfg.cv.n_folds} head fits, one model; "
                                  f"{len(per)} timed)", "value": f"{per.mean():.2f} (min {per.min():.2f}, max {per.max():.2f})"},
                     {"quantity": f"-> {cfg.permutation.n_permutations} permutations x {n_models} models",
                      "value": f"{full_same:.0f} s = {_common.seconds(full_same)}"},
                     {"quantity": "ridge null, all models, all permutations (measured above)", "value": f"{ridge:.2f} s"},
                     {"quantity": "naive (full-model) null per permutation, extrapolated",
                      "value": f"{cfg.cv.n_folds * mean_perm_fold:.0f} s = {_common.seconds(cfg.cv.n_folds * mean_perm_fold)}"}]
        sections.append(("Cost of the exact MLP null (permutation.null_model=same)", _common.table(same_rows) +
                         "\nPer permutation the configured head is refitted on cached features for every fold "
                         "(graph reset between permutations, as permutation_test.py does). The ridge null "
                         "replaces that with one SVD per fold for all shuffles at once."))
    results_rows = []
    for _, row in cached["cv_summary"].iterrows():
        perm = cached["permutation_summary"]
        p = perm[(perm.group == row.group) & (perm.trait == row.trait)].iloc[0]
        results_rows.append({"model": f"{row.group}__{row.trait}", "CV pooled r (head)": float(row.pearson_r),
                             "mean fold r": float(row.mean_fold_r), "ridge observed r": float(p.observed_r),
                             "p (ridge null)": float(p.p_value)})
    sections.append(("What the cached study computed (sanity check; HED features, synthetic demo ratings)",
                     _common.table(results_rows)))
    _common.write_report(Path(args.out), "Study cost: cached features vs full-model fits", command, info, sections, contention)


if __name__ == "__main__":
    main()
