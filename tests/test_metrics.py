"""Folds, label shuffles, p-values and the ridge null model: the statistics the conclusions rest on."""
import numpy as np
import pytest

from facetraits import metrics, training
from facetraits.errors import ConfigError


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
    with pytest.raises(ConfigError, match="cv.n_folds=5 but ratings.csv has only 3 identities"):
        metrics.make_folds(np.array(["a", "b", "c", "a"]), 5, "identity", 0, "ratings.csv")


def test_p_value_on_a_hand_built_null():
    null = np.array([0.1, 0.5, 0.2, 0.5, -0.3, 0.7, 0.0, 0.05, 0.45])
    assert metrics.permutation_p_value(0.5, null) == pytest.approx((3 + 1) / (9 + 1))
    assert metrics.permutation_p_value(0.9, null) == pytest.approx(1 / 10)
    assert metrics.permutation_p_value(-1.0, null) == pytest.approx(1.0)


def test_shuffles_move_ratings_across_identities():
    y = np.repeat(np.arange(10.0), 5)  # identity i has rating i on all its images
    shuffled = metrics.shuffled_labels(y, 50, seed=0)
    assert shuffled.shape == (50, 50)
    assert all(sorted(column) == sorted(y) for column in shuffled.T)
    within = [np.ptp(column[:5]) for column in shuffled.T]  # identity 0's images
    assert np.mean(within) > 0, "ratings never left their identity: that is the wrong null"


def test_pearson_columns_matches_numpy_and_flags_constants():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    expected = [np.corrcoef(y[:, i], p[:, i])[0, 1] for i in range(4)]
    np.testing.assert_allclose(metrics.pearson_columns(y, p), expected)
    assert np.isnan(metrics.pearson_r(np.ones(5), np.arange(5.0)))
    assert metrics.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)


def test_ridge_recovers_signal_and_its_null_is_centred_on_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 20))
    y = x[:, 0] * 2 + rng.normal(scale=0.5, size=200)
    identities = np.repeat(np.arange(40), 5)
    folds = metrics.make_folds(identities, 5, "identity", 0)
    targets = np.column_stack([y, metrics.shuffled_labels(y, 200, seed=0)])
    scores = metrics.pearson_columns(targets, training.ridge_cv_predict(x, targets, folds, alpha=0.1))
    assert scores[0] > 0.9
    assert abs(scores[1:].mean()) < 0.1
    assert metrics.permutation_p_value(scores[0], scores[1:]) == pytest.approx(1 / 201)


def test_ridge_matches_scikit_learn():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=60)
    folds = np.arange(60) % 3
    ours = training.ridge_cv_predict(x, y[:, None], folds, alpha=0.5)[:, 0]
    for fold in range(3):
        test = folds == fold
        scaler = StandardScaler().fit(x[~test])
        fitted = Ridge(alpha=0.5 * (~test).sum()).fit(scaler.transform(x[~test]), y[~test])
        np.testing.assert_allclose(ours[test], fitted.predict(scaler.transform(x[test])), rtol=1e-6, atol=1e-8)
