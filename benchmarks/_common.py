"""Shared by the benchmark scripts: repository paths, machine description, Markdown reports.

Not a benchmark itself. Each benchmark imports it as `import _common` (scripts run as
`python benchmarks/<name>.py` from the repository root, so this folder is on sys.path).
Reports are read on other machines: every path into this checkout or next to it is printed
relative to the repository root.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import math
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the facetraits package

RESULTS = ROOT / "benchmarks" / "results"
SCRATCH = Path(tempfile.gettempdir()) / "facetraits-bench"  # caches, models, copies: never in the repository
DEFAULT_WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_hed_bsds500_notop.h5"
WEIGHTS_NOTE = ("Weights: {weights}. This is the HED edge detector's VGG16 conv stack (fine-tuned from "
                "ImageNet VGG16 on BSDS500), **not the ImageNet weights**; timings do not depend on the "
                "weight values, but any accuracy number printed here is for HED features.")


def relative(text) -> str:
    """`text` with absolute paths into the repository or its parent folder made relative to the root,
    and the system temp folder (scratch outputs, which differ per machine) written as $TMP."""
    text = str(text).replace(f"{ROOT}/", "").replace(f"{ROOT.parent}/", "../")
    return text.replace(f"{tempfile.gettempdir()}/", "$TMP/")


def command_line() -> str:
    """The command as typed, as run from the repository root."""
    argv = [sys.executable, str(Path(sys.argv[0]).resolve()), *sys.argv[1:]]
    return relative(" ".join(shlex.quote(arg) for arg in argv))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    """The checkout's commit, marked when files differ from it: what produced a report (as in run records)."""
    from facetraits.outputs import code_version
    code = code_version(ROOT)
    if code["uncommitted_changes"] is None:
        return code["commit"]
    return f"commit {code['commit']}" + (" with uncommitted changes" if code["uncommitted_changes"] else "")


def machine() -> dict:
    """What the numbers depend on: CPU, memory, accelerator, library versions, load at start."""
    import tensorflow as tf
    from facetraits.outputs import package_versions
    versions = package_versions()
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "code": git_commit(),
        "cores available": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
        "memory": memory,
        "accelerator": f"{len(tf.config.list_physical_devices('GPU'))} GPU(s)",
        **{name: versions[name] for name in ("python", "tensorflow", "innvestigate", "numpy")},
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


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


def write_report(path: Path, title: str, command: str, info: dict, sections: list[tuple[str, str]]) -> Path:
    """Markdown: title, exact command, machine, then (heading, body) sections; paths made `relative`.
    Printed too."""
    parts = [f"# {title}\n", "Command (run from the repository root):\n", f"    {command}\n", "Machine:\n"]
    parts += [f"- {key}: {value}" for key, value in info.items()]
    parts.append("")
    for heading, body in sections:
        parts += [f"## {heading}\n", body.rstrip() + "\n"]
    text = relative("\n".join(parts))
    from facetraits.outputs import atomic_path
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    print(text)
    print(f"wrote {path}", file=sys.stderr)
    return path


def write_pipeline_report(args, title: str, machine: dict, sections: list[tuple[str, str]]) -> Path:
    """write_report for a benchmark built on argument_parser: the weights and settings beside the
    machine, and the note on the (HED, not ImageNet) weights first."""
    info = {**machine, "weights": relative(args.weights),
            "settings": f"{relative(args.config)} with {' '.join(relative(o) for o in args.overrides)}"}
    return write_report(args.out, title, command_line(), info,
                        [("Note", WEIGHTS_NOTE.format(weights=relative(args.weights)))] + sections)


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


def argument_parser(doc: str, report: str) -> argparse.ArgumentParser:
    """The options every benchmark of the pipeline shares: settings, (offline, HED) weights,
    overrides, and the report's path (default: benchmarks/results/<report>.md)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config.yaml"), help="settings file (default: config.yaml)")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                        help=f"VGG16 notop .h5 (default: {relative(DEFAULT_WEIGHTS)}; HED, not ImageNet)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (repeatable), e.g. --set output.cache_dir=PATH")
    parser.add_argument("--out", default=str(RESULTS / f"{report}.md"),
                        help=f"Markdown report (default: benchmarks/results/{report}.md)")
    return parser
