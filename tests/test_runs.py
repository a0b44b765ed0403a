"""Run records (results/runs/<run id>.json) and the `run` column that ties each results table to one."""
import json
import subprocess
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import cross_validate
import lrp_analysis
from facetraits import backend, cli, config, outputs
from conftest import ROOT


def records(results) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((results / "runs").glob("*.json"))]


@pytest.mark.slow
def test_two_runs_with_different_settings_leave_two_records_and_tables_name_the_last(blob_config):
    results = config.load(blob_config).output.results_dir
    argvs = [["--config", str(blob_config), "--group", "ASD", "--trait", "warm", "--set", f"ridge.alphas={alphas}"]
             for alphas in ("[0.1, 1]", "[1, 10]")]
    for argv in argvs:
        cross_validate.main(argv)
    written = records(results)
    assert len(written) == 2
    by_argv = {tuple(record["argv"]): record for record in written}
    first, second = by_argv[tuple(argvs[0])], by_argv[tuple(argvs[1])]
    assert first["config_hash"] != second["config_hash"] and first["run"] != second["run"]
    for record, argv in ((first, argvs[0]), (second, argvs[1])):
        cfg = config.load(blob_config, [argv[-1]])
        assert record["script"] == "cross_validate.py" and record["status"] == "ok"
        assert record["config"] == config.as_dict(cfg) and record["config_hash"] == cfg.hash()
        assert record["run"].startswith("cross_validate-") and (results / "runs" / f"{record['run']}.json").is_file()
        assert record["device"] == backend.device_name() and 0 < record["wall_seconds"] < 600
        assert set(record["versions"]) == {"python", *outputs.PACKAGES}
        assert record["versions"]["tensorflow"] == backend.tf.__version__
        assert record["code"] == outputs.code_version(ROOT)
    for table in ("cv_folds", "cv_summary", "cross_group"):
        rows = pd.read_csv(results / f"{table}.csv")
        assert rows.columns[-1] == "run" and set(rows.run) == {second["run"]}, table


def test_record_says_running_until_main_ends_then_ok_with_details(blob_config):
    seen = {}

    @cli.script
    def main(run):
        seen.update(json.loads(run.record_path.read_text()))
        run.details["answer"] = 42

    main(["--config", str(blob_config)])
    assert seen["status"] == "running" and seen["ended"] is None
    (record,) = records(config.load(blob_config).output.results_dir)
    assert record["run"] == seen["run"] and record["run"].startswith("test_runs-")
    assert record["status"] == "ok" and record["ended"] and record["details"] == {"answer": 42}


def test_a_figure_names_the_run_commit_and_config_that_made_it(blob_config):
    import matplotlib.pyplot as plt
    from PIL import Image

    def line():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        return fig

    @cli.script
    def main(run):
        run.save_figure(line(), "line.png")

    main(["--config", str(blob_config)])
    cfg = config.load(blob_config)
    (record,) = records(cfg.output.results_dir)
    stamped = Image.open(cfg.output.fig_dir / "line.png")
    stamp = stamped.text["Description"]
    assert record["run"] in stamp and f"commit {record['code']['commit']}" in stamp and f"config {cfg.hash()}" in stamp
    plain = np.asarray(Image.open(outputs.save_figure(line(), cfg.output.fig_dir / "plain.png")).convert("L"))
    below = np.asarray(stamped.convert("L"))[plain.shape[0]:]  # the stamp's rows, under the plain figure
    assert below.shape[0] > 5 and (below < 200).any()


def test_a_failed_run_records_why(blob_config, capsys):
    results = config.load(blob_config).output.results_dir
    with pytest.raises(SystemExit) as caught:
        lrp_analysis.main(["--config", str(blob_config)])  # no trained models
    assert caught.value.code == 2
    (record,) = records(results)
    assert record["status"] == "error" and "model not found" in record["message"]
    assert capsys.readouterr().err.strip() == f"error: {record['message']}"

    @cli.script
    def crashing(run):
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):  # a bug keeps its traceback
        crashing(["--config", str(blob_config)])
    assert [(r["status"], r["message"]) for r in records(results) if r["script"] == "test_runs.py"] == [
        ("crashed", "RuntimeError: bug")]


def test_an_interrupted_run_is_one_line_and_recorded(blob_config, capsys):
    results = config.load(blob_config).output.results_dir

    @cli.script
    def interrupted(run):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as caught:
        interrupted(["--config", str(blob_config)])
    assert caught.value.code == 130
    assert capsys.readouterr().err.strip().startswith("interrupted: test_runs.py stopped; the outputs it finished")
    assert [r["status"] for r in records(results) if r["script"] == "test_runs.py"] == ["interrupted"]


def test_a_filtered_run_says_it_replaces_a_whole_table(blob_config, capsys):
    @cli.script
    def writer(run):
        run.write_csv("table.csv", pd.DataFrame({"group": [g for g, _ in run.models]}))

    writer(["--config", str(blob_config)])
    assert "note:" not in capsys.readouterr().err
    writer(["--config", str(blob_config), "--group", "NT"])
    table = config.load(blob_config).output.results_dir / "table.csv"
    assert f"note: {table} is replaced by this run's 2 of 4 models (--group/--trait)" in capsys.readouterr().err

    @cli.script
    def index_writer(run):  # a table of images, the same whatever models are selected
        run.write_csv("table.csv", pd.DataFrame({"image": ["a.png"]}), per_model=False)

    index_writer(["--config", str(blob_config), "--group", "NT"])
    assert "note:" not in capsys.readouterr().err


def test_code_version_names_the_commit_only_for_the_repository_root(tmp_path):
    assert outputs.code_version(tmp_path) == {"commit": "not a git checkout", "uncommitted_changes": None}
    assert outputs.code_version(ROOT / "facetraits")["commit"] == "not a git checkout"  # inside, not the root
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the code is not a git checkout here")
    code = outputs.code_version(ROOT)
    assert code["commit"] == head and isinstance(code["uncommitted_changes"], bool)


def test_device_names_the_gpus_tensorflow_sees(monkeypatch):
    gpus = [SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(2)]
    details = {gpus[0].name: {"device_name": "Card A"}, gpus[1].name: {}}  # no name: its device path
    monkeypatch.setattr(backend.tf.config, "list_physical_devices", lambda kind: gpus if kind == "GPU" else [])
    monkeypatch.setattr(backend.tf.config.experimental, "get_device_details", lambda gpu: details[gpu.name])
    assert backend.device_name() == "GPU: Card A, /physical_device:GPU:1"
    monkeypatch.setattr(backend.tf.config, "list_physical_devices", lambda kind: [])
    assert backend.device_name() == "CPU"


def test_record_names_the_code_the_run_started_with(blob_config, monkeypatch):
    """A commit made while a long run works must not be credited with its results."""
    commits = iter(["at-start", "later", "later"])
    monkeypatch.setattr(outputs, "code_version", lambda root: {"commit": next(commits), "uncommitted_changes": False})

    @cli.script
    def main(run):
        pass

    main(["--config", str(blob_config)])
    (record,) = records(config.load(blob_config).output.results_dir)
    assert record["code"]["commit"] == "at-start"


def test_a_changed_tracked_file_is_an_uncommitted_change_an_untracked_one_is_not(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run(git + ["add", "a.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)
    assert outputs.code_version(tmp_path)["uncommitted_changes"] is False
    (tmp_path / "new.txt").write_text("untracked\n")
    assert outputs.code_version(tmp_path)["uncommitted_changes"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert outputs.code_version(tmp_path)["uncommitted_changes"] is True


def test_two_runs_started_in_the_same_second_get_different_ids():
    """Their records (results/runs/<id>.json) and `run` columns must not collide."""
    cfg = config.load(None)
    ids = {cli.Run(cfg, None, [], [], "s", started=1_700_000_000.0, code={}).id for _ in range(20)}
    assert len(ids) == 20


def test_a_figure_made_by_uncommitted_code_says_so(blob_config, monkeypatch):
    import matplotlib.pyplot as plt
    from PIL import Image
    monkeypatch.setattr(outputs, "code_version", lambda root: {"commit": "abc1234", "uncommitted_changes": True})

    @cli.script
    def main(run):
        run.save_figure(plt.subplots()[0], "line.png")

    main(["--config", str(blob_config)])
    stamp = Image.open(config.load(blob_config).output.fig_dir / "line.png").text["Description"]
    assert "commit abc1234+uncommitted | config" in stamp


def test_record_versions_name_innvestigate_which_computes_the_maps():
    from importlib import metadata
    versions = outputs.package_versions()
    assert versions["innvestigate"] == metadata.version("innvestigate")
    assert versions["tensorflow"] == backend.tf.__version__ and versions["numpy"] == np.__version__
