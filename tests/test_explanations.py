"""LRP and friends: names, shapes, conservation, the lrp_analysis outputs, faithfulness."""
import innvestigate
import numpy as np
import pandas as pd
import pytest

import average_saliency
import lrp_analysis
from facetraits import config, data, explanations, faithfulness, model
from facetraits.backend import keras
from facetraits.errors import ConfigError


def test_offered_names_are_all_in_innvestigates_registry():
    assert set(config.ANALYZERS) <= set(innvestigate.analyzer.analyzers)
    with pytest.raises(ConfigError, match="not an iNNvestigate analyzer .*lrp.epsilon"):
        explanations.check_names(["lrp.epsilom"])


@pytest.fixture(scope="module")
def asd_warm(trained):
    cfg = config.load(trained)
    dataset = data.load(cfg)
    return cfg, dataset, model.load_full_model(cfg.output.models_dir / "ASD__warm.h5")


def test_epsilon_relevance_sums_to_the_prediction(asd_warm):
    cfg, dataset, keras_model = asd_warm
    images = data.load_images(dataset.paths[:6], cfg.model.input_size)
    totals, predictions = explanations.conservation(keras_model, images)
    assert np.std(predictions) > 0
    np.testing.assert_allclose(totals, predictions, rtol=1e-3, atol=1e-3 * np.abs(predictions).max())


@pytest.mark.parametrize("method", ["lrp.sequential_preset_a_flat", "smoothgrad"])
def test_heatmaps_have_image_shape_and_are_finite(asd_warm, method):
    cfg, dataset, keras_model = asd_warm
    images = data.load_images(dataset.paths[:3], cfg.model.input_size)
    relevance = explanations.Explainer(keras_model, method)(images)
    assert relevance.shape == (3, cfg.model.input_size, cfg.model.input_size) and relevance.dtype == np.float32
    assert np.isfinite(relevance).all() and np.abs(relevance).sum() > 0


def test_lrp_analysis_then_average_saliency(trained):
    cfg = config.load(trained)
    argv = ["--config", str(trained), "--trait", "warm", "--set", "lrp.faithfulness_analyzers=[lrp.epsilon]"]
    lrp_analysis.main(argv)
    results, figures = cfg.output.results_dir, cfg.output.fig_dir
    index = pd.read_csv(results / "relevance" / "index.csv")
    assert list(index.columns) == ["index", "image", "identity"] and len(index) == 18
    assert index.image.tolist() == sorted(index.image)
    for name in ("ASD__warm", "NT__warm"):
        relevance = np.load(results / "relevance" / f"{name}.npy")
        assert relevance.shape == (18, 32, 32) and relevance.dtype == np.float32 and np.isfinite(relevance).all()
        assert len(list((figures / "lrp" / name).glob("*.png"))) == 18
        assert (figures / f"extremes_{name}.png").stat().st_size > 1000
    summary = pd.read_csv(results / "faithfulness.csv")
    assert list(summary.columns) == ["group", "trait", "analyzer", "aopc_morf", "aopc_random", "aopc_difference",
                                     "p_value", "beats_random", "n_images"]
    assert len(summary) == 2 and (summary.analyzer == "lrp.epsilon").all()
    assert (figures / "faithfulness.png").is_file()

    average_saliency.main(["--config", str(trained), "--trait", "warm"])
    regions = pd.read_csv(results / "region_relevance.csv")
    sums = regions.groupby(["group", "trait", "image"]).share_abs.sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    assert (figures / "average_saliency.png").is_file() and (figures / "group_difference_warm.png").is_file()


def mean_pixel_model(size: int) -> keras.Model:
    """prediction = mean of the (preprocessed) input: its exact relevance is the input itself."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(x)
    return keras.Model(inputs, outputs)


def test_faithfulness_relevant_first_beats_random_for_a_true_heatmap():
    size = 32
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, size, size, 3)).astype(np.uint8)
    images[:, 8:16, 8:24] = 255  # a bright patch: the most positive evidence
    true_relevance = model.preprocess(images).sum(axis=-1)
    keras_model = mean_pixel_model(size)
    morf, random = faithfulness.removal_curves(keras_model, images, true_relevance, steps=4, seed=0)
    result = faithfulness.compare_to_random(morf, random)
    assert result["aopc_morf"] > result["aopc_random"]
    reversed_morf, reversed_random = faithfulness.removal_curves(keras_model, images, -true_relevance, steps=4, seed=0)
    assert faithfulness.compare_to_random(reversed_morf, reversed_random)["beats_random"] is False
    np.testing.assert_allclose(morf[:, 0], 0, atol=1e-6)


def test_patch_order_ranks_by_summed_relevance():
    relevance = np.zeros((4, 4))
    relevance[2:, :2] = 5  # patch (1, 0) with patch size 2 -> index 2
    relevance[:2, 2:] = 1  # patch (0, 1) -> index 1
    assert faithfulness.patch_order(relevance, 2)[:2].tolist() == [2, 1]


def test_integrated_gradients_on_a_model_loaded_after_a_graph_reset(trained):
    from facetraits.backend import reset_graph
    cfg = config.load(trained)
    reset_graph(cfg.seed)
    keras_model = model.load_full_model(cfg.output.models_dir / "NT__warm.h5")
    images = data.load_images(data.load(cfg).paths[:2], cfg.model.input_size)
    relevance = explanations.Explainer(keras_model, "integrated_gradients")(images)
    assert relevance.shape == (2, cfg.model.input_size, cfg.model.input_size) and np.isfinite(relevance).all()


@pytest.mark.parametrize("method", ["lrp.sequential_preset_a_flat", "lrp.epsilon"])
def test_the_average_face_gets_no_relevance(blob_config, method):
    """The head centres on the training faces' mean features, so relevance measures a face
    against the average face: a face that IS the average gets an empty map although its
    predicted rating (all from the biases) is not 0, and any other face gets a non-empty one."""
    cfg = config.load(blob_config)
    dataset = data.load(cfg)
    images = data.load_images(dataset.paths[:2], cfg.model.input_size)
    base = model.build_base(cfg.model)
    conv = base.predict(model.preprocess(images), verbose=0)
    head = model.build_head({"block5_pool": conv.shape[1:]}, cfg.model.mlp_features(), cfg.model, seed=0,
                            feature_means={"block5_pool": conv[0]}, kind="mlp")
    kernel, bias = head.get_layer("head_dense").get_weights()
    head.get_layer("head_dense").set_weights([kernel, bias + 0.5])
    explainer = explanations.Explainer(model.mount(base, head), method)
    maps = explainer(images)
    assert abs(explainer.predict(images[:1])[0]) > 1e-3
    assert np.abs(maps[0]).max() == 0
    assert np.abs(maps[1]).max() > 0
