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
from facetraits.config import OFFLINE_HINT, FeatureSet, ModelConfig, weights_file
from facetraits.errors import ConfigError, FacetraitsError

# Bump when the saved model's layer layout changes, so that train_regression.py rebuilds models
# saved by an earlier version instead of calling them up to date (2: head_centre layer;
# 3: several layers, grid cells, ridge head).
HEAD_LAYOUT = 3


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
        path = weights_file(cfg)
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


def pooling_layers(x, shape, grid: int, layer: str):
    """grid 1: GlobalAveragePooling2D (the reference study); k: k x k average cells, flattened."""
    if grid == 1:
        return keras.layers.GlobalAveragePooling2D(name=f"head_pool_{layer}")(x)
    stride = -(-int(shape[0]) // grid)  # the cells of config.cell_bounds, which features.pool averages too
    x = keras.layers.AveragePooling2D(stride, strides=stride, padding="same", name=f"head_pool_{layer}")(x)
    return keras.layers.Flatten(name=f"head_flatten_{layer}")(x)


def build_head(feature_shapes: dict, feature_set: FeatureSet, cfg: ModelConfig, seed: int = 0,
               feature_means: dict | None = None, kind: str | None = None) -> keras.Model:
    """The regression head on conv maps: per layer centring -> pooling; concatenated; then
    Dense(1) (ridge) or Dense(relu) -> [Dropout] -> Dense(1) (mlp). Inputs: one map per layer.

    The centring layers subtract the training faces' mean map of each layer (zeros until the fit
    sets them). Pooling and the first Dense layer are linear, so this changes no prediction, only
    what the LRP rules explain: they pass relevance through a layer without a kernel unchanged, so
    the Dense layers' relevance lands on c = (this face's feature map - the mean map), about
    c * d(rating)/df (exactly, for lrp.epsilon and lrp.z; for the linear ridge head exactly
    w x (f - mean f), its output bias being the mean training rating), and the biases keep the
    rest of the rating. A feature the average face has and this face lacks gets relevance too.
    Below this layer the conv rules pass each feature's relevance on to pixels measured from
    zero, not from the average face (see `explanations`). With the mean folded into the Dense
    bias instead, features that are strong in every face (pupils, the hair line, image borders)
    get large relevance of either sign that cancels in the prediction and swamps the heatmaps.
    Gradient methods are unaffected.
    """
    kind = kind or cfg.head
    inputs, branches = [], []
    for layer in feature_set.layers:
        shape = tuple(int(n) for n in feature_shapes[layer])
        x = keras.Input(shape=shape, name=f"{layer}_features")
        inputs.append(x)
        mean = np.zeros(shape, np.float32) if feature_means is None else np.asarray(feature_means[layer], np.float32)
        x = keras.layers.Normalization(axis=(1, 2, 3), mean=mean, variance=np.ones(shape, np.float32),
                                       name=f"head_centre_{layer}")(x)
        branches.append(pooling_layers(x, shape, feature_set.grid, layer))
    x = branches[0] if len(branches) == 1 else keras.layers.Concatenate(name="head_concat")(branches)
    return keras.Model(inputs, dense_layers(x, cfg, seed, kind), name="head")


def dense_layers(x, cfg: ModelConfig, seed: int, kind: str):
    """ridge: Dense(1). mlp: Dense(relu) -> [Dropout] -> Dense(1). Seeded."""
    init = keras.initializers
    if kind == "mlp":
        x = keras.layers.Dense(cfg.dense_units, activation="relu", name="head_dense",
                               kernel_initializer=init.GlorotUniform(seed=seed))(x)
        if cfg.dropout > 0:
            x = keras.layers.Dropout(cfg.dropout, seed=seed, name="head_dropout")(x)
    return keras.layers.Dense(1, name="head_rating", kernel_initializer=init.GlorotUniform(seed=seed + 1))(x)


def build_dense(n_inputs: int, cfg: ModelConfig, seed: int) -> keras.Model:
    """The mlp's dense part alone, trained on pooled (standardised) features: pooling is done once, in NumPy."""
    inputs = keras.Input(shape=(n_inputs,), name="pooled_features")
    return keras.Model(inputs, dense_layers(inputs, cfg, seed, "mlp"), name="dense_head")


def head_inputs(head: keras.Model, maps: dict) -> list:
    """The head's inputs, in its order, from {layer: conv maps}."""
    return [maps[name.removesuffix("_features")] for name in head.input_names]


def mount(base: keras.Model, head: keras.Model) -> keras.Model:
    """Base + head as ONE flat functional model (iNNvestigate cannot walk nested models).

    VGG16 is a chain; each head input is fed the output of the VGG16 layer it is named after,
    and the head's own layers are re-applied in order, so the weights are shared, not copied."""
    x = base.input
    tensors = {base.layers[0].name: x}
    for layer in base.layers[1:]:
        x = tensors[layer.name] = layer(x)
    for name in head.input_names:
        tensors[name] = tensors[name.removesuffix("_features")]
    for layer in head.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inbound = layer.inbound_nodes[0].inbound_layers
        inbound = inbound if isinstance(inbound, list) else [inbound]
        arguments = [tensors[source.name] for source in inbound]
        tensors[layer.name] = layer(arguments if len(arguments) > 1 else arguments[0])
    return keras.Model(base.input, tensors[head.layers[-1].name], name="vgg16_regression")


def load_full_model(path: Path) -> keras.Model:
    if not Path(path).is_file():
        raise FacetraitsError(f"{path}: model not found; run train_regression.py first")
    try:
        loaded = keras.models.load_model(str(path), compile=False)
    except Exception as err:  # h5py and Keras raise OSError, ValueError, KeyError ... for a damaged file
        raise FacetraitsError(f"{path}: not a readable Keras model ({str(err).splitlines()[0]}); "
                              f"run train_regression.py again") from None
    # A loaded model keeps its layer names ("input_1") but Keras' name counter does not know them
    # after a graph reset; advance it, or analyzers that add an Input (integrated_gradients)
    # create a second "input_1" and fail.
    keras.backend.get_uid("input")
    return loaded
