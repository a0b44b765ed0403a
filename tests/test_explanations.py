"""LRP and friends: names, shapes, conservation, the lrp_analysis outputs."""
import json

import innvestigate
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import average_saliency
import lrp_analysis
from facetraits import config, data, explanations, faithfulness, model
from facetraits.backend import keras
from facetraits.errors import ConfigError


def test_offered_names_are_innvestigates_or_gradcam():
    assert set(config.ANALYZERS) - {"gradcam"} <= set(innvestigate.analyzer.analyzers)
    assert set(config.ANALYZERS) <= set(explanations.analyzer_names())
    with pytest.raises(ConfigError, match="neither an iNNvestigate analyzer nor gradcam .*lrp.epsilon"):
        explanations.check_names(["lrp.epsilom"])


@pytest.fixture(scope="module")
def asd_warm(trained):
    cfg = config.load(trained)
    dataset = data.load(cfg)
    return cfg, dataset, model.load_full_model(cfg.output.models_dir / "ASD__warm.h5")


def head_bias_share(keras_model, images) -> np.ndarray:
    """sum of b * dŷ/db over the head's Dense biases, one image at a time (the biases are shared)."""
    from facetraits.backend import tf
    biases = [layer.bias for layer in keras_model.layers if layer.name in ("head_dense", "head_rating")]
    share = tf.add_n([tf.reduce_sum(b * g) for b, g in zip(biases, tf.gradients(keras_model.output, biases))])
    run = keras.backend.function([keras_model.input], [share])
    return np.array([run([model.preprocess(images[i:i + 1])])[0] for i in range(len(images))])


def test_epsilon_relevance_sums_to_the_prediction_minus_the_bias_share(asd_warm):
    cfg, dataset, keras_model = asd_warm
    conv_layers = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert not any(np.any(layer.get_weights()[1]) for layer in conv_layers)  # random VGG16: zero conv biases
    images = data.load_images(dataset.paths[:6], cfg.model.input_size)
    totals, centred = explanations.conservation(keras_model, images)
    predictions = keras_model.predict(model.preprocess(images), verbose=0).ravel()
    share = head_bias_share(keras_model, images)
    assert np.std(predictions) > 0 and np.abs(share).min() > 1e-2  # the biases' share is not negligible
    scale = 1e-3 * np.abs(predictions).max()
    np.testing.assert_allclose(centred, predictions - share, rtol=1e-4, atol=scale)
    np.testing.assert_allclose(totals, predictions - share, rtol=1e-3, atol=scale)


def toy_head_model(images: np.ndarray, b_out: float) -> keras.Model:
    """The head mounted straight on the pixels, hidden biases set, and the output weights scaled so
    that the first image is predicted at b_out - 0.005: just below the output bias."""
    x = model.preprocess(images)
    inputs = keras.Input(x.shape[1:], name="pixels")
    head = model.build_head({"pixels": x.shape[1:]}, config.FeatureSet(("pixels",), 1), config.ModelConfig(dense_units=6),
                            seed=0, feature_means={"pixels": x.mean(axis=0)}, kind="mlp")
    toy = model.mount(keras.Model(inputs, inputs), head)
    kernel, _ = toy.get_layer("head_dense").get_weights()
    toy.get_layer("head_dense").set_weights([kernel, np.linspace(-0.05, 0.05, 6, dtype=np.float32)])
    hidden = keras.Model(toy.input, toy.get_layer("head_dense").get_output_at(-1)).predict(x[:1], verbose=0)
    kernel, _ = toy.get_layer("head_rating").get_weights()
    toy.get_layer("head_rating").set_weights([kernel * -0.005 / (hidden @ kernel).item(), np.float32([b_out])])
    return toy


@pytest.mark.slow
def test_epsilon_does_not_invert_a_face_predicted_just_below_the_output_bias():
    """Exact reference for a ReLU head on the pixels: (x - mean) * dŷ/dx, the decomposition with
    biases. Starting from ŷ with bias=False scaled the map by ŷ / (ŷ - b_out), here about -800."""
    images = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3)).astype(np.uint8)
    toy = toy_head_model(images, b_out=4.0)
    x = model.preprocess(images)
    gradient = innvestigate.create_analyzer("gradient", toy, neuron_selection_mode="index").analyze(
        x, neuron_selection=np.zeros(len(x), int))
    reference = ((x - x.mean(axis=0)) * gradient).sum(axis=-1)
    explainer = explanations.Explainer(toy, "lrp.epsilon")
    assert explainer.predict(images)[0] == pytest.approx(3.995, abs=1e-4)
    relevance = explainer(images)[0]
    assert np.corrcoef(relevance.ravel(), reference[0].ravel())[0, 1] > 0.999
    assert np.abs(relevance).sum() == pytest.approx(np.abs(reference[0]).sum(), rel=1e-3)
    np.testing.assert_allclose(relevance.sum(), 3.995 - head_bias_share(toy, images[:1])[0], atol=1e-5)


@pytest.mark.parametrize("method", ["lrp.sequential_preset_a_flat", "smoothgrad", "gradcam"])
def test_heatmaps_have_image_shape_and_are_finite(asd_warm, method):
    cfg, dataset, keras_model = asd_warm
    images = data.load_images(dataset.paths[:3], cfg.model.input_size)
    relevance = explanations.Explainer(keras_model, method)(images)
    assert relevance.shape == (3, cfg.model.input_size, cfg.model.input_size) and relevance.dtype == np.float32
    assert np.isfinite(relevance).all() and np.abs(relevance).sum() > 0


def test_lrp_analysis_then_average_saliency(trained, capsys):
    cfg = config.load(trained)
    argv = ["--config", str(trained), "--trait", "warm", "--set", "explain.faithfulness_analyzers=[lrp.epsilon]"]
    lrp_analysis.main(argv)
    results, figures = cfg.output.results_dir, cfg.output.fig_dir
    assert capsys.readouterr().err.splitlines()[-1] == (f"wrote relevance maps in {results / 'relevance'} and "
                                                        f"faithfulness tables, figures in {figures}")
    index = pd.read_csv(results / "relevance" / "index.csv")
    assert list(index.columns) == ["index", "image", "identity", "run"] and len(index) == 18
    assert index.image.tolist() == sorted(index.image)
    for name in ("ASD__warm", "NT__warm"):
        relevance = np.load(results / "relevance" / f"{name}.npy")
        assert relevance.shape == (18, 32, 32) and relevance.dtype == np.float32 and np.isfinite(relevance).all()
        overlays = sorted((figures / "lrp" / name).glob("*.png"))
        assert len(overlays) == 18 and set(index.run) < set(Image.open(overlays[0]).text["Description"].split(" | "))
        assert (figures / f"extremes_{name}.png").stat().st_size > 1000
    summary = pd.read_csv(results / "faithfulness.csv")
    assert list(summary.columns) == [*faithfulness.COLUMNS, "run"]
    assert len(summary) == 2 and (summary.analyzer == "lrp.epsilon").all()
    assert (summary.n_images == 4).all() and (summary.n_identities == 4).all()  # 4 images spread over 6 identities
    assert (summary.reference == "mean_face").all() and summary.blur_sigma_px.isna().all()
    low, high = np.sort(summary.p_value)  # Holm over the run's two models x one method
    assert sorted(summary.p_holm) == pytest.approx([min(2 * low, 1), min(max(2 * low, high), 1)])
    curves = pd.read_csv(results / "faithfulness_curves.csv")
    assert set(zip(curves.analyzer, curves.order)) == {("lrp.epsilon", "morf"), ("lrp.epsilon", "lerf"),
                                                       ("random", "random")}
    assert (figures / "faithfulness.png").is_file()

    average_saliency.main(["--config", str(trained), "--trait", "warm"])
    regions = pd.read_csv(results / "region_relevance.csv")
    sums = regions.groupby(["group", "trait", "image"]).share_abs.sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    assert (figures / "average_saliency.png").is_file() and (figures / "group_difference_warm.png").is_file()

    lrp_analysis.main(argv + ["--set", "explain.analyzer=lrp.epsilon", "--skip-faithfulness"])
    record = json.loads((results / "relevance" / "ASD__warm.json").read_text())
    assert record["analyzer"] == "lrp.epsilon" and record["conv_bias_share_max_abs"] < 1e-3


def test_integrated_gradients_on_a_model_loaded_after_a_graph_reset(trained):
    from facetraits.backend import reset_graph
    cfg = config.load(trained)
    reset_graph(cfg.seed)
    keras_model = model.load_full_model(cfg.output.models_dir / "NT__warm.h5")
    images = data.load_images(data.load(cfg).paths[:2], cfg.model.input_size)
    relevance = explanations.Explainer(keras_model, "integrated_gradients")(images)
    assert relevance.shape == (2, cfg.model.input_size, cfg.model.input_size) and np.isfinite(relevance).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lrp.sequential_preset_a_flat", "lrp.epsilon"])
def test_the_average_face_gets_no_relevance(blob_config, method):
    """LRP hands the head's relevance to the centred features c = f - m: a face whose features ARE
    the mean has c = 0 and an empty map, and its whole predicted rating is the biases' share,
    so lrp.epsilon still conserves relevance; any other face gets a non-empty map."""
    cfg = config.load(blob_config)
    dataset = data.load(cfg)
    images = data.load_images(dataset.paths[:2], cfg.model.input_size)
    base = model.build_base(cfg.model)
    conv = base.predict(model.preprocess(images), verbose=0)
    head = model.build_head({"block5_pool": conv.shape[1:]}, cfg.model.mlp_features(), cfg.model, seed=0,
                            feature_means={"block5_pool": conv[0]}, kind="mlp")
    kernel, bias = head.get_layer("head_dense").get_weights()
    head.get_layer("head_dense").set_weights([kernel, bias + 0.5])
    full = model.mount(base, head)
    explainer = explanations.Explainer(full, method)
    maps = explainer(images)
    prediction = explainer.predict(images[:1])[0]
    assert abs(prediction) > 1e-3
    assert head_bias_share(full, images[:1])[0] == pytest.approx(prediction, rel=1e-5)
    assert np.abs(maps[0]).max() == 0
    assert np.abs(maps[1]).max() > 0


def tiny_conv_model(layers, seed=0, grid=1):
    """Two conv blocks (32 -> 16 -> 8 px) and a linear head (centring, average pooling, Dense(1))
    on the pooled maps named in `layers` (grid x grid average cells), with random kernel and bias; plus the
    images' conv maps."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for block, channels in ((1, 6), (2, 5)):
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"block{block}_conv1",
                                kernel_initializer=keras.initializers.RandomNormal(0, 0.02, seed=seed + block))(x)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    base = keras.Model(inputs, x)
    images = rng.integers(0, 255, (5, 32, 32, 3)).astype(np.uint8)
    tapped = keras.Model(inputs, [base.get_layer(layer).output for layer in layers])
    maps = tapped.predict(model.preprocess(images), verbose=0)
    maps = dict(zip(layers, maps if len(layers) > 1 else [maps]))
    head = model.build_head({layer: maps[layer].shape[1:] for layer in layers}, config.FeatureSet(layers, grid),
                            config.ModelConfig(), feature_means={layer: maps[layer][:3].mean(axis=0) for layer in layers},
                            kind="ridge")
    kernel = rng.normal(0, 1, (grid * grid * sum(maps[layer].shape[-1] for layer in layers), 1)).astype(np.float32)
    head.get_layer("head_rating").set_weights([kernel, np.float32([2.5])])
    return model.mount(base, head), images, maps, kernel.ravel()


def bilinear(values: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w) -> (N, size, size), bilinear with half-pixel centres and clamped edges (TF 2's resize)."""
    def weights(n):
        source = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, n - 1)
        matrix = np.zeros((size, n))
        np.add.at(matrix, (np.arange(size), low), 1 - (source - low))
        np.add.at(matrix, (np.arange(size), high), source - low)
        return matrix
    rows, cols = weights(values.shape[1]), weights(values.shape[2])
    return np.einsum("ih,nhw,jw->nij", rows, values, cols)


@pytest.mark.parametrize("layers", [("block2_pool",), ("block1_pool", "block2_pool")])
def test_gradcam_of_a_linear_head_on_average_pooled_features_is_cam(layers):
    """CAM from the Dense kernel with NumPy: ReLU of the sum over layers of the upsampled
    sum_k w_k (A_k - m_k), m the centring layer's mean map. GradCam undoes Grad-CAM's 1 / (h w)
    per layer, so the two are equal, not only proportional."""
    from facetraits.backend import reset_graph
    reset_graph(0)
    full, images, maps, kernel = tiny_conv_model(layers)
    cams, first = [], 0
    for layer in layers:
        mean = keras.backend.get_value(full.get_layer(f"head_centre_{layer}").mean).reshape(maps[layer].shape[1:])
        channels = maps[layer].shape[-1]
        cams.append(np.einsum("nhwk,k->nhw", maps[layer] - mean, kernel[first:first + channels]))
        first += channels
    explanations.Explainer(full, "smoothgrad")(images[:1])  # calls the head's layers again, in its own graph
    explainer = explanations.Explainer(full, "gradcam")
    # before the ReLU, the layers' CAMs average to their shares of the prediction minus the output bias
    np.testing.assert_allclose(sum(cam.mean(axis=(1, 2)) for cam in cams), explainer.predict(images) - 2.5,
                               rtol=1e-4, atol=1e-4)
    expected = np.maximum(sum(bilinear(cam, 32) for cam in cams), 0)
    gradcam = explainer(images)
    assert gradcam.shape == (5, 32, 32) and (expected > 0).mean() > 0.1 and (expected == 0).mean() > 0.1
    np.testing.assert_allclose(gradcam, expected, rtol=1e-4, atol=1e-5 * expected.max())


def test_gradcam_weighs_each_channel_by_its_gradient_averaged_over_positions():
    """A linear head on 2 x 2 average cells: dŷ/dA_k differs from cell to cell, so Grad-CAM's channel
    weight a_k (the mean over positions) is sum over cells of w_(cell, k) / (h w), and the map
    ReLU(sum_k (sum_cells w_(cell, k)) (A_k - m_k)), not the gradient times the centred map position by position."""
    from facetraits.backend import reset_graph
    reset_graph(0)
    full, images, maps, kernel = tiny_conv_model(("block2_pool",), grid=2)
    conv = maps["block2_pool"]
    mean = keras.backend.get_value(full.get_layer("head_centre_block2_pool").mean).reshape(conv.shape[1:])
    weights = kernel.reshape(4, conv.shape[-1]).sum(axis=0)  # Flatten order: cell by cell, channels inside
    expected = np.maximum(bilinear(np.einsum("nhwk,k->nhw", conv - mean, weights), 32), 0)
    gradcam = explanations.Explainer(full, "gradcam")(images)
    assert (expected > 0).mean() > 0.1 and (expected == 0).mean() > 0.1
    np.testing.assert_allclose(gradcam, expected, rtol=1e-4, atol=1e-5 * expected.max())


def test_smoothgrad_adds_noise_of_the_configured_scale(monkeypatch):
    """ANALYZER_OPTIONS sets smoothgrad's noise to 0.15 x 255 (the input is pixels about +-128);
    iNNvestigate 2.1.2's GaussianSmoother stores noise_scale but builds AddGaussianNoise() with its
    default stddev 1.0, so the setting must be seen to change the maps."""
    from facetraits.backend import reset_graph
    maps = {}
    for scale in (1.0, 0.15 * 255):
        reset_graph(0)
        full, images, _, _ = tiny_conv_model(("block2_pool",))
        monkeypatch.setitem(explanations.ANALYZER_OPTIONS["smoothgrad"], "noise_scale", scale)
        maps[scale] = explanations.Explainer(full, "smoothgrad")(images)
    assert not np.allclose(maps[1.0], maps[0.15 * 255], rtol=1e-2, atol=0)


def test_smoothgrad_noise_has_the_configured_standard_deviation():
    """The noisy copies of a blank input, drawn in the graph, have sd noise_scale (not 1, nor capped)."""
    from facetraits.backend import reset_graph
    from types import SimpleNamespace
    reset_graph(0)
    options = SimpleNamespace(_augment_by_n=16, _noise_scale=explanations.ANALYZER_OPTIONS["smoothgrad"]["noise_scale"])
    blank = keras.Input((8, 8, 3))
    [noisy] = explanations.ScaledSmoothGrad._augment(options, [blank])
    copies = keras.backend.function([blank], [noisy])([np.zeros((2, 8, 8, 3), np.float32)])[0]
    assert copies.shape == (32, 8, 8, 3)
    assert copies.std() == pytest.approx(0.15 * 255, rel=0.05)
