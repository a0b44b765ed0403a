"""Shared fixtures: tiny datasets and configs, so every test runs in seconds on a CPU."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from facetraits import config

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def synthetic_face(size=128, shift=(0.0, 0.0), scale=1.0):
    """68 iBUG points of a frontal face in a size x size image, scaled about the centre and shifted."""
    p = np.zeros((68, 2))
    theta = np.pi - np.arange(17) * np.pi / 16
    p[0:17] = np.c_[0.5 + 0.3 * np.cos(theta), 0.45 + 0.43 * np.sin(theta)]
    brow_x = np.linspace(0.27, 0.45, 5)
    brow_y = 0.33 - 0.025 * np.sin(np.linspace(0, np.pi, 5))
    p[17:22] = np.c_[brow_x, brow_y]
    p[22:27] = np.c_[1.0 - brow_x[::-1], brow_y[::-1]]
    p[27:31] = np.c_[np.full(4, 0.5), [0.42, 0.47, 0.52, 0.57]]
    p[31:36] = np.c_[[0.45, 0.475, 0.5, 0.525, 0.55], [0.60, 0.61, 0.62, 0.61, 0.60]]
    for start, cx in ((36, 0.37), (42, 0.63)):
        p[start:start + 6] = np.c_[cx + np.array([-0.06, -0.02, 0.02, 0.06, 0.02, -0.02]),
                                   0.42 + np.array([0.0, -0.025, -0.025, 0.0, 0.025, 0.025])]
    p[48:60] = np.c_[[0.40, 0.43, 0.46, 0.50, 0.54, 0.57, 0.60, 0.57, 0.54, 0.50, 0.46, 0.43],
                     [0.72, 0.695, 0.685, 0.69, 0.685, 0.695, 0.72, 0.745, 0.755, 0.76, 0.755, 0.745]]
    p[60:68] = np.c_[[0.42, 0.46, 0.50, 0.54, 0.58, 0.54, 0.50, 0.46],
                     [0.72, 0.715, 0.715, 0.715, 0.72, 0.725, 0.725, 0.725]]
    centre = np.array([0.5, 0.5])
    return ((p - centre) * scale + centre) * (size - 1) + np.asarray(shift)


def write_blob_dataset(root: Path, n_identities=4, per_identity=3, size=40, seed=0) -> Path:
    """Images whose rating is their blob brightness (plus an identity offset): quick to make, learnable."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for identity in range(n_identities):
        for k in range(per_identity):
            name = f"p{identity:02d}_{k}.png"
            level = rng.uniform(0, 1)
            pixels = np.full((size, size, 3), 40, np.uint8)
            pixels[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = int(60 + 190 * level)
            Image.fromarray(pixels).save(root / "images" / name)
            for group, trait, value in (("ASD", "warm", level), ("NT", "warm", 1 - level),
                                        ("ASD", "strong", identity / n_identities), ("NT", "strong", level)):
                rows.append({"image": name, "identity": f"p{identity:02d}", "group": group, "trait": trait,
                             "rating": round(1 + 6 * value, 3)})
    pd.DataFrame(rows).to_csv(root / "ratings.csv", index=False)
    return root


def write_config(path: Path, data_root: Path, outputs: Path, **sections) -> Path:
    """A config for tiny runs: random weights, 32 px input, a small mlp, few epochs."""
    settings = {
        "data": {"ratings": str(data_root / "ratings.csv"), "images": str(data_root / "images"),
                 "landmarks": str(data_root / "landmarks.csv") if (data_root / "landmarks.csv").exists() else None},
        "model": {"weights": "none", "input_size": 32, "dense_units": 16},
        # the shipped candidates at 32 px: block4_pool is 2 x 2 there, block5_pool 1 x 1
        "ridge": {"feature_sets": [{"layers": ["block5_pool"], "grid": 1},
                                   {"layers": ["block4_pool", "block5_pool"], "grid": 1},
                                   {"layers": ["block4_pool"], "grid": 2}]},
        "training": {"epochs": 3, "batch_size": 8, "learning_rate": 0.003, "early_stopping_patience": 2},
        "cv": {"n_folds": 3},
        "permutation": {"n_permutations": 20},
        "explain": {"batch_size": 4, "n_extremes": 2, "faithfulness_images": 4, "faithfulness_steps": 4},
        "output": {"results_dir": str(outputs / "results"), "fig_dir": str(outputs / "fig"),
                   "models_dir": str(outputs / "models"), "cache_dir": str(outputs / "cache")},
    }
    for section, values in sections.items():
        settings.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="session")
def blob_data(tmp_path_factory) -> Path:
    return write_blob_dataset(tmp_path_factory.mktemp("blobs"))


@pytest.fixture
def blob_config(blob_data, tmp_path) -> Path:
    return write_config(tmp_path / "config.yaml", blob_data, tmp_path)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A tiny version of the demo dataset (same generator, 6 identities x 3 faces, 48 px)."""
    from facetraits import demo
    root = tmp_path_factory.mktemp("tiny_demo")
    demo.generate(root, seed=1, n_identities=6, images_per_identity=3, size=48)
    return root


def pytest_collection_modifyitems(items):
    """Every test that uses `trained` is slow: whichever runs first pays for training four models,
    so marking only the slow-looking ones would move that cost onto the next one."""
    for item in items:
        if "trained" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def trained(tiny_demo, tmp_path_factory) -> Path:
    """A config whose four models are trained once for the whole session; returns the config path."""
    import train_regression
    outputs = tmp_path_factory.mktemp("trained")
    path = write_config(outputs / "config.yaml", tiny_demo, outputs)
    train_regression.main(["--config", str(path)])
    return path


# lrp_analysis.py for one model only, quickly: ASD warm, no faithfulness test, no overlays
ONE_MODEL = ["--group", "ASD", "--trait", "warm", "--skip-faithfulness", "--set", "explain.overlays=false"]


@pytest.fixture
def trained_copy(trained, tmp_path) -> Path:
    """The session's trained models and feature cache, copied (so they can be damaged) with empty
    results and figure folders; returns the copy's config path."""
    for folder in ("models", "cache"):
        shutil.copytree(trained.parent / folder, tmp_path / folder)
    return write_config(tmp_path / "c.yaml", config.load(trained).data.ratings.parent, tmp_path)
