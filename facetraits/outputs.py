"""Atomic writes and run records: an interrupted run never leaves a half-written file.

Every output is written to a temporary name in the same folder and renamed into place, so a
reader sees either the old complete file or the new complete file. A run killed mid-write
leaves its temporary file behind; the next write to the same target removes it. Results tables
carry the id of the run that wrote them (write_table); the run's record, results/runs/<id>.json
(cli.Run.write_record), says which code, settings, packages and device produced them.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import platform
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd


STALE_AFTER = 3600.0  # seconds untouched after which a temporary file we cannot check is left over
PROGRESS_EVERY = 2.0  # seconds between progress lines
RUN_COLUMN = "run"  # last column of every results table: the id of the run that wrote it
PACKAGES = ("tensorflow", "innvestigate", "numpy", "pandas", "scipy", "scikit-learn")
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    The result gets the permissions of any new file (0o666 less the umask), not mkstemp's 0o600.
    The temporary name .<stem>.<pid>@<host>.<random><suffix>.tmp tells whose write it is.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}@{HOST}.", suffix=path.suffix + ".tmp",
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as err:  # name the output the user asked for, not our temporary file (or no file: disk full)
        raise type(err)(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temps(path: Path) -> None:
    """Delete the temporary files that killed writes to `path` left behind.

    One made on this machine is stale once its process is gone. One from another machine (a
    shared folder) or from before names held the pid, only when untouched for STALE_AFTER. A
    file of a running writer on this machine is never touched, however long its write takes.
    """
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.(?:(\d+)@([A-Za-z0-9-]+)\.)?[^.]+"
                         rf"{re.escape(path.suffix)}\.tmp")
    for entry in os.scandir(path.parent):
        match = pattern.fullmatch(entry.name)
        if not match:
            continue
        pid, host = match.groups()
        try:
            if host == HOST:
                stale = not running(int(pid))
            else:
                stale = time.time() - entry.stat().st_mtime > STALE_AFTER
            if stale:
                os.remove(entry.path)
        except FileNotFoundError:
            pass  # its writer renamed it, or another run removed it, meanwhile


def running(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (or no valid pid): leave its files alone
        return True
    return True


def umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_csv(path, table: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return Path(path)


def write_table(path, table: pd.DataFrame, run_id: str) -> Path:
    """Write a results table with a last column `run` = run_id, so the table names the run (and
    through results/runs/<run_id>.json the code and settings) that produced it."""
    return write_csv(path, table.assign(**{RUN_COLUMN: run_id}))


def write_json(path, payload: dict) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def write_npy(path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
    return Path(path)


def save_figure(fig, path, stamp: str = "") -> Path:
    """Save a matplotlib figure atomically and close it (figures pile up in long runs).

    A `stamp` (what made the figure: run, commit, config) is printed small under the figure and,
    for PNG, stored as its Description: a figure copied into slides or a paper still says where
    it came from."""
    import matplotlib.pyplot as plt

    kind = Path(path).suffix.lstrip(".") or "png"
    if stamp:  # just below everything drawn (tick and axis labels can hang below the axes)
        fig.draw_without_rendering()
        if fig.legends:  # savefig's tight crop would move a legend anchored to the figure's edge onto the stamp:
            fig.set_layout_engine("none")  # keep the layout just drawn,
            for legend in fig.legends:  # and pin each figure legend where it was drawn
                legend.set_bbox_to_anchor(legend.get_window_extent().transformed(fig.transFigure.inverted()),
                                          transform=fig.transFigure)
        box = fig.get_tightbbox()
        if box.width < 6:  # inches: a narrow figure gets the stamp on two lines rather than widened
            stamp = stamp.replace(" | ", "\n", 1)
        width, height = fig.get_size_inches()  # figure fractions: savefig's tight crop moves only these
        fig.text(box.x0 / width, (box.y0 - 0.1) / height, stamp, fontsize=6, color="0.45", ha="left", va="top")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=kind,
                    metadata={"Description": stamp} if stamp and kind == "png" else None)
    plt.close(fig)
    return Path(path)


def run_record(script: str, argv, config_dict: dict, **extra) -> dict:
    """What produced an output: script, arguments, resolved config, time. Stored beside results."""
    return {"script": script, "argv": list(argv), "config": config_dict,
            "time": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0], **extra}


def code_version(root: Path) -> dict:
    """The git commit of the code in `root` (short hash) and whether tracked files differ from it.

    Only a checkout whose top level is `root` counts: code copied into some other repository is
    "not a git checkout", like code without git at all.
    """
    try:
        top, commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "--short", "HEAD"],
                                     capture_output=True, text=True, check=True).stdout.splitlines()
        if Path(top).resolve() != Path(root).resolve():
            raise ValueError(f"{root} is inside the checkout {top}")
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, ValueError, subprocess.CalledProcessError):
        return {"commit": "not a git checkout", "uncommitted_changes": None}
    return {"commit": commit, "uncommitted_changes": bool(changes)}


def package_versions() -> dict:
    """Python's and the numerical packages' versions, read from the installed metadata (no imports)."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def device() -> str:
    """What TensorFlow computes on (CPU or the GPU names); scripts that never load it say so rather
    than pay seconds of TensorFlow start-up for the record."""
    backend = sys.modules.get("facetraits.backend")
    return backend.device_name() if backend else "TensorFlow not loaded"


class Progress:
    """One status line per step on stderr: done/total, rate, ETA. Cheap enough for every batch."""

    def __init__(self, total: int, label: str, unit: str = "items"):
        self.total, self.label, self.unit = total, label, unit
        self.start = self.last = time.perf_counter()
        self.done = 0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY or self.done >= self.total:
            self.last = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed > 0 else float("inf")
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            print(f"  {self.label}: {self.done}/{self.total} {self.unit} "
                  f"({rate:.1f} {self.unit}/s, ETA {eta:.0f} s)", file=sys.stderr, flush=True)
