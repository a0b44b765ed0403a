"""Rater-level group comparison: exact region split of the ridge, planted differences found, calibrated null."""
import numpy as np
import pandas as pd
import pytest

from facetraits import config, group_comparison, importance, regions, ridge, training
from facetraits import features as features_module
from facetraits.config import FeatureSet
from facetraits.errors import DataError

SIZE = 32  # model input side; the synthetic maps are 4 x 4, so each position covers an 8 x 8 block
SET = FeatureSet(("block4_pool",), 2)


def half_masks(n_images):
    """Top half = eyes, bottom half = mouth, nothing else: a partition of the 32 x 32 image."""
    masks = {name: np.zeros((SIZE, SIZE), bool) for name in regions.REGIONS}
    masks["eyes"][: SIZE // 2] = True
    masks["mouth"][SIZE // 2:] = True
    return [masks] * n_images


def planted(n_identities=20, per_identity=2, n_raters=10, seed=0, same_groups=False):
    """Maps whose top half carries latent a and bottom half latent b; group a's raters rate a, group b's rate b."""
    rng = np.random.default_rng(seed)
    n = n_identities * per_identity
    identities = np.repeat([f"id{i}" for i in range(n_identities)], per_identity)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    maps = rng.standard_normal((n, 4, 4, 2)) * 0.3 + 1.0
    maps[:, :2, :, 0] += a[:, None, None]
    maps[:, 2:, :, 1] += b[:, None, None]
    latent_b = a if same_groups else b
    ratings = np.hstack([a[:, None] + rng.standard_normal((n, n_raters)),
                         latent_b[:, None] + rng.standard_normal((n, n_raters))])
    raters = group_comparison.Raters(ratings, np.ones_like(ratings), n_raters, n_raters)
    return {"block4_pool": maps}, identities, raters


def settings():
    return config.load(None, ["ridge.feature_sets=[{layers: [block4_pool], grid: 2}]", "ridge.alphas=[0.1, 1.0]",
                              "ridge.inner_folds=4"])


def test_region_matrices_split_every_standardised_feature_exactly():
    maps, identities, _ = planted()
    x = features_module.pooled(maps, SET)
    mean, sd = ridge.standardisation(x)
    rng = np.random.default_rng(1)
    masks = [{name: m for name, m in zip(regions.REGIONS, np.eye(len(regions.REGIONS), dtype=bool)[
        rng.integers(0, len(regions.REGIONS), (SIZE, SIZE))].transpose(2, 0, 1))} for _ in range(len(x))]
    inputs = importance.region_inputs(maps, SET, sd, masks, identities, "rating_per_area")
    np.testing.assert_allclose(inputs.matrices.sum(axis=1), (x - mean) / sd, atol=1e-10)


def test_region_importance_of_any_targets_is_one_product_of_the_refitted_weights():
    maps, identities, raters = planted()
    x = features_module.pooled(maps, SET)
    solver = ridge.Solver(x)
    inputs = importance.region_inputs(maps, SET, solver.sd, half_masks(len(x)), identities, "rating_per_area")
    y = raters.means(np.eye(raters.n_a + raters.n_b)[:, :3])
    weights = solver.coefficients(y - y.mean(axis=0), 1.0)
    signed = np.einsum("nrf,ft->nrt", inputs.matrices[:, :len(regions.FACE_REGIONS)], weights)
    np.testing.assert_allclose(importance.RidgeRegions(inputs, solver, 1.0)(y), inputs.average(signed), rtol=1e-8)


def planted_head(maps, identities, raters):
    folds = np.repeat(np.arange(4), len(identities) // 4)
    everyone = raters.means(np.ones((raters.n_a + raters.n_b, 1)))[:, 0]
    return group_comparison.fixed_head(maps, everyone, identities, folds, half_masks(len(identities)), settings())


def statistics(same_groups=False, seed=0, n_permutations=499):
    maps, identities, raters = planted(seed=seed, same_groups=same_groups)
    head = planted_head(maps, identities, raters)
    stats = group_comparison.permutation_statistics(raters, head, n_permutations, 50, seed, "test")
    return stats, group_comparison.p_values(stats.differences)


def test_planted_region_differences_are_found_in_the_planted_direction():
    stats, (p, p_fwer) = statistics()
    eyes, mouth = regions.FACE_REGIONS.index("eyes"), regions.FACE_REGIONS.index("mouth")
    assert stats.differences[eyes, 0] > 0 > stats.differences[mouth, 0]  # group a rates what the top half shows
    assert p_fwer[eyes] < 0.01 and p_fwer[mouth] < 0.01
    assert np.all(p_fwer >= p)
    assert stats.ci[0, eyes] > 0 > stats.ci[1, mouth]


def test_rater_permutation_null_is_calibrated_when_both_groups_rate_alike():
    tested = [regions.FACE_REGIONS.index("eyes"), regions.FACE_REGIONS.index("mouth")]
    rejections = [statistics(same_groups=True, seed=seed, n_permutations=99)[1][0][tested] < 0.05 for seed in range(60)]
    assert 0.01 <= np.mean(rejections) <= 0.10, np.mean(rejections)  # 2 regions x 60 data sets at alpha .05


def test_p_values_count_the_observed_column_and_correct_across_rows():
    rng = np.random.default_rng(0)
    statistic = rng.standard_normal((3, 1001))
    statistic[0, 0] = 10.0  # far beyond its null
    statistic[1, 0] = 0.0  # in the middle of its null
    p, p_fwer = group_comparison.p_values(statistic)
    assert p[0] == pytest.approx(1 / 1001) and p_fwer[0] == pytest.approx(1 / 1001)
    assert p[1] > 0.9 and p_fwer[1] >= p[1]


def test_rounding_noise_is_no_difference_and_p_fwer_is_never_below_p():
    """Two groups whose importances are equal up to float rounding (e.g. one group rates 8 - r, and
    importance takes |relevance|): standardised by a null sd of the same noise, 1e-16 looked significant."""
    rng = np.random.default_rng(1)
    statistic = np.vstack([rng.standard_normal((2, 1001)), 1e-16 * rng.standard_normal((3, 1001))])
    statistic[0, 0] = 10.0
    p, p_fwer = group_comparison.p_values(statistic, scale=2.0)
    assert (p[2:] == 1).all() and (p_fwer[2:] == 1).all()
    assert p_fwer[0] == pytest.approx(1 / 1001)
    undefined = rng.standard_normal((3, 500))
    undefined[1, 7] = np.nan  # a row with an undefined value: no p, and no say in the other rows' correction
    p, p_fwer = group_comparison.p_values(undefined)
    assert np.isnan(p[1]) and np.isnan(p_fwer[1])
    np.testing.assert_array_equal(p_fwer[[0, 2]], group_comparison.p_values(undefined[[0, 2]])[1])


def test_label_permutations_keep_group_sizes_and_bootstrap_stays_within_groups():
    labels = group_comparison.label_permutations(3, 5, 20, seed=0)
    assert labels.shape == (8, 21) and (labels.sum(axis=0) == 3).all()
    assert (labels[:, 0] == [1, 1, 1, 0, 0, 0, 0, 0]).all()
    a, b = group_comparison.bootstrap_counts(3, 5, 10, seed=0)
    assert (a[:3].sum(axis=0) == 3).all() and (a[3:] == 0).all() and (b[3:].sum(axis=0) == 5).all()


def test_rater_table_keeps_raters_within_their_group():
    rows = [{"image": i, "group": g, "trait": "warm", "rater": "1", "rating": v}
            for i, g, v in (("x", "A", 1.0), ("y", "A", 3.0), ("x", "B", 5.0), ("y", "B", 7.0))]
    rows += [{"image": i, "group": g, "trait": "warm", "rater": "2", "rating": 4.0} for i in "xy" for g in "AB"]
    table = group_comparison.rater_table(pd.DataFrame(rows), ["x", "y"], "warm", "A", "B", "r.csv", DRAWS)
    assert (table.n_a, table.n_b) == (2, 2)  # rater "1" of A and rater "1" of B are two people
    np.testing.assert_allclose(table.means(np.array([[1.0], [1.0], [0.0], [0.0]]))[:, 0], [2.5, 3.5])


def test_few_raters_are_allowed_but_said(capsys):
    few = {("A", "a0"): "xy", ("A", "a1"): "xy"} | {("B", f"b{r}"): "xy" for r in range(3)}
    group_comparison.rater_table(long_ratings(few), ["x", "y"], "warm", "A", "B", "r.csv", DRAWS)
    err = capsys.readouterr().err
    assert "r.csv: trait warm: only 2 rater(s) in A and 3 in B" in err
    assert "2 + 3 raters can be split into only 10 distinct groups" in err and "below about 0.1" in err
    seven = {(g, f"{g}{r}"): "xy" for g in "AB" for r in range(7)}  # enough people, too few splits (3432)
    group_comparison.rater_table(long_ratings(seven), ["x", "y"], "warm", "A", "B", "r.csv", DRAWS)
    err = capsys.readouterr().err
    assert "only 7" not in err and "into only 3432 distinct groups" in err and "below about 0.00058" in err
    enough = {(g, f"{g}{r}"): "xy" for g in "AB" for r in range(group_comparison.FEW_RATERS + 5)}
    group_comparison.rater_table(long_ratings(enough), ["x", "y"], "warm", "A", "B", "r.csv", DRAWS)
    assert "warning" not in capsys.readouterr().err


def long_ratings(images_of: dict) -> pd.DataFrame:
    """Rows image, group, trait (warm), rater, rating for {(group, rater): the images that rater rated}."""
    return pd.DataFrame([{"image": image, "group": group, "trait": "warm", "rater": rater, "rating": 4.0}
                         for (group, rater), images in images_of.items() for image in images])


DRAWS = config.CompareConfig()  # the shipped 10,000 permutations and 2,000 bootstrap resamples


def test_an_image_a_bootstrap_resample_can_miss_is_named():
    """B: 1 of 4 raters rates z, so a quarter-sized chance per resample ((3/4)^4) that z goes unrated."""
    design = {("A", f"a{r}"): "xyz" for r in range(4)} | {("B", f"b{r}"): "xy" if r else "xyz" for r in range(4)}
    with pytest.raises(DataError) as caught:
        group_comparison.rater_table(long_ratings(design), ["x", "y", "z"], "warm", "A", "B", "r.csv", DRAWS)
    assert str(caught.value) == ("r.csv: trait warm: image z is rated by 4 of the 4 A raters and 1 of the 4 B raters; "
                                 "with compare.n_permutations=10000 and compare.n_bootstrap=2000, some draw of raters "
                                 "would leave an image unrated with chance 1 (accepted: 0.01); more raters per "
                                 "image, or fewer draws")


def test_an_image_a_small_permuted_group_can_miss_is_named():
    """2 raters in A: a permuted A of 2 drawn from 42 raters misses image z's 19 raters with chance
    (23/42)(22/41) ~ .29, though each group's bootstrap is safe (B: (1 - 17/40)^40 ~ 3e-10)."""
    design = {("A", "a0"): "yz", ("A", "a1"): "yz"} | {("B", f"b{r}"): "yz" if r < 17 else "y" for r in range(40)}
    with pytest.raises(DataError, match="^r.csv: trait warm: image z is rated by 2 of the 2 A raters and 17 of the 40 "):
        group_comparison.rater_table(long_ratings(design), ["y", "z"], "warm", "A", "B", "r.csv", DRAWS)
    fewer = config.CompareConfig(n_permutations=1, n_bootstrap=1)  # one draw each: .29 + tiny, still > .01
    with pytest.raises(DataError):
        group_comparison.rater_table(long_ratings(design), ["y", "z"], "warm", "A", "B", "r.csv", fewer)


@pytest.mark.parametrize("n_raters, share", [(30, 0.7), (100, 0.3), (200, 0.5)])
def test_realistic_sparse_designs_pass(n_raters, share):
    """Each rater rates a random share of 100 faces (3DSK: 100 of 200 per face); the run's draws stay
    safe, so nothing is refused (a rule of 15 of 30 raters per image refused 30 at 70% half the time)."""
    rng = np.random.default_rng(0)
    images = [f"f{i:03d}" for i in range(100)]
    design = {(group, f"{group}{r}"): [im for im in images if rng.random() < share]
              for group in "AB" for r in range(n_raters)}
    table = group_comparison.rater_table(long_ratings(design), images, "warm", "A", "B", "r.csv", DRAWS)
    assert group_comparison.unrated_chance(table, DRAWS).sum() <= group_comparison.RUN_UNRATED_CHANCE


def test_one_missing_rating_among_10_raters_passes_and_a_resample_missing_an_image_is_an_error_not_a_nan_ci():
    design = {(g, f"{g}{r}"): "xyz" if (g, r) != ("B", 0) else "xy" for g in "AB" for r in range(10)}
    group_comparison.rater_table(long_ratings(design), ["x", "y", "z"], "warm", "A", "B", "r.csv", DRAWS)
    maps, identities, raters = planted(n_raters=10)
    head = planted_head(maps, identities, raters)
    raters.sums[0, raters.n_a + 1:] = raters.counts[0, raters.n_a + 1:] = 0  # image 0: 1 of the 10 b raters
    # no permuted group of 10 can miss all 11 raters of image 0, but a third of the b resamples do
    with pytest.raises(DataError, match="^warm A vs B: a random draw of raters left an image without a rating"):
        group_comparison.permutation_statistics(raters, head, 9, 50, 0, "warm A vs B")


def test_a_failing_second_trait_is_refused_before_anything_is_computed_or_written(tiny_demo, tmp_path, capsys):
    import compare_groups
    from conftest import write_config
    ratings = pd.read_csv(tiny_demo / "ratings.csv", dtype=str, keep_default_na=False)
    image = ratings.image.iloc[0]
    sparse = ((ratings.trait == "strong") & (ratings.group == "NT") & (ratings.image == image)
              & (ratings.rater != "NT01"))  # the second trait: one image rated by 1 of the 30 NT raters
    damaged = tmp_path / "ratings.csv"
    ratings[~sparse].to_csv(damaged, index=False)
    path = write_config(tmp_path / "c.yaml", tiny_demo, tmp_path, data={"ratings": str(damaged)},
                        compare={"n_permutations": 9, "n_bootstrap": 9})
    earlier = {tmp_path / "fig" / "group_comparison_warm.png": b"an earlier run's figure",
               tmp_path / "results" / "group_comparison.csv": b"an earlier run's table",
               tmp_path / "results" / "group_comparison_accuracy.csv": b"an earlier run's accuracy"}
    for file, content in earlier.items():
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(content)
    with pytest.raises(SystemExit) as caught:
        compare_groups.main(["--config", str(path)])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {damaged}: trait strong: image {image} is rated by 30 of the 30 ASD raters and 1 of the 30 NT raters; "
        f"with compare.n_permutations=9 and compare.n_bootstrap=9, some draw of raters would leave an image unrated "
        f"with chance 1 (accepted: 0.01); more raters per image, or fewer draws")
    assert all(file.read_bytes() == content for file, content in earlier.items())
    assert not (tmp_path / "cache").exists()  # refused before the features and the first trait's permutations


def test_no_usable_landmarks_is_refused_not_a_table_of_zeros(tiny_demo, tmp_path, capsys):
    """Landmarks given as fractions of the image are unusable; without any, every region importance is 0."""
    import compare_groups
    from conftest import write_config
    points = pd.read_csv(tiny_demo / "landmarks.csv")
    fractions = tmp_path / "landmarks.csv"
    points.assign(x=points.x / 48, y=points.y / 48).to_csv(fractions, index=False)
    path = write_config(tmp_path / "c.yaml", tiny_demo, tmp_path, data={"landmarks": str(fractions)},
                        compare={"n_permutations": 9, "n_bootstrap": 9})
    with pytest.raises(SystemExit) as caught:
        compare_groups.main(["--config", str(path)])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"error: {fractions}: none of the 18 images has usable landmarks (first reason: landmarks for image ")
    assert not (tmp_path / "results" / "group_comparison.csv").exists() and not (tmp_path / "cache").exists()


def test_figures_are_saved_only_once_every_comparison_succeeded(tiny_demo, tmp_path, capsys, monkeypatch):
    import compare_groups
    from conftest import write_config
    path = write_config(tmp_path / "c.yaml", tiny_demo, tmp_path, compare={"n_permutations": 9, "n_bootstrap": 9})
    earlier = tmp_path / "fig" / "group_comparison_warm.png"
    earlier.parent.mkdir()
    earlier.write_bytes(b"an earlier run's figure")
    compare = group_comparison.compare

    def second_fails(dataset, raters, features, folds, masks, group_a, group_b, trait, cfg):
        if trait == "strong":  # a failure no up-front check can see
            raise DataError("strong ASD vs NT: failed")
        return compare(dataset, raters, features, folds, masks, group_a, group_b, trait, cfg)

    monkeypatch.setattr(group_comparison, "compare", second_fails)
    with pytest.raises(SystemExit):
        compare_groups.main(["--config", str(path)])
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "error: strong ASD vs NT: failed"
    assert "warning: 18 images in 3 folds" in err  # the CV r of 6 identities: said, as cross_validate.py says it
    assert earlier.read_bytes() == b"an earlier run's figure"
    assert not (tmp_path / "results" / "group_comparison.csv").exists()


@pytest.mark.slow
def test_compare_groups_writes_the_table_and_figures(tiny_demo, tmp_path):
    import compare_groups
    from conftest import write_config
    path = write_config(tmp_path / "c.yaml", tiny_demo, tmp_path, compare={"n_permutations": 99, "n_bootstrap": 20})
    compare_groups.main(["--config", str(path)])
    table = pd.read_csv(tmp_path / "results" / "group_comparison.csv")
    promised = ["trait", "region", "group_a", "group_b", "importance_a", "importance_b", "difference", "ci_low",
                "ci_high", "p", "p_fwer", "n_raters_a", "n_raters_b", "n_permutations"]  # by the issue
    assert set(promised) <= set(table.columns) and list(table.columns) == [*group_comparison.COLUMNS, "run"]
    assert len(table) == 2 * len(regions.FACE_REGIONS) and (table.n_permutations == 99).all()
    assert (table.n_raters_a == 30).all() and (table.p_fwer >= table.p).all()
    np.testing.assert_allclose(table.difference, table.importance_a - table.importance_b, atol=2e-6)
    accuracy = pd.read_csv(tmp_path / "results" / "group_comparison_accuracy.csv")
    assert list(accuracy.columns) == [*group_comparison.ACCURACY_COLUMNS, "run"]
    assert set(accuracy.trait) == {"warm", "strong"} and accuracy.noise_ceiling_a.between(0, 1).all()
    for trait in ("warm", "strong"):
        assert (tmp_path / "fig" / f"group_comparison_{trait}.png").stat().st_size > 10_000


def test_figure_names_carry_the_pair_when_more_than_two_groups_rate_a_trait():
    import compare_groups
    assert compare_groups.figure_name("warm", "ASD", "NT", 2) == "group_comparison_warm.png"
    names = {compare_groups.figure_name("warm", a, b, 3) for a, b in (("A", "B"), ("A", "C"), ("B", "C"))}
    assert len(names) == 3 and "group_comparison_warm__A_vs_C.png" in names


def test_without_raters_the_comparison_says_it_is_impossible(blob_config, tmp_path, capsys):
    import compare_groups
    compare_groups.main(["--config", str(blob_config)])
    said = [line for line in capsys.readouterr().err.splitlines() if "no rater column" in line]
    assert len(said) == 1 and "impossible" in said[0]
    assert not (tmp_path / "results" / "group_comparison.csv").exists()


def test_p_fwer_is_the_share_of_permutations_whose_largest_region_beats_the_observed():
    """Three independent regions: the max of three null values exceeds the observed one about
    1 - (1 - p)^3 of the time, so the corrected p is about three times the uncorrected one."""
    rng = np.random.default_rng(2)
    statistic = rng.standard_normal((3, 20001))
    statistic[:, 0] = [2.0, 0.0, 0.0]
    p, p_fwer = group_comparison.p_values(statistic)
    assert p[0] == pytest.approx(0.0455, abs=0.005)
    assert p_fwer[0] == pytest.approx(1 - (1 - p[0]) ** 3, abs=0.01)


def test_the_common_setting_is_chosen_on_every_rater_of_both_groups():
    sums = np.array([[1.0, 3.0, 5.0, 7.0], [2.0, 2.0, 2.0, 6.0]])  # 2 images x (2 raters of a, 2 of b)
    table = group_comparison.Raters(sums, np.ones_like(sums), 2, 2)
    np.testing.assert_allclose(table.everyone(), [4.0, 3.0])


def test_bootstrap_ci_is_the_central_95_percent_of_rater_resamples():
    maps, identities, raters = planted()
    head = planted_head(maps, identities, raters)
    stats = group_comparison.permutation_statistics(raters, head, 9, 200, 0, "test")
    a, b = group_comparison.bootstrap_counts(raters.n_a, raters.n_b, 200, 1)  # the statistics' seed + 1
    differences = head.regions(raters.means(a)) - head.regions(raters.means(b))
    np.testing.assert_allclose(stats.ci, np.percentile(differences, [2.5, 97.5], axis=1), rtol=1e-9, atol=1e-12)


def test_the_groups_cv_r_is_that_of_a_ridge_fitted_on_each_training_part_alone():
    """FixedRidgeCV against scikit-learn, fold by fold: nothing of a test fold (its ratings' mean
    included) reaches the fit that predicts it."""
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 12))
    y = x[:, :2] @ [1.0, -1.0] + rng.normal(size=40) + np.repeat([0.0, 3.0], 20)  # fold means differ
    folds = np.repeat(np.arange(4), 10)
    expected = np.empty(40)
    for fold in range(4):
        test = folds == fold
        scaler = StandardScaler().fit(x[~test])
        fitted = Ridge(alpha=0.5 * 12).fit(scaler.transform(x[~test]), y[~test])
        expected[test] = fitted.predict(scaler.transform(x[test]))
    r = group_comparison.FixedRidgeCV([(x, 0.5)] * 4, folds)(y[:, None])
    assert r[0] == pytest.approx(np.corrcoef(y, expected)[0, 1], rel=1e-9)


def test_the_setting_behind_the_groups_cv_r_is_chosen_without_the_test_fold(monkeypatch):
    """Each fold's feature set and penalty for the CV r are chosen on that fold's training part only;
    only the importance head's choice (not an accuracy) sees every image."""
    maps, identities, raters = planted()
    folds = np.repeat(np.arange(4), len(identities) // 4)
    seen = []
    select = group_comparison.ridge.select
    monkeypatch.setattr(group_comparison.ridge, "select",
                        lambda xs, y, ids, *rest: seen.append(np.asarray(ids)) or select(xs, y, ids, *rest))
    group_comparison.fixed_head(maps, raters.everyone(), identities, folds, half_masks(len(identities)), settings())
    assert len(seen) == 1 + 4 and len(seen[0]) == len(identities)
    for fold, ids in enumerate(seen[1:]):
        assert sorted(ids) == sorted(np.asarray(identities)[folds != fold])


def test_the_groups_cv_r_uses_each_folds_own_choice():
    """Scored on all raters' mean (the target the choices are made on), the groups' CV r is exactly
    ridge.cv_predict's nested CV of it: each fold's own feature set and penalty, not the all-image choice."""
    maps, identities, raters = planted(seed=3)
    cfg = config.load(None, ["ridge.feature_sets=[{layers: [block4_pool], grid: 2}]", "ridge.inner_folds=4",
                             "ridge.alphas=[0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]"])
    folds = np.repeat(np.arange(4), len(identities) // 4)
    y_all = raters.everyone()
    head = group_comparison.fixed_head(maps, y_all, identities, folds, half_masks(len(identities)), cfg)
    predicted, _, alpha_index = ridge.cv_predict(training.candidate_features(maps, cfg), y_all[:, None],
                                                 np.asarray(identities), folds, cfg.ridge.alphas, cfg.ridge.inner_folds,
                                                 cfg.seed)
    assert len(set(alpha_index[:, 0])) > 1  # the folds choose differently: one choice for all could not pass
    assert head.cv_r(y_all[:, None])[0] == pytest.approx(np.corrcoef(y_all, predicted[:, 0])[0, 1], rel=1e-9)


def test_identities_weigh_the_same_whatever_their_number_of_images():
    weights = importance.identity_weights(np.array(["a", "a", "a", "b", "c"]), np.array([True] * 4 + [False]))
    np.testing.assert_allclose(weights, [1 / 6, 1 / 6, 1 / 6, 1 / 2, 0])


def test_a_regions_area_is_its_share_of_the_face_not_of_the_image():
    masks = {name: np.zeros((4, 4), bool) for name in regions.REGIONS}
    masks["background"][:2] = True
    masks["eyes"][2, :] = True
    masks["mouth"][3, :] = True
    area = importance.face_area([masks, None])
    assert area[0, regions.FACE_REGIONS.index("eyes")] == pytest.approx(0.5)
    assert area[0].sum() == pytest.approx(1.0) and (area[1] == 0).all()
