"""Peak memory of feature extraction and of LRP for a small vs a 10x larger data set.

Each measurement runs in its own fresh subprocess (this script with --child), so every peak is
clean: ru_maxrss (resource.getrusage) at the end, plus /proc/self/status sampled every 20 ms in a
thread, split into phases and into anonymous memory (RssAnon: what the process allocates) and
file-backed pages (RssFile: shared libraries, and pages of memory-mapped files such as the
relevance .npy that explain_dataset fills). ru_maxrss counts both.

Data: the demo images copied under new names into --work, each copy re-saved with a PNG text
chunk naming the copy so its bytes (and its cache key) differ while the pixels stay the same;
identities are suffixed per copy. Stages:

- extract: `features.load_or_extract` from an EMPTY cache: data.load (reads and hashes every
  image), build VGG16, `features.extract` (streams batches, one .npy per image), then the stack of
  all cached features that load_or_extract returns (this array IS the cache, in memory);
- lrp: `explanations.explain_dataset` (the configured analyzer, batches of --lrp-batch, written
  into an .npy memory map) on VGG16 + an untrained head (weights do not change memory).

To keep the run short the default input is 64 px (the project's default is 224: the per-image
sizes scale with input_size^2; the point is how memory scales with the number of images).

    flock /tmp/facetraits-cpu.lock .venv/bin/python benchmarks/memory.py
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__)
    parser.add_argument("--work", default="/tmp/facetraits-bench/memory",
                        help="scratch folder: copied images, caches, relevance files (default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000], help="numbers of images (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=64, help="model input size in px (default: %(default)s)")
    parser.add_argument("--analyzer", default=None, help="iNNvestigate analyzer (default: the config's lrp.analyzer)")
    parser.add_argument("--lrp-batch", type=int, default=None, help="images per analyzer call (default: the config's lrp.batch_size)")
    parser.add_argument("--stages", nargs="+", default=["extract", "lrp"], choices=["extract", "lrp"])
    parser.add_argument("--out", default=str(_common.RESULTS / "memory.md"), help="Markdown report (default: %(default)s)")
    parser.add_argument("--child", choices=["extract", "lrp"], help=argparse.SUPPRESS)
    parser.add_argument("--n-images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---- data ------------------------------------------------------------------------------------------

def make_dataset(args, n: int) -> Path:
    """work/data_<n>/{images/, ratings.csv}: n images = the demo images copied, distinct bytes per copy."""
    import pandas as pd
    from PIL import Image, PngImagePlugin

    from facetraits import config as config_module
    demo = config_module.load(args.config, [])
    folder = Path(args.work) / f"data_{n}"
    images = folder / "images"
    ratings_path = folder / "ratings.csv"
    if ratings_path.is_file() and len(list(images.glob("*.png"))) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    images.mkdir(parents=True)
    table = pd.read_csv(demo.data.ratings)
    names = sorted(table.image.unique())
    rows = []
    for k in range(math.ceil(n / len(names))):
        for name in names[: n - k * len(names)]:
            new = f"c{k:03d}_{name}"
            info = PngImagePlugin.PngInfo()
            info.add_text("facetraits-benchmark-copy", str(k))
            with Image.open(demo.data.images / name) as image:
                image.save(images / new, pnginfo=info)
            part = table[table.image == name].copy()
            part["image"] = new
            part["identity"] = f"c{k:03d}_" + part["identity"].astype(str)
            rows.append(part)
    pd.concat(rows, ignore_index=True).to_csv(ratings_path, index=False)
    return folder


def child_config(args, n: int):
    from facetraits import config as config_module
    folder = Path(args.work) / f"data_{n}"
    return config_module.load(args.config, [
        f"data.ratings={folder / 'ratings.csv'}", f"data.images={folder / 'images'}", "data.landmarks=null",
        f"model.weights={args.weights}", f"model.input_size={args.input_size}",
        f"output.cache_dir={Path(args.work) / f'cache_{n}'}"])


# ---- children: one measurement each, in a fresh process --------------------------------------------

def run_child(args) -> dict:
    sampler = _common.RssSampler().start()
    sampler.mark("python + TensorFlow + iNNvestigate imported")
    from facetraits import data, explanations, features, model
    cfg = child_config(args, args.n_images)
    result = {"stage": args.child, "n": args.n_images}
    start = time.perf_counter()
    if args.child == "extract":
        shutil.rmtree(cfg.output.cache_dir, ignore_errors=True)
        sampler.mark("data.load (read + hash every image)")
        dataset = data.load(cfg)
        sampler.mark("build VGG16")
        base = model.build_base(cfg.model, cfg.seed)
        original = features.extract

        def marked_extract(*a, **k):
            sampler.mark("features.extract (batches of 32, one .npy per image)")
            original(*a, **k)
            sampler.mark("stack the cached features (load_or_extract's return value)")
        features.extract = marked_extract
        conv = features.load_or_extract(dataset, cfg.model, cfg.output.cache_dir, base)
        folder = features.cache_folder(cfg.output.cache_dir, base, cfg.model.input_size)
        files = list(folder.glob("*.npy"))
        du = subprocess.run(["du", "-sk", str(folder)], check=False, capture_output=True, text=True).stdout.split()
        result.update({"array_mib": conv.nbytes / 2**20, "feature_shape": list(conv.shape[1:]),
                       "cache_files": len(files), "cache_bytes": sum(f.stat().st_size for f in files),
                       "cache_du_kib": int(du[0]) if du else None})
    else:
        analyzer = args.analyzer or cfg.lrp.analyzer
        batch = args.lrp_batch or cfg.lrp.batch_size
        sampler.mark("data.load (read + hash every image)")
        dataset = data.load(cfg)
        sampler.mark("build VGG16 + head, create analyzer")
        base = model.build_base(cfg.model, cfg.seed)
        full = model.mount(base, model.build_head(base.output_shape[1:], cfg.model, cfg.seed))
        explainer = explanations.Explainer(full, analyzer)
        explainer(data.load_images(dataset.paths[:1], cfg.model.input_size))  # builds the analysis graph
        path = Path(args.work) / f"relevance_{args.n_images}.npy"
        sampler.mark(f"explain_dataset ({analyzer}, batches of {batch}, into an .npy memory map)")
        explanations.explain_dataset(explainer, dataset.paths, cfg.model.input_size, batch, path, "memory")
        result.update({"analyzer": analyzer, "batch": batch, "relevance_bytes": path.stat().st_size})
        path.unlink()
    result["seconds"] = time.perf_counter() - start
    sampler.stop()
    result["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["phases"] = sampler.peaks()
    Path(args.result).write_text(json.dumps(result))
    return result


# ---- parent -----------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    contention = _common.Contention()
    info = _common.machine()
    command = _common.command_line()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        print(f"preparing {n} images in {work / f'data_{n}'} ...", file=sys.stderr)
        make_dataset(args, n)
    results = []
    for stage in args.stages:
        for n in args.sizes:
            print(f"{stage}, {n} images (fresh process) ...", file=sys.stderr)
            result_path = work / f"result_{stage}_{n}.json"
            child = [sys.executable, str(Path(__file__).resolve()), "--child", stage, "--n-images", str(n),
                     "--result", str(result_path), "--config", args.config, "--weights", args.weights,
                     "--work", str(work), "--input-size", str(args.input_size)]
            if args.analyzer:
                child += ["--analyzer", args.analyzer]
            if args.lrp_batch:
                child += ["--lrp-batch", str(args.lrp_batch)]
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            done = subprocess.run(child, check=False, env=env, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                sys.exit(f"child {stage} {n} failed:\n{done.stderr[-3000:]}")
            results.append(json.loads(result_path.read_text()))
        if stage == "extract":
            for n in args.sizes:
                shutil.rmtree(work / f"cache_{n}", ignore_errors=True)  # measured; free the disk

    summary, phase_rows = [], []
    for r in results:
        phases = r["phases"]
        names = list(phases)
        work_phase = names[-2] if r["stage"] == "extract" else names[-1]
        stack = phases[names[-1]] if r["stage"] == "extract" else None
        anon_start, anon_peak = phases[work_phase]["RssAnon"]
        row = {"stage": r["stage"], "images": r["n"], "seconds": r["seconds"],
               "ru_maxrss MiB (whole process)": r["ru_maxrss_mib"],
               "RssAnon before main loop MiB": anon_start,
               "RssAnon peak in main loop MiB": anon_peak,
               "main loop growth (anon) MiB": anon_peak - anon_start,
               "RssFile peak MiB": max(p["RssFile"][1] for p in phases.values())}
        if stack:
            row["after stacking (anon peak) MiB"] = stack["RssAnon"][1]
            row["stacked features MiB"] = r["array_mib"]
            row["cache on disk"] = (f"{r['cache_files']} files, {r['cache_bytes'] / 2**20:.1f} MiB "
                                    f"({r['cache_du_kib'] / 1024:.1f} MiB allocated), feature {r['feature_shape']}")
        else:
            row["relevance .npy MiB"] = r["relevance_bytes"] / 2**20
        summary.append(row)
        for name, fields in phases.items():
            phase_rows.append({"stage": r["stage"], "images": r["n"], "phase": name,
                               "VmRSS start→peak MiB": f"{fields['VmRSS'][0]:.0f} → {fields['VmRSS'][1]:.0f}",
                               "RssAnon start→peak MiB": f"{fields['RssAnon'][0]:.0f} → {fields['RssAnon'][1]:.0f}",
                               "RssFile start→peak MiB": f"{fields['RssFile'][0]:.0f} → {fields['RssFile'][1]:.0f}"})

    extract_rows = [r for r in summary if r["stage"] == "extract"]
    lrp_rows = [r for r in summary if r["stage"] == "lrp"]
    analyzer = next((r.get("analyzer") for r in results if r["stage"] == "lrp"), None)
    batch = next((r.get("batch") for r in results if r["stage"] == "lrp"), None)
    setup = (f"Images: the demo set copied under new names (distinct bytes, same pixels) into "
             f"{work}/data_<n>; sizes {', '.join(map(str, args.sizes))}. Input size **{args.input_size} px** "
             f"(not the project's 224, to keep the run short: per-image feature, relevance and activation sizes "
             f"scale with input_size^2, so multiply the per-image MiB below by (224/{args.input_size})^2 = "
             f"{(224 / args.input_size) ** 2:.1f} for 224 px). Each row is a fresh subprocess. LRP: {analyzer}, "
             f"batches of {batch}, VGG16 + untrained head.\n\n" + _common.WEIGHTS_NOTE.format(weights=args.weights))
    extract_cols = ["images", "seconds", "ru_maxrss MiB (whole process)", "RssAnon before main loop MiB",
                    "RssAnon peak in main loop MiB", "main loop growth (anon) MiB", "after stacking (anon peak) MiB",
                    "stacked features MiB", "cache on disk"]
    lrp_cols = ["images", "seconds", "ru_maxrss MiB (whole process)", "RssAnon before main loop MiB",
                "RssAnon peak in main loop MiB", "main loop growth (anon) MiB", "RssFile peak MiB", "relevance .npy MiB"]
    sections = [("Set-up", setup)]
    if extract_rows:
        sections.append(("Feature extraction (load_or_extract from an empty cache)", _common.table(extract_rows, extract_cols) +
                         "\n'main loop' = features.extract (streams batches to disk). 'after stacking' = the peak "
                         "once load_or_extract has stacked every cached feature into one array (what training, "
                         "CV and permutations use): that array is the cache itself, N x feature size."))
    if lrp_rows:
        sections.append(("LRP (explain_dataset into a memory map)", _common.table(lrp_rows, lrp_cols) +
                         "\n'main loop' = explain_dataset. RssFile includes the pages of the memory-mapped "
                         "relevance file touched so far (clean or dirty page cache the kernel can write back and "
                         "drop under pressure); ru_maxrss counts them, RssAnon does not."))
    sections.append(("Every phase", _common.table(phase_rows)))
    _common.write_report(Path(args.out), "Memory: feature extraction and LRP vs data-set size", command, info, sections, contention)


if __name__ == "__main__":
    main()
