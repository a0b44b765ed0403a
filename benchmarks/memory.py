"""Peak memory of feature extraction and of explanations, for a small and a larger data set.

Does the pipeline's memory grow with the number of images? Two stages, each measured on every
data set size in a fresh process (so each peak is that measurement's alone):

- extract: `features.load_or_extract` from an empty cache. VGG16 streams batches to one .npy per
  image and layer, then the cache is stacked into the maps it returns (those grow with N);
- explain: `explanations.explain_dataset` (explain.analyzer, explain.batch_size) writing into an .npy
  memory map, on VGG16 + an untrained head (the head's weights do not change memory).

The data sets are synthetic demo faces (`facetraits.demo.generate`, 10 images per identity).
Memory is sampled every 20 ms from /proc/self/status: RssAnon is what the process allocated,
RssFile its file-backed pages (libraries, and the touched pages of the relevance memory map,
which the kernel can write back and drop); ru_maxrss counts both.

    .venv/bin/python benchmarks/memory.py
    .venv/bin/python benchmarks/memory.py --sizes 20 40 --input-size 32 --work $SCRATCH/smoke \\
        --out $SCRATCH/memory.md --set "ridge.feature_sets=[{layers: [block5_pool], grid: 1}]"
"""
from __future__ import annotations

import multiprocessing
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import _common  # first: puts the repository root on sys.path


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.3g} MiB"


def parse_args():
    parser = _common.argument_parser(__doc__, "memory")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500],
                        help="numbers of images, multiples of 10 (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=224, help="model.input_size (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=_common.SCRATCH / "memory",
                        help="scratch folder for data sets, caches and relevance files (default: %(default)s)")
    args = parser.parse_args()
    if any(n % 10 for n in args.sizes):
        parser.error("--sizes must be multiples of 10 (the demo generator draws 10 images per identity)")
    args.work = args.work.resolve()
    return args


def settings(args, n: int):
    from facetraits import config
    folder = args.work / f"data_{n}"
    return config.load(args.config, [
        f"data.ratings={folder / 'ratings.csv'}", f"data.images={folder / 'images'}",
        f"data.landmarks={folder / 'landmarks.csv'}", f"model.weights={args.weights}",
        f"model.input_size={args.input_size}", f"output.cache_dir={args.work / f'cache_{n}'}", *args.overrides])


def measure(stage: str, n: int, args) -> dict:
    """Run one stage on n images in this process; its memory before and during the stage."""
    sampler = _common.RssSampler().start()
    sampler.mark("set-up")
    from facetraits import data, explanations, features, model
    cfg = settings(args, n)
    shutil.rmtree(cfg.output.cache_dir, ignore_errors=True)
    dataset = data.load(cfg)
    base = model.build_base(cfg.model, cfg.seed)
    if stage == "explain":
        feature_set = features.feature_sets(cfg)[0]
        shapes = {layer: base.get_layer(layer).output_shape[1:] for layer in feature_set.layers}
        full = model.mount(base, model.build_head(shapes, feature_set, cfg.model, cfg.seed))
        explainer = explanations.Explainer(full, cfg.explain.analyzer)
        explainer(data.load_images(dataset.paths[:1], cfg.model.input_size))  # builds the analysis graph
    sampler.mark("stage")
    start = time.perf_counter()
    if stage == "extract":
        maps = features.load_or_extract(dataset, cfg, base)
        files = list(features.cache_folder(cfg.output.cache_dir, base, cfg.model.input_size).rglob("*.npy"))
        written = (f"stacked maps {mib(sum(m.nbytes for m in maps.values()))} ({', '.join(maps)}); "
                   f"cache {len(files)} files, {mib(sum(f.stat().st_size for f in files))} on disk")
    else:
        path = args.work / f"relevance_{n}.npy"
        explanations.explain_dataset(explainer, dataset.paths, cfg.model.input_size, cfg.explain.batch_size, path,
                                     "memory")
        written = (f"relevance .npy {mib(path.stat().st_size)} ({cfg.explain.analyzer}, "
                   f"batches of {cfg.explain.batch_size})")
        path.unlink()
    seconds = time.perf_counter() - start
    sampler.stop()
    shutil.rmtree(cfg.output.cache_dir, ignore_errors=True)
    peaks = sampler.peaks()
    anon_before, anon_peak = peaks["stage"]["RssAnon"]
    return {"stage": stage, "images": n, "seconds": seconds,
            "ru_maxrss MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "RssAnon before MiB": anon_before, "RssAnon peak MiB": anon_peak,
            "growth (anon) MiB": anon_peak - anon_before,
            "RssFile peak MiB": max(phase["RssFile"][1] for phase in peaks.values()),
            "written": written}


def in_fresh_process(function, *args):
    """function(*args) in a newly started interpreter (spawn, not fork: nothing inherited)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def main():
    args = parse_args()
    info, command = _common.machine(), _common.command_line()
    for n in args.sizes:  # a bad setting (e.g. a grid the map is too small for) fails now, not after the data
        settings(args, n)
    from facetraits import demo
    for n in args.sizes:
        if not (args.work / f"data_{n}" / "ratings.csv").is_file():
            demo.generate(args.work / f"data_{n}", n_identities=n // 10, images_per_identity=10)
    rows = [in_fresh_process(measure, stage, n, args) for stage in ("extract", "explain") for n in args.sizes]

    setup = (f"Synthetic demo faces ({', '.join(map(str, args.sizes))} images, 10 per identity), input "
             f"**{args.input_size} px**; per-image maps and relevance scale with input_size². Each row is a "
             f"fresh process; 'before' is after imports, data.load and building the model (and, for explain, "
             f"the analyzer's first call), 'peak' the highest sample during the stage.\n\n"
             + _common.WEIGHTS_NOTE.format(weights=args.weights))
    notes = ("Extraction streams to disk, so its own working memory is flat; what grows with N is the stacked "
             "maps load_or_extract returns (the cache in memory, used by training, CV and permutations). "
             "explain_dataset keeps one batch in memory; its RssFile includes the relevance memory map's "
             "touched pages (page cache, not memory the process holds).")
    _common.write_report(Path(args.out), "Memory: feature extraction and explanations vs data-set size", command,
                         info, [("Set-up", setup), ("Results", _common.table(rows) + "\n" + notes)])


if __name__ == "__main__":
    main()
