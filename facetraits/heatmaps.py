"""Heatmaps of every image for each trained model: computed once, stored with what made them, reused, drawn.

A model's maps, results/relevance/<group>__<trait>.npy, are reused only while their inputs key
is unchanged: the model file's sha256, the analyzer, the input size, every image's sha256 and
EXPLAIN_VERSION, which stands for the code: a change to how maps are computed
(explanations.py's analyzer options, the channel sum, what is explained) bumps it, so maps made
by the old code are computed again instead of being returned as if current. Their record also
names the model file's sha256 and the analyzer on their own, so average_saliency.py can refuse
maps of a model that was retrained or re-configured since.
"""
from __future__ import annotations

import sys

import numpy as np
from PIL import Image, PngImagePlugin

from facetraits import cache, cli, data, explanations, model, outputs, plots, provenance
from facetraits.backend import reset_graph
from facetraits.errors import FacetraitsError

EXPLAIN_VERSION = 2  # bump whenever a code change alters the maps explanations.py computes (2: smoothgrad's noise)


def check_models(run, dataset) -> None:
    """Every selected model was fitted on today's images, ratings and settings, loads and matches
    model.input_size, before anything is written (a missing, damaged or mismatched model would
    otherwise stop the run after the first model's maps; a stale one would be explained as current)."""
    cfg = run.config
    for group, trait in run.models:
        model_path = cli.model_path(cfg, group, trait)
        if model_path.is_file():  # a missing one is named by load_full_model below
            provenance.check_model_record(cfg, dataset, model_path, dataset.target(group, trait))
        size = model.load_full_model(model_path).input_shape[1]
        if size != cfg.model.input_size:
            raise FacetraitsError(f"{model_path}: trained at input size {size}, config says "
                                  f"model.input_size={cfg.model.input_size}; run train_regression.py again")
        reset_graph(cfg.seed)


def for_model(run, dataset, group: str, trait: str) -> tuple[np.ndarray, np.ndarray]:
    """(relevance maps (images x H x W, memory-mapped), predictions) of one model, computed or reused."""
    cfg, name = run.config, cli.model_name(group, trait)
    model_path = cli.model_path(cfg, group, trait)
    array_path = run.results("relevance") / f"{name}.npy"
    record_path = array_path.with_suffix(".json")
    model_sha256 = cache.file_digest(model_path)
    inputs = cache.digest(model_sha256, cfg.explain.analyzer, cfg.model.input_size, list(dataset.digests),
                          EXPLAIN_VERSION)
    record = provenance.read_record(record_path)  # missing or damaged: the maps are made again
    if array_path.is_file() and record is not None and record.get("inputs") == inputs:
        if "model_sha256" not in record:  # record of an older lrp_analysis.py: same maps, named model added
            outputs.write_json(record_path, {**record, "model_sha256": model_sha256})
        print(f"{name}: relevance up to date ({array_path})", file=sys.stderr)
        return np.load(array_path, mmap_mode="r"), np.array(record["predictions"])
    reset_graph(cfg.seed)
    keras_model = model.load_full_model(model_path)
    explainer = explanations.Explainer(keras_model, cfg.explain.analyzer)
    predictions = explanations.explain_dataset(explainer, dataset.paths, cfg.model.input_size, cfg.explain.batch_size,
                                               array_path, name)
    relevance = np.load(array_path, mmap_mode="r")
    # average_saliency.py compares image_sha256 with the images it averages over
    record = {"inputs": inputs, "model_sha256": model_sha256, "analyzer": cfg.explain.analyzer,
              "explain_version": EXPLAIN_VERSION,
              "predictions": predictions.tolist(), "image_sha256": list(dataset.digests),
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
    return relevance, predictions


def write_figures(run, dataset, name: str, relevance, predictions, y) -> None:
    """One overlay per image (explain.overlays) and the extremes figure: the k highest- and k
    lowest-rated faces beside their heatmaps."""
    cfg = run.config
    size, colormap = cfg.model.input_size, cfg.explain.colormap
    if cfg.explain.overlays:
        folder = run.fig("lrp") / name
        folder.mkdir(parents=True, exist_ok=True)
        info = PngImagePlugin.PngInfo()
        info.add_text("Description", run.stamp)  # no room for a visible stamp on a bare overlay
        for i, path in enumerate(dataset.paths):
            picture = plots.overlay(data.load_image(path, size), relevance[i], colormap)
            with outputs.atomic_path(folder / f"{path.stem}.png") as tmp:
                Image.fromarray(picture).save(tmp, format="PNG", pnginfo=info)
    chosen = np.concatenate(data.extremes(y, cfg.explain.n_extremes))
    figure = plots.extremes(data.load_images([dataset.paths[i] for i in chosen], size), relevance[chosen],
                            y[chosen], predictions[chosen], [dataset.images[i] for i in chosen], colormap,
                            f"{name} ({cfg.explain.analyzer})")
    run.save_figure(figure, f"extremes_{name}.png")
