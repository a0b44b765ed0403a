"""The on-disk cache: content-keyed, checksummed entries that are computed once and reused.

A cached result's file name carries the key of its inputs (`digest`), so a changed input is a
new entry, never a stale hit; and the sha256 of its bytes (`checked_name`), so a truncated or
damaged file is found, deleted and computed again instead of read as a result.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from facetraits.outputs import atomic_path


def digest(*parts) -> str:
    """sha256 of arrays (by bytes) and plain values (by JSON): the 'inputs unchanged?' key."""
    hasher = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            hasher.update(str((part.dtype, part.shape)).encode())
            hasher.update(np.ascontiguousarray(part).tobytes())
        else:
            hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
    return hasher.hexdigest()[:16]


CHECKED_NAME = re.compile(r"(.+)\.([0-9a-f]{16})(\.[^.]+)")


def checked_name(path: Path, payload: bytes) -> Path:
    """Where a cache entry for `path` with these bytes is stored: a.npy -> a.<sha256 of the bytes, 16 hex>.npy."""
    return path.with_name(f"{path.stem}.{hashlib.sha256(payload).hexdigest()[:16]}{path.suffix}")


def checked_entries(folder) -> dict[str, Path]:
    """{plain name: stored file} of the checksummed cache entries in `folder` (one listing, many look-ups)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {match[1] + match[3]: folder / entry.name for entry in os.scandir(folder)
            if (match := CHECKED_NAME.fullmatch(entry.name))}


def read_checked(path, entries=None) -> bytes | None:
    """The stored bytes of cache entry `path`, or None when there is none or it is corrupt.

    Cache files are reused for weeks, so a disk error, a truncated copy or an edit must not be
    read as a result: the checksum in the name has to match the bytes. A corrupt entry is named in
    one warning line and deleted, and the caller computes it again."""
    path = Path(path)
    stored = (checked_entries(path.parent) if entries is None else entries).get(path.name)
    if stored is None:
        return None
    try:
        payload = stored.read_bytes()
    except OSError:
        payload = None
    if payload is not None and checked_name(path, payload) == stored:
        return payload
    print(f"warning: {stored}: corrupt cache file (its bytes do not match the checksum in its name); "
          f"deleted, computing it again", file=sys.stderr)
    stored.unlink(missing_ok=True)
    return None


def write_checked(path, payload: bytes) -> Path:
    """Store a cache entry under its checksummed name, atomically (callers write only missing entries)."""
    target = checked_name(Path(path), payload)
    with atomic_path(target) as tmp:
        tmp.write_bytes(payload)
    return target


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def load_checked_npy(path, entries=None) -> np.ndarray | None:
    payload = read_checked(path, entries)
    return None if payload is None else np.load(io.BytesIO(payload))


def cached_array(path, compute) -> np.ndarray:
    """Load `path` if an earlier run finished it, else compute and store it (name carries the inputs key).

    An all-NaN result is returned but not stored: it comes from degenerate input, and a cached
    copy would outlive the fix of that input."""
    array = load_checked_npy(path)
    if array is not None:
        return array
    array = np.asarray(compute())
    if not (array.size and array.dtype.kind == "f" and np.isnan(array).all()):
        write_checked(path, npy_bytes(array))
    return array


def cached_json(path, compute) -> dict:
    """Like cached_array, for a result that is a JSON-ready dict; read back with its keys in the
    order computed (sorted keys made a cached result's columns differ from a fresh one's)."""
    payload = read_checked(path)
    if payload is not None:
        return json.loads(payload)
    result = compute()
    write_checked(path, (json.dumps(result, indent=2, default=str) + "\n").encode())
    return result


def file_digest(path) -> str:
    """sha256 of a file's bytes, read in chunks (model files are ~60 MB)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
