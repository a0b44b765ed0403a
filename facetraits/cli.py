"""The shared command line of every script: --config, --set, --group, --trait, one-line errors, run records."""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from facetraits import config as config_module
from facetraits import outputs
from facetraits.errors import ConfigError, FacetraitsError

ROOT = Path(__file__).resolve().parents[1]  # the code directory: scripts, config.yaml, facetraits/
DEFAULT_CONFIG = ROOT / "config.yaml"
MODEL_SEPARATOR = "__"


@dataclass
class Run:
    """One script invocation: its settings, the models it covers, where its outputs go, its record.

    `id` (<script>-<YYYYmmdd-HHMMSS>-<random>) names the record results/runs/<id>.json and fills
    the `run` column of every table the run writes, so a table always says which run made it.
    """

    config: config_module.Config
    args: argparse.Namespace
    argv: list
    models: list  # (group, trait) pairs selected by --group/--trait
    script: str  # stem of the script file, e.g. cross_validate
    started: float = field(default_factory=time.time)
    details: dict = field(default_factory=dict)  # script-specific facts for the record
    code: dict = field(default_factory=lambda: outputs.code_version(ROOT))  # read at the start: the code that ran
    id: str = field(init=False)

    def __post_init__(self):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.started))
        self.id = f"{self.script}-{stamp}-{os.urandom(3).hex()}"  # two runs in one second stay apart

    def results(self, name: str) -> Path:
        return self.config.output.results_dir / name

    def fig(self, name: str) -> Path:
        return self.config.output.fig_dir / name

    @property
    def stamp(self) -> str:
        """What made an output, in one line: this run's id, its code commit, its config hash."""
        changed = "+uncommitted" if self.code.get("uncommitted_changes") else ""
        return f"{self.id} | commit {self.code['commit']}{changed} | config {self.config.hash()}"

    def save_figure(self, figure, name: str) -> Path:
        """Save fig/<name>, stamped (see `stamp`) under the figure and in the PNG's Description."""
        return outputs.save_figure(figure, self.fig(name), self.stamp)

    def write_csv(self, name: str, table: pd.DataFrame, per_model: bool = True) -> Path:
        """Write results/<name> with this run's id in a last column `run`. A --group/--trait run
        replaces a whole per-model table, so it says so when it replaces one."""
        path = self.results(name)
        n_all = len(self.config.groups) * len(self.config.traits)
        if per_model and len(self.models) < n_all and path.is_file():
            print(f"note: {path} is replaced by this run's {len(self.models)} of {n_all} models (--group/--trait); "
                  f"run without them for the full table", file=sys.stderr)
        return outputs.write_table(path, table, self.id)

    @property
    def record_path(self) -> Path:
        return self.results(f"runs/{self.id}.json")

    def write_record(self, status: str, message: str = "") -> Path:
        """What produced this run's outputs: code commit, argv, config and its hash, versions, device, time."""
        now = time.time()
        return outputs.write_json(self.record_path, {
            "run": self.id, "script": f"{self.script}.py", "status": status, "message": message,
            "argv": list(self.argv), "config": config_module.as_dict(self.config), "config_hash": self.config.hash(),
            "code": self.code, "versions": outputs.package_versions(), "device": outputs.device(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(self.started)),
            "ended": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(now)) if status != "running" else None,
            "wall_seconds": round(now - self.started, 3), "details": self.details})


def model_name(group: str, trait: str) -> str:
    """File-name stem of one group x trait model, e.g. ASD__warm."""
    return f"{group}{MODEL_SEPARATOR}{trait}"


def model_path(cfg: config_module.Config, group: str, trait: str) -> Path:
    """The saved model of one group x trait (<models_dir>/ASD__warm.h5); its record has the suffix .json."""
    return cfg.output.models_dir / f"{model_name(group, trait)}.h5"


OUTPUT_KEYS = ("results_dir", "fig_dir", "models_dir", "cache_dir")


def setup_run(doc: str, script: str, argv=None, add_arguments=None, writes=OUTPUT_KEYS) -> Run:
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
                raise ConfigError(f"{cfg.origin(key)}: {name!r} contains {MODEL_SEPARATOR!r}, which separates "
                                  f"group and trait in model file names (<group>{MODEL_SEPARATOR}<trait>.h5)")
            if any(c in name for c in "/\\\0"):  # would put model and result files into other folders
                raise ConfigError(f"{cfg.origin(key)}: {name!r} contains a path separator; names become parts "
                                  f"of file names (<group>{MODEL_SEPARATOR}<trait>.h5), so use letters, digits, - or _")
    for option, chosen, key in (("--group", args.group, "groups"), ("--trait", args.trait, "traits")):
        known = getattr(cfg, key)
        for name in chosen:
            if name not in known:
                raise ConfigError(f"{option} {name}: not in {cfg.named(key)} (known: {', '.join(known)})")
    check_output_dirs(cfg, dict.fromkeys(("results_dir", *writes)))  # results_dir: the run record
    groups = [g for g in cfg.groups if not args.group or g in args.group]
    traits = [t for t in cfg.traits if not args.trait or t in args.trait]
    return Run(cfg, args, argv, [(g, t) for g in groups for t in traits], script)


def check_output_dirs(cfg: config_module.Config, keys) -> None:
    """Each output.<key> folder is, or can be created as, a writable folder: found at start-up, not
    as a PermissionError or FileExistsError after the expensive work. Nothing is created here."""
    for key in keys:
        path = Path(getattr(cfg.output, key))
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        where = f"{cfg.origin('output.' + key)}: {path}"
        if not existing.is_dir():
            raise ConfigError(f"{where}: {'' if existing == path else f'{existing} '}is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{where}: {existing} is not writable (permissions or a read-only disk); choose "
                              f"another folder with --set output.{key}=PATH")


def file_error(err: OSError) -> FacetraitsError:
    """A file-system error about one path (not writable, a file where a folder should be, disk full)
    as the user's one-line error: it names the path, and nothing is wrong with the code."""
    return FacetraitsError(f"{err.filename}: {err.strerror or err} (a file-system problem: permissions, free space, "
                           f"or a file where a folder should be)")


def user_error(err: BaseException) -> FacetraitsError | None:
    """The error as the user's to fix (ours, or a file-system error about a path), or None for a bug."""
    if isinstance(err, FacetraitsError):
        return err
    if isinstance(err, OSError) and err.filename is not None:
        return file_error(err)
    return None


def fail(err: FacetraitsError):
    """One line on stderr and exit code 2 (no traceback): the error is the user's to fix, not a bug."""
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(2) from None


def script(main=None, *, add_arguments=None, writes=OUTPUT_KEYS):
    """Make `main(run)` a script entry point `main(argv=None)`: @cli.script or @cli.script(add_arguments=f).

    Sets up the Run from the command line and the script's docstring (checking that the output
    folders named in `writes` can be written), and keeps its record in
    results/runs/<run id>.json: written at the start (status running, so tables of a killed run
    still name a record) and again at the end with status ok, error (a FacetraitsError, also
    reported as one line with exit code 2), interrupted (Ctrl-C: one line, exit code 130) or
    crashed, and the wall time.
    """
    if main is None:
        return functools.partial(script, add_arguments=add_arguments, writes=writes)
    name = Path(main.__code__.co_filename).stem
    doc = main.__globals__.get("__doc__")

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            run = setup_run(doc, name, argv, add_arguments, writes)
        except FacetraitsError as err:  # no config, so nowhere to keep a record
            fail(err)
        status, message = "crashed", ""
        try:
            run.write_record("running")
            result = main(run)
            status = "ok"
            return result
        except KeyboardInterrupt:
            status, message = "interrupted", "KeyboardInterrupt"
            print(f"interrupted: {name}.py stopped; the outputs it finished are kept, and cached work (features, "
                  f"models, heatmaps, CV and permutation results) is reused when it runs again", file=sys.stderr)
            raise SystemExit(130) from None
        except BaseException as err:
            error = user_error(err)
            if error is None:  # a bug: keep the traceback
                message = f"{type(err).__name__}: {err}"
                raise
            status, message = "error", str(error)
            fail(error)
        finally:
            try:
                run.write_record(status, message)
            except OSError as err:  # e.g. results/runs is not writable: the outcome above stands
                print(f"warning: run record not written: {err.filename}: {err.strerror}", file=sys.stderr)
    return wrapper
