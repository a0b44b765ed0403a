"""Explanation methods by name, around one small seam: build an analyzer once, explain batches.

All methods come from iNNvestigate and explain output unit 0, the predicted rating ŷ
(`neuron_selection_mode="index"`), summed over colour channels. Red (positive) and blue
(negative) mean different things per method:

- LRP (`lrp.*`): the head's Dense layers hand relevance to the centred features c = f - m (this
  face's top conv feature maps minus the training faces' mean, `model.build_head`). With
  `lrp.epsilon` and `lrp.z` that is exactly c * dŷ/df, with the presets' epsilon = 0.1 close to
  it (`lrp.alpha_2_beta_1` counts positive contributions twice, negative once): red where this
  face's features differ from the average face's in the direction that raises the rating
  (stronger than average where the rating rises with them, or weaker where it falls), blue
  where the difference lowers it; the biases keep the rest of ŷ. The conv layers then pass
  each feature's relevance to its input pixels measured from zero, not from the average face:
  the presets and `lrp.alpha_2_beta_1` mostly to the pixels that excite the feature (alpha-beta
  rules), `lrp.epsilon`/`lrp.z` in proportion to each pixel's signed contribution; the `_flat`
  presets spread the first layer's share evenly over its 3 x 3 window. So a pixel is red when
  the features it drives differ from the average face's in a way that raises the rating, not
  when the pixel itself differs from the average face.
- `deep_taylor` spreads all of ŷ, biases included, with its sign: for positive ratings every
  pixel is red or zero; the map says where, not which way.
- `gradient`, `smoothgrad`: dŷ/dpixel, red where brightening the pixel would raise the rating.
  `input_t_gradient` and `integrated_gradients` (reference: the plain ImageNet-mean-colour
  image, input 0) weigh that by the pixel's difference from that colour. The centring changes
  none of these four, which never see the average face.

Images go through the same `model.preprocess` as in training, so the explained input is exactly
what the model saw.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facetraits import config, data, model, outputs
from facetraits.backend import keras  # graph mode must be set before iNNvestigate builds
from facetraits.errors import ConfigError

import innvestigate  # noqa: E402

# Settings per method where iNNvestigate's defaults do not suit pixel-scale VGG input (about +-128).
ANALYZER_OPTIONS = {
    # bias=True: each bias keeps its share of ŷ, so the head's relevance is exactly c * dŷ/df and
    # sums to a quantity gradients give (`centred_gradient_sum`). bias=False divides by
    # pre-activations without their bias while starting from the full ŷ: maps scaled by
    # ŷ / (ŷ - b_out), sign-inverted below the output bias. Explaining ŷ - b_out instead fixes the
    # output only: each hidden unit is still rescaled by a / (a - b).
    "lrp.epsilon": {"epsilon": 1e-7, "bias": True},
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
            raise ConfigError(f"explain.analyzer: {name!r} is not an iNNvestigate analyzer "
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


def centred_gradient_sum(keras_model):
    """images -> sum of c * dŷ/dc over the head's centred features c = f - m (every centring
    layer), per image: what lrp.epsilon's relevance sums to. It is ŷ minus the head biases' share,
    sum of b * dŷ/db (Euler: the ReLU head is positively homogeneous in c and its biases together),
    less what the conv layers' own biases keep (nothing with random weights, whose biases are zero)."""
    centred = [layer.get_output_at(-1) for layer in keras_model.layers if layer.name.startswith("head_centre")]
    gradients = keras.backend.gradients(keras.backend.sum(keras_model.output), centred)
    total = sum(keras.backend.sum(c * g, axis=(1, 2, 3)) for c, g in zip(centred, gradients))
    run = keras.backend.function([keras_model.input], [total])
    return lambda images: run([model.preprocess(images)])[0].astype(np.float64)


def conservation(keras_model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of lrp.epsilon relevance, `centred_gradient_sum`) per image: equal when conserved."""
    return (Explainer(keras_model, "lrp.epsilon")(images).sum(axis=(1, 2)).astype(np.float64),
            centred_gradient_sum(keras_model)(images))


def validate_config(cfg: config.Config) -> None:
    check_names((cfg.explain.analyzer, *cfg.explain.faithfulness_analyzers))
