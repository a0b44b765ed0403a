"""Faults found by trying the landed version as a new user: each ends in one line naming the file
and key, or in a correct result; nothing already written is lost or half-written."""
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import cross_validate
import lrp_analysis
import permutation_test
import train_regression
from facetraits import cache, config, data, features, metrics, model, outputs
from conftest import ONE_MODEL, ROOT, write_blob_dataset, write_config

spec = importlib.util.spec_from_file_location("average_saliency", ROOT / "average_saliency.py")
average_saliency = importlib.util.module_from_spec(spec)
spec.loader.exec_module(average_saliency)


def exit_line(caught, capsys) -> str:
    """The one stderr line of a script stopped by cli.script (exit code 2)."""
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ")
    return err[-1]


# ----------------------------------------------------------------------------- 1. constant ratings


def test_constant_rating_is_refused_before_any_work_naming_group_trait_and_file(tmp_path, capsys):
    root = write_blob_dataset(tmp_path / "d")
    table = pd.read_csv(root / "ratings.csv")
    table.loc[(table.group == "NT") & (table.trait == "strong"), "rating"] = 4.0
    table.to_csv(root / "ratings.csv", index=False)
    path = write_config(tmp_path / "c.yaml", root, tmp_path / "out")
    with pytest.raises(SystemExit) as caught:
        permutation_test.main(["--config", str(path)])
    line = exit_line(caught, capsys)
    assert line == (f"error: {root / 'ratings.csv'}: group NT, trait strong: all 12 image(s) have the same rating 4, "
                    f"so there is nothing to predict (Pearson r is undefined); fix the ratings or leave NT out of "
                    f"groups in {path} or strong out of traits in {path}")
    assert_only_an_error_record(tmp_path / "out")


def assert_only_an_error_record(folder):
    """Nothing was written but the run record (results/runs/<id>.json), which says the run failed."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert files and all(path.parent.name == "runs" for path in files), files
    assert all(json.loads(path.read_text())["status"] == "error" for path in files)


def test_p_value_is_nan_when_the_observed_r_or_the_whole_null_is_nan():
    null = np.array([0.1, np.nan, 0.5, -0.2])
    assert np.isnan(metrics.permutation_p_value(float("nan"), null))
    assert np.isnan(metrics.permutation_p_value(0.3, np.full(50, np.nan)))
    assert metrics.permutation_p_value(0.3, null) == pytest.approx((1 + 1) / (3 + 1))  # NaN r are not counted


def test_an_all_nan_result_is_returned_but_never_cached(tmp_path):
    path = tmp_path / "permutation" / "ASD__warm-key.npy"
    null = cache.cached_array(path, lambda: np.full(20, np.nan))
    assert np.isnan(null).all() and not path.parent.exists()
    assert cache.cached_array(path, lambda: np.arange(3.0)).tolist() == [0.0, 1.0, 2.0]
    assert len(list(path.parent.iterdir())) == 1


# ----------------------------------------------------------------------------- 2. too few images per fold


@pytest.mark.slow  # 7 s: a whole cross_validate.py run
def test_two_images_in_two_folds_warn_that_r_is_unreliable(tmp_path, capsys, recwarn):
    root = write_blob_dataset(tmp_path / "d", n_identities=2, per_identity=1)
    path = write_config(tmp_path / "c.yaml", root, tmp_path / "out", model={"head": "mlp", "dense_units": 4},
                        cv={"n_folds": 2})
    cross_validate.main(["--config", str(path)])
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: 2 images")]
    assert warnings == ["warning: 2 images in 2 folds, fold 1 tests only 1 image(s) of 1 identity: the cross-validated "
                        "r is unreliable (want >= 10 images, >= 3 test images and identities per fold; fewer "
                        "cv.n_folds helps)"]
    assert "pooled r = " in captured.out
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # one plain warning, no numpy noise


def test_enough_images_and_identities_per_fold_give_no_warning(capsys):
    identities = np.repeat([f"id{i}" for i in range(9)], 2)
    metrics.warn_unreliable_folds(identities, metrics.make_folds(identities, 3, "identity", 0))
    assert capsys.readouterr().err == ""


def test_folds_that_split_an_identity_warn_that_r_is_inflated(capsys):
    """cv.group_by: none may put one person's images on both sides; grouped folds never do."""
    identities = np.repeat([f"id{i}" for i in range(9)], 2)
    metrics.warn_split_identities(identities, metrics.make_folds(identities, 3, "identity", 0), "cv.group_by")
    assert capsys.readouterr().err == ""
    folds = metrics.make_folds(identities, 3, "none", 0)
    split = sum(len(set(folds[identities == unit])) > 1 for unit in set(identities))
    assert split > 0
    metrics.warn_split_identities(identities, folds, "--set cv.group_by=none")
    assert capsys.readouterr().err.startswith(f"warning: --set cv.group_by=none: {split} identities have images in "
                                              f"more than one fold, so the same faces are trained on and tested")


# ----------------------------------------------------------------------------- 3. unwritable output folders


def test_results_dir_naming_a_file_stops_before_any_work(blob_data, tmp_path, capsys):
    (tmp_path / "results").write_text("not a folder")
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    with pytest.raises(SystemExit) as caught:
        cross_validate.main(["--config", str(path)])
    assert exit_line(caught, capsys) == (f"error: {path}: output.results_dir: {tmp_path / 'results'}: is a file, "
                                         f"not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "results"]


def test_read_only_cache_stops_before_any_work(blob_data, tmp_path, capsys, monkeypatch):
    (tmp_path / "cache").mkdir()
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    real = os.access  # tests may run as root, whom a chmod does not stop: the check is what is tested
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path / "cache" else real(p, mode))
    with pytest.raises(SystemExit) as caught:
        train_regression.main(["--config", str(path)])
    assert exit_line(caught, capsys) == (f"error: {path}: output.cache_dir: {tmp_path / 'cache'}: {tmp_path / 'cache'} "
                                         f"is not writable (permissions or a read-only disk); choose another folder "
                                         f"with --set output.cache_dir=PATH")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "cache"]


def test_fig_dir_below_a_file_stops_lrp_analysis_before_any_work(blob_data, tmp_path, capsys):
    (tmp_path / "fig").write_text("")
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path, output={"fig_dir": str(tmp_path / "fig" / "lrp")})
    with pytest.raises(SystemExit) as caught:
        lrp_analysis.main(["--config", str(path)])
    assert exit_line(caught, capsys) == (f"error: {path}: output.fig_dir: {tmp_path / 'fig' / 'lrp'}: "
                                         f"{tmp_path / 'fig'} is a file, not a folder")


def test_cache_below_a_file_stops_lrp_analysis_when_faces_are_detected(blob_data, tmp_path, capsys):
    """Without a landmarks file the faithfulness test caches dlib detections: an unusable cache is found at start."""
    (tmp_path / "cache").write_text("")
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path, data={"landmarks": None})
    with pytest.raises(SystemExit) as caught:
        lrp_analysis.main(["--config", str(path)])
    assert exit_line(caught, capsys) == (f"error: {path}: output.cache_dir: {tmp_path / 'cache'}: is a file, "
                                         f"not a folder")


# ----------------------------------------------------------------------------- 4. corrupt cache files


def corrupt(path: Path, how: str) -> None:
    """Random bytes, a truncated file, a valid .npy header with a garbage body, or swapped values."""
    content = path.read_bytes()
    if how == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(content)))
    elif how == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif how == "garbage_body":
        header = len(content) - np.load(path).nbytes
        path.write_bytes(content[:header] + np.random.default_rng(0).bytes(len(content) - header))
    else:
        array = np.load(path)
        np.save(path, array.ravel()[::-1].reshape(array.shape))


def test_corrupt_feature_cache_files_are_named_deleted_and_extracted_again(blob_data, tmp_path, capsys):
    cfg = config.load(write_config(tmp_path / "c.yaml", blob_data, tmp_path))
    dataset = data.load(cfg)
    first = features.load_or_extract(dataset, cfg)
    stored = sorted((tmp_path / "cache" / "features").glob("*/block5_pool/*.npy"))
    assert len(stored) == len(dataset)
    hows = ["random", "truncated", "garbage_body", "swapped"]
    for path, how in zip(stored, hows):
        corrupt(path, how)
    capsys.readouterr()
    again = features.load_or_extract(dataset, cfg)
    err = capsys.readouterr().err.splitlines()
    assert sorted(line for line in err if line.startswith("warning:")) == [
        f"warning: {path}: corrupt cache file (its bytes do not match the checksum in its name); deleted, "
        f"computing it again" for path in stored[:4]]
    assert "features: extracting 4 images" in "\n".join(err)
    for layer in first:
        np.testing.assert_array_equal(again[layer], first[layer])
    features.load_or_extract(dataset, cfg)
    assert "all 12 images cached" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["random", "truncated", "swapped"])
def test_corrupt_cv_and_null_cache_files_are_computed_again(tmp_path, capsys, how):
    cv_path, null_path = tmp_path / "cv" / "ASD__warm-key.json", tmp_path / "permutation" / "ASD__warm-key.npy"
    result = {"predictions": [1.0, 2.0, 3.0], "settings": []}
    cache.cached_json(cv_path, lambda: result)
    cache.cached_array(null_path, lambda: np.arange(5.0))
    (cv_file,), (null_file,) = (tmp_path / "cv").iterdir(), (tmp_path / "permutation").iterdir()
    if how == "swapped":
        cv_file.write_text(cv_file.read_text().replace("1.0", "9.0"))
    else:
        corrupt(cv_file, how)
    corrupt(null_file, how)
    assert cache.cached_json(cv_path, lambda: result) == result
    assert cache.cached_array(null_path, lambda: np.arange(5.0)).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    warnings = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in warnings] == [str(cv_file), str(null_file)]
    assert cache.cached_json(cv_path, lambda: pytest.fail("recomputed")) == result


def test_a_cached_json_result_keeps_the_key_order_it_was_computed_with(tmp_path):
    """cv_summary.csv takes its settings columns from these dicts: cached must equal fresh, order included."""
    result = {"predictions": [1.0], "settings": [{"head": "ridge", "layers": "block4_pool", "grid": 3, "alpha": 0.1}]}
    path = tmp_path / "cv" / "ASD__warm-key.json"
    assert cache.cached_json(path, lambda: result) is result
    cached = cache.cached_json(path, lambda: pytest.fail("recomputed"))
    assert list(cached) == list(result) and list(cached["settings"][0]) == list(result["settings"][0])


# ----------------------------------------------------------------------------- 5. damaged model files


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_model_is_trained_again_not_reported_up_to_date(trained_copy, capsys):
    model_path = trained_copy.parent / "models" / "ASD__warm.h5"
    truncate(model_path)
    train_regression.main(["--config", str(trained_copy), "--group", "ASD", "--trait", "warm"])
    captured = capsys.readouterr()
    assert "up to date" not in captured.err and f"-> {model_path}" in captured.out
    assert model.load_full_model(model_path).input_shape[1] == 32


def test_truncated_model_stops_lrp_analysis_before_anything_is_written(trained_copy, capsys):
    model_path = trained_copy.parent / "models" / "NT__strong.h5"
    truncate(model_path)
    with pytest.raises(SystemExit) as caught:
        lrp_analysis.main(["--config", str(trained_copy), "--skip-faithfulness"])
    line = exit_line(caught, capsys)
    assert line.startswith(f"error: {model_path}: not a readable Keras model (") and \
        line.endswith("); run train_regression.py again")
    assert_only_an_error_record(trained_copy.parent / "results")
    assert not (trained_copy.parent / "fig").exists()


# ----------------------------------------------------------------------------- 6. images changed since LRP


def average_saliency_error(config_path, capsys) -> str:
    """average_saliency.py on the ASD warm maps, expected to stop: its error line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as caught:
        average_saliency.main(["--config", str(config_path), "--group", "ASD", "--trait", "warm"])
    return exit_line(caught, capsys)


def test_lrp_analysis_records_the_image_digests_that_average_saliency_checks(trained_copy, capsys):
    lrp_analysis.main(["--config", str(trained_copy), *ONE_MODEL])
    record = json.loads((trained_copy.parent / "results" / "relevance" / "ASD__warm.json").read_text())
    cfg = config.load(trained_copy)
    dataset = data.load(cfg)
    assert record["image_sha256"] == list(dataset.digests)
    shutil.copytree(cfg.data.ratings.parent, trained_copy.parent / "data")
    moved = write_config(trained_copy, trained_copy.parent / "data", trained_copy.parent)
    changed = trained_copy.parent / "data" / "images" / dataset.images[1]
    Image.fromarray(255 - np.asarray(Image.open(changed))).save(changed)
    assert average_saliency_error(moved, capsys) == (
        f"error: {trained_copy.parent / 'results' / 'relevance' / 'ASD__warm.json'}: image {dataset.images[1]} changed "
        f"since its relevance map was made (sha256 differs); run lrp_analysis.py again (maps of unchanged images and "
        f"models are reused)")


def test_average_saliency_refuses_maps_of_a_model_retrained_since(trained_copy, capsys):
    """The r and p of a retrained model must not be shown beside maps of the model it replaced."""
    lrp_analysis.main(["--config", str(trained_copy), *ONE_MODEL])
    train_regression.main(["--config", str(trained_copy), "--group", "ASD", "--trait", "warm",
                           "--set", "ridge.alphas=[0.001]"])
    assert average_saliency_error(trained_copy, capsys) == (
        f"error: {trained_copy.parent / 'results' / 'relevance' / 'ASD__warm.json'}: the maps explain an earlier "
        f"ASD__warm.h5 (the model file changed since they were made, e.g. retrained); run lrp_analysis.py again "
        f"(maps of unchanged images and models are reused)")


@pytest.mark.parametrize("damage", ["{", "", "[]"])
def test_a_damaged_model_record_is_one_error_line_and_refitted_by_train_regression(trained_copy, capsys, damage):
    record = trained_copy.parent / "models" / "NT__strong.json"
    record.write_text(damage)
    with pytest.raises(SystemExit) as caught:
        lrp_analysis.main(["--config", str(trained_copy), "--skip-faithfulness"])
    assert exit_line(caught, capsys) == (f"error: {record}: damaged (not a JSON object), so nothing says what "
                                         f"NT__strong.h5 was fitted on; run train_regression.py again")
    train_regression.main(["--config", str(trained_copy), "--group", "NT", "--trait", "strong"])
    assert json.loads(record.read_text())["trained_on"]  # fitted again, with a whole record


def test_lrp_analysis_refuses_a_model_without_its_record(trained_copy, capsys):
    """Without its .json nothing says what a model was fitted on, so it cannot be checked against today's data."""
    record = trained_copy.parent / "models" / "NT__strong.json"
    record.unlink()
    with pytest.raises(SystemExit) as caught:
        lrp_analysis.main(["--config", str(trained_copy), "--skip-faithfulness"])
    assert exit_line(caught, capsys) == (
        f"error: {record}: not found, so nothing says what NT__strong.h5 was fitted on (copied alone, or training "
        f"stopped before its record); run train_regression.py again")
    assert not (trained_copy.parent / "results" / "relevance").exists()


@pytest.mark.parametrize("name", ["x/../../escaped", "a\\b"])
def test_a_group_or_trait_name_with_a_path_separator_is_refused(blob_data, tmp_path, capsys, name):
    """Names become file names (<group>__<trait>.h5): a separator would write outside the output folders."""
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    with pytest.raises(SystemExit) as caught:
        cross_validate.main(["--config", str(path), "--set", f"traits=[warm, {json.dumps(name)}]"])
    assert exit_line(caught, capsys).startswith(f"error: --set traits=[warm, {json.dumps(name)}]: {name!r} contains a "
                                                f"path separator")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_an_unwritable_subfolder_gives_one_line_naming_the_file(blob_data, tmp_path, capsys, monkeypatch):
    """A file-system error about one path (here the run record's folder) is the user's to fix: one
    line naming the path, exit code 2, not a traceback."""
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    real = outputs.write_json

    def refuse_records(target, *args, **kwargs):
        if Path(target).parent.name == "runs":
            raise PermissionError(13, "Permission denied", str(target))
        return real(target, *args, **kwargs)
    monkeypatch.setattr(outputs, "write_json", refuse_records)
    with pytest.raises(SystemExit) as caught:
        cross_validate.main(["--config", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert caught.value.code == 2
    assert err[-2].startswith("error: ") and "/runs/cross_validate-" in err[-2] and "Permission denied" in err[-2]
    assert err[-1].startswith("warning: run record not written: ")


def test_import_into_a_file_gives_one_line_naming_it(tmp_path, capsys):
    import import_dataset
    source = ROOT.parent / "shared" / "data" / "london"
    if not source.is_dir():
        pytest.skip("needs ../shared/data/london")
    target = tmp_path / "out"
    target.write_text("")
    code = import_dataset.main(["london", str(source), str(target)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines[-1].startswith(f"error: {target}: ") and "file-system problem" in lines[-1]


def test_a_failed_write_names_the_output_not_the_temporary_file(tmp_path):
    """A folder where the table should go, or a full disk (no file name at all): the error names the output."""
    (tmp_path / "table.csv").mkdir()
    with pytest.raises(OSError) as caught:
        outputs.write_table(tmp_path / "table.csv", pd.DataFrame({"a": [1]}), "run-1")
    assert caught.value.filename == str(tmp_path / "table.csv")
    with pytest.raises(OSError) as caught:
        with outputs.atomic_path(tmp_path / "other.csv"):
            raise OSError(28, "No space left on device")
    assert (caught.value.errno, caught.value.filename) == (28, str(tmp_path / "other.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]  # no temporary file left


@pytest.mark.parametrize("script, figure, target", [
    (cross_validate, "cv_scatter_ASD__warm.png", "cached_cross_val_predict"),
    (permutation_test, "permutation_ASD__warm.png", "permutation_null")])
def test_a_run_stopped_at_the_second_model_replaces_no_figure(blob_data, tmp_path, monkeypatch, script, figure, target):
    """Figures are saved after every model is done, with the tables: never beside an older run's tables."""
    from facetraits import training
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    (tmp_path / "fig").mkdir()
    (tmp_path / "fig" / figure).write_bytes(b"an earlier run's figure")
    real, calls = getattr(training, target), []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("stopped at the second model")
        return real(*args, **kwargs)
    monkeypatch.setattr(training, target, second_fails)
    with pytest.raises(RuntimeError, match="second model"):
        script.main(["--config", str(path)])
    assert (tmp_path / "fig" / figure).read_bytes() == b"an earlier run's figure"


def test_cache_keys_tell_arrays_of_the_same_bytes_apart():
    assert cache.digest(np.zeros((2, 3))) != cache.digest(np.zeros((3, 2)))
    assert cache.digest(np.zeros(4, np.float32)) != cache.digest(np.zeros(2, np.float64))
