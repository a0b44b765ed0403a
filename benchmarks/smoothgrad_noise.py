"""How repeatable are smoothgrad maps? Two seeds per number of noisy copies, and agreement with plain gradient.

SmoothGrad averages the gradient over copies of the image with Gaussian noise (sd 0.15 x 255 here,
`explanations.ANALYZER_OPTIONS`; iNNvestigate 2.1.2 alone ignores that setting and adds sd 1, see
`explanations.ScaledSmoothGrad`). With few copies the average is itself noisy: this measures, on one
trained model, the Pearson r between the maps of two seeds, per pixel and after a Gaussian blur, for
each number of copies; and each map's r with the plain gradient map.

    .venv/bin/python benchmarks/smoothgrad_noise.py --model $SCRATCH/demo/models/ASD__warm.h5 \\
        --set model.weights=../shared/weights/vgg16_hed_bsds500_notop.h5
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

import _common  # first: puts the repository root on sys.path

from facetraits import config, data, explanations, model
from facetraits.backend import reset_graph


def parse_args():
    parser = _common.argument_parser(__doc__, "smoothgrad_noise")
    parser.add_argument("--model", type=Path, required=True, help="a full model saved by train_regression.py")
    parser.add_argument("--images", type=int, default=8, help="the first N images of data.images (default: %(default)s)")
    parser.add_argument("--copies", type=int, nargs="+", default=[16, 64],
                        help="numbers of noisy copies (default: %(default)s; the project uses 16)")
    parser.add_argument("--blur", type=float, default=8.0, help="Gaussian sigma in px for the blurred r (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=2, help="images per call; memory grows with batch x copies")
    return parser.parse_args()


def maps_of(path: Path, method: str, images: np.ndarray, seed: int, batch: int) -> np.ndarray:
    reset_graph(seed)  # the noise is drawn in the graph, from this seed
    explainer = explanations.Explainer(model.load_full_model(path), method)
    return np.concatenate([explainer(images[i:i + batch]) for i in range(0, len(images), batch)])


def mean_r(a: np.ndarray, b: np.ndarray, sigma: float = 0.0) -> float:
    """Mean over images of the Pearson r between two maps (blurred first when sigma > 0)."""
    def prepare(x):
        return ndimage.gaussian_filter(x, sigma) if sigma else x
    return float(np.mean([np.corrcoef(prepare(x).ravel(), prepare(y).ravel())[0, 1] for x, y in zip(a, b)]))


def main():
    args = parse_args()
    info, command = _common.machine(), _common.command_line()
    cfg = config.load(args.config, args.overrides)
    names = data.load(cfg).paths[:args.images]
    size = model.load_full_model(args.model).input_shape[1]
    images = data.load_images(names, size)
    gradient = maps_of(args.model, "gradient", images, cfg.seed, args.batch)
    rows = []
    for copies in args.copies:
        print(f"smoothgrad with {copies} copies ...", file=sys.stderr)
        explanations.ANALYZER_OPTIONS["smoothgrad"]["augment_by_n"] = copies
        first, second = (maps_of(args.model, "smoothgrad", images, seed, args.batch) for seed in (1, 2))
        rows.append({"copies": copies, "r seed 1 vs 2, pixels": mean_r(first, second),
                     f"r seed 1 vs 2, {args.blur:g} px blur": mean_r(first, second, args.blur),
                     "r with gradient, pixels": mean_r(first, gradient),
                     f"r with gradient, {args.blur:g} px blur": mean_r(first, gradient, args.blur)})
    record = args.model.with_suffix(".json")  # train_regression.py's record: which run fitted it, and how
    fitted = json.loads(record.read_text()) if record.is_file() else {}
    setup = (f"Model `{_common.relative(args.model)}` at {size} px (fitted by run {fitted.get('run', 'unknown')}: "
             f"{fitted.get('settings', 'settings unknown')}); the first {len(images)} images of "
             f"`{_common.relative(cfg.data.images)}`; noise sd "
             f"{explanations.ANALYZER_OPTIONS['smoothgrad']['noise_scale']:g} on the preprocessed input; r is "
             f"averaged over the images. The model's VGG16 weights are those it was trained with.")
    info = {**info, "settings": f"{_common.relative(args.config)} with {' '.join(args.overrides)}"}
    _common.write_report(Path(args.out), "SmoothGrad: repeatability over seeds", command, info,
                         [("Set-up", setup), ("Result", _common.table(rows))])


if __name__ == "__main__":
    main()
