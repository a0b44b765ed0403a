"""Does the demo's planted ground truth come out of the region statistics?

Reads the tables average_saliency.py wrote for the demo dataset (region_summary.csv,
region_group_tests.csv) and checks them against what data/demo/README.md plants:

* per model, the driving region carries the most relevance per unit area (absolute relevance,
  evidence either way, and positive relevance): ASD-warm the mouth, NT-warm the eyes, ASD-strong
  the jaw, NT-strong the brows;
* ASD - NT, per trait: warm - mouth > 0 and eyes < 0; strong - brows < 0 and jaw > 0.

Prints a Markdown report and writes it to --out. No TensorFlow; seconds.

    python benchmarks/planted_truth.py $OUT/results --out benchmarks/results/planted_truth.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _common  # noqa: F401 (first: puts the repository root on sys.path)
import pandas as pd

from facetraits import demo

WINNERS, DIFFERENCES = demo.PLANTED_WINNERS, demo.PLANTED_DIFFERENCES
MEASURES = {"absolute": ("mean_abs_per_area", "share_abs"), "positive": ("mean_pos_per_area", "share_pos")}


def winner_rows(summary: pd.DataFrame) -> list[str]:
    lines = ["| model | planted | measure | top region (x its area share) | planted region | holds |",
             "|---|---|---|---|---|---|"]
    for (group, trait), planted in WINNERS.items():
        rows = summary[(summary.group == group) & (summary.trait == trait)].set_index("region")
        if rows.empty:  # a run restricted with --group/--trait
            lines.append(f"| {group} {trait} | {planted} | - | not in these results | - | not checked |")
            continue
        for label, (column, _) in MEASURES.items():
            ranked = rows[column].sort_values(ascending=False)
            top = ranked.index[0]
            lines.append(f"| {group} {trait} | {planted} | {label} | {top} ({ranked.iloc[0]:.2f}) | "
                         f"{rows.loc[planted, column]:.2f} (rank {list(ranked.index).index(planted) + 1}) | "
                         f"{'yes' if top == planted else 'NO'} |")
    return lines


def difference_rows(tests: pd.DataFrame) -> list[str]:
    lines = ["| trait | region | planted ASD - NT | measure | mean difference | p_fwer | holds |",
             "|---|---|---|---|---|---|---|"]
    for (trait, region), sign in DIFFERENCES.items():
        if not (tests.trait == trait).any():
            lines.append(f"| {trait} | {region} | {'> 0' if sign > 0 else '< 0'} | - | not in these results | - | not checked |")
            continue
        for label, (_, measure) in MEASURES.items():
            row = tests[(tests.trait == trait) & (tests.region == region) & (tests.measure == measure)].iloc[0]
            holds = row.mean_difference * sign > 0
            lines.append(f"| {trait} | {region} | {'> 0' if sign > 0 else '< 0'} | "
                         f"{label} | {row.mean_difference:+.4f} | {row.p_fwer:.2g} | {'yes' if holds else 'NO'} |")
    return lines


def agreement_rows(summary: pd.DataFrame, comparison: pd.DataFrame) -> list[str]:
    """Does the descriptive LRP picture point the same way as the tested linear region importance?"""
    lines = ["| trait | region | LRP: ASD - NT, abs. relevance per unit area | linear importance: ASD - NT (p_fwer) | "
             "same sign |", "|---|---|---|---|---|"]
    lrp = summary.set_index(["group", "trait", "region"])["mean_abs_per_area"]
    for row in comparison.itertuples():
        if (row.group_a, row.trait, row.region) not in lrp.index:
            continue
        difference = lrp[(row.group_a, row.trait, row.region)] - lrp[(row.group_b, row.trait, row.region)]
        lines.append(f"| {row.trait} | {row.region} | {difference:+.3f} | {row.difference:+.3f} ({row.p_fwer:.2g}) | "
                     f"{'yes' if difference * row.difference > 0 else 'NO'} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="results_dir of an average_saliency.py run on data/demo")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    try:
        summary = pd.read_csv(args.results / "region_summary.csv")
        tests = pd.read_csv(args.results / "region_group_tests.csv")
    except FileNotFoundError as err:
        print(f"error: {err.filename} not found; run lrp_analysis.py and average_saliency.py first", file=sys.stderr)
        return 2
    report = "\n".join(["## Driving region per model (relevance per unit area)", "", *winner_rows(summary), "",
                        "## ASD - NT models per region (sign flips over identities)", "", *difference_rows(tests), ""])
    comparison_path = args.results / "group_comparison.csv"
    if comparison_path.is_file():
        report += "\n".join(["", "## LRP maps (descriptive) against the tested linear region importance "
                              "(compare_groups.py)", "", *agreement_rows(summary, pd.read_csv(comparison_path)), ""])
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
