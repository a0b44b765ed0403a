"""Average LRP heatmaps per rater group x trait, the group difference maps, and relevance per face region.

Reads results/relevance/<group>__<trait>.npy (written by lrp_analysis.py) and the landmarks
(data.landmarks, or dlib when that is null). Every map is normalised to total |relevance| 1 so
each image weighs the same, and, with explain.align (default), warped onto the mean face first.
Images without usable landmarks are listed in results/landmarks_missing.csv and left out of
the region statistics and of the aligned maps.

Writes fig/average_saliency.png, results/average_saliency/<group>__<trait>.npy (the averaged
maps), for the first two selected groups fig/group_difference_<trait>.png and
results/group_difference_<trait>.npz (mean difference, t, p, FDR q, significant mask at
explain.significance_level), results/region_relevance.csv (per model x image x region),
results/region_summary.csv (mean shares with 95% t CIs), results/region_group_tests.csv (paired
test per trait x region x measure: share of positive and of absolute relevance, Holm-corrected)
and fig/region_relevance.png.

    python average_saliency.py --set explain.align=false --trait warm
"""
import sys

import numpy as np
import pandas as pd

from facetraits import cli, data, outputs, plots, regions, saliency
from facetraits import landmarks as landmarks_module
from facetraits.errors import FacetraitsError


def write_npz(path, **arrays):
    with outputs.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return path


@cli.script(writes=("results_dir", "fig_dir"))
def main(run):
    cfg = run.config
    if cfg.data.landmarks is None:  # dlib detections are cached
        cli.check_output_dirs(cfg, ["cache_dir"])
    dataset = data.load(cfg)
    size = cfg.model.input_size
    shape = (size, size)
    relevance = {(g, t): saliency.load_relevance(cfg.output.results_dir, cli.model_name(g, t), dataset, shape)
                 for g, t in run.models}
    landmarks, missing = landmarks_module.dataset_landmarks(cfg, dataset, shape)
    landmarks_module.report_missing(missing, run.results("landmarks_missing.csv"), len(dataset), run.id)
    if not landmarks:
        raise FacetraitsError(f"none of the {len(dataset)} images has usable landmarks (first reason: "
                                       f"{missing[0][1]}); see {run.results('landmarks_missing.csv')}")

    # Aligned maps use only the images with landmarks; unaligned maps use every image.
    aligned = cfg.explain.align
    keep = np.array([name in landmarks for name in dataset.images]) if aligned else np.ones(len(dataset), bool)
    points = [landmarks[name] for name in np.array(dataset.images)[keep]] if aligned else None
    template = regions.mean_face(points) if aligned else None
    images = data.load_images([p for p, k in zip(dataset.paths, keep) if k], size)
    background = saliency.mean_image(images, points, template)

    averages = {}
    for (group, trait), maps in relevance.items():
        averages[(group, trait)] = saliency.average_map(maps[keep], points, template).astype(np.float32)
        outputs.write_npy(run.results(f"average_saliency/{cli.model_name(group, trait)}.npy"), averages[(group, trait)])
    groups = list(dict.fromkeys(g for g, _ in run.models))
    traits = list(dict.fromkeys(t for _, t in run.models))
    counts = {model: int(keep.sum()) for model in relevance}
    outputs.save_figure(plots.average_saliency(averages, groups, traits, aligned, background,
                                               cfg.explain.colormap == "signed", counts),
                        run.fig("average_saliency.png"))

    if len(groups) >= 2 and keep.sum() < 2:
        print(f"warning: group difference maps need 2+ images, {int(keep.sum())} usable; skipped", file=sys.stderr)
    elif len(groups) >= 2:
        group_a, group_b = groups[:2]
        for trait in traits:
            result = saliency.group_difference(relevance[(group_a, trait)][keep], relevance[(group_b, trait)][keep],
                                               cfg.explain.significance_level, points, template)
            write_npz(run.results(f"group_difference_{trait}.npz"), mean_difference=result.mean_difference,
                      t=result.t, p=result.p, q=result.q, significant=result.significant,
                      group_a=group_a, group_b=group_b, alpha=result.alpha, n_images=result.n_images, aligned=aligned)
            outputs.save_figure(plots.group_difference_map(result.mean_difference, result.significant, group_a, group_b,
                                                           trait, result.alpha, result.n_images, aligned, background),
                                run.fig(f"group_difference_{trait}.png"))
            print(f"{trait}: {group_a} - {group_b}: {int(result.significant.sum())} of {result.significant.size} "
                  f"pixels differ (FDR q <= {result.alpha:g}, {result.n_images} images)")

    table = saliency.region_table(relevance, dataset.images, landmarks, shape)
    saliency.report_empty_maps(table)
    summary = saliency.region_summary(table)
    tests = (saliency.region_group_tests(table, *groups[:2]) if len(groups) >= 2
             else pd.DataFrame(columns=list(saliency.TEST_COLUMNS)))
    run.write_csv("region_relevance.csv", table)
    run.write_csv("region_summary.csv", summary)
    run.write_csv("region_group_tests.csv", tests)
    outputs.save_figure(plots.region_relevance(summary, tests if len(tests) else None, cfg.explain.significance_level),
                        run.fig("region_relevance.png"))
    run.details.update(aligned=aligned, n_images=len(dataset), n_with_landmarks=len(landmarks),
                       n_missing_landmarks=len(missing))

    for group, trait in run.models:
        positive = saliency.top_region(summary, group, trait, measure="mean_pos_per_area")
        absolute = saliency.top_region(summary, group, trait, measure="mean_abs_per_area")
        if positive is not None and absolute is not None:
            print(f"{cli.model_name(group, trait)}: most relevance per unit area on the {absolute.region} "
                  f"(absolute: {absolute.mean_abs_per_area:.2f} x its area share), most positive relevance on the "
                  f"{positive.region} ({positive.mean_pos_per_area:.2f} x), {positive.n_images} images")
    for row in tests[tests.p_corrected < cfg.explain.significance_level].itertuples():
        print(f"{row.trait}, {row.region}: {row.group_a} - {row.group_b} {row.measure} "
              f"{row.mean_difference:+.3f} (t = {row.statistic:.2f}, Holm p = {row.p_corrected:.3g})")
    print(f"wrote {run.results('region_summary.csv')} and figures in {cfg.output.fig_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
