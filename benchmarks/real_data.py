"""Summarise the real-data runs (benchmarks/results/real_data.md) as Markdown tables.

The runs themselves are the ordinary pipeline scripts, one config per dataset, with every output
outside the repository (the datasets' licences are non-commercial share-alike):

    python import_dataset.py 3dsk ../shared/data/3dsk $DATA/3dsk --noise-ceiling
    python cross_validate.py --config $DATA/3dsk/config.yaml \
        --set model.weights=../shared/weights/vgg16_hed_bsds500_notop.h5
    ...   (see benchmarks/results/real_data.md for the full list)

then

    python benchmarks/real_data.py --root $DATA

prints, per dataset, one row per group x trait: n images, the configured head and the settings it
chose on all images, pooled CV r with its bootstrap CI over identities, mean fold r, MAE, the
identity-permutation p and null sd of that same head, and the split-half noise ceiling (with
r / ceiling), then the region with the most positive relevance per unit area per model and
the number of images dlib found no face in. Nothing is written; no data enter the repository.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import _common  # noqa: F401 (first: puts the repository root on sys.path)
import pandas as pd

from facetraits.regions import FACE_REGIONS, REGIONS

FACE_PARTS = [region for region in FACE_REGIONS if region != "face"]  # named parts, not the rest of the face


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _p(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3g}"


def dataset_table(folder: Path) -> str:
    results = folder / "results"
    cv = pd.read_csv(results / "cv_summary.csv")
    pooled = cv[cv.fold.astype(str) == "all"].set_index(["group", "trait"])
    perm_path = results / "permutation_summary.csv"
    perm = pd.read_csv(perm_path).set_index(["group", "trait"]) if perm_path.is_file() else None
    ceil_path = folder / "noise_ceiling.csv"
    ceil = pd.read_csv(ceil_path).set_index(["group", "trait"]) if ceil_path.is_file() else None
    lines = ["| group | trait | n images | head (chosen on all images) | CV pooled r [95% CI] | mean fold r | MAE | "
             "permutation p | null sd | noise ceiling | r / ceiling |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (group, trait), row in pooled.iterrows():
        p = null_sd = ceiling = float("nan")
        n_perm = ""
        if perm is not None and (group, trait) in perm.index:
            p, null_sd = perm.loc[(group, trait), "p_value"], perm.loc[(group, trait), "null_sd"]
            n_perm = int(perm.loc[(group, trait), "n_permutations"])
        if ceil is not None and (group, trait) in ceil.index:
            ceiling = ceil.loc[(group, trait), "noise_ceiling"]
        ratio = row.pearson_r / ceiling if ceiling and not math.isnan(ceiling) else float("nan")
        head = f"{row['head']} {row.layers}@{row.grid}" + (f", alpha {row.alpha:g}" if row["head"] == "ridge" else "")
        lines.append(f"| {group} | {trait} | {int(row.n_test)} | {head} | {_fmt(row.pearson_r)} "
                     f"[{_fmt(row.r_ci_low)}, {_fmt(row.r_ci_high)}] | {_fmt(row.mean_fold_r)} | {_fmt(row.mae)} | "
                     f"{_p(p)}{f' ({n_perm})' if n_perm else ''} | {_fmt(null_sd)} | {_fmt(ceiling)} | {_fmt(ratio, 2)} |")
    return "\n".join(lines)


def results_table(folder: Path, name: str) -> pd.DataFrame | None:
    """results/<name> of one dataset's run, or None when that step was not run."""
    path = folder / "results" / name
    return pd.read_csv(path) if path.is_file() else None


def region_table(folder: Path) -> str | None:
    """Per model: the region with the most relevance per unit area on each measure (|relevance| and
    positive relevance), the top face part on |relevance|, and every region's share of |relevance|."""
    summary = results_table(folder, "region_summary.csv")
    if summary is None:
        return None
    summary = summary.dropna(subset=["mean_abs_per_area"])
    names = list(REGIONS)
    lines = ["| group | trait | top region, abs. per area | top region, pos. per area | top face part, abs. per area | "
             f"share of abs. relevance ({', '.join(names)}) | n images |", "|---|---|---|---|---|---|---:|"]
    for (group, trait), part in summary.groupby(["group", "trait"], sort=False):
        top_abs = part.sort_values("mean_abs_per_area", ascending=False).iloc[0]
        top_pos = part.sort_values("mean_pos_per_area", ascending=False).iloc[0]
        parts = part[part.region.isin(FACE_PARTS)].sort_values("mean_abs_per_area", ascending=False)
        shares = dict(zip(part.region, part.mean_share_abs))
        lines.append(f"| {group} | {trait} | {top_abs.region} ({top_abs.mean_abs_per_area:.2f}) | "
                     f"{top_pos.region} ({top_pos.mean_pos_per_area:.2f}) | "
                     f"{parts.region.iloc[0]} ({parts.mean_abs_per_area.iloc[0]:.2f}) | "
                     f"{', '.join(_fmt(shares.get(k)) for k in names)} | "
                     f"{int(top_abs.n_images)} |")
    return "\n".join(lines)


def missing_faces(folder: Path) -> str | None:
    missing = results_table(folder, "landmarks_missing.csv")
    if missing is None:
        return None
    n_images = pd.read_csv(folder / "ratings.csv").image.nunique()
    return f"{len(missing)} of {n_images} images without usable landmarks" + (
        f" ({', '.join(missing.image.astype(str).head(10))})" if len(missing) else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Markdown tables of the real-data runs")
    parser.add_argument("--root", required=True, help="folder holding <dataset>/results (outside the repository)")
    parser.add_argument("datasets", nargs="*", default=["omi", "london", "3dsk"])
    args = parser.parse_args(argv)
    for name in args.datasets:
        folder = Path(args.root) / name
        if not (folder / "results" / "cv_summary.csv").is_file():
            print(f"## {name}\n\n(no results under {folder})\n")
            continue
        print(f"## {name}\n\n{dataset_table(folder)}\n")
        regions = region_table(folder)
        if regions:
            print(f"{regions}\n")
        missing = missing_faces(folder)
        if missing:
            print(f"{missing}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
