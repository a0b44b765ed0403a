"""Shared by the benchmark scripts: repo path set-up, machine description, Markdown tables.

Not a benchmark itself. Each benchmark imports it as `import _common` (scripts run as
`python benchmarks/<name>.py` from the repository root, so this folder is on sys.path).
"""
from __future__ import annotations

import datetime
import fcntl
import itertools
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time
from importlib import metadata
import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # facetraits and the pipeline scripts (cross_validate.py, ...)

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_hed_bsds500_notop.h5"
LOCK = Path("/tmp/facetraits-cpu.lock")
WEIGHTS_NOTE = ("Weights: {weights}. This is the HED edge detector's VGG16 conv stack (fine-tuned from "
                "ImageNet VGG16 on BSDS500), **not the ImageNet weights**; timings do not depend on the "
                "weight values, but any accuracy number printed here is for HED features.")


def lock_held_by_someone() -> bool:
    """True when /tmp/facetraits-cpu.lock is held by any process."""
    if not LOCK.exists():
        return False
    with open(LOCK) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def under_flock() -> bool:
    """True when an ancestor process is `flock /tmp/facetraits-cpu.lock ...` (so we hold the lock)."""
    pid = os.getppid()
    for _ in range(6):
        if pid <= 1:
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        if argv and Path(argv[0].decode()).name == "flock" and str(LOCK).encode() in argv:
            return True
        pid = int(re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE).group(1))
    return False


def command_line() -> str:
    """The command as typed (relative to the repository root), with the flock prefix if run under it."""
    argv = [sys.argv[0]] + sys.argv[1:]
    try:
        argv[0] = str(Path(argv[0]).resolve().relative_to(ROOT))
    except ValueError:
        pass
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    text = " ".join(shlex.quote(a) for a in [python, *argv])
    return f"flock {LOCK} {text}" if under_flock() else text


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    gpus = "none"
    try:
        import tensorflow as tf
        gpus = str(len(tf.config.list_physical_devices("GPU"))) + " GPU(s)"
    except Exception as err:  # noqa: BLE001 - description only
        gpus = f"unknown ({type(err).__name__})"
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": subprocess.run(["nproc"], check=False, capture_output=True, text=True).stdout.strip() or str(os.cpu_count()),
        "cpu": cpu_model(),
        "memory": memory,
        "accelerator": gpus,
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "innvestigate": version("innvestigate"),
        "numpy": version("numpy"),
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cpu lock": lock_status(),
    }


def lock_status() -> str:
    if under_flock():
        return f"run under flock {LOCK} (heavy jobs of the team run one at a time)"
    if lock_held_by_someone():
        return (f"NOT run under {LOCK}: another process held the lock when this started, so this ran "
                f"without it; see 'other processes' CPU' below for the load other jobs added")
    return f"NOT run under flock {LOCK}: numbers may include other jobs' load (development run)"


class Contention:
    """How much CPU other processes used while we ran: (machine busy time - our own CPU time) / wall.

    Machine busy time from /proc/stat (all CPUs, user+nice+system+irq+softirq+steal), our own from
    getrusage (self + waited-for children)."""

    def __init__(self):
        self.start = self._snapshot()

    @staticmethod
    def _snapshot():
        import resource
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / os.sysconf("SC_CLK_TCK")
        own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                     resource.getrusage(resource.RUSAGE_CHILDREN)))
        return time.perf_counter(), busy, own

    def report(self) -> str:
        t1, busy1, own1 = self._snapshot()
        t0, busy0, own0 = self.start
        wall, ncpu = t1 - t0, os.cpu_count() or 1
        other = max(0.0, (busy1 - busy0) - (own1 - own0))
        own = own1 - own0
        return (f"{other / wall:.2f} of {ncpu} cores on average over the {wall:.0f} s run "
                f"(this benchmark itself: {own / wall:.2f} cores; load average at end "
                f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())})")


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown table from dicts (floats formatted compactly)."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))

    def cell(value):
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            if abs(value) >= 1e5:
                return f"{value:.3g}"
            if abs(value) >= 100:
                return f"{value:.0f}"
            if abs(value) >= 1:
                return f"{value:.2f}"
            return f"{value:.3g}"
        return str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(path: Path, title: str, command: str, info: dict, sections: list[tuple[str, str]],
                 contention: Contention | None = None) -> Path:
    """Markdown: title, exact command, machine, then (heading, body) sections. Printed too."""
    if contention is not None:
        info = {**info, "other processes' CPU during the run": contention.report()}
    parts = [f"# {title}\n", "Command (run from the repository root):\n", f"    {command}\n", "Machine:\n"]
    parts += [f"- {key}: {value}" for key, value in info.items()]
    parts.append("")
    for heading, body in sections:
        parts += [f"## {heading}\n", body.rstrip() + "\n"]
    text = "\n".join(parts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    print(text)
    print(f"wrote {path}", file=sys.stderr)
    return path


def seconds(value: float) -> str:
    """Human-readable duration."""
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 3 * 86400:
        return f"{value / 3600:.1f} h"
    if value < 3 * 365 * 86400:
        return f"{value / 86400:.1f} days"
    return f"{value / (365.25 * 86400):.1f} years"


class RssSampler:
    """Samples this process's VmRSS / RssAnon / RssFile (kB) from /proc/self/status in a thread.

    ru_maxrss counts file-backed pages too (a memory-mapped output file that is being filled
    shows up there), so the anonymous part is reported separately. `mark(name)` starts a phase;
    `peaks()` gives the per-phase maxima in MiB.
    """

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, interval: float = 0.02):
        self.interval, self.samples, self.marks = interval, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @classmethod
    def read(cls) -> dict:
        values = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in cls.FIELDS:
                values[key] = int(line.split()[1])
        return values

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.read()))
            time.sleep(self.interval)

    def start(self):
        self._thread.start()
        return self

    def mark(self, name: str):
        self.samples.append((time.perf_counter(), self.read()))
        self.marks.append((time.perf_counter(), name))

    def stop(self):
        self.samples.append((time.perf_counter(), self.read()))
        self._stop.set()
        self._thread.join()

    def peaks(self) -> dict:
        """{phase: {field: (start MiB, peak MiB)}} for each marked phase."""
        out = {}
        bounds = self.marks + [(float("inf"), None)]
        for (start, name), (end, _) in itertools.pairwise(bounds):
            inside = [s for t, s in self.samples if start <= t <= end]
            before = [s for t, s in self.samples if t <= start]
            first = before[-1] if before else inside[0]
            out[name] = {f: (first.get(f, 0) / 1024, max(s.get(f, 0) for s in inside) / 1024) for f in self.FIELDS}
        return out


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark shares: the settings file and the (offline, HED) weights."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config.yaml"), help="settings file (default: %(default)s)")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                        help="VGG16 notop .h5 (default: %(default)s; HED, not ImageNet)")
    return parser
