"""Data contract: long/wide ratings, rater averaging, image modes, and one-line errors for bad input."""
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facetraits import config, data
from facetraits.errors import DataError
from conftest import write_blob_dataset, write_config


@pytest.fixture
def dataset_dir(tmp_path):
    return write_blob_dataset(tmp_path / "d", n_identities=3, per_identity=2, size=24)


def load(root, tmp_path, **data_settings):
    cfg_path = write_config(tmp_path / "c.yaml", root, tmp_path, data=data_settings)
    return data.load(config.load(cfg_path))


def edit_ratings(root, change):
    table = pd.read_csv(root / "ratings.csv", dtype=str, keep_default_na=False)
    table = change(table)
    table.to_csv(root / "ratings.csv", index=False)


def test_loads_in_sorted_image_order_with_identities(dataset_dir, tmp_path):
    dataset = load(dataset_dir, tmp_path)
    assert list(dataset.images) == sorted(dataset.images) and len(dataset) == 6
    assert list(dataset.identities) == ["p00", "p00", "p01", "p01", "p02", "p02"]
    raw = pd.read_csv(dataset_dir / "ratings.csv")
    expected = raw[(raw.group == "NT") & (raw.trait == "warm")].set_index("image").rating.sort_index()
    np.testing.assert_allclose(dataset.target("NT", "warm"), expected.to_numpy())
    assert len(set(dataset.digests)) == 6


def test_per_rater_rows_are_averaged(dataset_dir, tmp_path):
    def two_raters(table):
        first = table.assign(rater="r1")
        second = table.assign(rater="r2", rating=(table.rating.astype(float) + 2).astype(str))
        return pd.concat([first, second])
    before = load(dataset_dir, tmp_path).target("ASD", "warm")
    assert load(dataset_dir, tmp_path).raters is None
    edit_ratings(dataset_dir, two_raters)
    loaded = load(dataset_dir, tmp_path)
    np.testing.assert_allclose(loaded.target("ASD", "warm"), before + 1)
    assert len(loaded.raters) == 2 * 6 * 4 and set(loaded.raters.rater) == {"r1", "r2"}  # kept for compare_groups


def write_wide(root) -> pd.DataFrame:
    """root/wide.csv: the ratings in wide form (one column per group_trait); returns its table."""
    table = pd.read_csv(root / "ratings.csv")
    table["column"] = table.group + "_" + table.trait
    wide = table.pivot_table(index=["image", "identity"], columns="column", values="rating").reset_index()
    wide.to_csv(root / "wide.csv", index=False)
    return wide


def test_wide_form_matches_long_form(dataset_dir, tmp_path):
    long = load(dataset_dir, tmp_path)
    write_wide(dataset_dir)
    loaded = load(dataset_dir, tmp_path, ratings=str(dataset_dir / "wide.csv"), format="wide")
    pd.testing.assert_frame_equal(loaded.ratings, long.ratings)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16", "CMYK"])
def test_every_image_mode_loads_as_rgb(tmp_path, mode):
    pixels = (np.arange(30 * 20 * 3) % 255).astype(np.uint8).reshape(20, 30, 3)
    image = Image.fromarray(pixels).convert(mode) if mode != "I;16" else Image.fromarray(pixels[..., 0]).convert("I;16")
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    image.save(path)
    array = data.load_image(path, 16)
    assert array.shape == (16, 16, 3) and array.dtype == np.uint8


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200  # red, fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    assert (data.load_image(tmp_path / "t.png", 8) == 255).all()


def expect_error(root, tmp_path, *fragments, **data_settings):
    with pytest.raises(DataError) as caught:
        load(root, tmp_path, **data_settings)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_image(dataset_dir, tmp_path):
    (dataset_dir / "images" / "p01_1.png").unlink()
    expect_error(dataset_dir, tmp_path, "p01_1.png", "image file not found", "ratings.csv line")


def test_corrupt_image(dataset_dir, tmp_path):
    (dataset_dir / "images" / "p01_0.png").write_bytes(b"not an image at all")
    expect_error(dataset_dir, tmp_path, "p01_0.png", "cannot read image")


def test_truncated_image(dataset_dir, tmp_path):
    path = dataset_dir / "images" / "p02_1.png"
    path.write_bytes(path.read_bytes()[:-40])
    expect_error(dataset_dir, tmp_path, "p02_1.png", "cannot read image")


def test_missing_column(dataset_dir, tmp_path):
    edit_ratings(dataset_dir, lambda t: t.drop(columns="identity"))
    expect_error(dataset_dir, tmp_path, "ratings.csv", "missing column(s) identity")


def test_non_numeric_rating_names_the_line(dataset_dir, tmp_path):
    def bad(table):
        table.loc[4, "rating"] = "high"
        return table
    edit_ratings(dataset_dir, bad)
    expect_error(dataset_dir, tmp_path, "ratings.csv line 6", "'high' is not a finite number")


def test_line_number_counts_blank_lines(dataset_dir, tmp_path):
    """pandas skips blank lines; the error must still name the line an editor shows."""
    def bad(table):
        table.loc[4, "rating"] = "high"
        return table
    edit_ratings(dataset_dir, bad)
    path = dataset_dir / "ratings.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + ["", "  "] + lines[3:]) + "\n\n")  # two blank lines before line 6
    expect_error(dataset_dir, tmp_path, "ratings.csv line 8", "'high' is not a finite number")


@pytest.mark.parametrize("value, what", [("", "rating is empty"), ("nan", "'nan' is not a finite number"),
                                         ("inf", "'inf' is not a finite number")])
def test_nan_or_empty_rating(dataset_dir, tmp_path, value, what):
    def bad(table):
        table.loc[2, "rating"] = value
        return table
    edit_ratings(dataset_dir, bad)
    expect_error(dataset_dir, tmp_path, "ratings.csv line 4", what)


def test_duplicate_rows(dataset_dir, tmp_path):
    edit_ratings(dataset_dir, lambda t: pd.concat([t, t.iloc[[3]]]))
    message = expect_error(dataset_dir, tmp_path, "ratings.csv line 26", "duplicates line 5")
    assert "not used" not in message  # no other column to blame


def test_misnamed_rater_column_is_named_in_the_duplicate_error(dataset_dir, tmp_path):
    """Two raters' rows under a `Rater` column look like duplicates: the error says which column was ignored."""
    edit_ratings(dataset_dir, lambda t: pd.concat([t.assign(Rater="r1"), t.assign(Rater="r2")]))
    expect_error(dataset_dir, tmp_path, "ratings.csv line 26: duplicates line 2",
                 "; columns not used: Rater; a rater column must be named rater)")


def test_empty_cell_of_a_wide_file_names_its_column(dataset_dir, tmp_path):
    wide = write_wide(dataset_dir)
    wide.loc[3, "NT_warm"] = None
    wide.to_csv(dataset_dir / "wide.csv", index=False)
    expect_error(dataset_dir, tmp_path, "wide.csv line 5: rating (column NT_warm) is empty",
                 ratings=str(dataset_dir / "wide.csv"), format="wide")


def test_header_only_ratings_file_has_no_data_rows(dataset_dir, tmp_path):
    (dataset_dir / "ratings.csv").write_text("image,identity,group,trait,rating\n")
    expect_error(dataset_dir, tmp_path, f"{dataset_dir / 'ratings.csv'}: no data rows")


def test_image_without_a_rating_for_a_group_and_trait(dataset_dir, tmp_path):
    edit_ratings(dataset_dir, lambda t: t[~((t.image == "p00_1.png") & (t.group == "NT") & (t.trait == "warm"))])
    expect_error(dataset_dir, tmp_path, "image p00_1.png has no rating for group NT, trait warm")


def test_image_with_two_identities(dataset_dir, tmp_path):
    def bad(table):
        table.loc[1, "identity"] = "someone_else"
        return table
    edit_ratings(dataset_dir, bad)
    # row 1 is file line 3, the odd one out; line 2 holds the image's first identity
    expect_error(dataset_dir, tmp_path, "ratings.csv line 3: image p00_0.png has identity someone_else here but p00 on line 2")

    def first_is_odd(table):
        table.loc[1, "identity"], table.loc[0, "identity"] = "p00", "someone_else"
        return table
    edit_ratings(dataset_dir, first_is_odd)  # the image's other lines agree: the first line is the one to fix
    expect_error(dataset_dir, tmp_path, "ratings.csv line 2: image p00_0.png has identity someone_else here but p00 on line 3")


def test_unknown_group_in_config(dataset_dir, tmp_path):
    cfg_path = write_config(tmp_path / "c.yaml", dataset_dir, tmp_path)
    cfg = config.load(cfg_path, ["groups=[ASD, TD]"])
    with pytest.raises(DataError, match=r"^--set groups=\[ASD, TD\]: 'TD' is not in .*ratings.csv \(found: ASD, NT\)"):
        data.load(cfg)
    cfg_path.write_text("groups: [ASD, TD]\n" + cfg_path.read_text())
    with pytest.raises(DataError, match=rf"^{cfg_path}: groups: 'TD' is not in"):
        data.load(config.load(cfg_path))


def test_an_empty_ratings_file_says_so(dataset_dir, tmp_path):
    (dataset_dir / "ratings.csv").write_text("")
    expect_error(dataset_dir, tmp_path, "ratings.csv: the file is empty")


def test_a_missing_images_folder_is_named_as_a_folder(dataset_dir, tmp_path):
    shutil.rmtree(dataset_dir / "images")
    expect_error(dataset_dir, tmp_path, "images: images folder not found")


def test_missing_ratings_file(tmp_path):
    with pytest.raises(DataError, match="ratings file not found"):
        load(tmp_path / "nowhere", tmp_path)


def test_unrated_image_files_are_reported_once(dataset_dir, tmp_path, capsys):
    shutil.copy(dataset_dir / "images" / "p00_0.png", dataset_dir / "images" / "extra.png")
    load(dataset_dir, tmp_path)
    assert "1 image file(s)" in capsys.readouterr().err
    load(dataset_dir, tmp_path)  # run_all.py's next step: said already
    assert "image file(s)" not in capsys.readouterr().err
    shutil.copy(dataset_dir / "images" / "p00_0.png", dataset_dir / "images" / "extra2.png")
    load(dataset_dir, tmp_path)  # another file left out: said again
    assert "2 image file(s)" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["1e300", "-2e6"])
def test_absurdly_large_rating_names_the_line(dataset_dir, tmp_path, value):
    def bad(table):
        table.loc[3, "rating"] = value
        return table
    edit_ratings(dataset_dir, bad)
    expect_error(dataset_dir, tmp_path, "ratings.csv line 5",
                 f"rating {value!r} is implausibly large (|rating| > 1e+06)")


@pytest.mark.parametrize("mode, suffix", [("I;16", ".png"), ("I;16", ".tif"), ("I;16B", ".tif"), ("I", ".tif")])
def test_16_bit_grey_is_scaled_to_8_bits_not_clipped(tmp_path, mode, suffix):
    grey = np.tile(np.linspace(0, 255, 32).round().astype(np.uint8), (32, 1))
    wide = grey.astype(np.uint16) * 257  # the same picture at 16 bits
    image = (Image.fromarray(wide.astype(np.int32)) if mode == "I"
             else Image.frombytes(mode, (32, 32), wide.astype(">u2" if mode == "I;16B" else "<u2").tobytes()))
    image.save(tmp_path / f"x{suffix}")
    assert Image.open(tmp_path / f"x{suffix}").mode == mode
    np.testing.assert_array_equal(data.load_image(tmp_path / f"x{suffix}", 32), np.stack([grey] * 3, axis=-1))


def test_image_smaller_than_16_pixels_names_the_file(dataset_dir, tmp_path):
    Image.new("RGB", (1, 1)).save(dataset_dir / "images" / "p01_0.png")
    expect_error(dataset_dir, tmp_path, "p01_0.png", "ratings.csv line",
                 "image is only 1x1 pixels (at least 16x16 needed)")


def test_decompression_bomb_is_a_one_line_error(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 24 * 24 // 3)  # PIL refuses more than twice this
    expect_error(dataset_dir, tmp_path, "p00_0.png", "image too large to load", "decompression bomb")


def test_two_images_with_the_same_stem_name_both_files(dataset_dir, tmp_path):
    def jpg_twin(table):
        twin = table[table.image == "p01_1.png"].assign(image="p01_1.jpg")
        return pd.concat([table, twin])
    Image.open(dataset_dir / "images" / "p01_1.png").save(dataset_dir / "images" / "p01_1.jpg")
    edit_ratings(dataset_dir, jpg_twin)
    expect_error(dataset_dir, tmp_path, "ratings.csv line 14: image p01_1.png has the same name stem 'p01_1' as "
                 "image p01_1.jpg (line 26)")


def test_rows_of_unlisted_groups_and_traits_are_left_out_and_said(dataset_dir, tmp_path, capsys):
    edit_ratings(dataset_dir, lambda t: pd.concat([t, t[t.trait == "warm"].assign(trait="kind")]))
    dataset = load(dataset_dir, tmp_path)
    assert [trait for _, trait in dataset.ratings.columns] == ["warm", "strong", "warm", "strong"]
    err = capsys.readouterr().err
    assert "12 row(s) of trait(s) not listed in" in err and "left out (1 trait(s): kind)" in err


@pytest.mark.parametrize("column, typo", [("group", "nt"), ("trait", "Warm"), ("group", "N T")])
def test_name_differing_only_in_case_or_spaces_is_refused(dataset_dir, tmp_path, column, typo):
    right = {"group": "NT", "trait": "warm"}[column]

    def relabel(table):  # one rater's rows (of image p01_0) written another way
        table.loc[(table[column] == right) & (table.image == "p01_0.png"), column] = typo
        return table
    edit_ratings(dataset_dir, relabel)
    expect_error(dataset_dir, tmp_path, f"{column} '{typo}' differs from '{right}' of", "only in case or spaces")


def test_a_groups_rating_of_an_image_is_the_mean_over_its_raters(tmp_path):
    """Three raters (two alike, one 6 points higher): the mean, 2 points up, not the median."""
    root = write_blob_dataset(tmp_path / "d", n_identities=3, per_identity=2, size=24)
    table = pd.read_csv(root / "ratings.csv", dtype=str, keep_default_na=False)
    ratings = table.rating.astype(float)
    pd.concat([table.assign(rater="r1"), table.assign(rater="r2"),
               table.assign(rater="r3", rating=(ratings + 6).astype(str))]).to_csv(root / "ratings.csv", index=False)
    cfg = config.load(write_config(tmp_path / "c.yaml", root, tmp_path))
    one = table[(table.group == "ASD") & (table.trait == "warm")].set_index("image").rating.astype(float).sort_index()
    np.testing.assert_allclose(data.load(cfg).target("ASD", "warm"), one.to_numpy() + 2)


def test_the_identity_subset_is_the_first_by_name_whatever_the_row_order(tmp_path):
    root = write_blob_dataset(tmp_path / "d", n_identities=4, per_identity=2, size=24)
    table = pd.read_csv(root / "ratings.csv", dtype=str, keep_default_na=False)
    table.sort_values("identity", ascending=False).to_csv(root / "ratings.csv", index=False)
    cfg = config.load(write_config(tmp_path / "c.yaml", root, tmp_path, data={"identities": 2}))
    assert sorted(set(data.load(cfg).identities)) == sorted(table.identity.unique())[:2]
