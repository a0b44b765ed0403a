"""average_saliency.py end to end on planted heatmaps: ASD models look at the mouth, NT models at the eyes;
and the identity-level sign-flip tests of facetraits/model_comparison.py on tiny arrays.

No TensorFlow: fake results/relevance/*.npy are written directly, the way lrp_analysis.py writes them.
"""
import hashlib
import itertools
import importlib.util
import inspect
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw
from scipy import stats

from conftest import ROOT, synthetic_face, write_blob_dataset, write_config
from facetraits import alignment, config, data, landmarks, metrics, model_comparison, plots, provenance, regions, saliency

spec = importlib.util.spec_from_file_location("average_saliency", ROOT / "average_saliency.py")
average_saliency = importlib.util.module_from_spec(spec)
spec.loader.exec_module(average_saliency)

IMAGE = 80  # stored image side (px)
MAP = 64  # model input size = heatmap side
MODELS = [("ASD", "warm"), ("ASD", "strong"), ("NT", "warm"), ("NT", "strong")]
NO_LANDMARKS = "p02_1.png"
FLIPS = 2000  # sign flips in the script runs (the default, 10000, only takes longer)
MOUTH, EYES = list(range(48, 60)), list(range(36, 48))


def draw_face(path, points, size):
    """A grey cartoon face at the landmarks (only so that the figures can be read)."""
    image = Image.new("L", (size, size), 60)
    draw = ImageDraw.Draw(image)
    draw.polygon([tuple(q) for q in np.vstack([points[0:17], points[26:16:-1] - [0, 8]])], fill=170)
    for idx in (EYES[:6], EYES[6:], MOUTH):
        draw.polygon([tuple(q) for q in points[idx]], fill=40)
    image.convert("RGB").save(path)


def blob(centre, sigma, shape=(MAP, MAP)):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma ** 2))


def plant(points, rng, group):
    """Relevance of one image: a blob on the mouth (ASD) or on each eye (NT), weak noise, a random overall scale."""
    if group == "ASD":
        heat = blob(points[MOUTH].mean(axis=0), 2.0)
    else:
        heat = blob(points[EYES[:6]].mean(axis=0), 1.4) + blob(points[EYES[6:]].mean(axis=0), 1.4)
    heat = heat + rng.normal(0.0, 0.02, heat.shape)
    return heat * rng.uniform(0.5, 5.0)


def write_model_records(config_path, models=MODELS, overrides=()):
    """Each stand-in model's record, as train_regression.py writes it: fitted on the config's data and settings."""
    cfg = config.load(config_path, list(overrides))
    dataset = data.load(cfg)
    for group, trait in models:
        record = {"trained_on": provenance.trained_on(cfg, dataset, dataset.target(group, trait))}
        (cfg.output.models_dir / f"{group}__{trait}.json").write_text(json.dumps(record))


def write_relevance(results, images, map_points, images_dir, seed=0, models=MODELS, config_path=None, overrides=()):
    """Planted maps, index.csv and the per-model record with the images' and the model file's sha256
    and the analyzer, as lrp_analysis.py writes them; the model files (beside results/) are stand-ins,
    with records when `config_path` is given."""
    rng = np.random.default_rng(seed)
    digests = [hashlib.sha256((images_dir / name).read_bytes()).hexdigest() for name in images]
    folder, models_dir = results / "relevance", results.parent / "models"
    folder.mkdir(parents=True, exist_ok=True)
    models_dir.mkdir(exist_ok=True)
    pd.DataFrame({"index": range(len(images)), "image": images,
                  "identity": [name.split("_")[0] for name in images]}).to_csv(folder / "index.csv", index=False)
    for group, trait in models:
        maps = np.stack([plant(map_points[name], rng, group) for name in images]).astype(np.float32)
        np.save(folder / f"{group}__{trait}.npy", maps)
        model_file = models_dir / f"{group}__{trait}.h5"
        model_file.write_bytes(f"stand-in model {group} {trait}".encode())
        (folder / f"{group}__{trait}.json").write_text(json.dumps({
            "image_sha256": digests, "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
            "analyzer": "lrp.sequential_preset_a_flat"}))
    if config_path is not None:
        write_model_records(config_path, models, overrides)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """18 shifted, scaled faces of 9 identities (2^9 sign flips: p can reach .004); one without landmarks.
    Returns (data root, images, landmarks in map coords)."""
    root = write_blob_dataset(tmp_path_factory.mktemp("faces"), n_identities=9, per_identity=2, size=IMAGE)
    images = sorted(pd.read_csv(root / "ratings.csv").image.unique())
    rng = np.random.default_rng(1)
    rows, map_points = [], {}
    for name in images:
        points = synthetic_face(IMAGE, shift=rng.uniform(-8, 8, 2), scale=rng.uniform(0.8, 1.05))
        draw_face(root / "images" / name, points, IMAGE)
        map_points[name] = landmarks.scale_landmarks(points, (IMAGE, IMAGE), (MAP, MAP))
        if name != NO_LANDMARKS:
            rows += [{"image": name, "point": k, "x": x, "y": y} for k, (x, y) in enumerate(points)]
    pd.DataFrame(rows).to_csv(root / "landmarks.csv", index=False)
    return root, images, map_points


def setup(faces, out, **sections):
    root, images, map_points = faces
    sections["explain"] = {"n_sign_flips": FLIPS, **sections.get("explain", {})}
    config = write_config(out / "config.yaml", root, out, model={"input_size": MAP}, **sections)
    write_relevance(out / "results", images, map_points, root / "images", config_path=config)
    return config


@pytest.fixture(scope="module")
def run(faces, tmp_path_factory):
    """One aligned run (the default) shared by the read-only tests."""
    out = tmp_path_factory.mktemp("aligned")
    config = setup(faces, out)
    average_saliency.main(["--config", str(config)])
    return out / "results", out / "fig"


def template_of(faces):
    _, images, map_points = faces
    return alignment.mean_face([map_points[name] for name in images if name != NO_LANDMARKS])


# ----------------------------------------------------------------------------- outputs


def test_writes_every_output_with_exact_columns(run):
    results, fig = run
    for name in ("average_saliency.png", "group_difference_warm.png", "group_difference_strong.png",
                 "region_relevance.png"):
        assert (fig / name).stat().st_size > 1000, name
    for group, trait in MODELS:
        average = np.load(results / "average_saliency" / f"{group}__{trait}.npy")
        assert average.shape == (MAP, MAP) and np.all(np.isfinite(average))
    table = pd.read_csv(results / "region_relevance.csv")
    assert list(table.columns)[:7] == ["group", "trait", "image", "region", "share_pos", "share_abs", "area_share"]
    assert list(table.columns)[-1] == "run"
    assert list(pd.read_csv(results / "region_summary.csv").columns) == [
        "group", "trait", "region", "mean_share_pos", "ci_low", "ci_high", "mean_share_abs", "mean_area_share",
        "mean_pos_per_area", "mean_abs_per_area", "n_images", "n_identities", "run"]
    tests = pd.read_csv(results / "region_group_tests.csv")
    assert list(tests.columns) == ["trait", "region", "measure", "group_a", "group_b", "mean_difference", "statistic",
                                   "p", "p_fwer", "unit", "n_identities", "n_flips", "run"]
    assert set(tests.unit) == {"identity"} and set(tests.n_identities) == {9} and set(tests.n_flips) == {FLIPS}
    assert list(pd.read_csv(results / "landmarks_missing.csv").columns) == ["image", "reason", "run"]
    (record,) = (results / "runs").glob("average_saliency-*.json")
    for name in ("region_relevance", "region_summary", "region_group_tests", "landmarks_missing"):
        assert set(pd.read_csv(results / f"{name}.csv").run) == {record.stem}, name
    with np.load(results / "group_difference_warm.npz") as saved:
        assert {"mean_difference", "t", "p", "p_fwer", "significant"} <= set(saved.files)
        assert saved["significant"].dtype == bool and saved["significant"].shape == (MAP, MAP)
        assert (saved["p_fwer"] >= saved["p"]).all() and (saved["significant"] == (saved["p_fwer"] <= 0.05)).all()
        assert (str(saved["unit"]), int(saved["n_identities"]), int(saved["n_images"])) == ("identity", 9, 17)


def test_region_shares_sum_to_one_per_image_and_model(run, faces):
    table = pd.read_csv(run[0] / "region_relevance.csv")
    sums = table.groupby(["group", "trait", "image"])[["share_pos", "share_abs", "area_share"]].sum()
    assert len(sums) == len(MODELS) * (len(faces[1]) - 1)
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-5)  # CSV keeps 6 digits
    assert set(table.region) == set(regions.REGIONS)


def test_planted_region_has_most_relevance_per_unit_area(run):
    summary = pd.read_csv(run[0] / "region_summary.csv")
    for (group, trait), rows in summary.groupby(["group", "trait"]):
        best = rows.loc[rows.mean_pos_per_area.idxmax()]
        assert best.region == ("mouth" if group == "ASD" else "eyes"), (group, trait)
        assert best.mean_pos_per_area > 3  # far more than the region's size predicts
        assert rows.loc[rows.mean_abs_per_area.idxmax()].region == best.region
        assert best.ci_low < best.mean_share_pos < best.ci_high
        assert best.n_images == 17 and best.n_identities == 9


def test_the_printed_summary_names_the_top_region_and_the_share_off_the_face(run):
    summary = pd.read_csv(run[0] / "region_summary.csv")
    lines = saliency.describe_top_regions(summary, [("ASD", "warm")])
    off = summary.query("group == 'ASD' and trait == 'warm' and region == 'background'").mean_share_abs.item()
    assert len(lines) == 1 and lines[0].startswith("ASD warm: most relevance per unit area on the mouth")
    assert lines[0].endswith(f"; {off:.0%} of absolute relevance is off the face (background)")


def test_asd_minus_nt_on_the_mouth_is_positive_and_significant_over_identities(run):
    tests = pd.read_csv(run[0] / "region_group_tests.csv").set_index(["trait", "region", "measure"])
    assert len(tests) == 2 * len(regions.REGIONS) * 2
    for trait, measure in itertools.product(("warm", "strong"), ("share_pos", "share_abs")):
        mouth, eyes = tests.loc[(trait, "mouth", measure)], tests.loc[(trait, "eyes", measure)]
        assert (mouth.group_a, mouth.group_b) == ("ASD", "NT")
        assert mouth.mean_difference > 0 and mouth.statistic > 0 and mouth.p_fwer < 0.05
        assert eyes.mean_difference < 0 and eyes.p_fwer < 0.05
    assert (tests.p_fwer >= tests.p).all()  # corrected, not raw
    assert tests.p.min() >= 1 / (FLIPS + 1)


def test_difference_map_is_positive_on_the_mouth_and_masked_far_from_it(run, faces):
    template = template_of(faces)
    with np.load(run[0] / "group_difference_warm.npz") as saved:
        diff, significant = saved["mean_difference"], saved["significant"]
    col, row = np.round(template[MOUTH].mean(axis=0)).astype(int)
    assert diff[row, col] > 0 and significant[row, col]
    rows, cols = np.mgrid[0:MAP, 0:MAP]
    features = np.vstack([template[MOUTH].mean(axis=0), template[EYES[:6]].mean(axis=0),
                          template[EYES[6:]].mean(axis=0)])
    distance = np.min([np.hypot(cols - x, rows - y) for x, y in features], axis=0)
    far = distance > 10
    assert not significant[far].any()  # noise only: the family-wise error is controlled
    assert significant[~far].sum() > 10


def test_image_without_landmarks_is_reported_and_left_out(run):
    missing = pd.read_csv(run[0] / "landmarks_missing.csv")
    assert missing.image.tolist() == [NO_LANDMARKS]
    assert "no landmarks" in missing.reason[0]
    table = pd.read_csv(run[0] / "region_relevance.csv")
    assert NO_LANDMARKS not in set(table.image)
    assert table.image.nunique() == 17
    [record] = [json.loads(path.read_text()) for path in (run[0] / "runs").glob("average_saliency-*.json")]
    assert (record["details"]["n_with_landmarks"], record["details"]["n_missing_landmarks"]) == (17, 1)


def test_missing_landmarks_are_reported_on_stderr(faces, tmp_path, capsys):
    config = setup(faces, tmp_path)
    average_saliency.main(["--config", str(config), "--trait", "warm"])
    err = capsys.readouterr().err
    assert "1 of 18 image(s) have no usable landmarks" in err and NO_LANDMARKS in err


# ----------------------------------------------------------------------------- alignment and selection


def test_alignment_sharpens_the_average_of_shifted_faces(faces, tmp_path, run):
    config = setup(faces, tmp_path, explain={"align": False})
    average_saliency.main(["--config", str(config), "--group", "ASD", "--trait", "warm"])
    plain = np.load(tmp_path / "results" / "average_saliency" / "ASD__warm.npy")
    aligned = np.load(run[0] / "average_saliency" / "ASD__warm.npy")
    assert aligned.max() > 1.5 * plain.max()  # shifted blobs blur unless the faces are aligned
    row, col = np.unravel_index(np.argmax(aligned), aligned.shape)
    assert np.hypot(*(template_of(faces)[MOUTH].mean(axis=0) - (col, row))) < 2.0
    # Only the selected model, and no group difference with one group selected.
    assert sorted(p.name for p in (tmp_path / "results" / "average_saliency").glob("*.npy")) == ["ASD__warm.npy"]
    assert not (tmp_path / "results" / "group_difference_warm.npz").exists()
    assert set(pd.read_csv(tmp_path / "results" / "region_relevance.csv").group) == {"ASD"}


def test_unaligned_average_uses_every_image(faces, tmp_path):
    _, images, map_points = faces
    config = setup(faces, tmp_path, explain={"align": False})
    average_saliency.main(["--config", str(config), "--group", "NT", "--trait", "strong"])
    maps = np.load(tmp_path / "results" / "relevance" / "NT__strong.npy")
    expected = saliency.normalise(maps).mean(axis=0)
    np.testing.assert_allclose(np.load(tmp_path / "results" / "average_saliency" / "NT__strong.npy"), expected,
                               atol=1e-7)


@pytest.mark.parametrize("align, n_images", [(True, 17), (False, 18)])
def test_the_average_figure_counts_the_images_it_averages(faces, tmp_path, monkeypatch, align, n_images):
    """Aligned, the face without landmarks is left out of the average, and its panel title must say 17, not 18."""
    drawn, draw = {}, plots.average_saliency

    def spy(*args, **kwargs):
        drawn["counts"] = inspect.signature(draw).bind(*args, **kwargs).arguments["n_images"]
        return draw(*args, **kwargs)
    monkeypatch.setattr(plots, "average_saliency", spy)
    config = setup(faces, tmp_path, explain={"align": align})
    average_saliency.main(["--config", str(config), "--group", "NT", "--trait", "strong"])
    assert drawn["counts"] == {("NT", "strong"): n_images}


# ----------------------------------------------------------------------------- errors


def test_missing_relevance_file_exits_2_with_one_line(faces, tmp_path, capsys):
    config = setup(faces, tmp_path)
    (tmp_path / "results" / "relevance" / "NT__strong.npy").unlink()
    with pytest.raises(SystemExit) as exit_info:
        average_saliency.main(["--config", str(config)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "NT__strong.npy" in err and "run lrp_analysis.py first" in err
    assert not (tmp_path / "results" / "region_relevance.csv").exists()


def test_index_that_does_not_match_the_dataset_exits_2(faces, tmp_path, capsys):
    config = setup(faces, tmp_path)
    index_path = tmp_path / "results" / "relevance" / "index.csv"
    index = pd.read_csv(index_path)
    index["image"] = index["image"].iloc[::-1].to_numpy()
    index.to_csv(index_path, index=False)
    with pytest.raises(SystemExit) as exit_info:
        average_saliency.main(["--config", str(config)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "index.csv" in err and "run lrp_analysis.py first" in err


def test_maps_of_another_model_or_analyzer_are_refused(faces, tmp_path, capsys):
    """The maps summarised must explain the model file that was tested, with the configured analyzer:
    a model retrained (or deleted) since lrp_analysis.py ran, or another analyzer in the config, stops the run."""
    config = setup(faces, tmp_path)
    record = tmp_path / "results" / "relevance" / "NT__warm.json"
    model_file = tmp_path / "models" / "NT__warm.h5"
    again = "run lrp_analysis.py again (maps of unchanged images and models are reused)"
    cases = [(["--set", "explain.analyzer=lrp.epsilon"],
              f"error: {tmp_path / 'results' / 'relevance' / 'ASD__warm.json'}: maps made with analyzer "
              f"'lrp.sequential_preset_a_flat', the config says explain.analyzer=lrp.epsilon; {again}"),
             ([], f"error: {record}: the maps explain an earlier NT__warm.h5 (the model file changed since they were "
                  f"made, e.g. retrained); {again}")]
    model_file.write_bytes(b"retrained")
    for extra, expected in cases:
        with pytest.raises(SystemExit) as exit_info:
            average_saliency.main(["--config", str(config), *extra])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.strip() == expected
    model_file.unlink()
    with pytest.raises(SystemExit):
        average_saliency.main(["--config", str(config)])
    assert capsys.readouterr().err.strip().startswith(f"error: {model_file}: not found, so nothing shows the maps")
    assert not (tmp_path / "results" / "region_relevance.csv").exists()


def test_maps_of_a_model_the_config_no_longer_gives_are_refused(faces, tmp_path, capsys):
    """Other fit settings (or ratings) than the model was fitted with: its maps would be shown beside results
    (CV r, p) of a model that was never explained."""
    config_path = setup(faces, tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        average_saliency.main(["--config", str(config_path), "--set", "seed=1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'models' / 'ASD__warm.h5'}: fitted on other settings than {config_path} gives now (or by "
        f"an older version); run train_regression.py again")
    (tmp_path / "models" / "NT__strong.json").unlink()
    with pytest.raises(SystemExit):
        average_saliency.main(["--config", str(config_path)])
    assert capsys.readouterr().err.strip().startswith(f"error: {tmp_path / 'models' / 'NT__strong.json'}: not found")
    assert not (tmp_path / "results" / "region_relevance.csv").exists()


def test_image_changed_since_lrp_exits_2_naming_it(faces, tmp_path, capsys):
    root, images, map_points = faces
    copy = shutil.copytree(root, tmp_path / "data")
    config = write_config(tmp_path / "config.yaml", copy, tmp_path, model={"input_size": MAP})
    write_relevance(tmp_path / "results", images, map_points, copy / "images")
    changed = copy / "images" / images[4]
    pixels = np.asarray(Image.open(changed)).copy()
    pixels[:4, :4] = 255
    Image.fromarray(pixels).save(changed)
    with pytest.raises(SystemExit) as exit_info:
        average_saliency.main(["--config", str(config)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {tmp_path / 'results' / 'relevance' / 'ASD__warm.json'}: image {images[4]} changed since "
                   f"its relevance map was made (sha256 differs); run lrp_analysis.py again (maps of unchanged images "
                   f"and models are reused)")
    assert not (tmp_path / "results" / "region_relevance.csv").exists()


def test_relevance_at_the_wrong_size_exits_2(faces, tmp_path, capsys):
    config = setup(faces, tmp_path)
    path = tmp_path / "results" / "relevance" / "ASD__warm.npy"
    np.save(path, np.load(path)[:, :32, :32])
    with pytest.raises(SystemExit) as exit_info:
        average_saliency.main(["--config", str(config)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ASD__warm.npy" in err and "(18, 64, 64)" in err


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None,
                    reason="optional dlib / face-recognition-models not installed")
def test_without_a_landmarks_file_faces_are_detected_and_a_blank_image_is_reported(faces, tmp_path, capsys):
    root, images, map_points = faces
    copy = shutil.copytree(root, tmp_path / "data")
    (copy / "landmarks.csv").unlink()
    Image.new("RGB", (IMAGE, IMAGE), (90, 90, 90)).save(copy / "images" / images[0])
    config = write_config(tmp_path / "config.yaml", copy, tmp_path, model={"input_size": MAP})
    write_relevance(tmp_path / "results", images, map_points, copy / "images", config_path=config)
    average_saliency.main(["--config", str(config), "--trait", "warm"])
    err = capsys.readouterr().err
    assert "1 of 18 image(s) have no usable landmarks" in err and images[0] in err
    missing = pd.read_csv(tmp_path / "results" / "landmarks_missing.csv")
    assert missing.drop(columns="run").to_dict("records") == [{"image": images[0], "reason": "no face found by dlib"}]
    table = pd.read_csv(tmp_path / "results" / "region_relevance.csv")
    assert table.image.nunique() == 17 and images[0] not in set(table.image)
    assert len(list((tmp_path / "cache" / "landmarks").glob("*.npy"))) == 18  # detections are cached
    summary = pd.read_csv(tmp_path / "results" / "region_summary.csv")
    best = summary[summary.group == "ASD"].set_index("region").mean_pos_per_area.idxmax()
    assert best == "mouth"  # dlib's landmarks put the mouth region where the planted mouth is


def test_a_landmarks_file_that_is_named_but_absent_exits_2(faces, tmp_path, capsys):
    config = setup(faces, tmp_path, data={"landmarks": str(tmp_path / "nowhere.csv")})
    with pytest.raises(SystemExit) as exit_info:
        average_saliency.main(["--config", str(config)])
    assert exit_info.value.code == 2
    assert "nowhere.csv: landmarks file not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- statistics


def test_normalise_gives_every_image_the_same_weight():
    maps = np.stack([np.full((4, 4), 2.0), -np.ones((4, 4)) * 0.1, np.zeros((4, 4))])
    out = saliency.normalise(maps)
    np.testing.assert_allclose(np.abs(out).sum(axis=(1, 2)), [1.0, 1.0, 0.0], atol=1e-6)
    assert out[1, 0, 0] < 0  # the sign is kept


def test_alignment_conserves_relevance_of_a_scaled_face():
    template = synthetic_face(MAP)
    small = synthetic_face(MAP, scale=0.7)
    heat = saliency.normalise(blob(small[MOUTH].mean(axis=0), 2.0))
    warped = saliency.align(heat[None], [small], template)[0]
    assert warped.sum() == pytest.approx(1.0, abs=0.02)
    row, col = np.unravel_index(np.argmax(warped), warped.shape)
    assert np.hypot(*(template[MOUTH].mean(axis=0) - (col, row))) < 1.5


def test_heatmaps_without_positive_relevance_are_reported(capsys):
    table = pd.DataFrame({"group": ["ASD"] * 4, "trait": ["warm"] * 4, "image": ["a", "a", "b", "b"],
                          "region": ["eyes", "mouth"] * 2, "share_pos": [np.nan, np.nan, 0.4, 0.6],
                          "share_abs": [0.5] * 4, "area_share": [0.5] * 4, "pos_per_area": [np.nan, np.nan, 0.8, 1.2]})
    saliency.report_empty_maps(table)
    err = capsys.readouterr().err
    assert "ASD warm: 1 heatmap(s) have no positive relevance" in err and "(first: a)" in err


def test_sign_flip_p_values_obvious_difference_smallest_zero_difference_one():
    rng = np.random.default_rng(0)
    obvious = 1.0 + 0.1 * rng.normal(size=20)
    balanced = np.tile([1.0, -1.0], 10) * rng.uniform(0.5, 2.0, 10).repeat(2)  # mean 0
    noise = rng.normal(size=(20, 30))
    test = model_comparison.sign_flip_test(np.column_stack([obvious, np.zeros(20), balanced, noise]), 999, seed=1)
    assert test.p[0] == test.p_fwer[0] == 1 / 1000  # no flip reaches the observed t
    assert test.p[1] == 1.0 and test.t[1] == 0.0 and test.p[2] > 0.95 and abs(test.t[2]) < 1e-6
    assert (test.p_fwer >= test.p).all() and (test.p_fwer[3:] > 0.05).all()
    assert np.isclose(test.mean[0], obvious.mean()) and np.isclose(test.t[0], stats.ttest_1samp(obvious, 0).statistic)


def test_sign_flip_p_values_match_a_direct_count():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, size=(8, 5))
    test = model_comparison.sign_flip_test(d, 200, seed=7)
    flips = model_comparison.sign_flips(8, 200, seed=7)
    null = np.abs(np.stack([stats.ttest_1samp(f[:, None] * d, 0).statistic for f in flips]))
    observed = np.abs(stats.ttest_1samp(d, 0).statistic)
    np.testing.assert_allclose(test.p, (1 + (null >= observed - 1e-9).sum(axis=0)) / 201)
    np.testing.assert_allclose(test.p_fwer, (1 + (null.max(axis=1)[:, None] >= observed - 1e-9).sum(axis=0)) / 201)


def test_a_column_with_one_identity_is_untestable_and_outside_the_family():
    d = np.array([[1.0, 5.0], [1.1, np.nan], [0.9, np.nan], [1.2, np.nan]])
    test = model_comparison.sign_flip_test(d, 99, seed=0)
    assert np.isnan(test.p[1]) and np.isnan(test.p_fwer[1]) and test.n_identities.tolist() == [4, 1]
    assert test.p_fwer[0] == test.p[0]


def test_two_images_of_one_identity_count_once():
    names, means = saliency.identity_means(np.array([1.0, 1.0, -1.0, np.nan, 3.0]), ["a", "a", "b", "c", "c"])
    assert names.tolist() == ["a", "b", "c"] and means.tolist() == [1.0, -1.0, 3.0]
    table = pd.DataFrame({"group": ["A", "B"] * 3, "trait": "warm", "image": np.repeat(["a1", "a2", "b1"], 2),
                          "region": "eyes", "share_pos": [0.9, 0.1, 0.9, 0.1, 0.2, 0.4], "share_abs": 0.5,
                          "area_share": 0.1, "pos_per_area": 1.0, "abs_per_area": 5.0})
    identities = {"a1": "a", "a2": "a", "b1": "b"}
    tests = model_comparison.region_tests(table, identities, ["A", "B"], 10, seed=0).set_index("measure")
    assert tests.loc["share_pos", "mean_difference"] == pytest.approx((0.8 - 0.2) / 2)  # not (0.8 + 0.8 - 0.2) / 3
    assert tests.loc["share_pos", "n_identities"] == 2
    summary = saliency.region_summary(table, identities).set_index("group")
    assert summary.loc["A", "mean_share_pos"] == pytest.approx((0.9 + 0.2) / 2)
    assert (summary.loc["A", "n_images"], summary.loc["A", "n_identities"]) == (3, 2)


def test_more_than_two_groups_says_which_two_the_model_tests_compare(faces, tmp_path, capsys):
    root, images, map_points = faces
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    ratings = pd.read_csv(copy / "ratings.csv")
    pd.concat([ratings, ratings[ratings.group == "NT"].assign(group="Other")]).to_csv(copy / "ratings.csv", index=False)
    config = write_config(tmp_path / "config.yaml", copy, tmp_path, model={"input_size": MAP}, explain={"n_sign_flips": 99})
    write_relevance(tmp_path / "results", images, map_points, copy / "images",
                    models=[(g, t) for g in ("ASD", "NT", "Other") for t in ("warm", "strong")], config_path=config,
                    overrides=["groups=[ASD, NT, Other]"])
    average_saliency.main(["--config", str(config), "--trait", "warm", "--set", "groups=[ASD, NT, Other]"])
    assert ("note: the model-level group tests compare the first two groups only (ASD vs NT; --group selects "
            "others); compare_groups.py compares every pair") in capsys.readouterr().err


def test_the_average_map_weighs_identities_not_images():
    """Three images of identity a light (0, 0), one of b lights (1, 1): both count half."""
    maps = np.zeros((4, 2, 2))
    maps[:3, 0, 0] = 1.0
    maps[3, 1, 1] = 1.0
    average = saliency.average_map(maps, np.array(["a", "a", "a", "b"]))
    assert average[0, 0] == pytest.approx(average[1, 1])


def test_region_summary_ci_is_over_identities():
    """Two identical images per identity add no information: the CI is that of the identity means."""
    shares = np.array([0.1, 0.3, 0.2, 0.6])
    table = pd.DataFrame({"group": "A", "trait": "t", "region": "eyes", "image": [f"{i}{k}" for i in "abcd" for k in "12"],
                          "share_pos": np.repeat(shares, 2), "share_abs": 0.5, "area_share": 0.1, "pos_per_area": 1.0,
                          "abs_per_area": 1.0})
    identities = {f"{i}{k}": i for i in "abcd" for k in "12"}
    summary = saliency.region_summary(table, identities)
    _, low, high = metrics.mean_ci(shares)
    assert (summary.ci_low[0], summary.ci_high[0]) == pytest.approx((low, high))
    assert summary.n_images[0] == 8 and summary.n_identities[0] == 4


def test_describe_names_only_the_regions_significant_after_correction():
    """The lines say p_fwer < alpha: a region with a small raw p but a large corrected one is not named."""
    tests = pd.DataFrame({"trait": "warm", "region": ["eyes", "mouth"], "measure": "share_pos", "group_a": "A",
                          "group_b": "B", "mean_difference": [0.1, 0.2], "statistic": [3.0, 2.5], "p": [0.001, 0.01],
                          "p_fwer": [0.002, 0.2], "unit": "identity", "n_identities": 9, "n_flips": 999})
    lines = model_comparison.describe(tests, 0.05)
    assert len(lines) == 2 and "eyes" in lines[1] and not any("mouth" in line for line in lines)
    assert model_comparison.describe(tests.assign(p_fwer=0.5), 0.05) == [
        "the A and B models do not differ consistently across faces in any region (2 tests, all p_fwer >= 0.05; the "
        "fitted models, not the rater groups)"]


def test_the_observed_signs_tie_with_themselves_in_floating_point():
    """Flipping no sign, or every sign, gives the observed |t| again; computed as a matrix product it
    can come out a rounding error below the observed one, and must still count (else p is too small)."""
    d = np.array([[-0.71], [0.09], [0.14], [0.84], [0.51], [0.66]])
    test = model_comparison.sign_flip_test(d, 999, seed=0)
    flips = model_comparison.sign_flips(6, 999, seed=0)
    null = np.abs(stats.ttest_1samp(flips * d[:, 0], 0, axis=1).statistic)
    observed = abs(stats.ttest_1samp(d[:, 0], 0).statistic)
    assert (np.abs(flips.sum(axis=1)) == 6).sum() > 10  # the observed signs and their opposite, drawn often
    expected = (1 + (null >= observed - 1e-9).sum()) / 1000
    assert test.p[0] == pytest.approx(expected) and test.p_fwer[0] == pytest.approx(expected)
