"""Explanation methods by name, around one small seam: build an analyzer once, explain batches.

All methods come from iNNvestigate and explain output unit 0, the predicted rating
(`neuron_selection_mode="index"`). Relevance is summed over colour channels; for the LRP rules
it decomposes the predicted rating from 0: positive pixels push the rating up, negative down.
The head centres its conv features on the training faces' mean feature map (`model.build_head`),
so the relevance that reaches the image measures each face against the average face.
Images go through the same `model.preprocess` as in training, so the explained input is exactly
what the model saw.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facetraits import config, data, model, outputs
from facetraits.backend import keras  # noqa: F401  (graph mode must be set before iNNvestigate builds)
from facetraits.errors import ConfigError

import innvestigate  # noqa: E402

# Settings per method where iNNvestigate's defaults do not suit pixel-scale VGG input (about +-128).
ANALYZER_OPTIONS = {
    # bias=False: biases get no relevance, so relevance is conserved: it sums to the prediction.
    "lrp.epsilon": {"epsilon": 1e-7, "bias": False},
    "smoothgrad": {"augment_by_n": 16, "noise_scale": 0.15 * 255},
    "integrated_gradients": {"steps": 32},
}


def analyzer_names() -> list[str]:
    """Every name iNNvestigate's create_analyzer accepts."""
    return list(innvestigate.analyzer.analyzers)


def check_names(names) -> None:
    """Fail early, with the valid names, when a configured method is unknown to iNNvestigate."""
    for name in names:
        if name not in innvestigate.analyzer.analyzers:
            raise ConfigError(f"lrp.analyzer: {name!r} is not an iNNvestigate analyzer "
                              f"(known: {', '.join(analyzer_names())})")


class Explainer:
    """One trained Keras model + one iNNvestigate method; call it on RGB uint8 images."""

    def __init__(self, keras_model, method: str = "lrp.sequential_preset_a_flat"):
        check_names([method])
        self.model, self.method = keras_model, method
        # disable_model_checks: iNNvestigate 2.1.2 raises NotImplementedError after *warning* about
        # any layer outside its list of convnet layers, such as the head's centring layer.
        self.analyzer = innvestigate.create_analyzer(
            method, keras_model, neuron_selection_mode="index", disable_model_checks=True,
            **ANALYZER_OPTIONS.get(method, {}))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W) float32 relevance of the predicted rating."""
        # One index per image, not a scalar: iNNvestigate 2.1.2's smoothgrad and integrated_gradients
        # repeat a scalar only augment_by_n times, which fails for any batch larger than one.
        analysis = self.analyzer.analyze(model.preprocess(images), neuron_selection=np.zeros(len(images), int))
        return np.asarray(analysis, dtype=np.float32).sum(axis=-1)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict(model.preprocess(images), verbose=0).ravel()


def explain_dataset(explainer: Explainer, paths, size: int, batch_size: int, path: Path, label: str):
    """Relevance for every image, in batches, written straight into an .npy on disk.

    The array is a memory map filled batch by batch and renamed into place when complete, so
    memory stays flat however many images there are. Returns the predictions.
    """
    predictions = np.empty(len(paths), dtype=np.float64)
    progress = outputs.Progress(len(paths), f"{label} {explainer.method}", "images")
    with outputs.atomic_path(path) as tmp:
        relevance = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(paths), size, size))
        for first in range(0, len(paths), batch_size):
            images = data.load_images(paths[first:first + batch_size], size)
            relevance[first:first + len(images)] = explainer(images)
            predictions[first:first + len(images)] = explainer.predict(images)
            progress.update(len(images))
        relevance.flush()
        del relevance
    return predictions


def conservation(keras_model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of lrp.epsilon relevance, prediction) per image: equal when relevance is conserved."""
    explainer = Explainer(keras_model, "lrp.epsilon")
    return explainer(images).sum(axis=(1, 2)).astype(np.float64), explainer.predict(images)


def validate_config(cfg: config.Config) -> None:
    check_names((cfg.lrp.analyzer, *cfg.lrp.faithfulness_analyzers))
