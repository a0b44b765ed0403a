"""Shared fixtures: tiny datasets and configs, so every test runs in seconds on a CPU."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


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
    """A config for tiny runs: random weights, 32 px input, a small head, few epochs."""
    settings = {
        "data": {"ratings": str(data_root / "ratings.csv"), "images": str(data_root / "images"),
                 "landmarks": str(data_root / "landmarks.csv") if (data_root / "landmarks.csv").exists() else None},
        "model": {"weights": "none", "input_size": 32, "dense_units": 16},
        "training": {"epochs": 3, "batch_size": 8, "learning_rate": 0.003, "early_stopping_patience": 2},
        "cv": {"n_folds": 3},
        "permutation": {"n_permutations": 20},
        "lrp": {"batch_size": 4, "n_extremes": 2, "faithfulness_images": 4, "faithfulness_steps": 4},
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


@pytest.fixture(scope="session")
def trained(tiny_demo, tmp_path_factory) -> Path:
    """A config whose four models are trained once for the whole session; returns the config path."""
    import train_regression
    outputs = tmp_path_factory.mktemp("trained")
    path = write_config(outputs / "config.yaml", tiny_demo, outputs)
    train_regression.main(["--config", str(path)])
    return path
