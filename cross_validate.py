"""Cross-validated Pearson r and MAE per rater group x trait, folds grouped by identity.

No identity has images in both the training and the test part of a fold (cv.group_by). The
whole fit is repeated inside each training part: for the ridge head the inner CV that picks the
feature set and penalty, for the mlp head the identities held out for early stopping. Writes
results/cv_folds.csv, results/cv_summary.csv (per fold and pooled, with the chosen settings and a
95% bootstrap CI of the pooled r over identities), results/cv_repeats.csv (pooled r and MAE per
split: the configured one, and more when cv.repeats > 1 repeats the whole CV on new splits; their
spread also in cv_summary.csv), results/cross_group.csv, fig/cv_pearson.png and
fig/cv_scatter_<group>__<trait>.png. Finished models are cached and skipped on a re-run.

    python cross_validate.py --set cv.n_folds=5 --set cv.repeats=10
"""
import sys

import numpy as np
import pandas as pd

from facetraits import cli, metrics, plots, training


def cross_group(dataset, predictions: dict) -> pd.DataFrame:
    """Each group's model scored against every group's ratings of the same trait (out-of-fold)."""
    rows = []
    for (model_group, trait), predicted in predictions.items():
        for rating_group, _ in dataset.ratings.columns[dataset.ratings.columns.get_level_values(1) == trait]:
            y = dataset.target(rating_group, trait)
            rows.append({"trait": trait, "model_group": model_group, "rating_group": rating_group,
                         "pearson_r": metrics.pearson_r(y, predicted), "mae": metrics.mae(y, predicted), "n_images": len(y)})
    return pd.DataFrame(rows)


@cli.script(writes=("results_dir", "fig_dir", "cache_dir"))
def main(run):
    cfg = run.config
    study = training.load_study(cfg)
    dataset, folds = study.dataset, study.folds
    training.check_folds(study, cfg)
    fold_rows, summary_rows, repeat_rows, predictions, figures = [], [], [], {}, []
    for group, trait in run.models:
        name = cli.model_name(group, trait)
        y = dataset.target(group, trait)
        result = training.cached_cross_val_predict(study, y, cfg, name)
        predictions[(group, trait)] = predicted = np.array(result["predictions"])
        fold_rows.append(pd.DataFrame({"group": group, "trait": trait, "fold": folds + 1, "image": dataset.images,
                                       "identity": dataset.identities, "rating": y, "prediction": predicted}))
        final = training.final_settings(study.features, y, dataset.identities, cfg)
        rows = metrics.cv_summary(group, trait, y, predicted, folds, dataset.identities, result["settings"], final, cfg.seed)
        repeats = training.repeated_cross_validation(study, y, cfg, name, predicted)
        rows[-1].update(metrics.repeat_columns(repeats))
        summary_rows += rows
        repeat_rows += [{"group": group, "trait": trait, **row} for row in repeats]
        figures.append((plots.cv_scatter(y, predicted, folds, name, rows[-1]["pearson_r"]), f"cv_scatter_{name}.png"))
        pooled = rows[-1]
        print(f"{name}: pooled r = {pooled['pearson_r']:.3f} [95% CI {pooled['r_ci_low']:.3f}, {pooled['r_ci_high']:.3f}], "
              f"mean fold r = {pooled['mean_fold_r']:.3f}, MAE = {pooled['mae']:.3f} "
              f"({final['head']}: {final['layers']}@{final['grid']}, alpha {final['alpha']:.3g})")
        if len(repeats) > 1:
            print(f"  over {len(repeats)} splits: r = {pooled['r_repeats_mean']:.3f} (sd {pooled['r_repeats_sd']:.3f}, "
                  f"{pooled['r_repeats_min']:.3f} to {pooled['r_repeats_max']:.3f})")
    summary = pd.DataFrame(summary_rows)
    for figure, name in figures:  # only once every model is done: no figures beside an older run's tables
        run.save_figure(figure, name)
    run.write_csv("cv_folds.csv", pd.concat(fold_rows, ignore_index=True))
    run.write_csv("cv_summary.csv", summary)
    run.write_csv("cv_repeats.csv", pd.DataFrame(repeat_rows))
    run.write_csv("cross_group.csv", cross_group(dataset, predictions))
    run.save_figure(plots.cv_pearson(summary), "cv_pearson.png")
    print(f"wrote {run.results('cv_summary.csv')} and figures in {cfg.output.fig_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
