"""lrp_analysis.py's stored heatmaps: reused while their inputs are unchanged, recomputed when the
code version changes; --skip-faithfulness leaves the faithfulness test out."""
import json

import numpy as np
import pandas as pd
import pytest

import lrp_analysis
import train_regression
from conftest import ONE_MODEL
from facetraits import config, data, explanations, faithfulness, heatmaps, plots



def refuse(*args, **kwargs):
    raise AssertionError("computed again")


def test_unchanged_maps_are_reused(trained_copy, monkeypatch, capsys):
    argv = ["--config", str(trained_copy), *ONE_MODEL]
    lrp_analysis.main(argv)
    maps = np.load(trained_copy.parent / "results" / "relevance" / "ASD__warm.npy")
    monkeypatch.setattr(explanations, "explain_dataset", refuse)
    capsys.readouterr()
    lrp_analysis.main(argv)
    assert "ASD__warm: relevance up to date" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(trained_copy.parent / "results" / "relevance" / "ASD__warm.npy"), maps)
    with pytest.raises(AssertionError, match="computed again"):  # another analyzer is new work
        lrp_analysis.main(argv + ["--set", "explain.analyzer=lrp.epsilon"])


def test_a_damaged_maps_record_makes_the_maps_again(trained_copy, monkeypatch):
    """A truncated record cannot vouch for its maps: they are computed again, not reused or crashed on."""
    argv = ["--config", str(trained_copy), *ONE_MODEL]
    lrp_analysis.main(argv)
    record = trained_copy.parent / "results" / "relevance" / "ASD__warm.json"
    record.write_text("{")
    monkeypatch.setattr(explanations, "explain_dataset", refuse)
    with pytest.raises(AssertionError, match="computed again"):
        lrp_analysis.main(argv)


def test_a_new_explain_version_computes_the_maps_again(trained_copy, monkeypatch):
    argv = ["--config", str(trained_copy), *ONE_MODEL]
    lrp_analysis.main(argv)
    monkeypatch.setattr(explanations, "explain_dataset", refuse)
    monkeypatch.setattr(heatmaps, "EXPLAIN_VERSION", heatmaps.EXPLAIN_VERSION + 1)
    with pytest.raises(AssertionError, match="computed again"):
        lrp_analysis.main(argv)


def test_skip_faithfulness_writes_heatmaps_only(trained_copy, monkeypatch):
    monkeypatch.setattr(faithfulness.Test, "for_dataset", refuse)  # no faithfulness test is even set up
    lrp_analysis.main(["--config", str(trained_copy), *ONE_MODEL])
    results, figures = trained_copy.parent / "results", trained_copy.parent / "fig"
    assert (results / "relevance" / "ASD__warm.npy").is_file() and (figures / "extremes_ASD__warm.png").is_file()
    assert not (results / "faithfulness.csv").exists() and not (results / "faithfulness_curves.csv").exists()
    assert not (figures / "faithfulness.png").exists()


@pytest.mark.parametrize("change, what", [("ratings", "ratings"), ("setting", "settings")])
def test_a_model_fitted_on_other_inputs_is_not_explained(trained_copy, tmp_path, capsys, change, what):
    """Ratings edited, or a fit setting changed, after train_regression.py: the saved model is stale."""
    argv = ["--config", str(trained_copy), *ONE_MODEL]
    if change == "ratings":
        ratings = pd.read_csv(config.load(trained_copy).data.ratings)
        ratings["rating"] = 8 - ratings.rating
        ratings.to_csv(tmp_path / "flipped.csv", index=False)
        argv += ["--set", f"data.ratings={tmp_path / 'flipped.csv'}"]
    else:
        argv += ["--set", "ridge.alphas=[1.0]"]
    with pytest.raises(SystemExit) as caught:
        lrp_analysis.main(argv)
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {trained_copy.parent / 'models' / 'ASD__warm.h5'}: fitted on other {what} than {trained_copy} gives "
        f"now (or by an older version); run train_regression.py again")
    assert not (tmp_path / "results" / "relevance" / "ASD__warm.npy").exists()


def test_a_model_from_before_the_record_kept_its_inputs_is_fitted_again(trained_copy, capsys):
    """train_regression.py must not call a model up to date that lrp_analysis.py would refuse."""
    record_path = trained_copy.parent / "models" / "ASD__warm.json"
    record = json.loads(record_path.read_text())
    del record["trained_on"]  # as written before the record kept it
    record_path.write_text(json.dumps(record))
    train_regression.main(["--config", str(trained_copy), "--group", "ASD", "--trait", "warm"])
    assert "up to date" not in capsys.readouterr().err
    assert "trained_on" in json.loads(record_path.read_text())
    lrp_analysis.main(["--config", str(trained_copy), *ONE_MODEL])


def test_the_extremes_figure_shows_the_highest_and_lowest_rated_faces(trained_copy, monkeypatch):
    """Chosen by the raters' mean rating, not by the model's prediction."""
    drawn, draw = {}, plots.extremes

    def spy(images, relevance, ratings, predictions, *rest):
        drawn["ratings"], drawn["predictions"] = np.asarray(ratings), np.asarray(predictions)
        return draw(images, relevance, ratings, predictions, *rest)
    monkeypatch.setattr(plots, "extremes", spy)
    lrp_analysis.main(["--config", str(trained_copy), *ONE_MODEL])
    cfg = config.load(trained_copy)
    ranked = np.sort(data.load(cfg).target("ASD", "warm"))[::-1]
    k = min(cfg.explain.n_extremes, len(ranked) // 2)
    np.testing.assert_allclose(drawn["ratings"], np.r_[ranked[:k], ranked[-k:]])
    # beside each face its model's prediction (as stored with the maps), not its rating again
    record = json.loads((trained_copy.parent / "results" / "relevance" / "ASD__warm.json").read_text())
    chosen = np.concatenate(data.extremes(data.load(cfg).target("ASD", "warm"), cfg.explain.n_extremes))
    np.testing.assert_allclose(drawn["predictions"], np.array(record["predictions"])[chosen])
    assert not np.allclose(drawn["predictions"], drawn["ratings"])


def test_maps_of_a_model_trained_again_are_computed_again(trained_copy, monkeypatch):
    """The model file changed (fitted again with another penalty): maps of the old model are not reused."""
    argv = ["--config", str(trained_copy), *ONE_MODEL, "--set", "ridge.alphas=[1000.0]"]
    lrp_analysis.main(["--config", str(trained_copy), *ONE_MODEL])
    train_regression.main(["--config", str(trained_copy), "--group", "ASD", "--trait", "warm",
                           "--set", "ridge.alphas=[1000.0]"])
    monkeypatch.setattr(explanations, "explain_dataset", refuse)
    with pytest.raises(AssertionError, match="computed again"):
        lrp_analysis.main(argv)


def test_the_recorded_conv_bias_share_is_the_largest_absolute_gap(trained_copy, monkeypatch):
    """conv_bias_share_max_abs = max over images of |centred_gradient_sum - relevance sum|, whatever its sign
    (with random weights the gap is 0; here every image's gap is made -0.5)."""
    real = explanations.centred_gradient_sum

    def shifted(keras_model):
        expected = real(keras_model)
        return lambda images: expected(images) - 0.5
    monkeypatch.setattr(explanations, "centred_gradient_sum", shifted)
    lrp_analysis.main(["--config", str(trained_copy), *ONE_MODEL, "--set", "explain.analyzer=lrp.epsilon"])
    record = json.loads((trained_copy.parent / "results" / "relevance" / "ASD__warm.json").read_text())
    assert record["conv_bias_share_max_abs"] == pytest.approx(0.5, abs=1e-3)
