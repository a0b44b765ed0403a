"""Explanation methods by name, around one small seam: build an analyzer once, explain batches.

Every method explains output unit 0, the predicted rating ŷ: iNNvestigate's analyzers
(`neuron_selection_mode="index"`, relevance summed over colour channels) and Grad-CAM (`gradcam`,
computed here, in the same graph mode, on the same saved model). Red (positive) and blue
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
- `gradcam` (Selvaraju et al. 2017) on the conv map(s) the head reads: channel weights
  a_k = spatial mean of dŷ/dA_k, map = ReLU(sum_k a_k c_k) with c = A - m the head's centred
  features (`GradCam`), upsampled bilinearly to the image. Only red, never blue: red where this
  face's features at that place differ from the average face's in the direction that raises the
  rating; the ReLU drops the places where the difference lowers it (they are white, like places
  without any difference). Coarse by construction: one value per conv cell (7 x 7 for
  block5_pool at 224 px). For a linear head on global-average features this is CAM.

Images go through the same `model.preprocess` as in training, so the explained input is exactly
what the model saw.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facetraits import config, data, model, outputs
from facetraits.backend import keras, tf  # graph mode must be set before iNNvestigate builds
from facetraits.errors import ConfigError

import innvestigate  # noqa: E402
from innvestigate import layers as ilayers  # noqa: E402
from innvestigate.backend import to_list  # noqa: E402

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


GRADCAM = "gradcam"  # the one method not from iNNvestigate (`GradCam`)


def analyzer_names() -> list[str]:
    """Every method name Explainer accepts: iNNvestigate's create_analyzer names and gradcam."""
    return [*innvestigate.analyzer.analyzers, GRADCAM]


def check_names(names) -> None:
    """Fail early, with the valid names, when a configured method is unknown."""
    for name in names:
        if name not in analyzer_names():
            raise ConfigError(f"explain.analyzer: {name!r} is neither an iNNvestigate analyzer nor {GRADCAM} "
                              f"(known: {', '.join(analyzer_names())})")


class ScaledSmoothGrad(innvestigate.analyzer.SmoothGrad):
    """iNNvestigate 2.1.2's SmoothGrad with its noise_scale applied: its GaussianSmoother._augment
    builds AddGaussianNoise() at the default stddev 1 whatever noise_scale says, i.e. noise of one
    grey level instead of the 15% of the input range SmoothGrad's paper uses. (Not restorable by
    iNNvestigate's AnalyzerBase.load, which looks names up in its own module; never saved here.)"""

    def _augment(self, Xs):
        repeat = ilayers.Repeat(self._augment_by_n)
        add_noise = ilayers.AddGaussianNoise(stddev=self._noise_scale)
        reshape = ilayers.AugmentationToBatchAxis(self._augment_by_n)
        return [reshape(add_noise(repeat(X))) for X in to_list(Xs)]


class Explainer:
    """One trained Keras model + one method (iNNvestigate's or gradcam); call it on RGB uint8 images."""

    def __init__(self, keras_model, method: str = "lrp.sequential_preset_a_flat"):
        check_names([method])
        self.model, self.method = keras_model, method
        if method == GRADCAM:
            self.analyzer = GradCam(keras_model)
            return
        # disable_model_checks: iNNvestigate 2.1.2 raises NotImplementedError after *warning* about
        # any layer outside its list of convnet layers, such as the head's centring layer.
        options = dict(neuron_selection_mode="index", disable_model_checks=True, **ANALYZER_OPTIONS.get(method, {}))
        if method == "smoothgrad":
            self.analyzer = ScaledSmoothGrad(keras_model, **options)
        else:
            self.analyzer = innvestigate.create_analyzer(method, keras_model, **options)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W) float32 relevance of the predicted rating."""
        # One index per image, not a scalar: iNNvestigate 2.1.2's smoothgrad and integrated_gradients
        # repeat a scalar only augment_by_n times, which fails for any batch larger than one.
        analysis = self.analyzer.analyze(model.preprocess(images), neuron_selection=np.zeros(len(images), int))
        return np.asarray(analysis, dtype=np.float32).sum(axis=-1)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict(model.preprocess(images), verbose=0).ravel()


def centred_features(keras_model) -> list:
    """The outputs of the head's centring layers, c = A - m, one per VGG16 layer the head reads, in
    this model's own graph: found by walking back from its output, because a layer has one output
    per call and iNNvestigate's analyzers (and the head model, in `model.mount`) call it too."""
    found, stack = {}, [keras_model.output]
    while stack:
        tensor = stack.pop()
        layer, node_index, _ = tensor._keras_history
        if layer.name.startswith("head_centre"):
            found[layer.name] = tensor
            continue
        inputs = layer.inbound_nodes[node_index].input_tensors
        stack.extend(inputs if isinstance(inputs, (list, tuple)) else [inputs])
    return [found[layer.name] for layer in keras_model.layers if layer.name in found]


class GradCam:
    """Grad-CAM of the predicted rating on the conv map(s) the head reads, as an analyzer (`analyze`).

    Layer: the head's own input, A = the VGG16 layer(s) named in its `head_centre_<layer>`
    layers, block5_pool or block4_pool for the shipped feature sets (the last conv maps before
    the head). Grad-CAM weighs A_k by a_k = mean over positions of dŷ/dA_k; the map sums
    a_k * c_k over channels with c = A - m, the head's centred features, because the head reads
    A only through c (the two have the same gradient) and A itself is dominated by features
    strong in every face, as for LRP (`model.build_head`).

    CAM, for a linear head on global-average features, h x w positions, kernel w_k:
    ŷ = sum_k w_k mean(c_k) + b, so dŷ/dA_kij = w_k / (h w) and the map is
    ReLU(sum_k w_k c_k) / (h w): CAM of the centred features, ReLU(sum_k w_k (A_k - m_k)) with
    m the mean training face's map. Without the ReLU its mean over positions is ŷ - b: for the
    ridge, the prediction minus the mean training rating.

    Several layers (block4_pool + block5_pool): each layer's map is multiplied by its number of
    positions h x w, which keeps that property (each layer's map then averages to its share of
    ŷ - b), upsampled, and the layers' maps are summed before one ReLU.
    """

    def __init__(self, keras_model):
        size = tuple(int(n) for n in keras_model.input_shape[1:3])
        centred = centred_features(keras_model)
        if not centred:
            raise ValueError(f"{keras_model.name}: no head_centre_<layer> layer, so no conv map the head reads")
        gradients = keras.backend.gradients(keras.backend.sum(keras_model.output), centred)
        total = 0.0
        for c, g in zip(centred, gradients):
            positions = float(c.shape[1] * c.shape[2])
            weights = tf.reduce_mean(g, axis=(1, 2), keepdims=True)  # (N, 1, 1, channels)
            layer_map = positions * tf.reduce_sum(weights * c, axis=-1, keepdims=True)
            total += tf.image.resize(layer_map, size, method="bilinear")
        self._run = keras.backend.function([keras_model.input], [tf.nn.relu(total)])

    def analyze(self, x: np.ndarray, neuron_selection=None) -> np.ndarray:
        """Preprocessed images (N, H, W, 3) -> (N, H, W, 1); explains output unit 0 whatever is selected."""
        return self._run([x])[0]


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
    centred = centred_features(keras_model)
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
