"""The synthetic demo data set: reproducible, well-formed, and carrying the planted ground truth."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facetraits import demo

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"

# The planted weights, written out again here on purpose (not imported from demo.py), so that a
# change of the generator's formula shows up as a failing test.
WEIGHTS = {
    ("ASD", "warm"): {"smile_z": 0.80, "eye_openness_z": 0.20},
    ("NT", "warm"): {"smile_z": 0.25, "eye_openness_z": 0.75},
    ("ASD", "strong"): {"jaw_width_z": 0.75, "brow_lowering_z": 0.25},
    ("NT", "strong"): {"jaw_width_z": 0.25, "brow_lowering_z": 0.75},
}


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pixels_sha(path: Path) -> str:
    with Image.open(path) as im:
        return hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def tables():
    fp = pd.read_csv(DEMO / "face_parameters.csv")
    rt = pd.read_csv(DEMO / "ratings.csv")
    lm = pd.read_csv(DEMO / "landmarks.csv")
    return fp, rt, lm


@pytest.mark.slow
def test_regenerating_gives_the_committed_files(tmp_path):
    assert DEMO.is_dir(), "data/demo is missing: run `python -m facetraits.demo --out data/demo`"
    out = tmp_path / "demo"
    demo.generate(out)  # the defaults are the committed data set
    committed, fresh = _files(DEMO), _files(out)
    assert fresh == committed, "file lists differ: regenerate with `python -m facetraits.demo --out data/demo`"
    differ = []
    for rel in committed:
        a, b = DEMO / rel, out / rel
        if _sha(a) == _sha(b):
            continue
        # A PNG may be re-encoded differently by another zlib build; its pixels must still match.
        if rel.endswith(".png") and _pixels_sha(a) == _pixels_sha(b):
            continue
        differ.append(rel)
    assert not differ, (
        f"{len(differ)} file(s) differ from a fresh generation, e.g. {differ[:5]}: "
        "regenerate with `python -m facetraits.demo --out data/demo`"
    )


def test_shapes(tables):
    fp, rt, lm = tables
    assert list(rt.columns) == ["image", "identity", "group", "trait", "rater", "rating"]
    assert (rt.groupby(["group", "trait"]).rater.nunique() == demo.RATERS_PER_GROUP).all()
    assert rt.groupby("rater").group.nunique().max() == 1  # a rater belongs to one group
    assert rt.rating.isin(range(1, 8)).all()
    assert list(lm.columns) == ["image", "point", "x", "y"]
    for col in ["image", "identity", "smile", "eye_openness", "brow_angle", "jaw_width", "glasses",
                "dx", "dy", "rotation", "scale", "smile_z", "eye_openness_z", "brow_angle_z", "jaw_width_z"]:
        assert col in fp.columns, col
    assert len(fp) == 500 and fp.image.is_unique
    assert fp.identity.nunique() == 50
    assert (fp.groupby("identity").size() == 10).all()
    assert sorted(fp.identity.unique()) == [f"id{i:02d}" for i in range(50)]
    assert (fp.image == fp.identity + "_" + fp.groupby("identity").cumcount().map("{:02d}".format) + ".png").all()
    images = sorted(p.name for p in (DEMO / "images").glob("*.png"))
    assert images == sorted(fp.image)
    with Image.open(DEMO / "images" / images[0]) as im:
        assert im.size == (128, 128) and im.mode == "RGB"

    assert len(rt) == 2000 * demo.RATERS_PER_GROUP
    assert set(rt.group) == {"ASD", "NT"} and set(rt.trait) == {"warm", "strong"}
    assert not rt.duplicated(["image", "group", "trait", "rater"]).any()
    assert set(rt.image) == set(fp.image)
    assert rt.rating.between(1, 7).all()
    assert (rt.merge(fp[["image", "identity"]], on="image", suffixes=("", "_fp")).eval("identity == identity_fp")).all()

    assert len(lm) == 500 * 68
    assert set(lm.image) == set(fp.image)
    assert (lm.groupby("image").point.apply(lambda p: sorted(p) == list(range(68)))).all()
    assert lm.x.between(0, 127).all() and lm.y.between(0, 127).all()
    # 25% glasses, give or take
    assert 0.15 < fp.glasses.mean() < 0.35


def test_landmarks_are_anatomically_ordered(tables):
    _, _, lm = tables
    xy = lm.sort_values(["image", "point"])[["x", "y"]].to_numpy().reshape(-1, 68, 2)
    # upright faces (rotation <= 6 deg): brows above eyes above nose tip above mouth above chin
    brow_y, eye_y = xy[:, 17:27, 1].mean(1), xy[:, 36:48, 1].mean(1)
    nose_y, mouth_y, chin_y = xy[:, 33, 1], xy[:, 48:68, 1].mean(1), xy[:, 8, 1]
    assert (brow_y < eye_y).all() and (eye_y < nose_y).all() and (nose_y < mouth_y).all() and (mouth_y < chin_y).all()
    # image-left parts have smaller x than image-right parts
    assert (xy[:, 0, 0] < xy[:, 16, 0]).all()
    assert (xy[:, 36:42, 0].mean(1) < xy[:, 42:48, 0].mean(1)).all()
    assert (xy[:, 48, 0] < xy[:, 54, 0]).all()


def test_planted_truth(tables):
    fp, rt, _ = tables
    fp = fp.set_index("image")
    terms = fp[["smile_z", "eye_openness_z", "jaw_width_z"]].assign(brow_lowering_z=-fp.brow_angle_z)
    wide = rt.pivot_table(index="image", columns=["group", "trait"], values="rating").loc[fp.index]
    for (group, trait), weights in WEIGHTS.items():
        s = sum(w * terms[k] for k, w in weights.items())
        r = np.corrcoef(s, wide[(group, trait)])[0, 1]
        assert r > 0.9, (group, trait, r)
    corr = lambda a, b: np.corrcoef(a, b)[0, 1]  # noqa: E731
    assert corr(wide[("ASD", "warm")], fp.smile_z) > corr(wide[("NT", "warm")], fp.smile_z) + 0.3
    assert corr(wide[("NT", "warm")], fp.eye_openness_z) > corr(wide[("ASD", "warm")], fp.eye_openness_z) + 0.3
    assert corr(wide[("ASD", "strong")], fp.jaw_width_z) > corr(wide[("NT", "strong")], fp.jaw_width_z) + 0.3
    assert corr(wide[("NT", "strong")], -fp.brow_angle_z) > corr(wide[("ASD", "strong")], -fp.brow_angle_z) + 0.3
    # z-scores are z-scores; jaw width is identity-level; the others vary within identities
    # raters differ: each rater's own ratings follow the drivers with their own weights
    asd_warm = rt[(rt.group == "ASD") & (rt.trait == "warm")].pivot(index="image", columns="rater", values="rating")
    slopes = [np.polyfit(fp.smile_z, asd_warm.loc[fp.index, rater], 1)[0] for rater in asd_warm.columns]
    assert np.std(slopes) > 0.05 and min(slopes) > 0
    for k in ("smile", "eye_openness", "brow_angle", "jaw_width"):
        z = fp[f"{k}_z"]
        assert abs(z.mean()) < 1e-3 and abs(z.std(ddof=0) - 1) < 1e-3, k
        assert np.corrcoef(z, fp[k])[0, 1] > 0.999, k
    within = lambda k: (fp[k] - fp.groupby("identity")[k].transform("mean")).var()  # noqa: E731
    assert within("jaw_width_z") < 1e-8
    assert fp.groupby("identity").jaw_width_z.first().std() > 0.8
    for k in ("smile_z", "eye_openness_z", "brow_angle_z"):
        assert within(k) > 0.4, k


def test_tiny_generate_and_cli(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert demo.main(["--out", str(out), "--identities", "3", "--images-per-identity", "2", "--size", "64",
                      "--seed", "7"]) == 0
    fp = pd.read_csv(out / "face_parameters.csv")
    rt = pd.read_csv(out / "ratings.csv")
    lm = pd.read_csv(out / "landmarks.csv")
    assert list(fp.image) == ["id00_00.png", "id00_01.png", "id01_00.png", "id01_01.png", "id02_00.png", "id02_01.png"]
    for name in fp.image:
        with Image.open(out / "images" / name) as im:
            assert im.size == (64, 64) and im.mode == "RGB"
    assert len(rt) == 6 * 4 * demo.RATERS_PER_GROUP and rt.rating.between(1, 7).all()
    assert len(lm) == 6 * 68
    assert lm.x.between(0, 63).all() and lm.y.between(0, 63).all()
    assert (out / "README.md").read_text().count("SYNTHETIC") >= 1
    # same seed, same bytes; another seed, other images
    again = tmp_path / "again"
    demo.generate(again, seed=7, n_identities=3, images_per_identity=2, size=64)
    assert all(_sha(out / f) == _sha(again / f) for f in _files(out))
    other = tmp_path / "other"
    demo.generate(other, seed=8, n_identities=3, images_per_identity=2, size=64)
    assert _sha(out / "ratings.csv") != _sha(other / "ratings.csv")
    with pytest.raises(SystemExit) as e:
        demo.main(["--help"])
    assert e.value.code == 0
    assert "--images-per-identity" in capsys.readouterr().out
