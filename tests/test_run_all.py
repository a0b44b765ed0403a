"""run_all.py chains the six scripts with one set of arguments; quick.yaml is the README's first run."""
import json

import pandas as pd
import pytest

import run_all
from facetraits import config, data
from facetraits.errors import ConfigError
from conftest import ROOT, write_config


def test_steps_run_in_order_with_the_same_arguments_and_a_failure_stops_the_chain(monkeypatch):
    calls = []
    for step in run_all.STEPS:
        monkeypatch.setattr(step, "main", lambda argv, name=step.__name__: calls.append((name, argv)))
    run_all.main(["--config", "c.yaml", "--trait", "warm"])
    assert calls == [(name, ["--config", "c.yaml", "--trait", "warm"]) for name in
                     ("train_regression", "cross_validate", "permutation_test", "lrp_analysis", "average_saliency",
                      "compare_groups")]

    def fail(argv):
        raise SystemExit(2)
    calls.clear()
    monkeypatch.setattr(run_all.STEPS[2], "main", fail)
    with pytest.raises(SystemExit):
        run_all.main([])
    assert [name for name, _ in calls] == ["train_regression", "cross_validate"]


def test_quick_preset_keeps_the_first_identities_of_the_demo():
    cfg = config.load(ROOT / "quick.yaml", ["model.weights=none"])
    dataset = data.load(cfg)
    first = sorted(pd.read_csv(cfg.data.ratings).identity.unique())[: cfg.data.identities]
    assert sorted(set(dataset.identities)) == first and len(first) < 50
    assert cfg.output.fig_dir == ROOT / "fig" and cfg.explain.faithfulness_images <= len(first)


def test_more_identities_than_the_ratings_hold_is_a_config_error(blob_data, tmp_path):
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path, data={"identities": 5})
    with pytest.raises(ConfigError, match=rf"{path}: data.identities: 5, but {blob_data / 'ratings.csv'} has only 4 identities"):
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
