"""The whole study in one command: train, cross-validate, permutation test, explain, summarise, compare groups.

    python run_all.py --config quick.yaml --set model.weights=none   # every figure in minutes
    python run_all.py                                                # the full study (config.yaml)

The arguments (--config, --set, --group, --trait) go to each of the six scripts in turn, which
reuse one another's finished work as when run one by one; each writes its own run record. What a
later step would refuse (ratings and images, the landmarks of the region statistics, the raters of
compare_groups.py) is checked before the first step, so a bad input stops the chain at once, not
after hours; any other failure stops it at the failing step. Either way: one line, exit code 2.
With one rater group per trait compare_groups.py has nothing to compare and is left out.
"""
import sys

import average_saliency
import compare_groups
import cross_validate
import lrp_analysis
import permutation_test
import train_regression
from facetraits import cli, data, landmarks
from facetraits.errors import FacetraitsError

STEPS = (train_regression, cross_validate, permutation_test, lrp_analysis, average_saliency, compare_groups)


def steps_after_checking_inputs(argv) -> tuple:
    """The steps to run, once the inputs every step reads have passed the checks those steps make."""
    run = cli.setup_run(__doc__, "run_all", argv)  # parses and validates only: no run record
    cfg = run.config
    dataset = data.load(cfg)
    _, missing = landmarks.dataset_landmarks(cfg, dataset, (cfg.model.input_size,) * 2)
    landmarks.require_some(cfg, missing, len(dataset), "average_saliency.py and compare_groups.py (face regions)")
    if dataset.raters is not None:
        pairs, _ = compare_groups.comparisons(cfg, dataset, run.models)
        if not pairs:
            print("run_all: every trait has one rater group here, so compare_groups.py is left out", file=sys.stderr)
            return STEPS[:-1]
    return STEPS


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    try:
        steps = steps_after_checking_inputs(argv)
    except FacetraitsError as err:
        cli.fail(err)
    for step in steps:
        print(f"== {step.__name__}.py {' '.join(argv)}", file=sys.stderr, flush=True)
        step.main(argv)


if __name__ == "__main__":
    main()
