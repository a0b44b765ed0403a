"""Permutation test of the cross-validated Pearson r: is a model better than chance?

Ratings are shuffled across ALL images (not within identity, which would keep between-identity
differences in the null), the same identity-grouped folds are re-run for every shuffle, and
p = (#null r >= observed r + 1) / (N + 1). permutation.null_model picks the model re-fitted for
every shuffle: `ridge` (closed form on pooled features, 1000 shuffles in seconds; the observed r
is then the ridge's own, so like is compared with like) or `same` (the configured head; exact, slow).
Writes results/permutation_null.csv, results/permutation_summary.csv, fig/permutation_<group>__<trait>.png.

    python permutation_test.py --set permutation.n_permutations=1000
"""
import sys

import numpy as np
import pandas as pd

from facetraits import cli, config, features, metrics, outputs, plots, training


def null_distribution(conv, y, dataset, folds, cfg, name) -> np.ndarray:
    """Pooled CV r for the real ratings (entry 0) and every shuffle (entries 1..N)."""
    shuffles = metrics.shuffled_labels(y, cfg.permutation.n_permutations, cfg.seed)
    if cfg.permutation.null_model == "ridge":
        targets = np.column_stack([y, shuffles])
        x = features.pooled(conv, cfg.model.pooling)
        return metrics.pearson_columns(targets, training.ridge_cv_predict(x, targets, folds, cfg.permutation.ridge_alpha))
    scores = [metrics.pearson_r(y, training.cached_cross_val_predict(conv, y, dataset.identities, folds, cfg, name))]
    progress = outputs.Progress(shuffles.shape[1], f"{name} permutations", "fits")
    for column in shuffles.T:
        scores.append(metrics.pearson_r(column, training.cross_val_predict(conv, column, dataset.identities, folds, cfg)))
        progress.update()
    return np.array(scores)


@cli.script
def main(argv=None):
    run = cli.setup_run(__doc__, argv)
    cfg = run.config
    study = training.load_study(cfg)
    dataset, folds, conv = study.dataset, study.folds, study.features
    null_rows, summary_rows = [], []
    for group, trait in run.models:
        name = cli.model_name(group, trait)
        y = dataset.target(group, trait)
        key = outputs.digest(conv, y, folds, config.as_dict(cfg.model), config.as_dict(cfg.training),
                             config.as_dict(cfg.permutation), cfg.seed)
        scores = outputs.cached_array(cfg.output.cache_dir / "permutation" / f"{name}-{key}.npy",
                                      lambda: null_distribution(conv, y, dataset, folds, cfg, name))
        observed, null = float(scores[0]), scores[1:]
        p_value = metrics.permutation_p_value(observed, null)
        null_rows.append(pd.DataFrame({"group": group, "trait": trait, "permutation": np.arange(1, len(null) + 1),
                                       "pearson_r": null}))
        summary_rows.append({"group": group, "trait": trait, "observed_r": observed, "p_value": p_value,
                             "null_mean": float(np.mean(null)), "null_sd": float(np.std(null, ddof=1)) if len(null) > 1 else float("nan"),
                             "n_permutations": len(null), "seed": cfg.seed})
        outputs.save_figure(plots.permutation_null(null, observed, p_value, f"{name} ({cfg.permutation.null_model})"),
                            run.fig(f"permutation_{name}.png"))
        print(f"{name}: observed r = {observed:.3f} ({cfg.permutation.null_model}), null mean = {np.mean(null):+.3f}, "
              f"p = {p_value:.4g} ({len(null)} permutations)")
    outputs.write_csv(run.results("permutation_null.csv"), pd.concat(null_rows, ignore_index=True))
    outputs.write_csv(run.results("permutation_summary.csv"), pd.DataFrame(summary_rows))
    print(f"wrote {run.results('permutation_summary.csv')}", file=sys.stderr)


if __name__ == "__main__":
    main()
