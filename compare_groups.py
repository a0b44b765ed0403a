"""Do the rater groups rely on different face regions? Tested with raters as the unit.

For each trait and pair of groups: both groups' mean ratings get a ridge head with one common
setting (feature set and penalty chosen on all raters' mean rating); the importance of each face
region is the size of the head's relevance summed over that region (|signed sum|) per unit of
face area (facetraits/importance.py; compare.scale), averaged within identity, then over
identities. The difference between the groups is tested by permuting the raters' group labels
(compare.n_permutations, group sizes kept; each permutation refits both heads), with a
max-statistic correction across regions (p_fwer), bootstrap CIs over raters, and the same null
for the difference of the two groups' CV r (beside their noise ceilings; its setting is chosen
inside each outer training part, so no test face takes part).
Needs a `rater` column in the ratings (see facetraits/group_comparison.py for why raters); without
one it says so and writes no table or figure (only its run record).

Writes results/group_comparison.csv, results/group_comparison_accuracy.csv and
fig/group_comparison_<trait>.png (fig/group_comparison_<trait>__<a>_vs_<b>.png per pair when more
than two groups rate the trait).

    python compare_groups.py --set compare.n_permutations=1000
"""
import itertools
import sys

import pandas as pd

from facetraits import cli, data, group_comparison, importance, landmarks, metrics, plots, training
from facetraits.errors import FacetraitsError


def figure_name(trait: str, group_a: str, group_b: str, n_groups: int) -> str:
    """One figure per trait for two groups; with more, one per pair, named for the pair, so none overwrites another."""
    return f"group_comparison_{trait}.png" if n_groups == 2 else f"group_comparison_{trait}__{group_a}_vs_{group_b}.png"


def groups_by_trait(models) -> dict:
    """{trait: the selected groups that rate it}, from the (group, trait) models."""
    return {trait: [group for group, t in models if t == trait] for _, trait in models}


def comparisons(cfg, dataset, models) -> tuple[list, list]:
    """Every (trait, group a, group b) of the selected models and its checked rater table: refused (one line)
    before any feature is extracted. run_all.py calls it before its first step."""
    pairs = [(trait, a, b) for trait, groups in groups_by_trait(models).items()
             for a, b in itertools.combinations(groups, 2)]
    tables = [group_comparison.rater_table(dataset.raters, dataset.images, trait, group_a, group_b, dataset.source,
                                           cfg.compare) for trait, group_a, group_b in pairs]
    return pairs, tables


@cli.script(writes=("results_dir", "fig_dir", "cache_dir"))
def main(run):
    cfg = run.config
    dataset = data.load(cfg)
    if dataset.raters is None:  # not an error: these data allow only average_saliency.py's model-level comparison
        print(f"{cfg.data.ratings}: no rater column, so rater-level inference is impossible; nothing written. "
              f"average_saliency.py compares the groups' models over identities instead (with the ratings of named raters, "
              f"e.g. import_dataset.py's ratings_per_rater.csv for London or 3DSK as data.ratings, this test runs)", file=sys.stderr)
        return
    pairs, tables = comparisons(cfg, dataset, run.models)
    if not pairs:
        raise FacetraitsError("compare_groups.py needs at least two groups rating the same trait (--group/--trait)")
    by_trait = groups_by_trait(run.models)
    masks, missing = importance.dataset_masks(cfg, dataset)
    landmarks.require_some(cfg, missing, len(dataset), "region importance")
    study = training.load_study(cfg, dataset=dataset)
    metrics.warn_unreliable_folds(dataset.identities, study.folds)  # the groups' CV r is reported too
    results = [group_comparison.compare(study.dataset, table, study.features, study.folds, masks, group_a, group_b,
                                        trait, cfg) for (trait, group_a, group_b), table in zip(pairs, tables)]
    landmarks.report_missing(missing, run.results("landmarks_missing.csv"), len(dataset), run.id)
    for (trait, group_a, group_b), result in zip(pairs, results):  # only once every comparison has succeeded
        run.save_figure(plots.group_comparison(result.table, result.null),
                        figure_name(trait, group_a, group_b, len(by_trait[trait])))
    run.write_csv("group_comparison.csv", pd.concat([result.table for result in results], ignore_index=True))
    accuracy = pd.DataFrame([result.accuracy for result in results])[list(group_comparison.ACCURACY_COLUMNS)]
    run.write_csv("group_comparison_accuracy.csv", accuracy)
    print(f"wrote {run.results('group_comparison.csv')} and figures in {cfg.output.fig_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
