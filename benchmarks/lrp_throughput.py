"""Explanation throughput: images/s per iNNvestigate analyzer and batch size, vs forward and gradient.

For one trained full model (VGG16 + head) at --input-size: per analyzer, in a FRESH Keras graph
(`facetraits.backend.reset_graph`, then the model reloaded from its .h5, as lrp_analysis.py
does), the time to create the analyzer, its first call (iNNvestigate builds the analysis graph
on the first call) and warm calls at each batch size, through `explanations.Explainer` (the
project's path: preprocess, analyze, sum over channels). Baselines on the same batches: a plain
forward pass (`model.predict`) and a plain gradient pass (d prediction / d input, one
session.run). A last section builds the same analyzer repeatedly in ONE graph, to show how graph
mode slows down as the graph grows.

The model: `--models-dir` holding <group>__<trait>.h5, or else one is trained here on cached
features (train_regression.py's own main(), outputs in --work; --cache-dir is reused, so point
it at a cache that already holds the features to skip the extraction).

    flock /tmp/facetraits-cpu.lock .venv/bin/python benchmarks/lrp_throughput.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import numpy as np

import train_regression
from facetraits import config as config_module
from facetraits import data, explanations, model
from facetraits.backend import keras, reset_graph, tf

ANALYZERS = ["lrp.sequential_preset_a_flat", "lrp.epsilon", "lrp.alpha_2_beta_1", "gradient", "smoothgrad",
             "integrated_gradients", "deep_taylor"]


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__)
    parser.add_argument("--models-dir", default=None,
                        help="folder with a trained <group>__<trait>.h5 to explain (default: train one in --work)")
    parser.add_argument("--work", default="/tmp/facetraits-bench/lrp_throughput", help="scratch folder (default: %(default)s)")
    parser.add_argument("--cache-dir", default="/tmp/facetraits-bench/study_cost/cache",
                        help="feature cache for training the model (default: %(default)s, study_cost.py's)")
    parser.add_argument("--group", default="ASD", help="rater group of the model (default: %(default)s)")
    parser.add_argument("--trait", default="warm", help="trait of the model (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=224, help="model input size in px (default: %(default)s)")
    parser.add_argument("--analyzers", nargs="+", default=ANALYZERS, help="iNNvestigate names (default: %(default)s)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32], help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="most warm calls timed per analyzer x batch (default: %(default)s)")
    parser.add_argument("--max-call-seconds", type=float, default=30.0,
                        help="skip a batch size whose warm call is estimated (from the smaller batch) to take longer, "
                             "and time fewer repeats so that one analyzer x batch takes about this long (default: %(default)s)")
    parser.add_argument("--warmup-max-seconds", type=float, default=6.0,
                        help="an untimed warm-up call at each new batch size only when the call is estimated "
                             "below this; else the first call at that size is timed (default: %(default)s)")
    parser.add_argument("--growth-rounds", type=int, default=5,
                        help="analyzers built one after another in one graph (0 = skip; default: %(default)s)")
    parser.add_argument("--growth-analyzer", default="lrp.epsilon", help="(default: %(default)s)")
    parser.add_argument("--out", default=str(_common.RESULTS / "lrp_throughput.md"), help="Markdown report (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override (repeatable), e.g. a smaller data set for a smoke test")
    return parser.parse_args(argv)


def get_model(args, cfg) -> tuple[Path, str]:
    name = f"{args.group}__{args.trait}"
    if args.models_dir:
        path = Path(args.models_dir) / f"{name}.h5"
        if not path.is_file():
            sys.exit(f"error: {path} not found")
        return path, f"loaded from {path}"
    models = Path(args.work) / "models"
    argv = ["--config", args.config, "--group", args.group, "--trait", args.trait,
            "--set", f"model.weights={args.weights}", "--set", f"model.input_size={args.input_size}",
            "--set", f"output.cache_dir={args.cache_dir}", "--set", f"output.models_dir={models}"]
    for item in args.overrides:
        argv += ["--set", item]
    start = time.perf_counter()
    reset_graph(cfg.seed)
    train_regression.main(argv)
    return models / f"{name}.h5", (f"trained by train_regression.py on cached features ({args.weights}, "
                                   f"cache {args.cache_dir}) in {time.perf_counter() - start:.1f} s, saved to {models}")


def timed(function, *a):
    start = time.perf_counter()
    function(*a)
    return time.perf_counter() - start


def load(path: Path, seed: int):
    reset_graph(seed)
    start = time.perf_counter()
    keras_model = model.load_full_model(path)
    # Work-around: after clear_session, Keras' name counter restarts while the loaded model keeps its
    # input layer named "input_1"; integrated_gradients then adds a second "input_1" and fails
    # ("The name "input_1" is used 2 times in the model"). Bumping the counter avoids the clash.
    keras.backend.get_uid("input")
    return keras_model, time.perf_counter() - start


def graph_ops() -> int:
    return len(tf.compat.v1.get_default_graph().get_operations())


def measure_batches(call, images, args, label) -> tuple[list[dict], float | None]:
    """Warm timings of call(images[:b]) for each batch size; the first call was made by the caller."""
    rows, per_image = [], None
    for index, b in enumerate(args.batch_sizes):
        batch = images[:b]
        estimate = per_image * b if per_image is not None else None
        if estimate is not None and estimate > args.max_call_seconds:
            rows.append({"method": label, "batch": b, "calls": 0,
                         "note": f"skipped: est. {estimate:.0f} s per call > --max-call-seconds"})
            continue
        note = ""
        if index > 0:  # first size was warmed by the first call
            if estimate is None or estimate <= args.warmup_max_seconds:
                call(batch)
            else:
                note = "no untimed warm-up (first call at this size included)"
        times = [timed(call, batch)]
        n_more = args.repeats - 1 if times[0] * args.repeats <= args.max_call_seconds else \
            max(0, int(args.max_call_seconds // max(times[0], 1e-9)) - 1)
        times += [timed(call, batch) for _ in range(min(n_more, args.repeats - 1))]
        best, mean = min(times), float(np.mean(times))
        per_image = mean / b
        rows.append({"method": label, "batch": b, "calls": len(times), "s/call (mean)": mean, "s/call (min)": best,
                     "images/s": b / mean, "note": note})
    return rows, per_image


def main(argv=None):
    args = parse_args(argv)
    contention = _common.Contention()
    info = _common.machine()
    command = _common.command_line()
    overrides = [f"model.input_size={args.input_size}", f"model.weights={args.weights}", *args.overrides]
    cfg = config_module.load(args.config, overrides)
    explanations.check_names(args.analyzers)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    model_path, model_source = get_model(args, cfg)
    dataset = data.load(cfg)
    images = data.load_images(dataset.paths[:max(args.batch_sizes)], args.input_size)
    seed = cfg.seed

    # ---- baselines -------------------------------------------------------------------------------
    print("baselines: forward and gradient ...", file=sys.stderr)
    keras_model, load_seconds = load(model_path, seed)
    if keras_model.input_shape[1] != args.input_size:
        sys.exit(f"error: {model_path} has input size {keras_model.input_shape[1]}, not {args.input_size}")
    predict = lambda batch: keras_model.predict(model.preprocess(batch), batch_size=len(batch), verbose=0)
    gradient_tensor = tf.compat.v1.gradients(keras_model.output[:, 0], keras_model.input)[0]
    session = tf.compat.v1.keras.backend.get_session()
    gradient = lambda batch: session.run(gradient_tensor, {keras_model.input: model.preprocess(batch)})
    first_predict = timed(predict, images[:args.batch_sizes[0]])
    rows_predict, _ = measure_batches(predict, images, args, "forward (model.predict)")
    first_gradient = timed(gradient, images[:args.batch_sizes[0]])
    rows_gradient, _ = measure_batches(gradient, images, args, "plain gradient (session.run)")
    baseline_rate = {row["batch"]: row["images/s"] for row in rows_predict if row.get("images/s")}
    gradient_rate = {row["batch"]: row["images/s"] for row in rows_gradient if row.get("images/s")}

    # ---- analyzers -------------------------------------------------------------------------------
    build_rows, throughput_rows = [], rows_predict + rows_gradient
    for name in args.analyzers:
        print(f"{name} ...", file=sys.stderr)
        keras_model, load_seconds = load(model_path, seed)
        ops_before = graph_ops()
        start = time.perf_counter()
        explainer = explanations.Explainer(keras_model, name)
        create = time.perf_counter() - start
        first = timed(explainer, images[:args.batch_sizes[0]])
        rows, _ = measure_batches(explainer, images, args, name)
        warm_first = next((row["s/call (mean)"] for row in rows if row["batch"] == args.batch_sizes[0] and row["calls"]), float("nan"))
        build_rows.append({"analyzer": name, "reload model s": load_seconds, "create_analyzer s": create,
                           f"first call (batch {args.batch_sizes[0]}) s": first,
                           f"warm call (batch {args.batch_sizes[0]}) s": warm_first,
                           "build = create + first - warm, s": create + first - warm_first,
                           "graph ops added": graph_ops() - ops_before})
        throughput_rows += rows
    for row in throughput_rows:
        if row.get("images/s") and row["batch"] in baseline_rate:
            row["x forward time"] = baseline_rate[row["batch"]] / row["images/s"]
            row["x gradient time"] = gradient_rate.get(row["batch"], float("nan")) / row["images/s"]

    # ---- graph growth ----------------------------------------------------------------------------
    growth_rows = []
    if args.growth_rounds > 0:
        print(f"graph growth: {args.growth_rounds} x {args.growth_analyzer} in one graph ...", file=sys.stderr)
        keras_model, _ = load(model_path, seed)
        one = images[:1]
        for round_ in range(1, args.growth_rounds + 1):
            ops = graph_ops()
            start = time.perf_counter()
            explainer = explanations.Explainer(keras_model, args.growth_analyzer)
            explainer(one)
            create_and_first = time.perf_counter() - start
            warm = float(np.mean([timed(explainer, one) for _ in range(2)]))
            forward = float(np.mean([timed(predict_for(keras_model), one) for _ in range(3)]))
            growth_rows.append({"round (analyzers in graph)": round_, "graph ops before": ops,
                                "create + first call s": create_and_first, "warm call (batch 1) s": warm,
                                "model.predict (batch 1) s": forward})
        reset_graph(seed)
        keras_model, _ = load(model_path, seed)
        start = time.perf_counter()
        explainer = explanations.Explainer(keras_model, args.growth_analyzer)
        explainer(one)
        fresh = time.perf_counter() - start
        growth_rows.append({"round (analyzers in graph)": "after reset_graph + reload", "graph ops before": "",
                            "create + first call s": fresh, "warm call (batch 1) s": float(np.mean([timed(explainer, one) for _ in range(2)])),
                            "model.predict (batch 1) s": float(np.mean([timed(predict_for(keras_model), one) for _ in range(3)]))})

    # ---- report ----------------------------------------------------------------------------------
    setup = (f"Model {args.group}__{args.trait} at {args.input_size} px: {model_source}. Images: the first "
             f"{max(args.batch_sizes)} of {cfg.data.images}. Each analyzer runs in a fresh graph (reset_graph + "
             f"model reloaded). Warm timings: after the first call (which builds the analysis graph) and, for "
             f"a new batch size, one untimed warm-up call unless noted; up to {args.repeats} timed calls, fewer "
             f"where a call is slow; a batch size is skipped when its call is estimated (from the previous "
             f"size's per-image time) above {args.max_call_seconds:.0f} s. Analyzer options are the project's "
             f"(`explanations.ANALYZER_OPTIONS`: smoothgrad {explanations.ANALYZER_OPTIONS['smoothgrad']}, "
             f"integrated_gradients {explanations.ANALYZER_OPTIONS['integrated_gradients']}, lrp.epsilon "
             f"{explanations.ANALYZER_OPTIONS['lrp.epsilon']}). Timings include `model.preprocess` and the channel "
             f"sum, as in lrp_analysis.py.\n\n" + _common.WEIGHTS_NOTE.format(weights=args.weights))
    columns = ["method", "batch", "calls", "s/call (mean)", "s/call (min)", "images/s", "x forward time",
               "x gradient time", "note"]
    sections = [("Set-up", setup),
                ("Throughput (warm calls)", _common.table(throughput_rows, columns)),
                ("Analyzer build (first call) vs warm call",
                 _common.table(build_rows) + f"\nBaselines' first call at batch {args.batch_sizes[0]}: "
                 f"model.predict {first_predict:.2f} s, gradient {first_gradient:.2f} s.")]
    if growth_rows:
        sections.append((f"Graph growth: {args.growth_analyzer} built {args.growth_rounds} times in ONE graph",
                         _common.table(growth_rows) + "\nIn TF1 graph mode (needed by iNNvestigate) every analyzer "
                         "and model stays in the default graph until `keras.backend.clear_session()` "
                         "(`facetraits.backend.reset_graph`); the rows show what keeping them costs."))
    _common.write_report(Path(args.out), "LRP / explanation throughput", command, info, sections, contention)


def predict_for(keras_model):
    return lambda batch: keras_model.predict(model.preprocess(batch), batch_size=len(batch), verbose=0)


if __name__ == "__main__":
    main()
