"""The shared command line of every script: --config, --set, --group, --trait, one-line errors."""
from __future__ import annotations

import argparse
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from facetraits import config as config_module
from facetraits.errors import ConfigError, FacetraitsError

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
MODEL_SEPARATOR = "__"


@dataclass
class Run:
    """One script invocation: its settings, the models it covers, where its outputs go."""

    config: config_module.Config
    args: argparse.Namespace
    argv: list
    models: list  # (group, trait) pairs selected by --group/--trait

    def results(self, name: str) -> Path:
        return self.config.output.results_dir / name

    def fig(self, name: str) -> Path:
        return self.config.output.fig_dir / name


def model_name(group: str, trait: str) -> str:
    """File-name stem of one group x trait model, e.g. ASD__warm."""
    return f"{group}{MODEL_SEPARATOR}{trait}"


OUTPUT_KEYS = ("results_dir", "fig_dir", "models_dir", "cache_dir")


def setup_run(doc: str, argv=None, add_arguments=None, writes=OUTPUT_KEYS) -> Run:
    """Parse the command line, load and validate the config, check the output folders in `writes`
    (output.* keys), select models."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="settings file (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, value parsed as YAML, e.g. --set training.epochs=20 (repeatable)")
    parser.add_argument("--group", action="append", default=[], help="only this rater group (repeatable)")
    parser.add_argument("--trait", action="append", default=[], help="only this trait (repeatable)")
    if add_arguments:
        add_arguments(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    cfg = config_module.load(args.config, args.overrides)
    for key, names in (("groups", cfg.groups), ("traits", cfg.traits)):
        for name in names:
            if MODEL_SEPARATOR in name:  # the model file stem <group>__<trait> could not be told apart
                raise ConfigError(f"{cfg.source}: {key}: {name!r} contains {MODEL_SEPARATOR!r}, which separates "
                                  f"group and trait in model file names (<group>{MODEL_SEPARATOR}<trait>.h5)")
    for option, chosen, known in (("--group", args.group, cfg.groups), ("--trait", args.trait, cfg.traits)):
        for name in chosen:
            if name not in known:
                raise ConfigError(f"{option} {name}: not in {cfg.source} (known: {', '.join(known)})")
    check_output_dirs(cfg, writes)
    groups = [g for g in cfg.groups if not args.group or g in args.group]
    traits = [t for t in cfg.traits if not args.trait or t in args.trait]
    return Run(cfg, args, argv, [(g, t) for g in groups for t in traits])


def check_output_dirs(cfg: config_module.Config, keys) -> None:
    """Each output.<key> folder is, or can be created as, a writable folder: found at start-up, not
    as a PermissionError or FileExistsError after the expensive work. Nothing is created here."""
    for key in keys:
        path = Path(getattr(cfg.output, key))
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        where = f"{cfg.source}: output.{key}: {path}"
        if not existing.is_dir():
            raise ConfigError(f"{where}: {'' if existing == path else f'{existing} '}is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{where}: {existing} is not writable (permissions or a read-only disk); choose "
                              f"another folder with --set output.{key}=PATH")


def script(main):
    """Turn a FacetraitsError into one line on stderr and exit code 2 (no traceback)."""
    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except FacetraitsError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    return wrapper
