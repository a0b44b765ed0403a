"""Permutation test of the cross-validated Pearson r of the configured head: better than chance?

The null repeats the whole procedure of cross_validate.py (same head, same folds, inner selection
included) on ratings permuted between whole identities (see metrics.permuted_by_identity), and
p = (#null r >= observed r + 1) / (N + 1). The observed r is cross_validate.py's pooled r, read
from the same cache, so the r, the p-value and the model that lrp_analysis.py explains belong to
one procedure. Ridge head: all permutations are solved at once (seconds). mlp head: one full CV of
Keras fits per permutation (about 5-8 s each per model on 2 CPU cores): use fewer, e.g. n_permutations=100.
Writes results/permutation_null.csv, results/permutation_summary.csv, fig/permutation_<group>__<trait>.png.

    python permutation_test.py --set permutation.n_permutations=1000
"""
import sys

import numpy as np
import pandas as pd

from facetraits import cache, cli, config, data, metrics, plots, provenance, training


@cli.script(writes=("results_dir", "fig_dir", "cache_dir"))
def main(run):
    cfg = run.config
    dataset = data.load(cfg)
    metrics.check_exchangeable(dataset.identities, dataset.source)  # a degenerate null refused before the features
    study = training.load_study(cfg, dataset=dataset)
    identities = study.dataset.identities
    training.check_folds(study, cfg)
    null_rows, summary_rows, figures = [], [], []
    for group, trait in run.models:
        name = cli.model_name(group, trait)
        y = study.dataset.target(group, trait)
        observed = metrics.pearson_r(y, np.array(training.cached_cross_val_predict(study, y, cfg, name)["predictions"]))
        key = provenance.inputs_key(cfg, *study.features.values(), y, study.folds, identities.tolist(),
                                  config.as_dict(cfg.permutation))
        null = cache.cached_array(cfg.output.cache_dir / "permutation" / f"{name}-{key}.npy",
                                    lambda: training.permutation_null(study, y, cfg, name))
        p_value = metrics.permutation_p_value(observed, null)
        defined = null[np.isfinite(null)]  # p counts only these: so do the summary's n, mean and sd
        if len(defined) < len(null):
            print(f"warning: {name}: {len(null) - len(defined)} of {len(null)} permuted r undefined (constant "
                  f"predictions); left out of p, null mean and sd", file=sys.stderr)
        null_rows.append(pd.DataFrame({"group": group, "trait": trait, "permutation": np.arange(1, len(null) + 1),
                                       "pearson_r": null}))
        summary_rows.append({"group": group, "trait": trait, "head": cfg.model.head, "observed_r": observed,
                             "p_value": p_value, "null_mean": float(np.mean(defined)) if len(defined) else float("nan"),
                             "null_sd": float(np.std(defined, ddof=1)) if len(defined) > 1 else float("nan"),
                             "n_permutations": len(defined), "permutation_unit": "identity",
                             "n_identities": len(np.unique(identities)),
                             "n_fixed_identities": metrics.fixed_identities(identities), "seed": cfg.seed})
        figures.append((plots.permutation_null(null, observed, p_value, f"{name} ({cfg.model.head} head)"),
                        f"permutation_{name}.png"))
        summary = summary_rows[-1]
        print(f"{name}: observed r = {observed:.3f} ({cfg.model.head} head), null mean = {summary['null_mean']:+.3f}, "
              f"sd = {summary['null_sd']:.3f}, p = {p_value:.4g} ({len(defined)} identity permutations)")
    for figure, name in figures:  # only once every model's null exists: no figures beside an older run's tables
        run.save_figure(figure, name)
    run.write_csv("permutation_null.csv", pd.concat(null_rows, ignore_index=True))
    run.write_csv("permutation_summary.csv", pd.DataFrame(summary_rows))
    print(f"wrote {run.results('permutation_summary.csv')}", file=sys.stderr)


if __name__ == "__main__":
    main()
