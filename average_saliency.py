"""Average heatmaps per rater group x trait, the two groups' models compared over identities, and relevance per region.

Reads results/relevance/<group>__<trait>.npy (written by lrp_analysis.py; refused when the model
file or explain.analyzer changed since, or the model no longer fits today's ratings and settings,
so the maps are those of the model that was tested) and the landmarks (data.landmarks, or dlib
when that is null). Every map is normalised to total |relevance| 1 so
each image weighs the same, with explain.align (default) warped onto the mean face first, and
averaged within identity before anything else. Images without usable landmarks are listed in
results/landmarks_missing.csv and left out of the region statistics and of the aligned maps.

The group tests compare the first two selected groups' *models*, pairing their maps face by face,
with identities as the unit: sign flips of whole identities (explain.n_sign_flips) and a
max-statistic family-wise correction (facetraits/model_comparison.py). They say where the two
fitted models differ, not whether the rater groups do; compare_groups.py tests that, with raters.

Writes fig/average_saliency.png, results/average_saliency/<group>__<trait>.npy,
fig/group_difference_<trait>.png and results/group_difference_<trait>.npz (mean difference, t,
p, p_fwer, significant = p_fwer <= explain.significance_level), results/region_relevance.csv (per
model x image x region), results/region_summary.csv (means over identities, 95% t CIs),
results/region_group_tests.csv (per trait x region x measure: p and p_fwer over identities) and
fig/region_relevance.png.

    python average_saliency.py --set explain.align=false --trait warm
"""
import sys

from facetraits import cli, config, data, model_comparison, outputs, plots, provenance, saliency
from facetraits import landmarks as landmarks_module


@cli.script(writes=("results_dir", "fig_dir"))
def main(run):
    cfg, size = run.config, run.config.model.input_size
    if cfg.data.landmarks is None:  # dlib detections are cached
        cli.check_output_dirs(cfg, ["cache_dir"])
    dataset = data.load(cfg)
    relevance = {(g, t): saliency.load_relevance(cfg.output.results_dir, cli.model_name(g, t), dataset, (size, size),
                                                 model_path=cli.model_path(cfg, g, t), analyzer=cfg.explain.analyzer)
                 for g, t in run.models}
    for g, t in run.models:  # the maps' model must also be the one today's ratings and settings give
        provenance.check_model_record(cfg, dataset, cli.model_path(cfg, g, t), dataset.target(g, t))
    points, missing = landmarks_module.dataset_landmarks(cfg, dataset, (size, size))
    landmarks_module.report_missing(missing, run.results("landmarks_missing.csv"), len(dataset), run.id)
    landmarks_module.require_some(cfg, missing, len(dataset), "average_saliency.py (alignment and regions)")
    faces = saliency.faces(dataset, points, cfg.explain.align, size)
    averages = {model: faces.average(maps) for model, maps in relevance.items()}
    for model, average in averages.items():
        outputs.write_npy(run.results(f"average_saliency/{cli.model_name(*model)}.npy"), average)
    groups, traits = (list(dict.fromkeys(names)) for names in zip(*run.models))
    if len(groups) > 2:
        print(f"note: the model-level group tests compare the first two groups only ({groups[0]} vs {groups[1]}; "
              f"--group selects others); compare_groups.py compares every pair", file=sys.stderr)
    counts = dict.fromkeys(relevance, int(faces.keep.sum()))
    display = {"display": cfg.explain.map_display, "cell": config.display_cell(cfg)}
    run.save_figure(plots.average_saliency(averages, groups, traits, cfg.explain.align, faces.background,
                                           cfg.explain.colormap == "signed", counts, **display), "average_saliency.png")
    maps = model_comparison.difference_maps(relevance, faces, groups, traits, cfg.explain.significance_level,
                                            cfg.explain.n_sign_flips, cfg.seed)
    for trait, result in maps.items():
        result.save(run.results(f"group_difference_{trait}.npz"), aligned=cfg.explain.align)
        run.save_figure(plots.group_difference_map(result.mean_difference, result.significant, *result.groups,
                                                   trait, result.alpha, result.n_identities, cfg.explain.align,
                                                   faces.background, **display), f"group_difference_{trait}.png")
        print(f"{trait}: {result.describe()}")
    table = saliency.region_table(relevance, dataset.images, points, (size, size))
    saliency.report_empty_maps(table)
    identities = dict(zip(dataset.images, dataset.identities))
    summary = saliency.region_summary(table, identities)
    tests = model_comparison.region_tests(table, identities, groups, cfg.explain.n_sign_flips, cfg.seed)
    run.write_csv("region_relevance.csv", table)
    run.write_csv("region_summary.csv", summary)
    run.write_csv("region_group_tests.csv", tests)
    run.save_figure(plots.region_relevance(table.assign(identity=table.image.map(identities)),
                                           tests if len(tests) else None, cfg.explain.significance_level),
                    "region_relevance.png")
    run.details.update(aligned=cfg.explain.align, n_images=len(dataset), n_with_landmarks=len(points),
                       n_missing_landmarks=len(missing), n_identities=len(set(faces.identities)))
    print("\n".join(saliency.describe_top_regions(summary, run.models)
                    + model_comparison.describe(tests, cfg.explain.significance_level)))
    print(f"wrote {run.results('region_summary.csv')} and figures in {cfg.output.fig_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
