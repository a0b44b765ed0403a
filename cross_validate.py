"""Cross-validated Pearson r and MAE per rater group x trait, folds grouped by identity.

No identity has images in both the training and the test part of a fold (cv.group_by), and
early stopping uses identities held out of the training part only. Writes
results/cv_folds.csv, results/cv_summary.csv, results/cross_group.csv, fig/cv_pearson.png and
fig/cv_scatter_<group>__<trait>.png. Finished models are cached and skipped on a re-run.

    python cross_validate.py --set cv.n_folds=5
"""
import sys

import numpy as np
import pandas as pd

from facetraits import cli, metrics, outputs, plots, training


def summarise(group, trait, y, predictions, folds):
    rows = [{"group": group, "trait": trait, "fold": str(k + 1), "pearson_r": metrics.pearson_r(y[folds == k], predictions[folds == k]),
             "mae": metrics.mae(y[folds == k], predictions[folds == k]), "n_test": int(np.sum(folds == k))}
            for k in range(int(folds.max()) + 1)]
    rows.append({"group": group, "trait": trait, "fold": "all", "pearson_r": metrics.pearson_r(y, predictions),
                 "mae": metrics.mae(y, predictions), "n_test": len(y),
                 "mean_fold_r": float(np.nanmean([row["pearson_r"] for row in rows]))})
    return rows


def cross_group(dataset, predictions: dict) -> pd.DataFrame:
    """Each group's model scored against every group's ratings of the same trait (out-of-fold)."""
    rows = []
    for (model_group, trait), predicted in predictions.items():
        for rating_group, _ in dataset.ratings.columns[dataset.ratings.columns.get_level_values(1) == trait]:
            y = dataset.target(rating_group, trait)
            rows.append({"trait": trait, "model_group": model_group, "rating_group": rating_group,
                         "pearson_r": metrics.pearson_r(y, predicted), "mae": metrics.mae(y, predicted), "n_images": len(y)})
    return pd.DataFrame(rows)


@cli.script
def main(argv=None):
    run = cli.setup_run(__doc__, argv)
    cfg = run.config
    study = training.load_study(cfg)
    dataset, folds, conv = study.dataset, study.folds, study.features
    fold_rows, summary_rows, predictions = [], [], {}
    for group, trait in run.models:
        name = cli.model_name(group, trait)
        y = dataset.target(group, trait)
        predictions[(group, trait)] = predicted = training.cached_cross_val_predict(conv, y, dataset.identities, folds, cfg, name)
        fold_rows.append(pd.DataFrame({"group": group, "trait": trait, "fold": folds + 1, "image": dataset.images,
                                       "identity": dataset.identities, "rating": y, "prediction": predicted}))
        rows = summarise(group, trait, y, predicted, folds)
        summary_rows += rows
        outputs.save_figure(plots.cv_scatter(y, predicted, folds, name, rows[-1]["pearson_r"]),
                            run.fig(f"cv_scatter_{name}.png"))
        print(f"{name}: pooled r = {rows[-1]['pearson_r']:.3f}, mean fold r = {rows[-1]['mean_fold_r']:.3f}, "
              f"MAE = {rows[-1]['mae']:.3f}")
    summary = pd.DataFrame(summary_rows)
    outputs.write_csv(run.results("cv_folds.csv"), pd.concat(fold_rows, ignore_index=True))
    outputs.write_csv(run.results("cv_summary.csv"), summary)
    outputs.write_csv(run.results("cross_group.csv"), cross_group(dataset, predictions))
    outputs.save_figure(plots.cv_pearson(summary), run.fig("cv_pearson.png"))
    print(f"wrote {run.results('cv_summary.csv')} and figures in {cfg.output.fig_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
