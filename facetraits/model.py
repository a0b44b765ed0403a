"""VGG16 conv base (frozen), the regression head, the full model, and THE input preprocessing.

`preprocess` is the only way pixels become model input: training (through cached features),
prediction and explanation all call it, so heatmaps explain exactly the model that was trained.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from facetraits.backend import keras
from facetraits.config import ModelConfig
from facetraits.errors import ConfigError, FacetraitsError

OFFLINE_HINT = ("set model.weights to a local VGG16 include_top=False .h5 file "
                "(--set model.weights=PATH/vgg16_notop.h5), or to none for a smoke test with random weights")


# Bump when the saved model's layer layout changes, so that train_regression.py rebuilds models
# saved by an earlier version instead of calling them up to date (2: head_centre layer).
HEAD_LAYOUT = 2


def preprocess(images: np.ndarray) -> np.ndarray:
    """RGB uint8 (N, H, W, 3) -> VGG16 input: BGR, ImageNet channel means subtracted, float32."""
    return keras.applications.vgg16.preprocess_input(np.asarray(images, dtype=np.float32).copy())


def build_base(cfg: ModelConfig, seed: int = 0) -> keras.Model:
    """VGG16 without its classifier, every layer frozen. Never falls back to random weights silently."""
    shape = (cfg.input_size, cfg.input_size, 3)
    if cfg.weights == "none":
        print("WARNING: model.weights=none: VGG16 has RANDOM weights. Results are meaningless; "
              "use this for tests and smoke runs only.", file=sys.stderr)
        base = keras.applications.VGG16(weights=None, include_top=False, input_shape=shape)
        base.set_weights(random_weights(base, seed))
    elif cfg.weights == "imagenet":
        try:
            base = keras.applications.VGG16(weights="imagenet", include_top=False, input_shape=shape)
        except Exception as err:  # Keras raises a bare Exception for URL fetch failures
            raise FacetraitsError(f"could not load ImageNet VGG16 weights ({str(err).splitlines()[0]}); "
                                  f"if this machine is offline, {OFFLINE_HINT}") from None
    else:
        path = Path(cfg.weights)
        if not path.is_file():
            raise ConfigError(f"model.weights: {path} not found; use imagenet (downloads once), "
                              f"or {OFFLINE_HINT}")
        base = keras.applications.VGG16(weights=None, include_top=False, input_shape=shape)
        try:
            base.load_weights(str(path))
        except Exception as err:
            raise ConfigError(f"model.weights: {path} is not a VGG16 include_top=False weights file "
                              f"({str(err).splitlines()[0]})") from None
    base.trainable = False
    for layer in base.layers:
        layer.trainable = False
    return base


def random_weights(base: keras.Model, seed: int) -> list:
    """He-normal kernels and zero biases drawn with NumPy: the same random VGG16 for the same seed,
    whatever else the TensorFlow graph holds (graph-mode op seeds depend on build order)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for array in base.get_weights():
        if array.ndim == 4:
            fan_in = np.prod(array.shape[:3])
            # the first layer sees pixel-scale input (about +-128): scale it so features stay O(1)
            scale = 1.0 if arrays else 1.0 / 128
            arrays.append(rng.normal(0.0, scale * np.sqrt(2.0 / fan_in), array.shape).astype(np.float32))
        else:
            arrays.append(np.zeros_like(array))
    return arrays


def weights_digest(base: keras.Model) -> str:
    """sha256 of the base's weights: identifies the features whatever the weights' source."""
    digest = hashlib.sha256()
    for array in base.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def dense_layers(x, cfg: ModelConfig, seed: int):
    """Dense(relu) -> [Dropout] -> Dense(1): the trainable part of the head, seeded."""
    init = keras.initializers
    x = keras.layers.Dense(cfg.dense_units, activation="relu", name="head_dense",
                           kernel_initializer=init.GlorotUniform(seed=seed))(x)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, seed=seed, name="head_dropout")(x)
    return keras.layers.Dense(1, name="head_rating", kernel_initializer=init.GlorotUniform(seed=seed + 1))(x)


def build_dense(n_inputs: int, cfg: ModelConfig, seed: int) -> keras.Model:
    """The dense part alone, trained on pooled (standardised) features: pooling is done once, in NumPy."""
    inputs = keras.Input(shape=(n_inputs,), name="pooled_features")
    return keras.Model(inputs, dense_layers(inputs, cfg, seed), name="dense_head")


def build_head(feature_shape, cfg: ModelConfig, seed: int = 0, feature_mean=None) -> keras.Model:
    """The regression head on conv features: centring -> pooling -> Dense(relu) -> [Dropout] -> Dense(1).

    The centring layer subtracts the training faces' mean conv feature map (zeros until
    `training.fit_head` sets it). It changes nothing in the predictions, only what the LRP rules
    explain: they pass relevance through a layer without a kernel unchanged, so the Dense layers'
    relevance lands on c = (this face's feature map - the mean map), about c * d(rating)/df
    (exactly, for lrp.epsilon and lrp.z), and the biases keep the rest of the rating. A feature
    the average face has and this face lacks gets relevance too. Below this layer the conv rules
    pass each feature's relevance on to pixels measured from zero, not from the average face
    (see `explanations`). With the mean folded into the Dense bias instead, features that are
    strong in every face (pupils, the hair line, image borders) get large relevance of either
    sign that cancels in the prediction and swamps the heatmaps. Gradient methods are unaffected.
    """
    shape = tuple(int(n) for n in feature_shape)
    inputs = keras.Input(shape=shape, name="conv_features")
    mean = np.zeros(shape, np.float32) if feature_mean is None else np.asarray(feature_mean, np.float32)
    centred = keras.layers.Normalization(axis=(1, 2, 3), mean=mean, variance=np.ones(shape, np.float32),
                                         name="head_centre")(inputs)
    pool = keras.layers.GlobalAveragePooling2D if cfg.pooling == "gap" else keras.layers.Flatten
    return keras.Model(inputs, dense_layers(pool(name="head_pool")(centred), cfg, seed), name="head")


def mount(base: keras.Model, head: keras.Model) -> keras.Model:
    """Base + head as ONE flat functional model (iNNvestigate cannot walk nested models)."""
    x = base.input
    for layer in base.layers[1:]:
        x = layer(x)
    for layer in head.layers[1:]:
        x = layer(x)
    return keras.Model(base.input, x, name="vgg16_regression")


def load_full_model(path: Path) -> keras.Model:
    if not Path(path).is_file():
        raise FacetraitsError(f"{path}: model not found; run train_regression.py first")
    loaded = keras.models.load_model(str(path), compile=False)
    # A loaded model keeps its layer names ("input_1") but Keras' name counter does not know them
    # after a graph reset; advance it, or analyzers that add an Input (integrated_gradients)
    # create a second "input_1" and fail.
    keras.backend.get_uid("input")
    return loaded
