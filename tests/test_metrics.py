"""Folds, identity permutations, p-values and their corrections, bootstrap CIs, noise ceilings and the ridge:
the statistics the conclusions rest on."""
import numpy as np
import pandas as pd
import pytest

from facetraits import metrics, ridge
from facetraits.errors import ConfigError, DataError


def test_identity_folds_are_disjoint_balanced_and_seeded():
    identities = np.repeat([f"id{i}" for i in range(13)], [3, 5, 2, 4, 4, 4, 6, 1, 3, 3, 5, 2, 4])
    folds = metrics.make_folds(identities, 5, "identity", seed=3)
    for identity in np.unique(identities):
        assert len(set(folds[identities == identity])) == 1, identity
    sizes = np.bincount(folds)
    assert len(sizes) == 5 and sizes.max() - sizes.min() <= 6
    assert (metrics.make_folds(identities, 5, "identity", seed=3) == folds).all()
    assert not (metrics.make_folds(identities, 5, "identity", seed=4) == folds).all()


def test_plain_folds_split_identities():
    identities = np.repeat(["a", "b"], 10)
    folds = metrics.make_folds(identities, 5, "none", seed=0)
    assert np.bincount(folds).tolist() == [4, 4, 4, 4, 4]
    assert len(set(folds[identities == "a"])) > 1


def test_more_folds_than_identities_is_an_error():
    with pytest.raises(ConfigError, match=r"5 folds \(cv.n_folds\) but ratings.csv has only 3 identities"):
        metrics.make_folds(np.array(["a", "b", "c", "a"]), 5, "identity", 0, "ratings.csv")


def test_p_value_on_a_hand_built_null():
    null = np.array([0.1, 0.5, 0.2, 0.5, -0.3, 0.7, 0.0, 0.05, 0.45])
    assert metrics.permutation_p_value(0.5, null) == pytest.approx((3 + 1) / (9 + 1))
    assert metrics.permutation_p_value(0.9, null) == pytest.approx(1 / 10)
    assert metrics.permutation_p_value(-1.0, null) == pytest.approx(1.0)


def test_identity_permutations_move_whole_identities():
    identities = np.repeat([f"id{i}" for i in range(10)], 5)
    y = np.repeat(np.arange(10.0), 5) + np.tile(np.arange(5) / 10, 10)  # identity i: i, i.1, ..., i.4
    permuted = metrics.permuted_by_identity(y, identities, 50, seed=0)
    assert permuted.shape == (50, 50)
    for column in permuted.T:
        assert sorted(column) == sorted(y)
        for identity in range(10):  # each identity got all ratings of ONE identity
            received = column[identities == f"id{identity}"]
            assert np.ptp(np.floor(received)) == 0
    moved = np.mean([np.floor(column[0]) != 0 for column in permuted.T])
    assert moved > 0.7, "identity 0 kept its own ratings: nothing was permuted"
    np.testing.assert_array_equal(permuted, metrics.permuted_by_identity(y, identities, 50, seed=0))


def test_identities_swap_only_with_identities_of_the_same_size():
    identities = np.array(["a", "a", "b", "b", "c", "c", "c", "d"])
    y = np.arange(8.0)
    for column in metrics.permuted_by_identity(y, identities, 30, seed=1).T:
        assert set(column[4:7]) == {4.0, 5.0, 6.0} and column[7] == 7.0  # c and d: unique sizes, stay
        assert set(column[:2]) in ({0.0, 1.0}, {2.0, 3.0})
    assert metrics.fixed_identities(identities) == 2


def test_fixed_identities_are_announced_and_all_fixed_is_refused(capsys):
    metrics.check_exchangeable(np.repeat(["a", "b", "c"], 2), "r.csv")  # none fixed: nothing said
    assert capsys.readouterr().err == ""
    metrics.check_exchangeable(np.array(["a", "a", "b", "b", "c", "c", "c", "d"]), "r.csv")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: 2 of 4 identities have an image count no other identity "
                                                    "has (1, 3 images), so identity permutations")
    with pytest.raises(DataError) as caught:  # a and b can only keep their own ratings: nothing is permuted
        metrics.check_exchangeable(np.array(["a", "b", "b"]), "r.csv")
    assert str(caught.value).startswith("r.csv: each of the 2 identities has an image count no other identity has "
                                        "(1, 2 images)")


def test_one_image_per_identity_is_a_plain_shuffle():
    y = np.arange(40.0)
    permuted = metrics.permuted_by_identity(y, np.arange(40), 200, seed=2)
    assert abs(np.corrcoef(np.tile(y, 200), permuted.T.ravel())[0, 1]) < 0.05
    assert np.mean(permuted[0] == 0.0) < 0.1


def test_bootstrap_ci_covers_the_pooled_r_and_widens_with_fewer_identities():
    rng = np.random.default_rng(3)
    y = rng.normal(size=200)
    prediction = y + rng.normal(size=200)
    r = metrics.pearson_r(y, prediction)
    many = metrics.bootstrap_r_ci(y, prediction, np.arange(200), seed=0)
    few = metrics.bootstrap_r_ci(y, prediction, np.repeat(np.arange(10), 20), seed=0)
    assert many[0] < r < many[1] and few[0] < r < few[1]
    assert (few[1] - few[0]) > (many[1] - many[0])
    draws = [metrics.pearson_r(y[i], prediction[i]) for i in rng.integers(0, 200, size=(500, 200))]
    assert many[0] == pytest.approx(np.percentile(draws, 2.5), abs=0.03)


def test_pearson_columns_matches_numpy_and_flags_constants():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    expected = [np.corrcoef(y[:, i], p[:, i])[0, 1] for i in range(4)]
    np.testing.assert_allclose(metrics.pearson_columns(y, p), expected)
    assert np.isnan(metrics.pearson_r(np.ones(5), np.arange(5.0)))
    assert metrics.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)


@pytest.mark.parametrize("n_features", [8, 300])
def test_ridge_solver_matches_scikit_learn(n_features):
    """Tall and wide (more features than faces, with repeated columns: a rank-deficient Gram matrix)."""
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, n_features)) * np.geomspace(1, 100, n_features), rng.normal(size=60)
    x[:, n_features // 2:] = x[:, :n_features - n_features // 2] * 3  # half the columns repeat the other half
    train = np.arange(60) % 3 != 0
    solver = ridge.Solver(x[train])
    centred = (y[train] - y[train].mean())[:, None]
    ours = solver.predictions(x[~train], centred, [0.5, 5.0])[:, :, 0] + y[train].mean()
    scaler = StandardScaler().fit(x[train])
    for row, alpha in zip(ours, [0.5, 5.0]):
        fitted = Ridge(alpha=alpha * n_features).fit(scaler.transform(x[train]), y[train])
        np.testing.assert_allclose(row, fitted.predict(scaler.transform(x[~train])), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(solver.coefficients(centred, alpha)[:, 0], fitted.coef_, rtol=1e-6, atol=1e-10)


def test_inner_selection_picks_the_informative_feature_set_and_never_sees_the_test_fold():
    rng = np.random.default_rng(1)
    identities = np.repeat(np.arange(40), 5)
    noise, signal = rng.normal(size=(200, 30)), rng.normal(size=(200, 5))
    y = signal[:, 0] * 2 + rng.normal(scale=0.5, size=200)
    folds = metrics.make_folds(identities, 5, "identity", 0)
    alphas = [0.01, 1.0, 100.0]
    predictions, candidates, _ = ridge.cv_predict([noise, signal], y[:, None], identities, folds, alphas, 4, seed=0)
    assert (candidates[:, 0] == 1).all() and metrics.pearson_r(y, predictions[:, 0]) > 0.9
    wrecked = y.copy()
    wrecked[folds == 0] = rng.normal(size=(folds == 0).sum()) * 100  # test ratings of fold 0 only
    again, again_candidates, _ = ridge.cv_predict([noise, signal], wrecked[:, None], identities, folds, alphas, 4, 0)
    np.testing.assert_array_equal(again[folds == 0, 0], predictions[folds == 0, 0])
    assert again_candidates[0, 0] == candidates[0, 0]


def test_a_training_part_of_one_identity_names_the_keys_and_up_front_the_file():
    identities, folds = np.repeat(["a", "b"], 3), np.repeat([0, 1], 3)  # 2 identities in 2 folds
    with pytest.raises(DataError) as caught:
        ridge.check_training_parts(identities, folds, "r.csv")
    assert str(caught.value).startswith("r.csv: ridge: with cv.n_folds=2, the training part of fold 1 (the other "
                                        "folds' images) holds a single identity")
    with pytest.raises(DataError) as caught:  # what the CV itself says, from arrays only
        ridge.cv_predict([np.eye(6)], np.arange(6.0)[:, None], identities, folds, [1.0], 5, seed=0)
    assert all(key in str(caught.value) for key in ("ridge.inner_folds", "cv.n_folds"))
    ridge.check_training_parts(np.repeat(["a", "b", "c"], 2), np.repeat([0, 1, 2], 2), "r.csv")  # 2 in each part


def test_many_columns_at_once_equal_one_column_at_a_time():
    rng = np.random.default_rng(4)
    identities = np.repeat(np.arange(20), 3)
    xs = [rng.normal(size=(60, 6)), rng.normal(size=(60, 40))]
    targets = np.column_stack([xs[0][:, 0] + rng.normal(size=60), rng.normal(size=(60, 4))])
    folds = metrics.make_folds(identities, 4, "identity", 0)
    together = ridge.cv_predict(xs, targets, identities, folds, [0.1, 10.0], 3, seed=0)
    for column in range(5):
        alone = ridge.cv_predict(xs, targets[:, [column]], identities, folds, [0.1, 10.0], 3, seed=0)
        np.testing.assert_allclose(alone[0][:, 0], together[0][:, column], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(alone[1][:, 0], together[1][:, column])


def null_false_positive_rate(unit: str, n_datasets=40, n_permutations=99, seed=0) -> float:
    """Share of no-signal datasets (ratings and features clustered by identity) called significant at .05."""
    rng = np.random.default_rng(seed)
    identities = np.repeat(np.arange(30), 6)
    folds = metrics.make_folds(identities, 5, "identity", seed)
    hits = 0
    for _ in range(n_datasets):
        x = np.repeat(rng.normal(size=(30, 10)), 6, axis=0) + 0.5 * rng.normal(size=(180, 10))
        y = np.repeat(rng.normal(size=30), 6) * np.sqrt(0.8) + rng.normal(size=180) * np.sqrt(0.2)
        if unit == "identity":
            permuted = metrics.permuted_by_identity(y, identities, n_permutations, int(rng.integers(1 << 31)))
        else:  # the old null: single images shuffled
            permuted = metrics.permuted_by_identity(y, np.arange(180), n_permutations, int(rng.integers(1 << 31)))
        targets = np.column_stack([y, permuted])
        predictions = ridge.cv_predict([x], targets, identities, folds, [1.0], 3, seed)[0]
        scores = metrics.pearson_columns(targets, predictions)
        hits += metrics.permutation_p_value(scores[0], scores[1:]) <= 0.05
    return hits / n_datasets


@pytest.mark.slow
def test_identity_permutation_null_is_calibrated_where_image_shuffling_is_not():
    """A small version of benchmarks/null_calibration.py (fixed seeds, so it is deterministic)."""
    identity_rate = null_false_positive_rate("identity")
    image_rate = null_false_positive_rate("image")
    assert identity_rate <= 0.1
    assert image_rate > identity_rate + 0.05


def test_holm_matches_hand_computed_values():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    np.testing.assert_allclose(metrics.holm(p), [0.04, 0.09, 0.09, 0.5, np.nan], equal_nan=True)


# ----------------------------------------------------------------------------- split-half noise ceiling

def synthetic(n_images, n_raters, signal_sd, noise_sd, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, signal_sd, n_images)
    offsets = rng.normal(0, 1, n_raters)  # rater leniency: does not change a correlation
    rows = [{"image": f"{i}.jpg", "group": "g", "trait": "t", "rater": f"r{j}",
             "rating": signal[i] + offsets[j] + rng.normal(0, noise_sd)}
            for i in range(n_images) for j in range(n_raters)]
    return pd.DataFrame(rows)


def test_noise_ceiling_consistent_raters_give_one():
    result = metrics.split_half_noise_ceiling(synthetic(50, 6, 1.0, 0.0), n_splits=10)
    assert list(result.columns) == ["group", "trait", "reliability", "noise_ceiling"]
    assert result.reliability.item() == pytest.approx(1.0, abs=1e-9)
    assert result.noise_ceiling.item() == pytest.approx(1.0, abs=1e-9)


def test_noise_ceiling_pure_noise_gives_zero():
    result = metrics.split_half_noise_ceiling(synthetic(400, 10, 0.0, 1.0), n_splits=20)
    assert abs(result.reliability.item()) < 0.15


def test_noise_ceiling_matches_spearman_brown_theory():
    # reliability of a mean of k raters = s^2 / (s^2 + e^2 / k) = 1 / (1 + 4 / 20) = 0.833
    result = metrics.split_half_noise_ceiling(synthetic(500, 20, 1.0, 2.0), n_splits=30)
    assert result.reliability.item() == pytest.approx(1 / 1.2, abs=0.04)
    assert result.noise_ceiling.item() == pytest.approx(np.sqrt(1 / 1.2), abs=0.03)


def test_noise_ceiling_per_group_and_trait_and_seeded():
    table = pd.concat([synthetic(60, 8, 1.0, 0.0).assign(group="a"),
                       synthetic(60, 8, 1.0, 1.0, seed=1).assign(group="b", trait="u")])
    first = metrics.split_half_noise_ceiling(table, n_splits=5, seed=3)
    assert first[["group", "trait"]].values.tolist() == [["a", "t"], ["b", "u"]]
    assert first.reliability.iloc[0] > first.reliability.iloc[1]
    pd.testing.assert_frame_equal(first, metrics.split_half_noise_ceiling(table, n_splits=5, seed=3))


def test_noise_ceiling_raters_of_different_images():
    # 3DSK-like: two disjoint rater pools, each rating half of the images
    a = synthetic(40, 30, 1.0, 1.0, seed=2)
    b = synthetic(40, 30, 1.0, 1.0, seed=3)
    b["image"] = "b" + b.image
    b["rater"] = "b" + b.rater
    result = metrics.split_half_noise_ceiling(pd.concat([a, b]), n_splits=10)
    assert result.reliability.item() == pytest.approx(1 / (1 + 1 / 30), abs=0.05)


def test_noise_ceiling_needs_rater_column():
    with pytest.raises(DataError, match="rater"):
        metrics.split_half_noise_ceiling(pd.DataFrame({"image": [], "group": [], "trait": [], "rating": []}))


def test_cv_summary_columns_do_not_depend_on_the_settings_key_order():
    """Settings read back from the CV cache come key-sorted; cv_summary.csv's columns must not move."""
    y = np.arange(12, dtype=float)
    folds = np.repeat([0, 1, 2], 4)
    identities = np.arange(12)
    fresh = {"head": "ridge", "layers": "block4_pool", "grid": 3, "alpha": 0.1}
    cached = dict(sorted(fresh.items()))
    assert list(cached) != list(fresh)
    tables = [pd.DataFrame(metrics.cv_summary("A", "warm", y, y + 1, folds, identities, [settings] * 3, settings))
              for settings in (fresh, cached)]
    assert list(tables[0].columns) == list(tables[1].columns)
    settings_columns = [c for c in tables[0].columns if c in fresh]
    assert settings_columns == list(metrics.SETTING_COLUMNS)


def test_the_penalty_is_chosen_on_inner_folds_of_whole_identities():
    """Features and ratings both identify the face but are unrelated across faces: an inner fold that
    splits an identity would let a weak penalty 'predict' a face from its own other images."""
    rng = np.random.default_rng(5)
    identities = np.repeat(np.arange(30), 4)
    x = np.repeat(rng.normal(size=(30, 50)), 4, axis=0) + 0.05 * rng.normal(size=(120, 50))
    y = np.repeat(rng.normal(size=30), 4) + 0.05 * rng.normal(size=120)
    alphas = [0.001, 0.1, 10.0, 1000.0]
    _, alpha_index = ridge.select([x], y[:, None], identities, alphas, 5, seed=0)
    assert alphas[alpha_index[0]] == 1000.0


def test_bootstrap_ci_is_as_wide_as_a_95_percent_interval():
    """Fisher's z for r = .5 and 400 independent faces: width 2 x 1.96 x (1 - r^2) / sqrt(397) = .147."""
    rng = np.random.default_rng(7)
    y = rng.normal(size=400)
    prediction = 0.5 * y + np.sqrt(0.75) * rng.normal(size=400)
    low, high = metrics.bootstrap_r_ci(y, prediction, np.arange(400), seed=0)
    r = metrics.pearson_r(y, prediction)
    assert high - low == pytest.approx(2 * 1.96 * (1 - r ** 2) / np.sqrt(397), rel=0.08)


def test_an_identity_receives_anothers_ratings_in_random_order_over_its_images():
    identities = np.repeat(["a", "b", "c"], 4)
    permuted = metrics.permuted_by_identity(np.arange(12.0), identities, 40, seed=0)
    assert len({tuple(np.argsort(column[:4])) for column in permuted.T}) > 1


def test_identity_folds_balance_the_number_of_images():
    identities = np.repeat(["a", "b", "c", "d", "e", "f"], [5, 1, 1, 1, 1, 1])
    folds = metrics.make_folds(identities, 2, "identity", seed=0)
    assert sorted(np.bincount(folds).tolist()) == [5, 5]
