"""Tests for facetraits.landmarks: reading a landmarks table and dlib detection (no TensorFlow)."""
import importlib.util

import numpy as np
import pandas as pd
import pytest

from conftest import synthetic_face, write_blob_dataset, write_config
from facetraits import config, data, landmarks
from facetraits.landmarks import LandmarkError, detect_landmarks, landmarks_from_frame


def landmark_table(image="face_001.jpg"):
    face = synthetic_face()
    return pd.DataFrame({"image": image, "point": np.arange(68), "x": face[:, 0], "y": face[:, 1]})


def test_landmarks_from_frame_reads_points_in_order():
    table = pd.concat([landmark_table("a.jpg"), landmark_table("b.jpg")]).sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(landmarks_from_frame(table, "b.jpg"), synthetic_face())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t[t["point"] != 30], r"missing points \[30\]"),
        (lambda t: pd.concat([t, t[t["point"] == 5]]), r"duplicated points \[5\]"),
        (lambda t: pd.concat([t, t.head(1).assign(point=68)]), r"unknown points \[68\]"),
        (lambda t: t.iloc[0:0], "no landmarks"),
        (lambda t: t.assign(x=np.where(t["point"] == 2, np.nan, t["x"])), "NaN"),
    ],
)
def test_landmarks_from_frame_errors_name_the_image(edit, message):
    table = edit(landmark_table("face_007.jpg"))
    with pytest.raises(ValueError, match=message) as error:
        landmarks_from_frame(table, "face_007.jpg")
    assert "face_007.jpg" in str(error.value)
    assert isinstance(error.value, LandmarkError)


def test_landmarks_from_frame_reports_missing_columns():
    with pytest.raises(ValueError, match="column"):
        landmarks_from_frame(landmark_table().drop(columns="y"), "face_001.jpg")


@pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None,
    reason="optional packages dlib-bin / face-recognition-models not installed",
)
def test_detect_landmarks_finds_no_face_in_a_blank_image():
    assert detect_landmarks(np.full((120, 100, 3), 128, dtype=np.uint8)) is None


def test_detect_landmarks_rejects_non_uint8_images():
    with pytest.raises(ValueError, match="uint8"):
        detect_landmarks(np.zeros((10, 10, 3), dtype=float))



def test_landmarks_given_as_fractions_of_the_image_are_unusable(tmp_path):
    """0-1 coordinates would put every region into one pixel (all region statistics 0): such images
    are missing, with a reason, and the images with pixel landmarks are kept."""
    root = write_blob_dataset(tmp_path / "d", n_identities=2, per_identity=2, size=40)
    images = sorted(pd.read_csv(root / "ratings.csv").image.unique())
    face = synthetic_face(40)
    rows = [{"image": name, "point": k, "x": x, "y": y}
            for name in images for k, (x, y) in enumerate(face / 39 if name in images[1:3] else face)]
    pd.DataFrame(rows).to_csv(root / "landmarks.csv", index=False)
    cfg = config.load(write_config(tmp_path / "c.yaml", root, tmp_path))
    points, missing = landmarks.dataset_landmarks(cfg, data.load(cfg), (32, 32))
    assert sorted(points) == [images[0], images[3]]
    assert [name for name, _ in missing] == images[1:3]
    assert missing[0][1] == (f"landmarks for image {images[1]!r} span only 0.6 x 0.57 pixels: "
                             f"coordinates look like fractions of the image, expected pixels")


def test_a_face_whose_eye_corners_coincide_is_missing_with_a_reason(tmp_path):
    """No region can be sized on it (eye width 0): reported as missing, the other faces are kept."""
    root = write_blob_dataset(tmp_path / "d", n_identities=2, per_identity=2, size=40)
    images = sorted(pd.read_csv(root / "ratings.csv").image.unique())
    face = synthetic_face(40)
    flat = face.copy()
    flat[[39, 45]] = flat[[36, 42]]
    rows = [{"image": name, "point": k, "x": x, "y": y}
            for name in images for k, (x, y) in enumerate(flat if name == images[2] else face)]
    pd.DataFrame(rows).to_csv(root / "landmarks.csv", index=False)
    cfg = config.load(write_config(tmp_path / "c.yaml", root, tmp_path))
    points, missing = landmarks.dataset_landmarks(cfg, data.load(cfg), (32, 32))
    assert sorted(points) == [images[0], images[1], images[3]]
    assert missing == [(images[2], "degenerate landmarks: eye corners coincide (eye width 0)")]
