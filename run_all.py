"""The whole study in one command: train, cross-validate, permutation test, explain, summarise, compare groups.

    python run_all.py --config quick.yaml --set model.weights=none   # every figure in minutes
    python run_all.py                                                # the full study (config.yaml)

The arguments (--config, --set, --group, --trait) go to each of the six scripts in turn, which
reuse one another's finished work as when run one by one; each writes its own run record. Inputs
are checked before the first step, so a bad one is found at once, not after hours: bad ratings,
images or landmarks stop the chain there; if compare_groups.py would refuse the raters, only that
step is left out (the others run, then the chain ends with its error). Any other failure stops the chain at
the failing step. Errors: one line, exit code 2. With one rater group per trait compare_groups.py
has nothing to compare and is left out; without a rater column it runs and says why it cannot.
"""
import sys

import average_saliency
import compare_groups
import cross_validate
import lrp_analysis
import permutation_test
import train_regression
from facetraits import cli, data, landmarks, provenance, training
from facetraits.errors import FacetraitsError

STEPS = (train_regression, cross_validate, permutation_test, lrp_analysis, average_saliency, compare_groups)


def plan(argv) -> tuple[tuple, str]:
    """(the steps to run, why compare_groups.py cannot run or ""), from the checks the steps would make."""
    run = cli.setup_run(__doc__, "run_all", argv)  # parses and validates only: no run record
    cfg = run.config
    dataset = data.load(cfg)
    training.outer_folds(dataset, cfg)  # too few identities for cv.n_folds stops here, not in step 1
    provenance.weights_identity(cfg)  # a missing weights file stops here too (its hash is kept for step 1)
    _, missing = landmarks.dataset_landmarks(cfg, dataset, (cfg.model.input_size,) * 2)
    landmarks.require_some(cfg, missing, len(dataset), "run_all.py (for lrp_analysis.py's mean_face faithfulness "
                                                       "reference, average_saliency.py and compare_groups.py)")
    if dataset.raters is None:
        return STEPS, ""
    try:
        pairs, _ = compare_groups.comparisons(cfg, dataset, run.models)
    except FacetraitsError as err:
        return STEPS[:-1], f"compare_groups.py: {err}"
    if not pairs:
        print("run_all: every trait has one rater group here, so compare_groups.py is left out", file=sys.stderr)
        return STEPS[:-1], ""
    return STEPS, ""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help"} & set(argv):
        print("usage: run_all.py [--config PATH] [--set KEY=VALUE ...] [--group NAME ...] [--trait NAME ...]\n")
        print(__doc__)
        return
    try:
        steps, refused = plan(argv)
    except KeyboardInterrupt:
        print("interrupted: run_all.py stopped while checking the inputs; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None
    except BaseException as err:
        error = cli.user_error(err)  # ours, or a file-system error about a path; anything else is a bug
        if error is None:
            raise
        cli.fail(error)
    if refused:
        print(f"warning: {refused} (the other steps run first)", file=sys.stderr)
    for step in steps:
        print(f"== {step.__name__}.py {' '.join(argv)}", file=sys.stderr, flush=True)
        step.main(argv)
    if refused:
        cli.fail(FacetraitsError(refused))


if __name__ == "__main__":
    main()
