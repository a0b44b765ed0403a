"""Tests for facetraits.importers and import_dataset.py.

The real-data tests read ../shared/data/<name> beside the repository when it is there and skip
otherwise; nothing from it is ever copied into the repository. The rest use tiny fake datasets.
"""
import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from facetraits.metrics import split_half_noise_ceiling
from facetraits.importers import (
    PER_RATER_COLUMNS,
    RATING_COLUMNS,
    import_3dsk,
    import_london,
    import_omi,
    trait_name,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# the top-level script, loaded by path so the tests do not depend on the repo root being on sys.path
_spec = importlib.util.spec_from_file_location("import_dataset", Path(__file__).resolve().parents[1] / "import_dataset.py")
import_dataset = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_dataset)


def needs(name: str) -> Path:
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    return folder


def check_common(imported):
    assert list(imported.ratings.columns) == RATING_COLUMNS
    assert imported.ratings.rating.notna().all()
    assert not imported.ratings.duplicated(["image", "group", "trait"]).any()
    assert all((imported.images / name).is_file() for name in imported.ratings.image.unique())
    if imported.per_rater is not None:
        assert list(imported.per_rater.columns) == PER_RATER_COLUMNS
        assert imported.per_rater.rating.notna().all()
        assert not imported.per_rater.duplicated(["image", "group", "trait", "rater"]).any()


# ----------------------------------------------------------------------------- real data (skipped without it)

@pytest.fixture(scope="module")
def omi():
    return import_omi(needs("omi"))


@pytest.fixture(scope="module")
def london():
    return import_london(needs("london"))


@pytest.fixture(scope="module")
def threedsk():
    return import_3dsk(needs("3dsk"))


@pytest.mark.slow  # the omi fixture imports 1004 faces x 34 traits: 3-7 s for whichever test runs first
def test_omi_real(omi):
    check_common(omi)
    table = omi.ratings
    assert table.image.nunique() == 1004 and table.identity.nunique() == 1004
    assert omi.groups == ["all"]
    assert len(omi.traits) == 34 and {"trustworthy", "well_groomed", "looks_like_you"} <= set(omi.traits)
    assert len(table) == 1004 * 34
    published = pd.read_csv(SHARED_DATA / "omi" / "attribute_means.csv").set_index("stimulus")
    assert table[(table.image == "1.jpg") & (table.trait == "dominant")].rating.item() == published.loc[1, "dominant"]
    singles = omi.per_rater
    assert len(singles) == 1_103_500  # normal + fill-in ratings of faces 1-1004 (repeats left out)
    assert singles.image.nunique() == 1004 and singles.groupby(["image", "trait"]).size().min() >= 30


@pytest.mark.slow
def test_omi_noise_ceilings_match_published(omi):
    traits = {"happy": 0.99, "dominant": 0.96, "trustworthy": 0.96, "attractive": 0.95, "smart": 0.93}
    singles = omi.per_rater[omi.per_rater.trait.isin(list(traits))]
    ceilings = split_half_noise_ceiling(singles, n_splits=10).set_index("trait").noise_ceiling
    for trait, expected in traits.items():
        assert ceilings[trait] == pytest.approx(expected, abs=0.03), trait


def test_london_real(london):
    check_common(london)
    table = london.ratings
    assert table.image.nunique() == 102 and table.identity.nunique() == 102
    assert london.groups == ["female_raters", "male_raters"] and london.traits == ["attractive"]
    assert len(table) == 204
    assert london.per_rater.rater.nunique() == 1552 + 955
    assert len(london.per_rater) == (1552 + 955) * 102
    summary = pd.read_csv(SHARED_DATA / "london" / "attractiveness_by_rater_group.csv", dtype={"identity": str})
    female = table[table.group == "female_raters"].set_index("identity").rating
    assert np.allclose(female.loc[summary.identity], summary.mean_female_raters, atol=1e-3)


def test_3dsk_real(threedsk):
    check_common(threedsk)
    table = threedsk.ratings
    assert table.image.nunique() == 100 and table.identity.nunique() == 100
    assert threedsk.groups == ["female_raters", "male_raters"]
    assert sorted(threedsk.traits) == ["attractive", "dominant", "healthy", "sexual_dimorphism", "trustworthy"]
    assert len(table) == 100 * 2 * 5
    assert threedsk.per_rater.rater.nunique() == 2000 and len(threedsk.per_rater) == 2000 * 50
    assert (threedsk.per_rater.groupby(["image", "group", "trait"]).size() == 100).all()


def test_trait_name():
    assert trait_name("Well-groomed") == "well_groomed"
    assert trait_name(" looks like you ") == "looks_like_you"


# ----------------------------------------------------------------------------- fake datasets + CLI

def touch_images(folder: Path, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")  # existence is all the importers check


def fake_omi(root: Path) -> Path:
    """4 faces in the means file (4.jpg has no image), 2 attributes, a zip of single ratings."""
    root.mkdir()
    touch_images(root / "images", ["1.jpg", "2.jpg", "3.jpg"])
    raw = []
    for stimulus in (1, 2, 3, 4, 5):  # 5 is in the zip only, like OMI's stimuli 1005-3039
        for attribute, base in (("trustworthy", 10), ("well-groomed", 50)):
            for k, kind in enumerate(("normal", "normal", "normal", "repeat", "fill-in")):
                raw.append({"rating": base + stimulus * 10 + k, "attribute": attribute, "rating_type": kind,
                            "stimulus": stimulus})
    raw = pd.DataFrame(raw)
    means = raw[raw.stimulus <= 4].groupby(["stimulus", "attribute"]).rating.mean().unstack().reset_index()
    means[["stimulus", "trustworthy", "well-groomed"]].to_csv(root / "attribute_means.csv", index=False)
    buffer = io.StringIO()
    raw.to_csv(buffer, index=False)
    with zipfile.ZipFile(root / "attribute_ratings.zip", "w") as archive:
        archive.writestr("attribute_ratings.csv", buffer.getvalue())
    return root


def test_cli_omi_writes_long_csv(tmp_path, capsys):
    source = fake_omi(tmp_path / "omi")
    out = tmp_path / "out"
    assert import_dataset.main(["omi", str(source), str(out), "--noise-ceiling", "--n-splits", "3"]) == 0
    captured = capsys.readouterr()
    assert "4.jpg" in captured.err and "dropping" in captured.err  # missing image: reported, not silent
    ratings = pd.read_csv(out / "ratings.csv")
    assert list(ratings.columns) == RATING_COLUMNS
    assert len(ratings) == 3 * 2 and set(ratings.trait) == {"trustworthy", "well_groomed"}
    assert set(ratings.group) == {"all"} and ratings.rating.notna().all()
    # means are the published ones (all rating types): face 1 trustworthy = 20 + mean(0..4)
    assert ratings.query("image == '1.jpg' and trait == 'trustworthy'").rating.item() == pytest.approx(22)
    singles = pd.read_csv(out / "ratings_per_rater.csv")
    assert list(singles.columns) == PER_RATER_COLUMNS
    assert len(singles) == 3 * 2 * 4  # repeats and face 4 (no image) and face 5 (no means) left out
    assert singles.rater.is_unique
    assert (out / "noise_ceiling.csv").is_file()
    assert not list(out.glob("*.tmp"))
    snippet = yaml.safe_load(captured.out.split("# settings for this dataset")[1].split("\n", 1)[1])
    assert snippet["groups"] == ["all"] and snippet["traits"] == ["trustworthy", "well_groomed"]
    assert Path(snippet["data"]["images"]) == (source / "images").resolve()
    assert Path(snippet["data"]["ratings"]) == (out / "ratings.csv").resolve()
    assert "1 group(s)" in captured.out and "3 images" in captured.out


def test_cli_snippet_loads_as_config(tmp_path, capsys):
    config = pytest.importorskip("facetraits.config")
    source = fake_omi(tmp_path / "omi")
    assert import_dataset.main(["omi", str(source), str(tmp_path / "out"), "--traits", "Well-Groomed"]) == 0
    text = capsys.readouterr().out.split("# settings for this dataset")[1].split("\n", 1)[1]
    (tmp_path / "config.yaml").write_text(text)
    cfg = config.load(tmp_path / "config.yaml")
    assert cfg.traits == ("well_groomed",) and cfg.groups == ("all",) and cfg.data.landmarks is None


def error_line(stderr: str) -> str:
    """The error, checked to be one line and the last one (warnings may come before it)."""
    lines = stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], lines
    return lines[-1]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert import_dataset.main(["omi", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "nowhere" in error_line(capsys.readouterr().err)
    source = fake_omi(tmp_path / "omi")
    assert import_dataset.main(["omi", str(source), str(tmp_path / "out"), "--traits", "nope"]) == 2
    assert "nope" in error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as caught:
        import_dataset.main(["--help"])
    assert caught.value.code == 0


def fake_london(root: Path, with_raw=True) -> Path:
    touch_images(root / "images" / "neutral_front", ["001_03.jpg", "002_03.jpg", "005_03.jpg"])
    touch_images(root / "images" / "smiling_front", ["001_08.jpg"])
    lines = ["rater_sex,rater_sexpref,rater_age,X001,X002,X005",
             "female,men,20,1,2,3", "female,men,30,3,4,5", "male,women,25,7,6,5",
             "intersex,either,40,1,1,1", ",,33,2,2,2"]
    if with_raw:
        (root / "london_faces_ratings.csv").write_bytes("\r".join(lines).encode())  # old-Mac CR endings
    pd.DataFrame({"face_id": ["X001", "X002", "X005"], "identity": ["001", "002", "005"],
                  "mean_female_raters": [2.0, 3.0, 4.0], "mean_male_raters": [7.0, 6.0, 5.0]}
                 ).to_csv(root / "attractiveness_by_rater_group.csv", index=False)
    return root


def test_cli_london(tmp_path, capsys):
    source = fake_london(tmp_path / "london")
    assert import_dataset.main(["london", str(source), str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    ratings = pd.read_csv(tmp_path / "out" / "ratings.csv", dtype={"identity": str})
    assert list(ratings.columns) == RATING_COLUMNS
    assert sorted(ratings.group.unique()) == ["female_raters", "male_raters"]
    assert ratings.identity.tolist() == ["001", "001", "002", "002", "005", "005"]
    assert ratings.query("identity == '002' and group == 'female_raters'").rating.item() == 3.0
    singles = pd.read_csv(tmp_path / "out" / "ratings_per_rater.csv")
    assert len(singles) == 3 * 3 and singles.rater.nunique() == 3  # intersex and blank raters left out
    assert "left out 2 raters" in captured.out
    assert "neutral_front" in captured.out and "warning" not in captured.err
    snippet = yaml.safe_load(captured.out.split("# settings for this dataset")[1].split("\n", 1)[1])
    # raters known by name: the config the importer suggests can also run compare_groups.py
    assert Path(snippet["data"]["ratings"]) == (tmp_path / "out" / "ratings_per_rater.csv").resolve()


def test_london_from_summary_only(tmp_path, capsys):
    imported = import_london(fake_london(tmp_path / "london", with_raw=False))
    assert imported.per_rater is None and len(imported.ratings) == 6
    assert "london_faces_ratings.csv not found" in capsys.readouterr().err


def fake_3dsk(root: Path) -> Path:
    touch_images(root / "images", ["adam.jpg", "bob.jpg", "eva.jpg"])  # 'zoe' has no image
    (root / "ratings").mkdir(parents=True)
    for stem, faces, values in (("men_att", ["adam", "bob"], [[1, 2], [3, 4], [5, 6], [7, 7]]),
                                ("women_fem", ["eva", "zoe"], [[2, 2], [4, 4], [6, 6], [1, 1]])):
        table = pd.DataFrame(values, columns=faces)
        table.insert(0, "age", [20, 21, 22, 23])
        table.insert(0, "sexpref", ["men", "men", "women", "women"])
        table.insert(0, "sex", ["female", "female", "male", "male"])
        table.to_csv(root / "ratings" / f"3dsk_{stem}.csv", index=False)
    return root


def test_cli_3dsk(tmp_path, capsys):
    source = fake_3dsk(tmp_path / "3dsk")
    assert import_dataset.main(["3dsk", str(source), str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "zoe.jpg" in captured.err
    ratings = pd.read_csv(tmp_path / "out" / "ratings.csv")
    assert list(ratings.columns) == RATING_COLUMNS
    assert set(ratings.trait) == {"attractive", "sexual_dimorphism"}
    assert len(ratings) == 3 * 2  # 3 faces with images x 2 rater groups
    assert ratings.query("image == 'adam.jpg' and group == 'female_raters'").rating.item() == 2.0
    singles = pd.read_csv(tmp_path / "out" / "ratings_per_rater.csv")
    assert len(singles) == 3 * 4 and singles.rater.str.match(r"(men_att|women_fem)_\d{3}$").all()


def edit_csv(path: Path, row: int, column: str, value) -> None:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    table.to_csv(path, index=False)


@pytest.mark.parametrize("value, expected", [("", "line 3: stimulus is empty"),
                                             ("abc", "line 3: stimulus 'abc' is not a whole number"),
                                             ("2.5", "line 3: stimulus 2.5 is not a whole number"),
                                             ("inf", "line 3: stimulus inf is not a whole number"),
                                             ("1e30", "line 3: stimulus 1e+30 is not a whole number")])
def test_omi_stimulus_must_be_a_whole_number(tmp_path, capsys, value, expected):
    source = fake_omi(tmp_path / "omi")
    edit_csv(source / "attribute_means.csv", 1, "stimulus", value)
    assert import_dataset.main(["omi", str(source), str(tmp_path / "out")]) == 2
    assert f"attribute_means.csv {expected}" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "out" / "ratings.csv").exists()


def insert_blank_line(path: Path, before: int) -> None:
    """A blank line before line `before` (1-based): pandas skips it, an editor counts it."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:before - 1] + [""] + lines[before - 1:]) + "\n")


def test_importer_line_numbers_count_blank_lines(tmp_path, capsys):
    omi = fake_omi(tmp_path / "omi")
    edit_csv(omi / "attribute_means.csv", 1, "stimulus", "abc")
    insert_blank_line(omi / "attribute_means.csv", 2)
    assert import_dataset.main(["omi", str(omi), str(tmp_path / "out")]) == 2
    assert "attribute_means.csv line 4: stimulus 'abc' is not a whole number" in error_line(capsys.readouterr().err)
    london = fake_london(tmp_path / "london", with_raw=False)
    edit_csv(london / "attractiveness_by_rater_group.csv", 0, "face_id", "1")
    insert_blank_line(london / "attractiveness_by_rater_group.csv", 2)
    assert import_dataset.main(["london", str(london), str(tmp_path / "out2")]) == 2
    assert "line 3: face_id '1' is not of the form X001" in error_line(capsys.readouterr().err)


def test_omi_zip_matching_no_face_is_an_error(tmp_path, capsys):
    source = fake_omi(tmp_path / "omi")
    means = pd.read_csv(source / "attribute_means.csv")
    means.assign(stimulus=means.stimulus + 100).to_csv(source / "attribute_means.csv", index=False)
    assert import_dataset.main(["omi", str(source), str(tmp_path / "out")]) == 2
    assert "none of its stimulus values" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "out" / "ratings_per_rater.csv").exists()


def test_london_text_rating_is_dropped_with_a_warning(tmp_path, capsys):
    source = fake_london(tmp_path / "london")
    lines = (source / "london_faces_ratings.csv").read_bytes().decode().split("\r")
    lines[1] = "female,men,20,x,2,3"  # X001 by the first female rater
    (source / "london_faces_ratings.csv").write_bytes("\r".join(lines).encode())
    assert import_dataset.main(["london", str(source), str(tmp_path / "out")]) == 0
    assert "dropping 1 per-rater row(s) with no numeric rating" in capsys.readouterr().err
    ratings = pd.read_csv(tmp_path / "out" / "ratings.csv", dtype={"identity": str})
    assert ratings.query("identity == '001' and group == 'female_raters'").rating.item() == 3.0  # the other rater


def test_summary_face_ids_read_as_text(tmp_path, capsys):
    london = fake_london(tmp_path / "london", with_raw=False)
    edit_csv(london / "attractiveness_by_rater_group.csv", 0, "face_id", "1")
    assert import_dataset.main(["london", str(london), str(tmp_path / "out")]) == 2
    assert "line 2: face_id '1' is not of the form X001" in error_line(capsys.readouterr().err)
    threedsk = tmp_path / "3dsk"
    touch_images(threedsk / "images", ["1.jpg", "2.jpg"])
    pd.DataFrame({"face_id": [1, 2], "att_female_raters": [1.0, 2.0], "att_male_raters": [2.0, 3.0]}
                 ).to_csv(threedsk / "ratings_by_rater_group.csv", index=False)
    pd.DataFrame({"face_id": [2, 1]}).to_csv(threedsk / "avg_3dsk_info.csv", index=False)  # the published order
    imported = import_3dsk(threedsk)
    assert list(pd.unique(imported.ratings.image)) == ["2.jpg", "1.jpg"]


def test_london_raters_are_named_by_their_one_based_row(tmp_path):
    singles = import_london(fake_london(tmp_path / "london")).per_rater
    assert sorted(singles.rater.unique()) == ["london_0001", "london_0002", "london_0003"]
    first = singles[(singles.rater == "london_0001") & (singles.identity == "001")]
    assert first.group.item() == "female_raters" and first.rating.item() == 1.0  # row "female,men,20,1,2,3"


def test_omi_pseudo_raters_keep_their_row_in_the_raw_file(tmp_path):
    """Repeat trials are dropped but leave their row number unused: a pseudo-rater names one raw line."""
    per_rater = import_omi(fake_omi(tmp_path / "omi")).per_rater
    cell = per_rater[(per_rater.image == "1.jpg") & (per_rater.trait == "trustworthy")]
    assert dict(zip(cell.rater, cell.rating)) == {"omi_row0": 20, "omi_row1": 21, "omi_row2": 22, "omi_row4": 24}
