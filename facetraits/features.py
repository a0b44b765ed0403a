"""Frozen VGG16 conv features, extracted once per image and cached on disk.

With a frozen base the conv output is a pure function of (image bytes, weights, input size), so
every model, fold and permutation trains on the cache instead of re-running VGG16. The cache
key holds all three: change an image, the weights or the input size and only what changed is
extracted again. Layout: <cache_dir>/features/<weights+size key>/<image sha256>.npy
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from facetraits import data, model, outputs
from facetraits.config import ModelConfig

EXTRACTION_BATCH = 32
# Bump when preprocess() or the resizing in data.load_image changes: old features become invalid.
PREPROCESSING_VERSION = "vgg16-caffe-bilinear-1"


def cache_folder(cache_dir: Path, base, input_size: int) -> Path:
    key = hashlib.sha256(f"{model.weights_digest(base)}|{input_size}|{PREPROCESSING_VERSION}".encode())
    return Path(cache_dir) / "features" / key.hexdigest()[:20]


def load_or_extract(dataset: data.Dataset, cfg: ModelConfig, cache_dir: Path, base=None, seed: int = 0) -> np.ndarray:
    """Conv features (N, h, w, 512) float32 in dataset order, extracting only images not cached.

    `seed` only matters for model.weights=none (which random VGG16)."""
    base = base if base is not None else model.build_base(cfg, seed)
    folder = cache_folder(cache_dir, base, cfg.input_size)
    files = [folder / f"{digest}.npy" for digest in dataset.digests]
    todo = [i for i, f in enumerate(files) if not f.is_file()]
    if todo:
        extract(base, [dataset.paths[i] for i in todo], [files[i] for i in todo], cfg.input_size)
    else:
        print(f"features: all {len(files)} images cached in {folder}", file=sys.stderr)
    return np.stack([np.load(f) for f in files])


def extract(base, paths, files, input_size: int, batch_size: int = EXTRACTION_BATCH) -> None:
    """Run images through the frozen base in batches; write one .npy per image, atomically."""
    print(f"features: extracting {len(paths)} images at {input_size}x{input_size}", file=sys.stderr)
    progress = outputs.Progress(len(paths), "features", "images")
    start = time.perf_counter()
    for first in range(0, len(paths), batch_size):
        chunk = slice(first, first + batch_size)
        images = data.load_images(paths[chunk], input_size)
        conv = base.predict(model.preprocess(images), batch_size=batch_size, verbose=0).astype(np.float32)
        for array, path in zip(conv, files[chunk]):
            outputs.write_npy(path, array)
        progress.update(len(images))
    print(f"features: {len(paths)} images in {time.perf_counter() - start:.1f} s", file=sys.stderr)


def pooled(features: np.ndarray, pooling: str) -> np.ndarray:
    """The head's first step in NumPy (for the closed-form ridge null model)."""
    return features.mean(axis=(1, 2)) if pooling == "gap" else features.reshape(len(features), -1)
