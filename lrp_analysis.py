"""LRP heatmaps for every image and every trained model, the extremes figure, and faithfulness.

For each group x trait model (trained by train_regression.py) the configured iNNvestigate method
(explain.analyzer, default lrp.sequential_preset_a_flat as in the reference study) explains output
unit 0, the predicted rating; what red and blue mean depends on the method (see
facetraits/explanations.py). For the LRP rules the head hands relevance to this face's top conv
features minus the average training face's (model.build_head), and the conv layers pass it on
to the pixels that drive those features.
Writes results/relevance/<group>__<trait>.npy (float32, images x H x W, channels summed, in the
order of results/relevance/index.csv), overlays under fig/lrp/<group>__<trait>/,
fig/extremes_<group>__<trait>.png (k highest- and k lowest-rated faces with their heatmaps),
and, per method in explain.faithfulness_analyzers, results/faithfulness.csv,
results/faithfulness_curves.csv and fig/faithfulness.png. Unchanged models are skipped.

    python lrp_analysis.py --set explain.analyzer=lrp.epsilon --set explain.overlays=false
"""
import json
import sys

import numpy as np
import pandas as pd
from PIL import Image

from facetraits import cli, data, explanations, faithfulness, model, outputs, plots
from facetraits.backend import reset_graph
from facetraits.errors import FacetraitsError


def add_arguments(parser):
    parser.add_argument("--skip-faithfulness", action="store_true", help="only heatmaps and figures")


def relevance_for_model(run, dataset, name) -> np.ndarray:
    """Explain every image with one model (or reuse the stored maps if nothing changed)."""
    cfg = run.config
    model_path = cfg.output.models_dir / f"{name}.h5"
    array_path = run.results("relevance") / f"{name}.npy"
    record_path = array_path.with_suffix(".json")
    inputs = outputs.digest(outputs.file_digest(model_path) if model_path.is_file() else None,
                            cfg.explain.analyzer, cfg.model.input_size, list(dataset.digests))
    if array_path.is_file() and record_path.is_file() and json.loads(record_path.read_text()).get("inputs") == inputs:
        record = json.loads(record_path.read_text())
        if "image_sha256" not in record:  # made by an older version; the inputs hold these digests
            outputs.write_json(record_path, {**record, "image_sha256": list(dataset.digests)})
        print(f"{name}: relevance up to date ({array_path})", file=sys.stderr)
        return np.load(array_path, mmap_mode="r")
    reset_graph(cfg.seed)
    keras_model = model.load_full_model(model_path)
    explainer = explanations.Explainer(keras_model, cfg.explain.analyzer)
    predictions = explanations.explain_dataset(explainer, dataset.paths, cfg.model.input_size, cfg.explain.batch_size,
                                               array_path, name)
    relevance = np.load(array_path, mmap_mode="r")
    # average_saliency.py compares these with the images it averages over
    record = {"inputs": inputs, "analyzer": cfg.explain.analyzer, "predictions": predictions.tolist(),
              "image_sha256": list(dataset.digests),
              "finite": bool(np.isfinite(relevance).all())}
    if cfg.explain.analyzer == "lrp.epsilon":
        expected_sum = explanations.centred_gradient_sum(keras_model)
        expected = np.concatenate([expected_sum(data.load_images(dataset.paths[i:i + cfg.explain.batch_size],
                                                                 cfg.model.input_size))
                                   for i in range(0, len(dataset), cfg.explain.batch_size)])
        # What VGG16's own biases keep (plus epsilon's losses): the conservation error when they are zero.
        record["conv_bias_share_max_abs"] = float(np.max(np.abs(expected - relevance.sum(axis=(1, 2)))))
        print(f"{name}: lrp.epsilon relevance sums to the prediction minus the head biases' share, less "
              f"up to {record['conv_bias_share_max_abs']:.2g} kept by the VGG16 biases (none if random)",
              file=sys.stderr)
    outputs.write_json(record_path, record)
    return relevance


def write_figures(run, dataset, name, relevance, predictions, y) -> None:
    cfg = run.config
    size, colormap = cfg.model.input_size, cfg.explain.colormap
    if cfg.explain.overlays:
        folder = run.fig("lrp") / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(dataset.paths):
            picture = plots.overlay(data.load_image(path, size), relevance[i], colormap)
            with outputs.atomic_path(folder / f"{path.stem}.png") as tmp:
                Image.fromarray(picture).save(tmp, format="PNG")
    k = min(cfg.explain.n_extremes, len(y) // 2)
    order = np.argsort(-y, kind="stable")
    chosen = np.concatenate([order[:k], order[len(order) - k:]])
    figure = plots.extremes(data.load_images([dataset.paths[i] for i in chosen], size), relevance[chosen],
                            y[chosen], predictions[chosen], [dataset.images[i] for i in chosen], colormap,
                            f"{name} ({cfg.explain.analyzer})")
    outputs.save_figure(figure, run.fig(f"extremes_{name}.png"))


def faithfulness_rows(run, dataset, group, trait):
    """Perturbation curves of every configured method on a seeded sample of images."""
    cfg = run.config
    name = cli.model_name(group, trait)
    rng = np.random.default_rng(cfg.seed)
    sample = np.sort(rng.permutation(len(dataset))[: cfg.explain.faithfulness_images])
    images = data.load_images([dataset.paths[i] for i in sample], cfg.model.input_size)
    summary, curves = [], []
    for method in cfg.explain.faithfulness_analyzers:
        reset_graph(cfg.seed)
        keras_model = model.load_full_model(cfg.output.models_dir / f"{name}.h5")
        relevance = np.concatenate([explanations.Explainer(keras_model, method)(images[i:i + cfg.explain.batch_size])
                                    for i in range(0, len(images), cfg.explain.batch_size)])
        morf, random = faithfulness.removal_curves(keras_model, images, relevance, cfg.explain.faithfulness_steps,
                                                   cfg.seed)
        result = faithfulness.compare_to_random(morf, random)
        summary.append({"group": group, "trait": trait, "analyzer": method, **result})
        fractions = np.arange(cfg.explain.faithfulness_steps + 1) / cfg.explain.faithfulness_steps
        for order, drop in (("morf", morf), ("random", random)):
            curves.append(pd.DataFrame({"group": group, "trait": trait, "analyzer": method, "order": order,
                                        "fraction_removed": fractions, "mean_change": drop.mean(axis=0)}))
        print(f"{name} {method}: AOPC relevant-first {result['aopc_morf']:.3f} vs random {result['aopc_random']:.3f} "
              f"(p = {result['p_value']:.3g})")
    return summary, curves


@cli.script(add_arguments=add_arguments, writes=("results_dir", "fig_dir"))
def main(run):
    cfg = run.config
    explanations.validate_config(cfg)
    dataset = data.load(cfg)
    for group, trait in run.models:  # a missing, damaged or mismatched model stops the run before anything is written
        model_path = cfg.output.models_dir / f"{cli.model_name(group, trait)}.h5"
        size = model.load_full_model(model_path).input_shape[1]
        if size != cfg.model.input_size:
            raise FacetraitsError(f"{model_path}: trained at input size {size}, config says "
                                  f"model.input_size={cfg.model.input_size}; run train_regression.py again")
        reset_graph(cfg.seed)
    run.write_csv("relevance/index.csv",
                  pd.DataFrame({"index": range(len(dataset)), "image": dataset.images, "identity": dataset.identities}))
    summary, curves = [], []
    for group, trait in run.models:
        name = cli.model_name(group, trait)
        relevance = relevance_for_model(run, dataset, name)
        predictions = np.array(json.loads(run.results("relevance").joinpath(f"{name}.json").read_text())["predictions"])
        write_figures(run, dataset, name, relevance, predictions, dataset.target(group, trait))
        print(f"{name}: heatmaps for {len(dataset)} images -> {run.results('relevance') / (name + '.npy')}")
        if not run.args.skip_faithfulness:
            rows, lines = faithfulness_rows(run, dataset, group, trait)
            summary += rows
            curves += lines
    if summary:
        curves = pd.concat(curves, ignore_index=True)
        run.write_csv("faithfulness.csv", pd.DataFrame(summary))
        run.write_csv("faithfulness_curves.csv", curves)
        outputs.save_figure(plots.faithfulness(curves), run.fig("faithfulness.png"))


if __name__ == "__main__":
    main()
