"""Bad input found by trying the project as a new user: each is one line naming the file and key or line."""
import os
import signal
import stat
import subprocess
import sys
import time

import pandas as pd
import pytest

import train_regression
from facetraits import config, data, landmarks, outputs
from facetraits.errors import ConfigError, DataError
from conftest import ROOT, synthetic_face, write_blob_dataset, write_config


def one_line(caught) -> str:
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("seed", [-1, 2**33])
def test_seed_outside_32_bits_stops_the_run_before_anything_is_written(blob_data, tmp_path, capsys, seed):
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    with pytest.raises(SystemExit) as caught:
        train_regression.main(["--config", str(path), "--set", f"seed={seed}"])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert f"--set seed={seed}: seed: {seed} is out of range [0, 4294967295]" in err  # the command line, not the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_largest_32_bit_seed_is_accepted():
    assert config.load(None, [f"seed={2**32 - 1}"]).seed == 2**32 - 1


@pytest.mark.parametrize("text", ["", "\n# only a comment\n"])
def test_empty_config_file_is_an_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert one_line(caught) == f"{path}: config file is empty (no settings); copy the shipped config.yaml"


@pytest.mark.parametrize("override, name", [("groups=[ASD, N__T]", "N__T"), ("traits=[warm, very__strong]", "very__strong")])
def test_group_or_trait_name_with_the_model_separator_is_refused(blob_data, tmp_path, capsys, override, name):
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    with pytest.raises(SystemExit) as caught:
        train_regression.main(["--config", str(path), "--set", override])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: --set {override}: {name!r} contains '__', which separates group and trait in model file "
                   f"names (<group>__<trait>.h5)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.fixture
def with_landmarks(tmp_path):
    """4 rated 40 px images, each with a synthetic face's landmarks (image order = file order)."""
    root = write_blob_dataset(tmp_path / "d", n_identities=2, per_identity=2, size=40)
    images = sorted(pd.read_csv(root / "ratings.csv").image.unique())
    pd.DataFrame([{"image": name, "point": k, "x": x, "y": y}
                  for name in images for k, (x, y) in enumerate(synthetic_face(40))]).to_csv(root / "landmarks.csv",
                                                                                       index=False)
    return root


def landmarks_of(root, tmp_path):
    cfg = config.load(write_config(tmp_path / "c.yaml", root, tmp_path))
    return landmarks.dataset_landmarks(cfg, data.load(cfg), (32, 32))


def edit_landmarks(root, line, **values):
    table = pd.read_csv(root / "landmarks.csv", dtype=str)
    for column, value in values.items():
        table.loc[line - 2, column] = value
    table.to_csv(root / "landmarks.csv", index=False)


def test_non_numeric_landmark_coordinate_names_file_and_line(with_landmarks, tmp_path):
    edit_landmarks(with_landmarks, 75, y="12,5")
    with pytest.raises(DataError) as caught:
        landmarks_of(with_landmarks, tmp_path)
    assert one_line(caught) == f"{with_landmarks / 'landmarks.csv'} line 75: y '12,5' is not a number"


def test_landmark_line_counts_blank_lines(with_landmarks, tmp_path):
    edit_landmarks(with_landmarks, 75, y="12,5")
    path = with_landmarks / "landmarks.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:10] + [""] + lines[10:]) + "\n")
    with pytest.raises(DataError) as caught:
        landmarks_of(with_landmarks, tmp_path)
    assert one_line(caught) == f"{path} line 76: y '12,5' is not a number"


def test_landmarks_outside_the_image_name_file_and_line(with_landmarks, tmp_path):
    table = pd.read_csv(with_landmarks / "landmarks.csv")
    table.loc[table.image == "p01_0.png", ["x", "y"]] *= 4  # as if from the 160 px original
    table.to_csv(with_landmarks / "landmarks.csv", index=False)
    with pytest.raises(DataError) as caught:
        landmarks_of(with_landmarks, tmp_path)
    assert one_line(caught) == (f"{with_landmarks / 'landmarks.csv'} line {2 + 2 * 68}: point 0 of image p01_0.png "
                                f"at (31.2, 70.2) lies outside the 40x40 image")


def test_jaw_points_a_little_outside_a_cropped_face_are_accepted(with_landmarks, tmp_path):
    table = pd.read_csv(with_landmarks / "landmarks.csv")
    table.loc[table.image == "p00_0.png", "x"] -= 12  # jaw 4 px left of the image edge
    table.to_csv(with_landmarks / "landmarks.csv", index=False)
    landmarks, missing = landmarks_of(with_landmarks, tmp_path)
    assert len(landmarks) == 4 and missing == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"])
def test_outputs_get_the_users_umask_not_owner_only(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        outputs.write_csv(tmp_path / "table.csv", pd.DataFrame({"a": [1]}))
        with outputs.atomic_path(tmp_path / "model.h5") as tmp:
            tmp.write_bytes(b"weights")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "table.csv").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "model.h5").stat().st_mode) == mode


def test_temp_file_of_a_killed_write_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "ASD__warm.h5"
    killed = ("import os, signal, sys\nfrom facetraits import outputs\n"
              "with outputs.atomic_path(sys.argv[1]) as tmp:\n"
              "    tmp.write_bytes(b'half a model')\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    child = subprocess.run([sys.executable, "-c", killed, str(target)], cwd=ROOT)
    assert child.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob(".ASD__warm.*.h5.tmp"))) == 1
    with outputs.atomic_path(target) as tmp:
        tmp.write_bytes(b"a whole model")
    assert [p.name for p in tmp_path.iterdir()] == ["ASD__warm.h5"]


def test_only_stale_temp_files_of_the_same_target_are_removed(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", ""])
    finished.wait()
    here, alive = outputs.HOST, os.getpid()
    names = {  # name: (untouched for 2 hours?, kept?)
        f".t.{finished.pid}@{here}.k2j3h4l5.csv.tmp": (False, False),  # this machine, its process gone
        f".t.{alive}@{here}.a1b2c3d4.csv.tmp": (True, True),  # a running writer, however old
        ".t.q9w8e7r6.csv.tmp": (False, True),  # no pid (older naming), recent
        ".t.z1x2c3v4.csv.tmp": (True, False),  # no pid, old
        ".t.1@elsewhere.m5n6b7v8.csv.tmp": (False, True),  # another machine, recent
        ".t.1@elsewhere.p0o9i8u7.csv.tmp": (True, False),  # another machine, old
        f".u.{finished.pid}@{here}.k2j3h4l5.csv.tmp": (True, True),  # another target (u.csv)
        f".t.{finished.pid}@{here}.k2j3h4l5.npy.tmp": (True, True),  # another target (t.npy)
        "t.csv.tmp": (True, True),  # not a temporary file of ours
    }
    two_hours_ago = time.time() - 7200
    for name, (old, _) in names.items():
        (tmp_path / name).write_text("partial")
        if old:
            os.utime(tmp_path / name, (two_hours_ago, two_hours_ago))
    outputs.write_csv(tmp_path / "t.csv", pd.DataFrame({"a": [1]}))
    kept = {p.name for p in tmp_path.iterdir()} - {"t.csv"}
    assert kept == {name for name, (_, keep) in names.items() if keep}


def test_landmarks_of_wide_and_tall_images_are_checked_against_their_own_width_and_height(with_landmarks, tmp_path):
    """A face stretched across an 80 x 40 image (x up to 70) and one down a 40 x 80 image (y up to 70) are
    inside their images, however far beyond the other side's length."""
    from PIL import Image
    table = pd.read_csv(with_landmarks / "landmarks.csv")
    for name, (width, height), column in (("p00_0.png", (80, 40), "x"), ("p00_1.png", (40, 80), "y")):
        Image.new("RGB", (width, height), (90, 90, 90)).save(with_landmarks / "images" / name)
        table.loc[table.image == name, column] *= 2
    table.to_csv(with_landmarks / "landmarks.csv", index=False)
    points, missing = landmarks_of(with_landmarks, tmp_path)
    assert len(points) == 4 and missing == []
