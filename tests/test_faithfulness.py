"""Faithfulness: mean-face and blurred references, MoRF / LeRF / random orders, the random baseline
shared by models with one trunk, identity-level test, Holm."""
import itertools

import numpy as np
import pandas as pd
import pytest

from facetraits import config, faithfulness, metrics, model, regions
from facetraits.backend import keras

from conftest import synthetic_face


def settings(steps=4, random_orders=3, reference="blur", random="patches"):
    return config.load(None, [f"explain.faithfulness_steps={steps}", f"explain.faithfulness_random_orders={random_orders}",
                              f"explain.faithfulness_reference={reference}", f"explain.faithfulness_random={random}"])


def mean_pixel_model(size: int) -> keras.Model:
    """prediction = mean of the (preprocessed) input: the exact relevance of a patch is its pixels'
    difference from the reference."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def true_heatmaps():
    size = 32
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, size, size, 3)).astype(np.uint8)
    images[:, 8:16, 8:24] = 255  # a bright patch: the most positive evidence
    truth = (model.preprocess(images) - model.preprocess(faithfulness.blurred(images))).sum(axis=-1)
    return mean_pixel_model(size), images, truth


def test_true_heatmap_orders_morf_above_random_above_lerf(true_heatmaps):
    keras_model, images, truth = true_heatmaps
    test = faithfulness.Test(settings(), images, faithfulness.blurred(images), np.arange(len(images)))
    curves = test.curves(keras_model, {"truth": truth, "reversed": -truth})
    assert set(curves) == {("truth", "morf"), ("truth", "lerf"), ("reversed", "morf"), ("reversed", "lerf"),
                           ("random", "random")}
    identities = np.arange(len(images))  # one image per identity: 8 identities, exact p = 1 / 2^8
    truth_result = faithfulness.compare(curves[("truth", "morf")], curves[("truth", "lerf")],
                                        curves[("random", "random")], identities, seed=0)
    assert truth_result["aopc_morf"] > truth_result["aopc_random"] > truth_result["aopc_lerf"]
    assert truth_result["p_value"] == pytest.approx(1 / 2 ** 8)
    reversed_result = faithfulness.compare(curves[("reversed", "morf")], curves[("reversed", "lerf")],
                                           curves[("random", "random")], identities, seed=0)
    table = faithfulness.summarise([{**row, "group": "g", "trait": "t", "analyzer": name, "n_random_orders": 3,
                                     "reference": "blur", "blur_sigma_px": 1.0, "random_baseline": "patches",
                                     "random_sigma_patches": np.nan}
                                    for name, row in (("truth", truth_result), ("reversed", reversed_result))], 0.05)
    assert table.beats_random.tolist() == [True, False]
    assert table.separates.tolist() == [True, False] and (table.morf_minus_lerf > 0).tolist() == [True, False]
    for drop in curves.values():  # nothing replaced: no change; everything replaced: the same blurred image
        np.testing.assert_allclose(drop[:, 0], 0, atol=1e-6)
        np.testing.assert_allclose(drop[:, -1], curves[("truth", "morf")][:, -1])


def conv_model(size: int, conv_scale: float, dense_weight: float) -> keras.Model:
    """A fixed "block1_conv1" trunk (a VGG16 layer name) and a head of its own: GAP -> Dense(1)."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", name="block1_conv1",
                            kernel_initializer=keras.initializers.Constant(conv_scale))(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(dense_weight), name="head_rating")(x)
    return keras.Model(inputs, outputs)


def test_models_with_one_trunk_share_the_random_baselines_conv_maps(true_heatmaps):
    """The random-order images are pushed through the trunk once per distinct trunk, and the shared
    maps give the same curve as the model's own predictions on those images."""
    _, images, truth = true_heatmaps
    test = faithfulness.Test(settings(steps=3, random_orders=2), images, faithfulness.blurred(images),
                             np.arange(len(images)))
    first, second, other_trunk = conv_model(32, 0.01, 1.0), conv_model(32, 0.01, -2.0), conv_model(32, 0.02, 1.0)
    assert faithfulness.cut_layer(first) == "block1_conv1"
    curves = {name: test.curves(m, {"truth": truth}) for name, m in
              (("first", first), ("second", second), ("other", other_trunk))}
    assert len(test.random_maps) == 2  # first and second share one trunk; other_trunk has its own
    original = second.predict(test.x, verbose=0).ravel()
    direct = np.mean([[original - second.predict(test.perturbed(orders, step), verbose=0).ravel()
                       for step in (1, 2)] for orders in test.random_orders], axis=0).T
    np.testing.assert_allclose(curves["second"][("random", "random")][:, 1:3], direct, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(curves["second"][("random", "random")], -2 * curves["first"][("random", "random")],
                               rtol=1e-4, atol=1e-5)  # same images, head weight -2 instead of 1


def test_smooth_random_orders_are_as_clustered_as_the_maps_and_shared_by_every_model(true_heatmaps):
    from scipy import ndimage

    side = 12
    noise = np.random.default_rng(5).standard_normal((50, side, side))
    assert abs(faithfulness.neighbour_autocorrelation(noise)) < 0.05  # a shuffle is not clustered
    smooth = ndimage.gaussian_filter(noise, (0, 1.5, 1.5))
    assert faithfulness.matched_sigma(faithfulness.neighbour_autocorrelation(smooth), side, seed=1) == \
        pytest.approx(1.5, abs=0.2)
    orders = faithfulness.smooth_orders(4, side, 1.5, np.random.default_rng(0))
    assert (np.sort(orders, axis=1) == np.arange(side * side)).all()  # every patch once

    _, images, truth = true_heatmaps  # 32 px images, 16 patches of 2 px a side
    clustered = np.kron(np.random.default_rng(2).standard_normal((len(images), 4, 4)), np.ones((8, 8)))
    test = faithfulness.Test(settings(steps=3, random_orders=2, random="smooth"), images, faithfulness.blurred(images),
                             np.arange(len(images)))
    assert test.random_orders is None  # drawn from the first model's maps
    first, second = conv_model(32, 0.01, 1.0), conv_model(32, 0.01, -2.0)
    test.curves(first, {"lrp.sequential_preset_a_flat": clustered})
    drawn, sigma = test.random_orders, test.random_sigma
    assert sigma > 1 and len(drawn) == 2
    test.curves(second, {"lrp.sequential_preset_a_flat": truth})
    assert test.random_orders is drawn and test.random_sigma == sigma  # one baseline for every model
    patched = faithfulness.Test(settings(steps=3, random_orders=2), images, faithfulness.blurred(images),
                                np.arange(len(images)))
    grid = [np.argsort(order).reshape(16, 16) for order in patched.random_orders[0][:4]]
    ranks = [np.argsort(order).reshape(16, 16) for order in drawn[0][:4]]
    assert faithfulness.neighbour_autocorrelation(np.stack(ranks).astype(float)) > \
        faithfulness.neighbour_autocorrelation(np.stack(grid).astype(float)) + 0.3


def test_mean_face_reference_is_the_aligned_mean_warped_back_onto_each_face(tmp_path):
    """Faces that are shifted, scaled copies of one drawing have that drawing as their aligned mean:
    warped back onto each face, the reference reproduces the face inside the covered area."""
    from PIL import Image
    size = 64
    canonical = synthetic_face(size)
    drawing = np.zeros((size, size, 3))
    drawing[..., 0] = np.linspace(0, 255, size)[None, :]  # a horizontal ramp: any misalignment shows
    drawing[..., 1] = np.linspace(0, 255, size)[:, None]
    paths, points = [], []
    for k, (shift, scale) in enumerate((((0, 0), 1.0), ((3, -2), 0.9), ((-2, 3), 1.05), ((1, 1), 0.95))):
        face = synthetic_face(size, shift, scale)
        warped = faithfulness.warp_rgb(drawing, canonical, face, size)
        Image.fromarray(np.clip(np.round(warped), 0, 255).astype(np.uint8)).save(tmp_path / f"f{k}.png")
        paths.append(tmp_path / f"f{k}.png")
        points.append(face)
    references = faithfulness.mean_face_references(paths, points, [1, 3], size)
    for reference, k in zip(references, [1, 3]):
        own = np.asarray(Image.open(paths[k]), dtype=float)
        face = regions.region_masks(points[k], (size, size), (size, size))
        inner = ~face["background"]
        assert np.abs(reference - own)[inner].mean() < 4  # rounding and resampling only; 1 px off costs 4


def test_the_reference_is_the_blurred_image_and_patches_are_blended_in_over_a_soft_border():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (2, 32, 32, 3)).astype(np.uint8)
    reference = faithfulness.blurred(images)
    assert reference.std() < images.std() / 2 and abs(reference.mean() - images.mean()) < 2
    x, patch = images.astype(np.float32), 16
    orders = np.array([[3, 0, 1, 2], [0, 1, 2, 3]])
    out = faithfulness.perturb(x, reference, orders, removed=1, patch=patch)
    weight = ((out - x) / np.where(reference == x, 1, reference - x))[..., 0]  # share of the reference taken
    sigma = faithfulness.FEATHER_PER_PATCH * patch
    assert weight[0, -1, -1] == pytest.approx(1, abs=1e-3) and weight[0, 0, 0] == pytest.approx(0, abs=1e-3)
    assert weight[1, 0, 0] == pytest.approx(1, abs=1e-3) and weight[1, -1, -1] == pytest.approx(0, abs=1e-3)
    assert weight[0].sum() == pytest.approx(patch * patch, rel=0.02)  # as much replaced as one patch
    assert np.abs(np.diff(weight[0], axis=1)).max() < 1 / (2 * sigma)  # no hard border: at most ~0.4 per px
    everything = faithfulness.perturb(x, reference, orders, removed=4, patch=patch)
    np.testing.assert_allclose(everything, reference, atol=1e-3)


def test_patch_order_ranks_by_summed_relevance():
    relevance = np.zeros((4, 4))
    relevance[2:, :2] = 5  # patch (1, 0) with patch size 2 -> index 2
    relevance[:2, 2:] = 1  # patch (0, 1) -> index 1
    assert faithfulness.patch_order(relevance, 2)[:2].tolist() == [2, 1]


def test_sample_is_spread_over_identities_and_seeded():
    identities = np.repeat([f"id{k}" for k in range(5)], 4)
    for n in (3, 5, 7, 20):
        sample = faithfulness.spread_sample(identities, n, seed=0)
        counts = pd.Series(identities[sample]).value_counts()
        assert len(sample) == len(set(sample)) == n
        assert len(counts) == min(n, 5) and counts.max() - counts.min() <= 1  # as even as n allows
    assert faithfulness.spread_sample(identities, 7, 0).tolist() == faithfulness.spread_sample(identities, 7, 0).tolist()
    assert any(faithfulness.spread_sample(identities, 7, 0).tolist() != faithfulness.spread_sample(identities, 7, s).tolist()
               for s in range(1, 5))


def test_images_of_one_identity_count_once():
    """Nine images of one face that favour MoRF cannot outvote five faces that do not."""
    identities = np.array(["a"] * 9 + ["b", "c", "d", "e", "f"])
    random = np.zeros((14, 3))
    morf = np.zeros((14, 3))
    morf[:9, 1:] = 1.0
    morf[9:, 1:] = -0.5
    result = faithfulness.compare(morf, random, random, identities, seed=0)
    assert (morf[:, 1:].mean() > 0) and result["morf_minus_random"] == pytest.approx((1 - 5 * 0.5) / 6)
    assert result["n_images"] == 14 and result["n_identities"] == 6 and result["p_value"] > 0.5
    assert result["p_morf_lerf"] == result["p_value"]  # LeRF = random here


def test_sign_flip_p_exact_and_sampled():
    values = np.array([0.3, -0.1, 0.4, 0.2, 0.05])
    means = [np.dot(signs, values) for signs in itertools.product([-1, 1], repeat=len(values))]
    assert metrics.sign_flip_p(values) == pytest.approx(np.mean(np.array(means) >= values.sum() - 1e-12))
    rng = np.random.default_rng(0)
    assert metrics.sign_flip_p(np.abs(rng.normal(size=30)) + 0.1, n_flips=999) == pytest.approx(1 / 1000)
    assert metrics.sign_flip_p(rng.normal(size=30) - 1, n_flips=999) > 0.99
    assert np.isnan(metrics.sign_flip_p([]))


def test_mean_face_reference_without_any_landmarks_names_both_ways_out(blob_config):
    from facetraits import data
    from facetraits.errors import FacetraitsError
    cfg = config.load(blob_config)  # blobs: dlib finds no face
    with pytest.raises(FacetraitsError, match="^dlib landmark detection: none of the 12 images has usable landmarks.*"
                                              "faithfulness_reference=blur.*give data.landmarks"):
        faithfulness.Test.for_dataset(cfg, data.load(cfg))
    blurred_test = faithfulness.Test.for_dataset(config.load(blob_config, ["explain.faithfulness_reference=blur"]),
                                                 data.load(cfg))
    assert len(blurred_test.sample) == cfg.explain.faithfulness_images


def test_mean_face_reference_with_no_usable_landmarks_in_the_given_file_says_why(tmp_path):
    """data.landmarks is given, so "give data.landmarks" would mislead: the first reason is named instead."""
    from conftest import write_blob_dataset, write_config
    from facetraits import data
    from facetraits.errors import FacetraitsError
    root = write_blob_dataset(tmp_path / "d", n_identities=2, per_identity=2, size=40)
    pd.DataFrame({"image": "other.png", "point": np.arange(68), "x": synthetic_face(40)[:, 0],
                  "y": synthetic_face(40)[:, 1]}).to_csv(root / "landmarks.csv", index=False)
    cfg = config.load(write_config(tmp_path / "c.yaml", root, tmp_path, explain={"faithfulness_reference": "mean_face"}))
    with pytest.raises(FacetraitsError) as caught:
        faithfulness.Test.for_dataset(cfg, data.load(cfg))
    assert str(caught.value) == (f"{root / 'landmarks.csv'}: none of the 4 images has usable landmarks (first reason: "
                                 f"no landmarks in {root / 'landmarks.csv'}); the mean_face faithfulness reference "
                                 f"(explain.faithfulness_reference=blur needs none) needs them")


def test_each_verdict_is_holm_corrected_on_its_own_p_values():
    """'separates' is corrected over the MoRF - LeRF p-values, 'beats_random' over the MoRF - random ones."""
    rows = [{"group": "A", "trait": t, "analyzer": "m", "aopc_morf": 1.0, "aopc_lerf": 0.0, "aopc_random": 0.5,
             "morf_minus_random": 0.5, "random_minus_lerf": 0.5, "p_value": 0.5, "morf_minus_lerf": 1.0,
             "p_morf_lerf": p, "n_images": 10, "n_identities": 10, "n_random_orders": 5, "reference": "blur",
             "blur_sigma_px": 3.0, "random_baseline": "patches", "random_sigma_patches": float("nan")}
            for t, p in (("warm", 0.001), ("strong", 0.02))]
    table = faithfulness.summarise(rows, 0.05)
    np.testing.assert_allclose(table.p_holm_morf_lerf, [0.002, 0.02])
    np.testing.assert_allclose(table.p_holm, [1.0, 1.0])
    assert table.separates.tolist() == [True, True] and table.beats_random.tolist() == [False, False]
