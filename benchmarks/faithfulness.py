"""Faithfulness of the trained models' maps (lrp_analysis.py's perturbation test), per reference, and its cost.

Runs lrp_analysis.py once per reference in --references (heatmaps are reused when up to date,
so train and explain once before), keeps each run's faithfulness.csv, curves and figure under
--keep, and reports per model and method whether the map beats random order (Holm over the run's
model x method tests), and the faithfulness part's wall and CPU time from the run record against
--target-minutes (for the configured default on an otherwise idle machine).

    python benchmarks/faithfulness.py --set output.models_dir=$SCRATCH/models \
        --set output.results_dir=$SCRATCH/results --set output.fig_dir=$SCRATCH/fig \
        --set output.cache_dir=$SCRATCH/cache
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import pandas as pd

from facetraits import config

COLUMNS = ["group", "trait", "analyzer", "aopc_morf", "aopc_lerf", "aopc_random", "morf_minus_random",
           "random_minus_lerf", "p_holm", "beats_random", "morf_minus_lerf", "p_holm_morf_lerf", "separates",
           "n_identities"]


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "faithfulness")
    parser.add_argument("--references", nargs="+", default=["mean_face", "blur"], choices=["mean_face", "blur"],
                        help="explain.faithfulness_reference values to run, in order (default: mean_face blur)")
    parser.add_argument("--keep", default=str(_common.RESULTS / "faithfulness"),
                        help="folder for each reference's faithfulness_<reference>.csv, curves and figure")
    parser.add_argument("--target-minutes", type=float, default=15.0, help="time target of the faithfulness part")
    return parser.parse_args(argv)


def run_reference(args, reference: str, keep: Path) -> dict:
    """One lrp_analysis.py run with this reference; its tables and figure copied to `keep`."""
    overrides = [f"model.weights={args.weights}", "explain.overlays=false",
                 *args.overrides, f"explain.faithfulness_reference={reference}"]
    cfg = config.load(args.config, overrides)
    before = set(cfg.output.results_dir.glob("runs/lrp_analysis-*.json"))
    subprocess.run([sys.executable, str(_common.ROOT / "lrp_analysis.py"), "--config", args.config,
                    *[item for o in overrides for item in ("--set", o)]], check=True)
    record_path, = set(cfg.output.results_dir.glob("runs/lrp_analysis-*.json")) - before
    record = json.loads(record_path.read_text())
    for name, source in ((f"faithfulness_{reference}.csv", cfg.output.results_dir / "faithfulness.csv"),
                         (f"faithfulness_curves_{reference}.csv", cfg.output.results_dir / "faithfulness_curves.csv"),
                         (f"faithfulness_{reference}.png", cfg.output.fig_dir / "faithfulness.png")):
        shutil.copyfile(source, keep / name)
    return {"table": pd.read_csv(keep / f"faithfulness_{reference}.csv"), "run": record["run"],
            "seconds": record["details"]["faithfulness_seconds"],
            "cpu_seconds": record["details"]["faithfulness_cpu_seconds"], "analyzer": cfg.explain.analyzer,
            "settings": {k: getattr(cfg.explain, k) for k in ("faithfulness_images", "faithfulness_steps",
                                                              "faithfulness_random_orders", "faithfulness_analyzers")}}


def main(argv=None) -> int:
    args = parse_args(argv)
    keep = Path(args.keep)
    keep.mkdir(parents=True, exist_ok=True)
    machine = _common.machine()  # now: the commit and load the numbers below come from
    sections = []
    for reference in args.references:
        result = run_reference(args, reference, keep)
        table = result["table"]
        configured = table[table.analyzer == result["analyzer"]]
        verdict = "beats random for every model" if configured.beats_random.all() else \
            "does NOT beat random for " + ", ".join(f"{r.group} {r.trait}" for r in configured.itertuples()
                                                    if not r.beats_random)
        verdict += "; MoRF above LeRF for " + ("every model" if configured.separates.all() else "NOT every model")
        minutes = result["seconds"] / 60
        timing = (f"faithfulness part: **{minutes:.1f} min wall**, {result['cpu_seconds'] / 60:.1f} min CPU "
                  f"(target {args.target_minutes:g} min: **{'holds' if minutes <= args.target_minutes else 'MISSED'}**)")
        sections.append((f"Reference {reference}: {result['analyzer']} {verdict}",
                         f"Run `{result['run']}`; {timing}; settings {result['settings']}; tables and figure: "
                         f"`{_common.relative(keep)}/faithfulness_{reference}.*`.\n\n"
                         + _common.table(table[COLUMNS].to_dict("records"))))
    _common.write_pipeline_report(args, "Faithfulness of the explanations (lrp_analysis.py)", machine, sections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
