"""Explanation throughput: images/s of the main analyzers at a few batch sizes, vs a forward pass.

How long will lrp_analysis.py take, and which explain.batch_size is fastest? A model is trained as
train_regression.py does: the configured head fitted on VGG16 features (from output.cache_dir,
extracted there if missing) for the first group and trait, mounted on VGG16, saved as .h5
(the weights do not change the timings). Each method then gets a fresh Keras graph with
the model reloaded, as in lrp_analysis.py (graph mode keeps every analyzer built so far and
slows down as the graph grows). Timed through `explanations.Explainer`, the project's path:
preprocess, analyze, sum over channels. The first call builds the analysis graph and is timed
apart; at each batch size one untimed call precedes the timed ones.

    .venv/bin/python benchmarks/lrp_throughput.py
    .venv/bin/python benchmarks/lrp_throughput.py --input-size 32 --batch-sizes 1 4 --out $SCRATCH/lrp.md \\
        --set output.cache_dir=$SCRATCH/smoke/cache --set "ridge.feature_sets=[{layers: [block5_pool], grid: 1}]"
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path

from facetraits import config, data, explanations, features, model, training
from facetraits.backend import reset_graph

ANALYZERS = ["lrp.sequential_preset_a_flat", "lrp.epsilon", "gradient"]
FORWARD = "forward (model.predict)"


def parse_args():
    parser = _common.argument_parser(__doc__, "lrp_throughput")
    parser.add_argument("--input-size", type=int, default=224, help="model.input_size (default: %(default)s)")
    parser.add_argument("--analyzers", nargs="+", default=ANALYZERS, help="iNNvestigate names (default: %(default)s)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32], help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per method and batch size (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=_common.SCRATCH / "lrp_throughput",
                        help="folder for the trained model (default: %(default)s)")
    return parser.parse_args()


def train(cfg, path: Path) -> tuple[data.Dataset, str]:
    """Fit the configured head on all images, mount it on VGG16 and save the full model."""
    base = model.build_base(cfg.model, cfg.seed)
    dataset = data.load(cfg)
    maps = features.load_or_extract(dataset, cfg, base)
    group, trait = cfg.groups[0], cfg.traits[0]
    trained = training.fit_head(maps, dataset.target(group, trait), dataset.identities, cfg, cfg.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.mount(base, trained.head).save(path, save_format="h5")
    chosen = trained.settings
    return dataset, (f"{group} x {trait}, {chosen['head']} head on {chosen['layers']}@{chosen['grid']}, "
                     f"fitted on {len(dataset)} images in {trained.seconds:.1f} s")


def seconds_per_call(call, images, repeats: int) -> float:
    call(images)  # untimed: the first call at a new batch size
    start = time.perf_counter()
    for _ in range(repeats):
        call(images)
    return (time.perf_counter() - start) / repeats


def forward_pass(keras_model):
    """The baseline: a plain prediction on the same preprocessed batch."""
    return lambda batch: keras_model.predict(model.preprocess(batch), batch_size=len(batch), verbose=0)


def main():
    args = parse_args()
    info, command = _common.machine(), _common.command_line()
    cfg = config.load(args.config, [f"model.weights={args.weights}", f"model.input_size={args.input_size}",
                                    *args.overrides])
    explanations.check_names(args.analyzers)
    path = args.work / "model.h5"
    dataset, trained = train(cfg, path)
    images = data.load_images(dataset.paths[:max(args.batch_sizes)], cfg.model.input_size)

    rows, builds = [], []
    for method in [FORWARD, *args.analyzers]:
        print(f"{method} ...", file=sys.stderr)
        reset_graph(cfg.seed)
        keras_model = model.load_full_model(path)
        start = time.perf_counter()
        call = forward_pass(keras_model) if method == FORWARD else explanations.Explainer(keras_model, method)
        call(images[:1])
        builds.append({"method": method, "create + first call (batch 1) s": time.perf_counter() - start})
        for b in args.batch_sizes:
            rows.append({"method": method, "batch": b, "s/call": seconds_per_call(call, images[:b], args.repeats)})
    forward = {row["batch"]: row["s/call"] for row in rows if row["method"] == FORWARD}
    for row in rows:
        row["images/s"] = row["batch"] / row["s/call"]
        row["x forward time"] = row["s/call"] / forward[row["batch"]]

    setup = (f"Model at {cfg.model.input_size} px: {trained}. Images: the first {len(images)} of "
             f"{cfg.data.images}. {args.repeats} timed calls per method and batch size, after an untimed one. "
             f"Analyzer options are the project's (`explanations.ANALYZER_OPTIONS`).\n\n"
             + _common.WEIGHTS_NOTE.format(weights=args.weights))
    _common.write_report(Path(args.out), "Explanation throughput", command, info, [
        ("Set-up", setup),
        ("Throughput (warm calls)", _common.table(rows)),
        ("Building the analysis graph", _common.table(builds) + "\nOnce per model and method in lrp_analysis.py.")])


if __name__ == "__main__":
    main()
