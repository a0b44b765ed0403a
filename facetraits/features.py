"""Frozen VGG16 conv features, extracted once per image and layer and cached on disk.

With a frozen base the conv output is a pure function of (image bytes, weights, input size), so
every model, fold and permutation trains on the cache instead of re-running VGG16. The cache
key holds all three: change an image, the weights or the input size and only what changed is
extracted again. Layout: <cache_dir>/features/<weights+size key>/<layer>/<image sha256>.<checksum>.npy
(the checksum, of the array's bytes, finds a damaged entry: cache.checked_name).
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from facetraits import cache, data, model, outputs
from facetraits.backend import keras
from facetraits.config import VGG16_LAYERS, Config, FeatureSet, cell_bounds

EXTRACTION_BATCH = 32
# Bump when preprocess() or the resizing in data.load_image changes: old features become invalid.
PREPROCESSING_VERSION = "vgg16-caffe-bilinear-2"  # 2: 16-bit images scaled, not clipped


def feature_sets(cfg: Config) -> tuple[FeatureSet, ...]:
    """The head's candidate inputs: the ridge's list, or the mlp's single feature set."""
    return cfg.ridge.feature_sets if cfg.model.head == "ridge" else (cfg.model.mlp_features(),)


def needed_layers(cfg: Config) -> list[str]:
    """Every VGG16 layer some candidate feature set reads, in network order."""
    wanted = {layer for feature_set in feature_sets(cfg) for layer in feature_set.layers}
    return [layer for layer in VGG16_LAYERS if layer in wanted]


def cache_folder(cache_dir: Path, base, input_size: int) -> Path:
    key = hashlib.sha256(f"{model.weights_digest(base)}|{input_size}|{PREPROCESSING_VERSION}".encode())
    return Path(cache_dir) / "features" / key.hexdigest()[:20]


def load_or_extract(dataset: data.Dataset, cfg: Config, base=None) -> dict[str, np.ndarray]:
    """{layer: conv maps (N, h, w, c) float32 in dataset order}, extracting only what is not cached."""
    base = base if base is not None else model.build_base(cfg.model, cfg.seed)
    layers = needed_layers(cfg)
    folder = cache_folder(cfg.output.cache_dir, base, cfg.model.input_size)
    files = {layer: [folder / layer / f"{digest}.npy" for digest in dataset.digests] for layer in layers}
    maps = load_cached(files)
    todo = [i for i in range(len(dataset)) if any(maps[layer][i] is None for layer in layers)]
    if todo:
        missing = {layer: [files[layer][i] if maps[layer][i] is None else None for i in todo] for layer in layers}
        extract(base, layers, [dataset.paths[i] for i in todo], missing, cfg.model.input_size)
        maps = load_cached(files)
    else:
        print(f"features: all {len(dataset)} images cached in {folder} ({', '.join(layers)})", file=sys.stderr)
    return {layer: np.stack(arrays) for layer, arrays in maps.items()}


def load_cached(files: dict) -> dict:
    """{layer: [conv maps, or None where not cached or corrupt]}; one folder listing per layer."""
    maps = {}
    for layer, paths in files.items():
        entries = cache.checked_entries(paths[0].parent) if paths else {}
        maps[layer] = [cache.load_checked_npy(path, entries) for path in paths]
    return maps


def layer_reader(base, layers):
    """A function from RGB images (N, H, W, 3) to {layer: conv maps}: one pass through the frozen base serves
    every layer asked for."""
    tapped = keras.Model(base.input, [base.get_layer(layer).output for layer in layers])

    def read(images: np.ndarray) -> dict[str, np.ndarray]:
        maps = tapped.predict(model.preprocess(images), batch_size=EXTRACTION_BATCH, verbose=0)
        return dict(zip(layers, maps if len(layers) > 1 else [maps]))
    return read


def extract(base, layers, paths, files: dict, input_size: int) -> None:
    """Run images through the frozen base once for all layers; write one .npy per image and layer
    (where `files` gives a path: a layer still cached for an image is not written twice)."""
    print(f"features: extracting {len(paths)} images at {input_size}x{input_size} ({', '.join(layers)})",
          file=sys.stderr)
    read = layer_reader(base, layers)
    progress = outputs.Progress(len(paths), "features", "images")
    start = time.perf_counter()
    for first in range(0, len(paths), EXTRACTION_BATCH):
        chunk = slice(first, first + EXTRACTION_BATCH)
        images = data.load_images(paths[chunk], input_size)
        for layer, conv in read(images).items():
            for array, path in zip(conv.astype(np.float32), files[layer][chunk]):
                if path is not None:
                    cache.write_checked(path, cache.npy_bytes(array))
        progress.update(len(images))
    print(f"features: {len(paths)} images in {time.perf_counter() - start:.1f} s", file=sys.stderr)


def pooled(maps: dict[str, np.ndarray], feature_set: FeatureSet) -> np.ndarray:
    """The head's pooling in NumPy: (N, features), in the order of the Keras head's Concatenate."""
    return np.concatenate([pool(maps[layer], feature_set.grid) for layer in feature_set.layers], axis=1)


def pool(conv: np.ndarray, grid: int) -> np.ndarray:
    """Average over grid x grid cells (those of the head's AveragePooling2D), flattened cell by cell."""
    if grid == 1:
        return conv.mean(axis=(1, 2))
    rows, cols = cell_bounds(conv.shape[1], grid), cell_bounds(conv.shape[2], grid)
    cells = np.stack([np.stack([conv[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in cols], axis=1)
                      for r0, r1 in rows], axis=1)
    return cells.reshape(len(conv), -1)
