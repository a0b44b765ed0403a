"""Turn a public face-rating dataset into the long-form ratings CSV facetraits trains on.

    python import_dataset.py {omi,london,3dsk} SOURCE_DIR OUT_DIR

writes OUT_DIR/ratings.csv (image,identity,group,trait,rating), OUT_DIR/ratings_per_rater.csv
(image,identity,group,trait,rater,rating) where the dataset has single ratings, and prints the
data:/groups:/traits: settings to put in config.yaml. Images are never copied: the config points
at the dataset's own images folder.
"""
from __future__ import annotations

import argparse
import sys

from facetraits import cli
from facetraits.errors import FacetraitsError
from facetraits.importers import IMPORTERS, run_import


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Datasets: omi = One Million Impressions (34 attributes, group 'all'); london = Face Research "
               "Lab London Set (attractive, female_raters/male_raters); 3dsk = 3DSK (5 traits, "
               "female_raters/male_raters). Keep OUT_DIR outside the repository: the CSVs are derived data "
               "under the dataset's licence.")
    parser.add_argument("dataset", choices=sorted(IMPORTERS), help="which dataset SOURCE_DIR holds")
    parser.add_argument("source", metavar="SOURCE_DIR", help="the dataset folder (with its README.md)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where to write ratings.csv (created if needed)")
    parser.add_argument("--images", metavar="DIR",
                        help="images folder to point the config at (default: the dataset's own)")
    parser.add_argument("--traits", metavar="A,B", help="keep only these traits (comma-separated)")
    parser.add_argument("--no-per-rater", action="store_true", help="skip ratings_per_rater.csv (faster)")
    parser.add_argument("--noise-ceiling", action="store_true",
                        help="also write noise_ceiling.csv: split-half reliability per group x trait")
    parser.add_argument("--n-splits", type=int, default=100, help="random splits for --noise-ceiling (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --noise-ceiling (default 0)")
    args = parser.parse_args(argv)
    if args.n_splits < 1:
        parser.error("--n-splits must be >= 1")
    if args.no_per_rater and args.noise_ceiling:
        parser.error("--noise-ceiling needs the single ratings; drop --no-per-rater")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    traits = [t for t in args.traits.split(",") if t.strip()] if args.traits else None
    try:
        run_import(args.dataset, args.source, args.out_dir, images=args.images, per_rater=not args.no_per_rater,
                   traits=traits, noise_ceiling=args.noise_ceiling, n_splits=args.n_splits, seed=args.seed)
    except (FacetraitsError, OSError) as err:
        error = cli.user_error(err)
        if error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
