"""The whole study in one command: train, cross-validate, permutation test, explain, summarise, compare groups.

    python run_all.py --config quick.yaml --set model.weights=none   # every figure in minutes
    python run_all.py                                                # the full study (config.yaml)

The arguments (--config, --set, --group, --trait) go to each of the six scripts in turn, which
reuse one another's finished work as when run one by one; each writes its own run record. The
first step that fails stops the chain with its one-line error and exit code 2.
"""
import sys

import average_saliency
import compare_groups
import cross_validate
import lrp_analysis
import permutation_test
import train_regression

STEPS = (train_regression, cross_validate, permutation_test, lrp_analysis, average_saliency, compare_groups)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    for step in STEPS:
        print(f"== {step.__name__}.py {' '.join(argv)}", file=sys.stderr, flush=True)
        step.main(argv)


if __name__ == "__main__":
    main()
