"""Ratings, identities and images: read, check, and hand over in one fixed image order.

Everything is validated before any script writes a file: a bad row or image stops the run with
one line naming the file and the line (line numbers as an editor shows them, header = line 1).
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from facetraits.config import Config, DataConfig
from facetraits.errors import ConfigError, DataError

LONG_COLUMNS = ("image", "identity", "group", "trait", "rating")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MIN_IMAGE_SIDE = 16  # pixels; a smaller "face" is a thumbnail or icon put in by mistake
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I": how older Pillow opens 16-bit grey PNGs
MAX_ABS_RATING = 1e6  # ratings are scale points; anything larger is a unit or export error and overflows training


@dataclass(frozen=True)
class Dataset:
    """Rated images in a fixed order (sorted by name); row i of every array is image i."""

    images: tuple[str, ...]  # names relative to the images folder
    paths: tuple[Path, ...]
    digests: tuple[str, ...]  # sha256 of each image file's bytes (feature cache key)
    identities: np.ndarray
    ratings: pd.DataFrame  # index: image; columns: (group, trait); each group's mean rating
    source: Path  # the ratings file, for messages
    raters: pd.DataFrame | None = None  # image, group, trait, rater, rating: one row per rating; None without a rater column

    def __len__(self) -> int:
        return len(self.images)

    def target(self, group: str, trait: str) -> np.ndarray:
        """Mean rating per image for one rater group x trait, in image order."""
        return self.ratings[(group, trait)].to_numpy(dtype=np.float64)


def load(cfg: Config) -> Dataset:
    """Read and check ratings and images for the configured groups and traits."""
    table = first_identities(read_ratings(cfg.data, cfg.groups, cfg.traits), cfg)
    check_names(table, cfg, "group", cfg.groups)
    check_names(table, cfg, "trait", cfg.traits)
    report_left_out(table, cfg)
    table = table[table.group.isin(cfg.groups) & table.trait.isin(cfg.traits)]
    identities = identity_per_image(table, cfg.data.ratings)
    ratings = table.pivot_table(index="image", columns=["group", "trait"], values="rating", aggfunc="mean")
    for group in cfg.groups:
        for trait in cfg.traits:
            missing = ratings.index[ratings[(group, trait)].isna()] if (group, trait) in ratings else ratings.index
            if len(missing):
                raise DataError(f"{cfg.data.ratings}: image {missing[0]} has no rating for group {group}, "
                                f"trait {trait} ({len(missing)} image(s) lack one)")
    ratings = ratings[[(g, t) for g in cfg.groups for t in cfg.traits]].sort_index()
    check_not_constant(ratings, cfg)
    names = tuple(ratings.index)
    check_unique_stems(table, names, cfg.data.ratings)
    if not Path(cfg.data.images).is_dir():
        raise DataError(f"{cfg.origin('data.images')}: {cfg.data.images}: images folder not found")
    paths = tuple(cfg.data.images / name for name in names)
    digests = tuple(check_image(path, cfg.data.ratings, first_line(table, name)) for name, path in zip(names, paths))
    if not cfg.data.identities:  # with a subset, the other identities' images are left out on purpose
        warn_unrated_files(cfg.data.images, names)
    # Rater names are read within their group ("1" of ASD and "1" of NT are two people).
    raters = table[["image", "group", "trait", "rater", "rating"]].reset_index(drop=True) if "rater" in table else None
    return Dataset(names, paths, digests, identities.loc[list(names)].to_numpy(), ratings, cfg.data.ratings, raters)


def first_identities(table: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The rows of the first data.identities identities, sorted by name (0 = all): part of a
    dataset for a quick run, chosen without randomness so every script sees the same part."""
    wanted = cfg.data.identities
    names = sorted(table.identity.unique())
    if wanted > len(names):
        raise ConfigError(f"{cfg.origin('data.identities')}: asks for {wanted} identities, but {cfg.data.ratings} has "
                          f"only {len(names)}")
    return table[table.identity.isin(names[:wanted])] if wanted else table


def read_ratings(data_cfg: DataConfig, groups, traits) -> pd.DataFrame:
    """The ratings as long-form rows (one per image x group x trait [x rater]), checked cell by cell."""
    path = data_cfg.ratings
    if not Path(path).is_file():
        raise DataError(f"{path}: ratings file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header line and one row per rating)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if table.empty:
        raise DataError(f"{path}: no data rows")
    table.columns = [c.strip() for c in table.columns]
    table["line"] = line_numbers(path, len(table))
    if data_cfg.format == "wide":
        table = wide_to_long(table, path, groups, traits, data_cfg.wide_separator)
    missing = [c for c in LONG_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(LONG_COLUMNS)}"
                        f"{', optional rater' if data_cfg.format == 'long' else ''}; found {', '.join(table.columns[:-1])})")
    text_columns = [c for c in ("image", "identity", "group", "trait", "rater") if c in table.columns]
    for column in text_columns:
        table[column] = table[column].str.strip()
        empty = table[table[column] == ""]
        if len(empty):
            raise DataError(f"{path} line {empty.line.iloc[0]}: empty {column}")
    numeric = pd.to_numeric(table.rating.str.strip(), errors="coerce")

    def where(rows):  # a wide file's rating has a column of its own, named so the cell can be found
        column = f" (column {rows.column.iloc[0]})" if data_cfg.format == "wide" else ""
        return f"{path} line {rows.line.iloc[0]}: rating{column}"

    bad = table[numeric.isna() | ~np.isfinite(numeric.fillna(0))]
    if len(bad):
        value = bad.rating.iloc[0]
        what = "is empty" if value.strip() == "" else f"{value!r} is not a finite number"
        raise DataError(f"{where(bad)} {what}")
    huge = table[numeric.abs() > MAX_ABS_RATING]
    if len(huge):
        raise DataError(f"{where(huge)} {huge.rating.iloc[0].strip()!r} is implausibly large "
                        f"(|rating| > {MAX_ABS_RATING:g})")
    table["rating"] = numeric.astype(float)
    key = ["image", "group", "trait"] + (["rater"] if "rater" in table.columns else [])
    repeats = table[table.duplicated(key)]
    if len(repeats):
        repeat = repeats.iloc[0]
        original = table[(table[key] == repeat[key]).all(axis=1)].iloc[0]
        raise DataError(f"{path} line {repeat.line}: duplicates line {original.line} "
                        f"(same {', '.join(key)}: {', '.join(repeat[key])}"
                        f"{unused_hint(table) if data_cfg.format == 'long' else ''})")
    return table


def extremes(ratings: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the n highest-rated images (highest first) and the n lowest (lowest last); at most
    half the images each, so no face is both. Ties keep image order, so every figure picks the same faces."""
    k = min(n, len(ratings) // 2)
    order = np.argsort(-np.asarray(ratings), kind="stable")
    return order[:k], order[len(order) - k:]


def line_numbers(path, n_rows: int) -> np.ndarray:
    """Each data row's line in the file as an editor shows it (header = line 1). pandas skips blank
    lines, so counting rows from 2 would name the wrong line after one."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        filled = [number for number, text in enumerate(handle, start=1) if text.strip()]
    if len(filled) == n_rows + 1:
        return np.array(filled[1:])
    return np.arange(n_rows) + 2  # a quoted field spans lines: rows are counted, not lines


def unused_hint(table: pd.DataFrame) -> str:
    """Per-rater rows look like duplicates when the rater column is misnamed (e.g. `Rater`): name the
    columns that were ignored so the real cause shows."""
    unused = [c for c in table.columns if c not in LONG_COLUMNS + ("line",)]
    if "rater" in table.columns or not unused:
        return ""
    return f"; columns not used: {', '.join(unused)}; a rater column must be named rater"


def wide_to_long(table: pd.DataFrame, path, groups, traits, separator: str) -> pd.DataFrame:
    """One column per <group><sep><trait> -> long-form rows."""
    for column in ("image", "identity"):
        if column not in table.columns:
            raise DataError(f"{path}: missing column {column} (wide form needs image, identity and "
                            f"one column per group{separator}trait)")
    frames = []
    for group in groups:
        for trait in traits:
            column = f"{group}{separator}{trait}"
            if column not in table.columns:
                raise DataError(f"{path}: missing column {column} (wide form: one column per group{separator}trait)")
            frames.append(table[["image", "identity", "line"]].assign(group=group, trait=trait, rating=table[column],
                                                                      column=column))
    return pd.concat(frames, ignore_index=True)


def check_names(table: pd.DataFrame, cfg: Config, column: str, wanted) -> None:
    present = sorted(table[column].unique())
    for name in wanted:
        if name not in present:
            raise DataError(f"{cfg.origin(column + 's')}: {name!r} is not in {cfg.data.ratings} "
                            f"(found: {', '.join(present)})")


def report_left_out(table: pd.DataFrame, cfg: Config) -> None:
    """Rows of groups or traits the config does not list are left out on purpose (one ratings file may
    serve several studies), but said. A name that differs from a listed one only in case or spaces is a
    typo in the data and refused: its rows would otherwise be missing from that group without a word."""
    def plain(name: str) -> str:
        return "".join(name.split()).casefold()

    for column, wanted in (("group", cfg.groups), ("trait", cfg.traits)):
        extra = sorted(set(table[column]) - set(wanted))
        for name in extra:
            near = [w for w in wanted if plain(w) == plain(name)]
            if near:
                line = table.line[table[column] == name].iloc[0]
                raise DataError(f"{cfg.data.ratings} line {line}: {column} {name!r} differs from {near[0]!r} of "
                                f"{cfg.named(column + 's')} only in case or spaces; write it the same way in both (or, if it is "
                                f"another {column}, list it too and leave it out with --{column})")
        if extra:
            rows = int(table[column].isin(extra).sum())
            shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
            print(f"note: {cfg.data.ratings}: {rows} row(s) of {column}(s) not listed in {cfg.named(column + 's')} left out "
                  f"({len(extra)} {column}(s): {shown})", file=sys.stderr)


def identity_per_image(table: pd.DataFrame, path) -> pd.Series:
    """Each image belongs to exactly one identity; two different ones is an error."""
    counts = table.groupby("image").identity.nunique()
    if (counts > 1).any():
        image = counts.index[counts > 1][0]
        rows = table[table.image == image].sort_values("line")
        usual = rows.identity.value_counts().index[0]  # the odd one out is the line to fix
        odd, first = rows[rows.identity != usual].iloc[0], rows[rows.identity == usual].iloc[0]
        raise DataError(f"{path} line {odd.line}: image {image} has identity {odd.identity} here but "
                        f"{usual} on line {first.line} (an image belongs to one identity)")
    return table.groupby("image").identity.first()


def check_not_constant(ratings: pd.DataFrame, cfg: Config) -> None:
    """A group x trait whose mean rating is the same for every image has nothing to predict: its
    Pearson r and permutation null are NaN. Refused here, before any features are extracted, rather
    than found by a NaN in the middle of a run."""
    for group, trait in ratings.columns:
        values = ratings[(group, trait)]
        if values.nunique() == 1:
            raise DataError(f"{cfg.data.ratings}: group {group}, trait {trait}: all {len(values)} image(s) have the "
                            f"same rating {values.iloc[0]:g}, so there is nothing to predict (Pearson r is "
                            f"undefined); fix the ratings or leave {group} out of {cfg.named('groups')} or {trait} out of "
                            f"{cfg.named('traits')}")


def check_unique_stems(table: pd.DataFrame, names, path) -> None:
    """Per-image outputs are named by the image's stem (fig/lrp/<model>/<stem>.png), so a.png and
    a.jpg would overwrite each other's; refused here rather than renamed there, so that output
    names stay the plain, documented ones."""
    seen = {}
    for name in names:
        stem = Path(name).stem
        if stem in seen:
            raise DataError(f"{path} line {first_line(table, name)}: image {name} has the same name stem {stem!r} "
                            f"as image {seen[stem]} (line {first_line(table, seen[stem])}); per-image outputs "
                            f"such as fig/lrp/<model>/{stem}.png would overwrite each other: rename one")
        seen[stem] = name


def first_line(table: pd.DataFrame, image: str) -> int:
    return int(table.line[table.image == image].iloc[0])


def check_image(path: Path, ratings_path, line: int) -> str:
    """Fully decode one image (catches truncated files); return the sha256 of its bytes.

    Too small and too large images stop here too: PIL refuses images of more than twice
    Image.MAX_IMAGE_PIXELS (a decompression bomb guard) with its own exception type.
    """
    where = f"{path} (named in {ratings_path} line {line})"
    if not path.is_file():
        raise DataError(f"{where}: image file not found")
    content = path.read_bytes()
    try:
        with Image.open(path) as image:
            if min(image.size) < MIN_IMAGE_SIDE:
                raise DataError(f"{where}: image is only {image.size[0]}x{image.size[1]} pixels "
                                f"(at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} needed)")
            image.load()
    except Image.DecompressionBombError as err:
        raise DataError(f"{where}: image too large to load ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{where}: cannot read image ({err})") from None
    return hashlib.sha256(content).hexdigest()


# (folder, unrated files) already reported by this process.
_reported_unrated: set = set()


def warn_unrated_files(folder: Path, names) -> None:
    """Said once per process and folder: run_all.py loads the data in each of its six steps."""
    rated = set(names)
    unrated = [p.name for p in sorted(Path(folder).glob("*"))
               if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in rated]
    key = (str(Path(folder).resolve()), tuple(unrated))
    if unrated and key not in _reported_unrated:
        _reported_unrated.add(key)
        print(f"warning: {len(unrated)} image file(s) in {folder} have no rating and are left out "
              f"(first: {unrated[0]})", file=sys.stderr)


def load_image(path: Path, size: int) -> np.ndarray:
    """Any image (RGB, grey, 16-bit grey, RGBA, palette) as an RGB uint8 array of size x size."""
    with Image.open(path) as image:
        return np.asarray(as_rgb(image).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def as_rgb(image: Image.Image) -> Image.Image:
    """An opened image as 8-bit RGB.

    Transparent pixels are composited on white so that alpha never leaks into the colours.
    16-bit grey is scaled by 1/257 (65535 -> 255): PIL's own conversion clips it at 255 instead,
    which turns a normal 16-bit photo almost white.
    """
    if image.mode in SIXTEEN_BIT_MODES:
        image = Image.fromarray(np.round(np.clip(np.asarray(image), 0, 65535) / 257).astype(np.uint8))
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, image)
    return image.convert("RGB")


def load_images(paths, size: int) -> np.ndarray:
    return np.stack([load_image(p, size) for p in paths]) if len(paths) else np.zeros((0, size, size, 3), np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the stored image, for mapping landmarks to the model's input grid."""
    with Image.open(path) as image:
        return image.size
