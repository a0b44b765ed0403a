"""Feature cache, training and the three model scripts, run in-process on the tiny demo."""
import dataclasses
import importlib
import json
import pathlib
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import cross_validate
import permutation_test
import train_regression
from facetraits import backend, cache, config, data, features, metrics, model, outputs, provenance, training
from facetraits.errors import FacetraitsError
from conftest import write_config

SCRIPTS = ["train_regression", "cross_validate", "permutation_test", "lrp_analysis", "average_saliency",
           "compare_groups", "import_dataset"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_help(script, capsys):
    with pytest.raises(SystemExit) as caught:
        importlib.import_module(script).main(["--help"])
    assert caught.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_run_all_help_shows_usage_and_runs_nothing(capsys):
    import run_all
    run_all.main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: run_all.py [--config PATH]") and "The arguments (--config" in out


@pytest.mark.parametrize("overrides", [
    [],  # the default ridge head, its candidates chosen by inner CV
    ["ridge.feature_sets=[{layers: [block4_pool, block5_pool], grid: 1}]"],  # two branches, GAP
    ["model.input_size=56", "ridge.feature_sets=[{layers: [block3_pool], grid: 3}]"],  # 7 x 7 in 3 x 3: padded cells
    ["model.head=mlp", "model.layers=[block4_pool, block5_pool]", "model.grid=1"],
    ["model.head=mlp", "model.layers=[block4_pool]", "model.grid=2"],
])
def test_head_on_cached_features_equals_full_model_on_raw_images(trained, overrides):
    cfg = config.load(trained, overrides)
    dataset = data.load(cfg)
    base = model.build_base(cfg.model, cfg.seed)
    maps = features.load_or_extract(dataset, cfg, base)
    y = dataset.target("ASD", "warm")
    head = training.fit_head(maps, y, dataset.identities, cfg, seed=cfg.seed)
    full = model.mount(base, head.head)
    raw = full.predict(model.preprocess(data.load_images(dataset.paths, cfg.model.input_size)), verbose=0).ravel()
    np.testing.assert_allclose(raw, head.predict(maps), rtol=1e-4, atol=1e-4)
    assert np.std(raw) > 0
    if not overrides:  # train_regression.py saved this very model
        saved = model.load_full_model(cfg.output.models_dir / "ASD__warm.h5")
        from_file = saved.predict(model.preprocess(data.load_images(dataset.paths, cfg.model.input_size)), verbose=0).ravel()
        np.testing.assert_allclose(from_file, raw, rtol=1e-4, atol=1e-4)


def test_ridge_head_is_the_closed_form_ridge_it_chose(trained):
    """The Keras head predicts what the NumPy ridge predicts, for the feature set and penalty in its settings."""
    from sklearn.linear_model import Ridge
    cfg = config.load(trained)
    dataset = data.load(cfg)
    maps = features.load_or_extract(dataset, cfg)
    y = dataset.target("NT", "warm")
    trained_head = training.fit_head(maps, y, dataset.identities, cfg, seed=cfg.seed)
    settings = trained_head.settings
    chosen = next(s for s in cfg.ridge.feature_sets if s.label() == f"{settings['layers']}@{settings['grid']}")
    x = features.pooled(maps, chosen).astype(np.float64)
    sd = x.std(axis=0)
    sd = np.maximum(sd, 0.1 * np.median(sd[sd > 0]))  # the documented floor of ridge.standardisation
    scaled = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1)
    expected = Ridge(alpha=settings["alpha"] * x.shape[1]).fit(scaled, y).predict(scaled)
    np.testing.assert_allclose(trained_head.predict(maps), expected, rtol=1e-3, atol=1e-3)
    layer_types = {type(layer).__name__ for layer in trained_head.head.layers}
    assert "Lambda" not in layer_types and trained_head.head.layers[-1].get_config()["units"] == 1


@pytest.mark.slow
def test_cache_reextracts_only_what_changed(tiny_demo, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(tiny_demo, root)
    cfg = config.load(write_config(tmp_path / "c.yaml", root, tmp_path))
    first = features.load_or_extract(data.load(cfg), cfg)["block5_pool"]
    assert "extracting 18 images" in capsys.readouterr().err
    again = features.load_or_extract(data.load(cfg), cfg)["block5_pool"]
    assert "all 18 images cached" in capsys.readouterr().err
    np.testing.assert_array_equal(first, again)
    changed = root / "images" / "id02_01.png"
    pixels = np.asarray(Image.open(changed).convert("RGB")).copy()
    pixels[10:30, 10:30] = 255
    Image.fromarray(pixels).save(changed)
    dataset = data.load(cfg)
    updated = features.load_or_extract(dataset, cfg)["block5_pool"]
    assert "extracting 1 images" in capsys.readouterr().err
    index = dataset.images.index("id02_01.png")
    assert not np.allclose(updated[index], first[index])
    np.testing.assert_array_equal(np.delete(updated, index, 0), np.delete(first, index, 0))
    for override in ("model.input_size=48", "seed=5"):  # other input size; other (random) weights
        other = config.load(tmp_path / "c.yaml", [override])
        features.load_or_extract(dataset, other)
        assert "extracting 18 images" in capsys.readouterr().err
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 3


def test_cross_validate_writes_its_tables_and_figures(trained, monkeypatch):
    shown, draw = {}, cross_validate.plots.cv_scatter

    def spy(y, predicted, folds, name, r):  # the r each scatter figure is titled with
        shown[name] = r
        return draw(y, predicted, folds, name, r)
    monkeypatch.setattr(cross_validate.plots, "cv_scatter", spy)
    cfg = config.load(trained)
    cross_validate.main(["--config", str(trained)])
    folds = pd.read_csv(cfg.output.results_dir / "cv_folds.csv")
    assert list(folds.columns) == ["group", "trait", "fold", "image", "identity", "rating", "prediction", "run"]
    assert len(folds) == 4 * 18 and folds.prediction.notna().all()
    for _, model_rows in folds.groupby(["group", "trait"]):
        assert (model_rows.groupby("identity").fold.nunique() == 1).all()  # identity never split
    summary = pd.read_csv(cfg.output.results_dir / "cv_summary.csv")
    assert list(summary.columns) == ["group", "trait", "fold", "pearson_r", "mae", "n_test", "head", "layers", "grid",
                                     "alpha", "mean_fold_r", "r_ci_low", "r_ci_high", "n_identities", "repeats",
                                     "r_repeats_mean", "r_repeats_sd", "r_repeats_min", "r_repeats_max", "run"]
    assert summary["head"].eq("ridge").all() and summary.alpha.gt(0).all()
    all_rows = summary[summary.fold.astype(str) == "all"]
    assert (all_rows.r_ci_low <= all_rows.pearson_r).all() and (all_rows.pearson_r <= all_rows.r_ci_high).all()
    assert (all_rows.n_identities == 6).all()
    assert (summary.fold.astype(str) == "all").sum() == 4 and len(summary) == 4 * 4
    pooled = summary[summary.fold.astype(str) == "all"].set_index(["group", "trait"])
    asd_warm = folds[(folds.group == "ASD") & (folds.trait == "warm")]
    assert pooled.loc[("ASD", "warm"), "pearson_r"] == pytest.approx(np.corrcoef(asd_warm.rating, asd_warm.prediction)[0, 1], abs=1e-5)
    for (group, trait), row in pooled.iterrows():
        assert shown[f"{group}__{trait}"] == pytest.approx(row.pearson_r, abs=1e-5)  # the pooled r, not a fold's
    transfer = pd.read_csv(cfg.output.results_dir / "cross_group.csv")
    assert list(transfer.columns) == ["trait", "model_group", "rating_group", "pearson_r", "mae", "n_images", "run"]
    assert len(transfer) == 8
    for name in ["cv_pearson.png", "cv_scatter_ASD__warm.png", "cv_scatter_NT__strong.png"]:
        assert (cfg.output.fig_dir / name).stat().st_size > 1000


def test_repeated_cv_split_k_is_the_cv_of_seed_plus_k(tiny_demo, tmp_path, monkeypatch):
    """cv.repeats = 3: split 1 is the configured CV; split 3 is exactly the CV a run with seed 2 does
    (same cache entry: same features, ratings, identities, folds, settings and seed; features held
    fixed, as random test weights are drawn from the seed and pre-trained ones are not)."""
    draw = model.random_weights
    monkeypatch.setattr(model, "random_weights", lambda base, seed: draw(base, 0))
    argv = ["--config", str(write_config(tmp_path / "config.yaml", tiny_demo, tmp_path)), "--group", "NT",
            "--trait", "warm"]
    results = {}
    for name, extra in (("repeated", ["--set", "cv.repeats=3"]), ("seed2", ["--set", "seed=2"])):
        if name == "seed2":  # must be repeat 3's work, found in the cache
            monkeypatch.setattr(training, "cross_val_predict", lambda *a, **k: pytest.fail("seed 2's CV not cached"))
        cross_validate.main(argv + extra + ["--set", f"output.results_dir={tmp_path / name}"])
        results[name] = {table: pd.read_csv(tmp_path / name / f"{table}.csv") for table in ("cv_summary", "cv_repeats")}
    repeats = results["repeated"]["cv_repeats"]
    assert list(repeats.columns) == ["group", "trait", "repeat", "seed", "pearson_r", "mae", "run"]
    assert list(repeats.repeat) == [1, 2, 3] and list(repeats.seed) == [0, 1, 2]
    pooled = results["repeated"]["cv_summary"].query("fold == 'all'").iloc[0]
    assert repeats.pearson_r[0] == pooled.pearson_r  # split 1 is the configured CV
    assert repeats.pearson_r.nunique() == 3  # new folds, new predictions
    assert pooled.repeats == 3 and pooled.r_repeats_mean == pytest.approx(repeats.pearson_r.mean(), abs=1e-6)
    assert pooled.r_repeats_sd == pytest.approx(repeats.pearson_r.std(ddof=1), abs=1e-6)  # CSVs keep 6 digits
    seed2 = results["seed2"]["cv_summary"].query("fold == 'all'").iloc[0]
    assert (repeats.pearson_r[2], repeats.mae[2]) == (seed2.pearson_r, seed2.mae)
    assert seed2.repeats == 1 and np.isnan(seed2.r_repeats_sd)


def test_cached_cv_is_recomputed_when_the_identities_change(tiny_demo, tmp_path, monkeypatch):
    """The inner CV and the mlp's validation identities depend on the identities even when the
    outer folds do not (cv.group_by: none), so they are part of the CV cache key."""
    cfg = config.load(write_config(tmp_path / "config.yaml", tiny_demo, tmp_path), ["cv.group_by=none"])
    study = training.load_study(cfg)
    y = study.dataset.target("NT", "warm")
    first = training.cached_cross_val_predict(study, y, cfg, "NT__warm")
    merged = study.dataset.identities.copy()
    merged[merged == merged[-1]] = merged[0]  # two identities become one
    calls = []
    monkeypatch.setattr(training, "cross_val_predict", lambda *a, **k: calls.append(1) or first)
    training.cached_cross_val_predict(study, y, cfg, "NT__warm")
    assert not calls  # unchanged inputs: from the cache
    changed = dataclasses.replace(study, dataset=dataclasses.replace(study.dataset, identities=merged))
    training.cached_cross_val_predict(changed, y, cfg, "NT__warm")
    assert calls == [1]


def test_derived_seeds_past_numpys_limit_wrap():
    """seed + fold or seed + repeat may pass 2**32 - 1, np.random.seed's limit, with a large seed."""
    backend.seed_everything(2**32 + 5)
    drawn = np.random.rand(3)
    backend.seed_everything(5)
    assert (np.random.rand(3) == drawn).all()


def test_rerun_reuses_finished_work(trained, monkeypatch, capsys):
    cross_validate.main(["--config", str(trained), "--trait", "warm"])
    def fail(*args, **kwargs):
        raise AssertionError("retrained although nothing changed")
    monkeypatch.setattr(training, "cross_val_predict", fail)
    monkeypatch.setattr(training, "fit_head", fail)
    cross_validate.main(["--config", str(trained), "--trait", "warm"])
    train_regression.main(["--config", str(trained)])
    assert capsys.readouterr().err.count("up to date") == 4
    # a setting only the mlp head reads is no new work for the ridge head; one the ridge reads is
    cross_validate.main(["--config", str(trained), "--trait", "warm", "--set", "training.epochs=2"])
    with pytest.raises(AssertionError, match="retrained"):
        cross_validate.main(["--config", str(trained), "--trait", "warm", "--set", "ridge.alphas=[0.5, 5.0]"])


@pytest.mark.slow
def test_same_seed_same_numbers(tiny_demo, tmp_path):
    runs = []
    for name in ("a", "b"):
        path = write_config(tmp_path / f"{name}.yaml", tiny_demo, tmp_path / name)
        cross_validate.main(["--config", str(path), "--group", "NT", "--trait", "strong"])
        runs.append(pd.read_csv(tmp_path / name / "results" / "cv_folds.csv"))
    assert runs[0].run.nunique() == runs[1].run.nunique() == 1 and runs[0].run[0] != runs[1].run[0]
    pd.testing.assert_frame_equal(runs[0].drop(columns="run"), runs[1].drop(columns="run"))


def test_permutation_test_tables(trained):
    cfg = config.load(trained)
    permutation_test.main(["--config", str(trained)])
    null = pd.read_csv(cfg.output.results_dir / "permutation_null.csv")
    assert list(null.columns) == ["group", "trait", "permutation", "pearson_r", "run"] and len(null) == 4 * 20
    summary = pd.read_csv(cfg.output.results_dir / "permutation_summary.csv")
    assert list(summary.columns) == ["group", "trait", "head", "observed_r", "p_value", "null_mean", "null_sd",
                                     "n_permutations", "permutation_unit", "n_identities", "n_fixed_identities", "seed", "run"]
    assert (summary.n_identities == 6).all()  # identities, not the 18 images
    for _, row in summary.iterrows():
        rows = null[(null.group == row.group) & (null.trait == row.trait)]
        assert row.p_value == pytest.approx(((rows.pearson_r >= row.observed_r).sum() + 1) / 21)
        assert rows.pearson_r.nunique() > 10  # each permutation is a different refit
    assert (cfg.output.fig_dir / "permutation_ASD__warm.png").is_file()


@pytest.mark.parametrize("head", ["ridge", "mlp"])
def test_observed_r_is_the_cross_validated_r_of_the_same_head(trained, head):
    cfg = config.load(trained, [f"model.head={head}"])
    argv = ["--config", str(trained), "--trait", "strong", "--set", f"model.head={head}",
            "--set", f"permutation.n_permutations={20 if head == 'ridge' else 2}"]
    cross_validate.main(argv)
    permutation_test.main(argv)
    cv = pd.read_csv(cfg.output.results_dir / "cv_summary.csv")
    pooled = cv[cv.fold.astype(str) == "all"].set_index(["group", "trait"])
    summary = pd.read_csv(cfg.output.results_dir / "permutation_summary.csv").set_index(["group", "trait"])
    assert len(summary) == 2 and (summary["head"] == head).all() and (pooled["head"] == head).all()
    for key, row in summary.iterrows():
        assert row.observed_r == pooled.loc[key, "pearson_r"]  # same number, not just close


def run_and_expect_error(main, argv, capsys, *fragments):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()  # warnings and progress may come first
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], lines  # nothing after it
    err = lines[-1]
    for fragment in fragments:
        assert fragment in err, err


def test_script_errors_are_one_line_with_exit_code_2(trained, tmp_path, capsys):
    run_and_expect_error(train_regression.main, ["--config", str(trained), "--set", "training.epoch=3"], capsys,
                         "unknown key training.epoch")
    run_and_expect_error(cross_validate.main, ["--config", str(trained), "--set", "cv.n_folds=7"], capsys,
                         "7 folds (--set cv.n_folds=7) but", "only 6 identities")
    run_and_expect_error(train_regression.main, ["--config", str(trained), "--group", "XYZ"], capsys, "--group XYZ")
    run_and_expect_error(train_regression.main, ["--config", str(trained), "--set", f"model.weights={tmp_path}/no.h5"],
                         capsys, "model.weights", "no.h5 not found", "imagenet", "none")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    run_and_expect_error(train_regression.main, ["--config", str(trained), "--set", f"model.weights={bad}"],
                         capsys, "is not a VGG16 include_top=False weights file")


def test_failed_imagenet_download_names_both_options(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] Temporary failure")
    monkeypatch.setattr(model.keras.applications, "VGG16", offline)
    with pytest.raises(FacetraitsError) as caught:
        model.build_base(config.load(None).model)
    message = str(caught.value)
    assert "ImageNet" in message and "model.weights" in message and ".h5" in message and "none" in message


def test_offline_weights_file_loads_when_present():
    from conftest import SHARED
    path = SHARED / "weights" / "vgg16_hed_bsds500_notop.h5"
    if not path.is_file():
        pytest.skip("../shared/weights not present")
    base = model.build_base(config.load(None, [f"model.weights={path}", "model.input_size=112"]).model)
    assert not any(layer.trainable for layer in base.layers)
    import h5py
    with h5py.File(path, "r") as stored:
        kernel = np.asarray(stored["block1_conv1"]["block1_conv1"]["kernel:0"])
    np.testing.assert_array_equal(base.get_layer("block1_conv1").get_weights()[0], kernel)


def test_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "table.csv"
    outputs.write_csv(target, pd.DataFrame({"a": [1]}))
    with pytest.raises(RuntimeError):
        with outputs.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert pd.read_csv(target).a.tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def fail_halfway(real):
    """`real` (a writer taking the target and a payload) made to write half its payload, then find the disk full."""
    def write(target, payload, *args, **kwargs):
        real(target, payload[:len(payload) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")
    return write


def test_a_record_write_that_fails_halfway_keeps_the_old_record(tmp_path, monkeypatch):
    """Run records and model records (write_json) go through a temporary file too, like write_csv."""
    target = tmp_path / "record.json"
    outputs.write_json(target, {"a": 1})
    monkeypatch.setattr(pathlib.Path, "write_text", fail_halfway(pathlib.Path.write_text))
    with pytest.raises(OSError):
        outputs.write_json(target, {"a": 2, "b": "x" * 100})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_an_array_write_that_fails_halfway_keeps_the_old_array(tmp_path, monkeypatch):
    target = tmp_path / "maps.npy"
    outputs.write_npy(target, np.arange(3.0))
    monkeypatch.setattr(np, "save", fail_halfway(np.save))
    with pytest.raises(OSError):
        outputs.write_npy(target, np.arange(100.0))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(target), np.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_cache_entry_that_fails_halfway_leaves_no_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(pathlib.Path, "write_bytes", fail_halfway(pathlib.Path.write_bytes))
    with pytest.raises(OSError):
        cache.write_checked(tmp_path / "entry.npy", cache.npy_bytes(np.arange(100.0)))
    monkeypatch.undo()
    assert cache.checked_entries(tmp_path) == {}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop"])
def test_every_optimizer_trains_the_mlp_head(name):
    """training.optimizer is the one configured, and with it the mlp head learns a linear rating."""
    cfg = config.load(None, ["model.head=mlp", "model.dense_units=16", "model.dropout=0.0", f"training.optimizer={name}",
                             "training.learning_rate=0.01", "training.epochs=40", "training.early_stopping_patience=0",
                             "training.validation_split=0.0"])
    assert type(training.optimizer(cfg.training)).__name__.lower() == name
    rng = np.random.default_rng(0)
    maps = {"block5_pool": rng.standard_normal((60, 1, 1, 8)).astype(np.float32)}
    y = 4 + maps["block5_pool"][:, 0, 0, :2].sum(axis=1)
    trained = training.fit_head(maps, y, np.arange(60), cfg, seed=0)
    assert np.corrcoef(trained.predict(maps), y)[0, 1] > 0.8


def test_a_head_at_the_largest_penalty_is_flagged(blob_config, capsys):
    """Chosen at the end of ridge.alphas, the head predicts about the mean: its maps would be read as meaningful.
    With one penalty configured nothing was chosen, so nothing is flagged."""
    cfg = config.load(blob_config, ["ridge.alphas=[1.0, 1000000.0]"])
    training.warn_if_flat("ASD__warm", {"head": "ridge", "alpha": 1e6}, cfg)
    assert "warning: ASD__warm: the inner CV chose the largest penalty (alpha 1e+06" in capsys.readouterr().err
    training.warn_if_flat("m", {"head": "ridge", "alpha": 1.0}, cfg)
    training.warn_if_flat("m", {"head": "mlp", "alpha": float("nan")}, cfg)
    training.warn_if_flat("m", {"head": "ridge", "alpha": 1e6}, config.load(blob_config, ["ridge.alphas=[1000000.0]"]))
    assert capsys.readouterr().err == ""


def test_fit_settings_ignore_what_the_fit_does_not_read(blob_config, tmp_path):
    """Printing epochs, the other head's keys or another spelling of the weights path is not another model."""
    base = provenance.fit_settings(config.load(blob_config))
    for change in (["training.verbose=true"], ["training.epochs=3", "model.dense_units=8"]):
        assert provenance.fit_settings(config.load(blob_config, change)) == base
    assert provenance.fit_settings(config.load(blob_config, ["ridge.inner_folds=3"])) != base
    weights, copy = tmp_path / "w.h5", tmp_path / "elsewhere" / "copy.h5"
    weights.write_bytes(b"pretend weights")
    copy.parent.mkdir()
    (tmp_path / "sub").mkdir()
    copy.write_bytes(weights.read_bytes())
    def identity(path):
        return provenance.fit_settings(config.load(blob_config, [f"model.weights={path}"]))["weights"]
    # the weights are their content: another spelling, another folder (another clone) is the same weights ...
    assert identity(weights) == identity(tmp_path / "sub" / ".." / "w.h5") == identity(copy)
    assert identity(weights).startswith("sha256:")
    copy.write_bytes(b"other weights, same path")  # ... and a file replaced in place is not
    assert identity(copy) != identity(weights)


def test_the_permutation_null_is_the_cross_validation_of_each_permuted_rating():
    """The p-value belongs to the tested model: each null r is what cross_val_predict gives for that
    permuted rating column, scored against that same column."""
    rng = np.random.default_rng(6)
    identities = np.repeat(np.arange(12), 3)
    maps = {"block5_pool": rng.normal(size=(36, 1, 1, 6))}
    y = maps["block5_pool"][:, 0, 0, 0] + 0.5 * rng.normal(size=36)
    cfg = config.load(None, ["ridge.feature_sets=[{layers: [block5_pool], grid: 1}]", "ridge.alphas=[0.1, 10.0]",
                             "ridge.inner_folds=3", "permutation.n_permutations=6"])
    folds = metrics.make_folds(identities, 3, "identity", cfg.seed)
    study = SimpleNamespace(dataset=SimpleNamespace(identities=identities), folds=folds, features=maps)
    null = training.permutation_null(study, y, cfg, "test")
    permuted = metrics.permuted_by_identity(y, identities, 6, cfg.seed)
    for k in range(6):
        predictions = training.cross_val_predict(maps, permuted[:, k], identities, folds, cfg)["predictions"]
        assert null[k] == pytest.approx(metrics.pearson_r(permuted[:, k], np.array(predictions)), rel=1e-9)


def test_a_model_fitted_with_another_seed_or_other_identities_is_another_model(blob_config):
    cfg = config.load(blob_config)
    assert provenance.fit_settings(config.load(blob_config, [f"seed={cfg.seed + 1}"])) != provenance.fit_settings(cfg)
    dataset = data.load(cfg)
    y = np.arange(len(dataset), dtype=float)
    regrouped = dataclasses.replace(dataset, identities=np.roll(dataset.identities, 1))
    assert provenance.trained_on(cfg, regrouped, y)["images"] != provenance.trained_on(cfg, dataset, y)["images"]


def test_the_mlp_head_predicts_on_the_rating_scale_it_was_trained_on():
    """Ratings standardised for training come back on their own scale: 100 y + 50 gives 100 x the
    predictions of y, plus 50 (the output layer's bias rescaled too, not only its kernel)."""
    cfg = config.load(None, ["model.head=mlp", "model.dense_units=8", "model.dropout=0.0", "training.epochs=5",
                             "training.early_stopping_patience=0", "training.validation_split=0.0"])
    rng = np.random.default_rng(0)
    maps = {"block5_pool": rng.standard_normal((30, 1, 1, 4)).astype(np.float32)}
    y = 4 + maps["block5_pool"][:, 0, 0, :2].sum(axis=1)
    small = training.fit_head(maps, y, np.arange(30), cfg, seed=0).predict(maps)
    large = training.fit_head(maps, 100 * y + 50, np.arange(30), cfg, seed=0).predict(maps)
    np.testing.assert_allclose(large, 100 * small + 50, rtol=0, atol=0.05)


def test_the_ridge_reads_the_cells_the_saved_models_pooling_layers_compute():
    """The ridge is fitted on features pooled in NumPy, the saved model pools in Keras: the same cells,
    padded ones included (7 x 7 in 3 x 3: 2, 3, 2 positions), in the same order."""
    maps = np.random.default_rng(0).normal(size=(3, 7, 7, 2)).astype(np.float32)
    assert config.cell_bounds(7, 3) == [(0, 2), (2, 5), (5, 7)]
    inputs = model.keras.Input(shape=(7, 7, 2))
    pooled = model.keras.Model(inputs, model.pooling_layers(inputs, (7, 7, 2), 3, "t")).predict(maps, verbose=0)
    np.testing.assert_allclose(features.pool(maps, 3), pooled, rtol=1e-5, atol=1e-6)


def test_images_are_preprocessed_as_vgg16_expects_bgr_minus_the_imagenet_means():
    preprocessed = model.preprocess(np.array([[[[10, 20, 30]]]], np.uint8))
    np.testing.assert_allclose(preprocessed[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-3)


def test_cross_group_rows_name_the_models_group_and_the_rating_group_it_is_scored_on():
    rng = np.random.default_rng(0)
    y_a, y_b = rng.normal(size=30), rng.normal(size=30)
    ratings = pd.DataFrame({("A", "warm"): y_a, ("B", "warm"): y_b})
    dataset = SimpleNamespace(ratings=ratings, target=lambda group, trait: ratings[(group, trait)].to_numpy())
    table = cross_validate.cross_group(dataset, {("A", "warm"): y_a})
    assert set(table.model_group) == {"A"}
    assert table[table.rating_group == "B"].pearson_r.item() == pytest.approx(np.corrcoef(y_a, y_b)[0, 1])
    assert table[table.rating_group == "A"].pearson_r.item() == pytest.approx(1.0)


def test_a_new_preprocessing_version_extracts_the_features_again(tiny_demo, tmp_path, monkeypatch, capsys):
    """Features made by an older preprocess() or resizing are not reused once PREPROCESSING_VERSION is bumped."""
    cfg = config.load(write_config(tmp_path / "c.yaml", tiny_demo, tmp_path))
    dataset = data.load(cfg)
    features.load_or_extract(dataset, cfg)
    capsys.readouterr()
    monkeypatch.setattr(features, "PREPROCESSING_VERSION", features.PREPROCESSING_VERSION + "-next")
    features.load_or_extract(dataset, cfg)
    assert "extracting 18 images" in capsys.readouterr().err
