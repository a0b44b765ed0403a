"""run_all.py chains the six scripts with one set of arguments; quick.yaml is the README's first run."""
import json

import pandas as pd
import pytest

import run_all
from facetraits import config, data
from facetraits.errors import ConfigError
from conftest import ROOT, write_config


@pytest.fixture
def recorded_steps(monkeypatch) -> list:
    """The steps' main() replaced by a recorder: (script, argv) per call."""
    calls = []
    for step in run_all.STEPS:
        monkeypatch.setattr(step, "main", lambda argv, name=step.__name__: calls.append((name, argv)))
    return calls


def test_steps_run_in_order_with_the_same_arguments_and_a_failure_stops_the_chain(recorded_steps, tiny_demo,
                                                                                   tmp_path, monkeypatch):
    argv = ["--config", str(write_config(tmp_path / "c.yaml", tiny_demo, tmp_path)), "--trait", "warm"]
    run_all.main(argv)
    assert recorded_steps == [(name, argv) for name in ("train_regression", "cross_validate", "permutation_test",
                                                        "lrp_analysis", "average_saliency", "compare_groups")]

    def fail(argv):
        raise SystemExit(2)
    recorded_steps.clear()
    monkeypatch.setattr(run_all.STEPS[2], "main", fail)
    with pytest.raises(SystemExit):
        run_all.main(argv)
    assert [name for name, _ in recorded_steps] == ["train_regression", "cross_validate"]


def test_raters_compare_groups_would_refuse_leave_only_that_step_out_and_the_chain_fails(recorded_steps, tiny_demo,
                                                                                         tmp_path, capsys):
    raters = pd.read_csv(tiny_demo / "ratings.csv")
    one_nt_rater = raters[(raters.group != "NT") | (raters.rater == raters[raters.group == "NT"].rater.iloc[0])]
    (tmp_path / "d").mkdir()
    one_nt_rater.to_csv(tmp_path / "d" / "ratings.csv", index=False)
    path = write_config(tmp_path / "c.yaml", tiny_demo, tmp_path, data={"ratings": str(tmp_path / "d" / "ratings.csv")})
    with pytest.raises(SystemExit) as caught:
        run_all.main(["--config", str(path)])
    assert caught.value.code == 2
    assert [name for name, _ in recorded_steps] == [step.__name__ for step in run_all.STEPS[:-1]]
    err = capsys.readouterr().err
    assert err.index("warning: compare_groups.py: ") < err.index("== train_regression.py")  # said before step 1
    assert err.splitlines()[-1].startswith("error: compare_groups.py: ")
    assert "1 in NT; a rater-level comparison needs at least 2 per group" in err.splitlines()[-1]


def test_no_usable_landmarks_stop_the_chain_before_the_first_step(recorded_steps, blob_config, capsys):
    with pytest.raises(SystemExit) as caught:  # blobs: no face, so no landmarks for the face regions
        run_all.main(["--config", str(blob_config)])
    assert caught.value.code == 2 and recorded_steps == []
    assert "has usable landmarks" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("setting, message", [
    ("data.identities=2", "3 folds (cv.n_folds in {config}) but the part of {ratings} that --set data.identities=2 keeps "
                          "has only 2 identities"),
    ("model.weights={tmp}/missing.h5", "--set model.weights={tmp}/missing.h5: {tmp}/missing.h5 not found"),
])
def test_too_few_identities_or_a_missing_weights_file_stop_the_chain_before_the_first_step(
        recorded_steps, tiny_demo, tmp_path, capsys, setting, message):
    path = write_config(tmp_path / "c.yaml", tiny_demo, tmp_path)
    with pytest.raises(SystemExit) as caught:
        run_all.main(["--config", str(path), "--set", setting.format(tmp=tmp_path)])
    assert caught.value.code == 2 and recorded_steps == []
    assert capsys.readouterr().err.splitlines()[-1] == "error: " + message.format(ratings=tiny_demo / "ratings.csv", tmp=tmp_path, config=path) + (
        "" if "folds" in message else "; use imagenet (downloads once), or " + config.OFFLINE_HINT)


def test_one_rater_group_leaves_compare_groups_out(recorded_steps, tiny_demo, tmp_path, capsys):
    run_all.main(["--config", str(write_config(tmp_path / "c.yaml", tiny_demo, tmp_path)), "--group", "ASD"])
    assert [name for name, _ in recorded_steps][-1] == "average_saliency"
    assert "compare_groups.py is left out" in capsys.readouterr().err


def test_quick_preset_keeps_the_first_identities_of_the_demo():
    cfg = config.load(ROOT / "quick.yaml", ["model.weights=none"])
    dataset = data.load(cfg)
    first = sorted(pd.read_csv(cfg.data.ratings).identity.unique())[: cfg.data.identities]
    assert sorted(set(dataset.identities)) == first and len(first) < 50
    assert cfg.output.fig_dir == ROOT / "fig" and cfg.explain.faithfulness_images <= len(first)


def test_more_identities_than_the_ratings_hold_is_a_config_error(blob_data, tmp_path):
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path, data={"identities": 5})
    with pytest.raises(ConfigError, match=rf"{path}: data.identities: asks for 5 identities, but {blob_data / 'ratings.csv'} has only 4"):
        data.load(config.load(path))
    assert len(data.load(config.load(path, ["data.identities=3"]))) == 3 * 3


def test_the_whole_chain_leaves_every_run_record_and_figure(trained_copy):
    run_all.main(["--config", str(trained_copy), "--trait", "warm", "--set", "explain.overlays=false"])
    records = [json.loads(path.read_text()) for path in (trained_copy.parent / "results" / "runs").glob("*.json")]
    assert sorted(r["script"] for r in records) == sorted(f"{step.__name__}.py" for step in run_all.STEPS)
    assert all(r["status"] == "ok" for r in records)
    figures = {path.name for path in (trained_copy.parent / "fig").glob("*.png")}
    assert {"cv_pearson.png", "permutation_ASD__warm.png", "extremes_NT__warm.png", "faithfulness.png",
            "average_saliency.png", "group_difference_warm.png", "region_relevance.png",
            "group_comparison_warm.png"} <= figures
