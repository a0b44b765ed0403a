"""permutation_test.py and cross_validate.py on identity designs they cannot handle: one line naming the file."""
import numpy as np
import pandas as pd
import pytest

import cross_validate
import permutation_test
from conftest import write_config


def keep_images(tiny_demo, tmp_path, counts: list, **sections):
    """A config whose ratings keep the first counts[i] images of the i-th identity (and no further identity)."""
    ratings = pd.read_csv(tiny_demo / "ratings.csv", dtype=str, keep_default_na=False)
    kept = [image for identity, n in zip(sorted(ratings.identity.unique()), counts)
            for image in sorted(ratings.image[ratings.identity == identity].unique())[:n]]
    path = tmp_path / "ratings.csv"
    ratings[ratings.image.isin(kept)].to_csv(path, index=False)
    return write_config(tmp_path / "c.yaml", tiny_demo, tmp_path, data={"ratings": str(path)}, **sections), path


def error_line(capsys, argv, script=permutation_test) -> str:
    with pytest.raises(SystemExit) as caught:
        script.main(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def test_identities_that_no_permutation_can_move_are_refused_before_the_features(tiny_demo, tmp_path, capsys):
    config, ratings = keep_images(tiny_demo, tmp_path, [3, 2, 1], cv={"n_folds": 2})
    assert error_line(capsys, ["--config", str(config)]) == (
        f"error: {ratings}: each of the 3 identities has an image count no other identity has (1, 2, 3 images), and "
        f"identity permutations swap only identities with as many images, so no rating can move between identities "
        f"and the permutation null is degenerate; give every image count to at least 2 identities (e.g. as many "
        f"images to each)")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "results" / "permutation_summary.csv").exists()


@pytest.mark.parametrize("script", [permutation_test, cross_validate])
def test_a_training_part_of_one_identity_names_the_ratings_file_and_the_keys(tiny_demo, tmp_path, capsys, script):
    config, ratings = keep_images(tiny_demo, tmp_path, [3, 3], cv={"n_folds": 2})
    assert error_line(capsys, ["--config", str(config)], script).startswith(
        f"error: {ratings}: ridge: with cv.n_folds=2, the training part of fold 1 (the other folds' images) holds a "
        f"single identity, but the inner cross-validation (ridge.inner_folds)")
    assert not [p.name for p in (tmp_path / "results").glob("*.csv")]


def test_identities_that_keep_their_ratings_are_announced(tiny_demo, tmp_path, capsys):
    config, _ = keep_images(tiny_demo, tmp_path, [3, 3, 3, 2], cv={"n_folds": 2})
    permutation_test.main(["--config", str(config), "--trait", "warm", "--group", "ASD"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "image count no other" in line]
    assert warnings == [("warning: 1 of 4 identities have an image count no other identity has (2 images), so "
                         "identity permutations (which swap only identities with as many images) leave their ratings "
                         "in place: the p-value is conservative (see n_fixed_identities)")]
    summary = pd.read_csv(tmp_path / "results" / "permutation_summary.csv")
    assert summary.n_fixed_identities.tolist() == [1]


def test_undefined_permuted_r_are_left_out_of_the_summary_as_of_p(tiny_demo, tmp_path, capsys, monkeypatch):
    """A permuted fit with constant predictions has no r: p leaves it out, so must n, the null mean and sd."""
    from facetraits import training
    monkeypatch.setattr(training, "permutation_null", lambda *args: np.array([0.05, np.nan, -0.1, 0.02]))
    config, _ = keep_images(tiny_demo, tmp_path, [3, 3, 3, 3], cv={"n_folds": 2})
    permutation_test.main(["--config", str(config), "--trait", "warm", "--group", "ASD"])
    assert "1 of 4 permuted r undefined" in capsys.readouterr().err
    row = pd.read_csv(tmp_path / "results" / "permutation_summary.csv").iloc[0]
    assert row.n_permutations == 3
    assert row.null_mean == pytest.approx(np.mean([0.05, -0.1, 0.02]))
    assert row.null_sd == pytest.approx(np.std([0.05, -0.1, 0.02], ddof=1))
