"""LRP heatmaps for every image and every trained model, the extremes figure, and faithfulness.

For each group x trait model (trained by train_regression.py) the configured iNNvestigate method
(explain.analyzer, default lrp.sequential_preset_a_flat as in the reference study) explains output
unit 0, the predicted rating; what red and blue mean depends on the method (see
facetraits/explanations.py).
Writes results/relevance/<group>__<trait>.npy (float32, images x H x W, channels summed, in the
order of results/relevance/index.csv), overlays under fig/lrp/<group>__<trait>/,
fig/extremes_<group>__<trait>.png (k highest- and k lowest-rated faces with their heatmaps),
and, per method in explain.faithfulness_analyzers, results/faithfulness.csv,
results/faithfulness_curves.csv and fig/faithfulness.png (facetraits/faithfulness.py: patches
replaced by the aligned mean face or a blurred copy, most/least relevant first vs random, tested
over identities).
Maps whose inputs (model, analyzer, images, code version) are unchanged are reused.

    python lrp_analysis.py --set explain.analyzer=lrp.epsilon --set explain.overlays=false
"""
import sys
import time

import pandas as pd

from facetraits import cli, data, explanations, faithfulness, heatmaps, plots


def add_arguments(parser):
    parser.add_argument("--skip-faithfulness", action="store_true", help="only heatmaps and figures")


@cli.script(add_arguments=add_arguments, writes=("results_dir", "fig_dir"))
def main(run):
    cfg = run.config
    explanations.validate_config(cfg)
    detects_faces = cfg.data.landmarks is None and cfg.explain.faithfulness_reference == "mean_face"
    if detects_faces and not run.args.skip_faithfulness:  # the mean-face reference caches dlib detections
        cli.check_output_dirs(cfg, ["cache_dir"])
    dataset = data.load(cfg)
    heatmaps.check_models(run, dataset)
    run.write_csv("relevance/index.csv", pd.DataFrame({"index": range(len(dataset)), "image": dataset.images,
                                                       "identity": dataset.identities}), per_model=False)
    summary, curves = [], []
    started, cpu_started = time.perf_counter(), time.process_time()
    test = None if run.args.skip_faithfulness else faithfulness.Test.for_dataset(cfg, dataset)  # sample, reference
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    for group, trait in run.models:
        name = cli.model_name(group, trait)
        maps, predictions = heatmaps.for_model(run, dataset, group, trait)
        heatmaps.write_figures(run, dataset, name, maps, predictions, dataset.target(group, trait))
        drawn = "overlays and extremes figure" if cfg.explain.overlays else "extremes figure"
        print(f"{name}: {drawn} of {len(dataset)} images drawn from {run.results('relevance') / (name + '.npy')}")
        if test is not None:
            started, cpu_started = time.perf_counter(), time.process_time()
            rows, lines = test.run_model(group, trait, maps)
            summary, curves = summary + rows, curves + lines
            seconds, cpu_seconds = seconds + time.perf_counter() - started, cpu_seconds + time.process_time() - cpu_started
    if summary:  # the record's wall_seconds also count the maps; CPU seconds do not depend on other jobs' load
        run.details.update(faithfulness_seconds=round(seconds, 1), faithfulness_cpu_seconds=round(cpu_seconds, 1))
        table = faithfulness.summarise(summary, cfg.explain.significance_level)
        curves = pd.concat(curves, ignore_index=True)
        print(table[["group", "trait", "analyzer", "morf_minus_random", "p_holm", "beats_random", "morf_minus_lerf",
                     "p_holm_morf_lerf", "separates"]].to_string(index=False))
        run.write_csv("faithfulness.csv", table)
        run.write_csv("faithfulness_curves.csv", curves)
        run.save_figure(plots.faithfulness(curves, table), "faithfulness.png")
    tables = " and faithfulness tables" if summary else ""
    print(f"wrote relevance maps in {run.results('relevance')}{tables}, figures in {cfg.output.fig_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
