"""Face space: seeded t-SNE of each model's head features, and the figure train_regression.py writes."""
import json

import numpy as np
import pytest

from facetraits import config, face_space, outputs, plots
from facetraits.data import Dataset


def two_clusters(n=24, seed=0):
    """Conv maps (n, 2, 2, 8) of two well-separated kinds of face; ratings follow the kind."""
    rng = np.random.default_rng(seed)
    kind = np.arange(n) % 2
    maps = rng.normal(0, 0.3, (n, 2, 2, 8)) + 3.0 * kind[:, None, None, None] * rng.normal(0, 1, 8)
    return {"block5_pool": maps.astype(np.float32)}, kind


def test_embedding_is_seeded_and_keeps_neighbours():
    maps, kind = two_clusters()
    x = maps["block5_pool"].mean(axis=(1, 2))
    first, again = face_space.embed(x, seed=3), face_space.embed(x, seed=3)
    np.testing.assert_array_equal(first, again)
    distance = np.linalg.norm(first[:, None] - first[None], axis=-1)
    same = kind[:, None] == kind[None]
    assert distance[same & ~np.eye(len(kind), dtype=bool)].mean() < 0.5 * distance[~same].mean()


@pytest.mark.parametrize("n", [4, 9, 500])
def test_perplexity_stays_below_the_number_of_faces(n):
    assert 1 <= face_space.perplexity_for(n) < n and face_space.perplexity_for(n) <= face_space.MAX_PERPLEXITY


class Ratings(Dataset):
    def __init__(self, y):
        self.y = y

    def target(self, group, trait):
        return self.y if group == "ASD" else -self.y


@pytest.mark.slow
def test_face_space_figure_marks_the_extremes(tmp_path):
    maps, kind = two_clusters(seed=1)
    y = np.linspace(1, 7, len(kind))
    cfg = config.load(None, [f"output.models_dir={tmp_path}", "explain.n_extremes=3", "seed=5"])
    for group in ("ASD", "NT"):
        outputs.write_json(tmp_path / f"{group}__warm.json", {"settings": {"layers": "block5_pool", "grid": 1}})
    spaces = face_space.trained_spaces(maps, Ratings(y), [("ASD", "warm"), ("NT", "warm")], cfg)
    assert [s.title for s in spaces] == ["ASD__warm: block5_pool@1", "NT__warm: block5_pool@1"]
    assert spaces[0].highest.tolist() == [23, 22, 21] and spaces[0].lowest.tolist() == [2, 1, 0]
    assert spaces[1].highest.tolist() == [0, 1, 2]  # NT's ratings run the other way
    np.testing.assert_array_equal(spaces[0].xy, face_space.embed(maps["block5_pool"].mean(axis=(1, 2)), 5))
    fig = plots.face_space(spaces)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["3 highest-rated", "3 lowest-rated"]
    assert outputs.save_figure(fig, tmp_path / "face_space.png").stat().st_size > 1000


def test_train_regression_writes_the_face_space(trained):
    cfg = config.load(trained)
    assert (cfg.output.fig_dir / "face_space.png").stat().st_size > 1000
    record = json.loads((cfg.output.models_dir / "ASD__warm.json").read_text())
    assert set(record["settings"]) >= {"layers", "grid"}


def test_the_embedding_does_not_depend_on_each_features_scale():
    """Features are standardised first: a VGG16 channel 1000 x larger than another cannot dominate."""
    x = np.random.default_rng(0).normal(size=(20, 4))
    np.testing.assert_allclose(face_space.embed(x, 3), face_space.embed(x * [1, 1000, 2, 5], 3), atol=1e-4)
