"""Importers: public face-rating datasets -> the long-form ratings CSV facetraits trains on.

Each importer reads a dataset folder as published (never copying or extracting anything) and
returns the mean rating per image x rater group x trait (`image,identity,group,trait,rating`)
plus, where the data has them, the single ratings (`image,identity,group,trait,rater,rating`)
that `metrics.split_half_noise_ceiling` turns into the reliability of each group mean.

Supported folders (see each folder's README.md):
- ``omi``: One Million Impressions, 1,004 synthetic faces x 34 attributes, one rater group.
- ``london``: Face Research Lab London Set, attractiveness of 102 neutral faces by rater sex.
- ``3dsk``: 100 faces x 5 traits, each rated by 100 women and 100 men.
"""
from __future__ import annotations

import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facetraits import data, metrics, outputs
from facetraits.errors import DataError

RATING_COLUMNS = ["image", "identity", "group", "trait", "rating"]
PER_RATER_COLUMNS = ["image", "identity", "group", "trait", "rater", "rating"]
KEY = ["image", "identity", "group", "trait"]


@dataclass
class Imported:
    """One imported dataset: mean ratings, single ratings (or None) and where the images are."""

    name: str
    ratings: pd.DataFrame  # RATING_COLUMNS
    per_rater: pd.DataFrame | None  # PER_RATER_COLUMNS, or None when the data has no single ratings
    images: Path  # the folder the `image` names are relative to
    licence: str
    notes: list[str] = field(default_factory=list)

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(self.ratings.group))

    @property
    def traits(self) -> list[str]:
        return list(dict.fromkeys(self.ratings.trait))


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def trait_name(raw: str) -> str:
    """`Well-groomed` -> `well_groomed`: lower case, every run of other characters -> `_`."""
    name = re.sub(r"[^0-9a-z]+", "_", str(raw).strip().lower()).strip("_")
    if not name:
        raise DataError(f"cannot make a trait name of {raw!r}")
    return name


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    return path


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None


def _columns(table: pd.DataFrame, path, wanted) -> None:
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, table.columns))})")


def _whole_numbers(values: pd.Series, where, column: str, path: Path | None = None) -> pd.Series:
    """A numeric ID column (OMI's stimulus) as integers; a blank, text or fractional ID is named with its line
    (as an editor shows it in `path`; rows counted from line 2 in a zip member), never truncated or turned
    into a traceback."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = ~np.isfinite(numbers) | (numbers != numbers.round()) | (numbers.abs() > 2 ** 53)  # beyond: not exact
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = values.iloc[row]
        what = "is empty" if pd.isna(value) or str(value).strip() == "" else f"{value!r} is not a whole number"
        line = data.line_numbers(path, len(values))[row] if path is not None else row + 2
        raise DataError(f"{where} line {line}: {column} {what}")
    return numbers.astype(int)


def mean_ratings(per_rater: pd.DataFrame) -> pd.DataFrame:
    """Single ratings -> one mean rating per image x group x trait (rows keep first-seen order).

    A rating that is not a number is left out of the mean here; _finish drops its row with a warning."""
    per_rater = per_rater.assign(rating=pd.to_numeric(per_rater.rating, errors="coerce"))
    means = per_rater.groupby(KEY, sort=False, observed=True).rating.mean().reset_index()
    return means[RATING_COLUMNS]


def _checked_means(singles: pd.DataFrame, summary_path: Path, read_summary) -> pd.DataFrame:
    """Mean ratings of the single ratings, checked against the dataset's published means when it ships them."""
    ratings = mean_ratings(singles)
    if summary_path.is_file():
        _check_against(ratings, read_summary(summary_path).rename(columns={"rating": "rating_published"})
                       [["image", "group", "trait", "rating_published"]], str(summary_path), 1e-3)
    return ratings


def _check_against(means: pd.DataFrame, published: pd.DataFrame, where: str, tolerance: float) -> None:
    """Warn when means computed from single ratings disagree with a dataset's published means."""
    both = means.merge(published, on=["image", "group", "trait"], suffixes=("", "_published"))
    if len(both) == 0:
        warn(f"{where}: no rows to compare with the published means")
        return
    diff = (both.rating - both.rating_published).abs()
    if diff.max() > tolerance:
        worst = both.loc[diff.idxmax()]
        warn(f"{where}: means from the single ratings differ from the published means by up to "
             f"{diff.max():.4g} ({worst.image}, {worst.group}, {worst.trait}); {int((diff > tolerance).sum())} "
             f"of {len(both)} cells differ by more than {tolerance:g}")


def drop_missing_images(imported: Imported) -> Imported:
    """Drop (with a warning on stderr, never silently) every row whose image file is not in the folder."""
    names = pd.unique(imported.ratings.image)
    missing = sorted(name for name in names if not (imported.images / name).is_file())
    if missing:
        n_rows = int(imported.ratings.image.isin(missing).sum())
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warn(f"{imported.name}: {len(missing)} of {len(names)} rated image(s) are not in {imported.images} "
             f"({shown}); dropping their {n_rows} rating row(s)")
        imported.notes.append(f"dropped {len(missing)} image(s) missing from the images folder")
        imported.ratings = imported.ratings[~imported.ratings.image.isin(missing)].reset_index(drop=True)
        if imported.per_rater is not None:
            imported.per_rater = imported.per_rater[~imported.per_rater.image.isin(missing)].reset_index(drop=True)
    return imported


def _finish(imported: Imported) -> Imported:
    """Drop missing ratings (with a warning), check keys, fix column order and types."""
    for attr, columns in (("ratings", RATING_COLUMNS), ("per_rater", PER_RATER_COLUMNS)):
        table = getattr(imported, attr)
        if table is None:
            continue
        table = table[columns].copy()
        for column in columns[:-1]:
            table[column] = table[column].astype(str)
        table["rating"] = pd.to_numeric(table.rating, errors="coerce")
        bad = table.rating.isna() | ~np.isfinite(table.rating.fillna(0))
        if bad.any():
            warn(f"{imported.name}: dropping {int(bad.sum())} {attr.replace('_', '-')} row(s) with no numeric rating")
            table = table[~bad]
        key = ["image", "group", "trait"] + (["rater"] if attr == "per_rater" else [])
        if table.duplicated(key).any():
            row = table[table.duplicated(key)].iloc[0]
            raise DataError(f"{imported.name}: two {attr} rows for the same {', '.join(key)} "
                            f"({', '.join(str(row[k]) for k in key)})")
        setattr(imported, attr, table.reset_index(drop=True))
    if imported.ratings.groupby("image").identity.nunique().max() > 1:
        raise DataError(f"{imported.name}: an image has more than one identity")
    return drop_missing_images(imported)


# ----------------------------------------------------------------------------- One Million Impressions

OMI_LICENCE = "CC BY-NC-SA 4.0 (non-commercial, share-alike; cite Peterson et al. 2022, PNAS)"


def import_omi(source: str | Path, images: str | Path | None = None, per_rater: bool = True) -> Imported:
    """One Million Impressions: `attribute_means.csv` (+ single ratings from `attribute_ratings.zip`).

    One rater group, `all` (the raw ratings carry no rater ID or demographics). Each face is its own
    identity. Trait names are the attribute names in lower case with `-` -> `_`.

    ratings.csv holds the published means, which average all rating types (`normal`, `fill-in` and
    `repeat`). The single ratings leave out `repeat` trials: a repeat is a second rating of the same
    face by the same (anonymous) participant, so keeping it would make the pseudo-raters dependent and
    inflate split-half reliability. Each single rating is its own pseudo-rater `omi_row<N>` (N = its
    0-based row in attribute_ratings.csv); it is NOT a participant ID.
    """
    source = Path(source)
    images = Path(images) if images is not None else source / "images"
    means_path = _need(source / "attribute_means.csv", "OMI means file attribute_means.csv")
    wide = _read_csv(means_path)
    _columns(wide, means_path, ["stimulus"])
    attributes = [c for c in wide.columns if c != "stimulus"]
    names = {a: trait_name(a) for a in attributes}
    if len(set(names.values())) != len(names):
        raise DataError(f"{means_path}: attribute names collide after normalising: {sorted(names)}")
    wide["stimulus"] = _whole_numbers(wide.stimulus, means_path, "stimulus", means_path)
    wide["image"] = wide.stimulus.astype(str) + ".jpg"
    wide["identity"] = wide.stimulus.astype(str)
    ratings = wide.melt(id_vars=["image", "identity"], value_vars=attributes, var_name="trait", value_name="rating")
    ratings["trait"] = ratings.trait.map(names)
    ratings["group"] = "all"
    ratings = ratings[RATING_COLUMNS]
    order = {name: i for i, name in enumerate(wide.image)}
    ratings = ratings.sort_values("image", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)

    singles = None
    notes = ["single ratings: one pseudo-rater per rating (no rater IDs in OMI); `repeat` trials left out"]
    zip_path = source / "attribute_ratings.zip"
    if per_rater and zip_path.is_file():
        raw = _read_omi_zip(zip_path)
        raw = raw[raw.stimulus.isin(wide.stimulus)]
        if raw.empty:
            raise DataError(f"{zip_path}: none of its stimulus values is a face of {means_path.name}")
        unknown = sorted(set(raw.attribute) - set(attributes))
        if unknown:
            warn(f"{zip_path}: ignoring ratings of attribute(s) not in attribute_means.csv: {', '.join(unknown)}")
            raw = raw[raw.attribute.isin(attributes)]
        all_types = raw.groupby(["stimulus", "attribute"]).rating.mean().rename("rating").reset_index()
        all_types = all_types.assign(image=all_types.stimulus.astype(str) + ".jpg", group="all",
                                     trait=all_types.attribute.map(names))
        _check_against(all_types, ratings.rename(columns={"rating": "rating_published"})
                       [["image", "group", "trait", "rating_published"]], f"{zip_path} (all rating types)", 1e-6)
        raw = raw[raw.rating_type != "repeat"]
        singles = pd.DataFrame({
            "image": raw.stimulus.astype(str) + ".jpg",
            "identity": raw.stimulus.astype(str),
            "group": "all",
            "trait": raw.attribute.map(names),
            "rater": "omi_row" + raw.index.astype(str),
            "rating": raw.rating,
        })
        singles = singles.sort_values("image", key=lambda s: s.map(order), kind="stable")
    elif per_rater:
        warn(f"{zip_path} not found: no single ratings, so no ratings_per_rater.csv")
    return _finish(Imported("omi", ratings, singles, images, OMI_LICENCE, notes))


def _read_omi_zip(zip_path: Path) -> pd.DataFrame:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [n for n in archive.namelist() if n.endswith(".csv") and not n.startswith("__MACOSX")]
            if len(members) != 1:
                raise DataError(f"{zip_path}: expected one CSV inside, found {members or 'none'}")
            with archive.open(members[0]) as handle:
                raw = pd.read_csv(io.BufferedReader(handle))
    except zipfile.BadZipFile as err:
        raise DataError(f"{zip_path}: not a readable zip ({err})") from None
    _columns(raw, f"{zip_path}:{members[0]}", ["rating", "attribute", "rating_type", "stimulus"])
    return raw.assign(stimulus=_whole_numbers(raw.stimulus, f"{zip_path}:{members[0]}", "stimulus"))


# ----------------------------------------------------------------------------- London face set

LONDON_LICENCE = "CC BY 4.0 (cite DeBruine & Jones 2017, Face Research Lab London Set)"
RATER_SEX_GROUPS = {"female": "female_raters", "male": "male_raters"}


def import_london(source: str | Path, images: str | Path | None = None, per_rater: bool = True) -> Imported:
    """London face set: attractiveness of the 102 neutral photos, by rater sex.

    Groups `female_raters` and `male_raters` (raters with another or no recorded sex are left out,
    with a note); trait `attractive`, scale 1-7. Images are `images/neutral_front/<id>_03.jpg` (the
    only rated ones; the smiling photos were never rated), so the images folder is `neutral_front`
    and identity is the 3-digit person ID. Raters are `london_<row>` (1-based row in the ratings file).
    Without `london_faces_ratings.csv` the means come from `attractiveness_by_rater_group.csv`.
    """
    source = Path(source)
    images = Path(images) if images is not None else source / "images" / "neutral_front"
    raw_path = source / "london_faces_ratings.csv"
    summary_path = source / "attractiveness_by_rater_group.csv"
    notes = []
    singles = None
    if raw_path.is_file():
        raw = _read_csv(raw_path)  # old-Mac CR line endings: the C engine handles them
        _columns(raw, raw_path, ["rater_sex"])
        faces = [c for c in raw.columns if re.fullmatch(r"X\d+", str(c))]
        if not faces:
            raise DataError(f"{raw_path}: no face columns (X001 ...)")
        raw["rater"] = [f"london_{i:04d}" for i in range(1, len(raw) + 1)]
        raw["group"] = raw.rater_sex.map(RATER_SEX_GROUPS)
        other = raw.group.isna()
        if other.any():
            counts = raw.rater_sex[other].fillna("(blank)").value_counts()
            text = ", ".join(f"{k} {v}" for k, v in counts.items())
            notes.append(f"left out {int(other.sum())} raters whose sex is not female/male ({text})")
            raw = raw[~other]
        long = raw.melt(id_vars=["rater", "group"], value_vars=faces, var_name="face", value_name="rating")
        person = long.face.str[1:]
        singles = pd.DataFrame({"image": person + "_03.jpg", "identity": person, "group": long.group,
                                "trait": "attractive", "rater": long.rater, "rating": long.rating})
        singles = singles.sort_values(["image", "group"], kind="stable")
        ratings = _checked_means(singles, summary_path, _london_summary)
    elif summary_path.is_file():
        if per_rater:
            warn(f"{raw_path} not found: means from {summary_path.name}, no ratings_per_rater.csv")
        ratings = _london_summary(summary_path)
    else:
        raise DataError(f"{source}: neither london_faces_ratings.csv nor attractiveness_by_rater_group.csv found")
    return _finish(Imported("london", ratings, singles if per_rater else None, images, LONDON_LICENCE, notes))


def _london_summary(path: Path) -> pd.DataFrame:
    table = _read_csv(path, dtype={"face_id": str})
    wanted = ["face_id"] + [f"mean_{g}" for g in RATER_SEX_GROUPS.values()]
    _columns(table, path, wanted)
    bad = ~table.face_id.fillna("").str.fullmatch(r"X\d+")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        line = data.line_numbers(path, len(table))[row]
        raise DataError(f"{path} line {line}: face_id {table.face_id.iloc[row]!r} is not of the form X001")
    person = table.face_id.str[1:]
    frames = [pd.DataFrame({"image": person + "_03.jpg", "identity": person, "group": group,
                            "trait": "attractive", "rating": table[f"mean_{group}"]})
              for group in RATER_SEX_GROUPS.values()]
    return pd.concat(frames).sort_values(["image", "group"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- 3DSK

THREEDSK_LICENCE = ("ratings CC BY 4.0; images derived from 3D.sk under a licence for educational use "
                    "only (research/teaching, not commercial). Cite DeBruine & Jones 2020")
THREEDSK_TRAITS = {"att": "attractive", "dom": "dominant", "health": "healthy", "trust": "trustworthy",
                   "masc": "sexual_dimorphism", "fem": "sexual_dimorphism", "sexdim": "sexual_dimorphism"}


def import_3dsk(source: str | Path, images: str | Path | None = None, per_rater: bool = True) -> Imported:
    """3DSK: 100 faces x 5 traits, groups `female_raters` / `male_raters` (the raters' `sex` column).

    Traits: attractive, dominant, healthy, trustworthy and sexual_dimorphism (masculinity rated for
    male faces, femininity for female faces). Each face is its own identity. Single ratings come from
    the 10 files `ratings/3dsk_{men,women}_<trait>.csv`; raters are `<file>_<row>` (e.g. `men_att_001`),
    each of whom rated one trait on the 50 faces of one sex. Without `ratings/` the means come from
    `ratings_by_rater_group.csv`.
    """
    source = Path(source)
    images = Path(images) if images is not None else source / "images"
    files = sorted((source / "ratings").glob("3dsk_*_*.csv"))
    summary_path = source / "ratings_by_rater_group.csv"
    notes = ["sexual_dimorphism = masculinity for male faces, femininity for female faces"]
    singles = None
    if files:
        frames = []
        for path in files:
            match = re.fullmatch(r"3dsk_(men|women)_([a-z]+)", path.stem)
            if not match or match.group(2) not in THREEDSK_TRAITS:
                warn(f"{path}: not a 3dsk_<men|women>_<trait>.csv ratings file; skipped")
                continue
            table = _read_csv(path)
            _columns(table, path, ["sex"])
            faces = [c for c in table.columns if c not in ("sex", "sexpref", "age")]
            stem = path.stem.removeprefix("3dsk_")
            table["rater"] = [f"{stem}_{i:03d}" for i in range(1, len(table) + 1)]
            table["group"] = table.sex.map(RATER_SEX_GROUPS)
            if table.group.isna().any():
                warn(f"{path}: left out {int(table.group.isna().sum())} rater(s) whose sex is not female/male")
                table = table[table.group.notna()]
            long = table.melt(id_vars=["rater", "group"], value_vars=faces, var_name="face", value_name="rating")
            frames.append(pd.DataFrame({"image": long.face + ".jpg", "identity": long.face, "group": long.group,
                                        "trait": THREEDSK_TRAITS[match.group(2)], "rater": long.rater,
                                        "rating": long.rating}))
        if not frames:
            raise DataError(f"{source / 'ratings'}: no 3dsk_<men|women>_<trait>.csv files")
        singles = pd.concat(frames, ignore_index=True)
        singles = _sort_3dsk(singles, source)
        ratings = _checked_means(singles, summary_path, _3dsk_summary)
    elif summary_path.is_file():
        if per_rater:
            warn(f"{source / 'ratings'} has no rating files: means from {summary_path.name}, no ratings_per_rater.csv")
        ratings = _sort_3dsk(_3dsk_summary(summary_path), source)
    else:
        raise DataError(f"{source}: neither ratings/3dsk_*.csv nor ratings_by_rater_group.csv found")
    return _finish(Imported("3dsk", ratings, singles if per_rater else None, images, THREEDSK_LICENCE, notes))


def _3dsk_summary(path: Path) -> pd.DataFrame:
    table = _read_csv(path, dtype={"face_id": str})
    _columns(table, path, ["face_id"])
    frames = []
    for code in ("att", "dom", "health", "sexdim", "trust"):
        for group in RATER_SEX_GROUPS.values():
            column = f"{code}_{group}"
            if column in table.columns:
                frames.append(pd.DataFrame({"image": table.face_id + ".jpg", "identity": table.face_id,
                                            "group": group, "trait": THREEDSK_TRAITS[code],
                                            "rating": table[column]}))
    if not frames:
        raise DataError(f"{path}: no <trait>_female_raters / <trait>_male_raters columns")
    return pd.concat(frames, ignore_index=True)


def _sort_3dsk(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Faces in the published order (female then male, alphabetical), then group, trait."""
    order_path = source / "avg_3dsk_info.csv"
    if order_path.is_file():
        faces = list(_read_csv(order_path, dtype={"face_id": str}).face_id)
    else:
        faces = sorted(table.identity.unique())
    rank = {face: i for i, face in enumerate(faces)}
    key = table.identity.map(rank).fillna(len(rank))
    return table.assign(_k=key).sort_values(["_k", "group", "trait"], kind="stable").drop(columns="_k")


IMPORTERS = {"omi": import_omi, "london": import_london, "3dsk": import_3dsk}


# ----------------------------------------------------------------------------- writing

def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV atomically, ratings at full precision (outputs.write_csv rounds results to 6 digits)."""
    with outputs.atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def config_snippet(imported: Imported, ratings_path: str | Path) -> str:
    """The data:/groups:/traits: settings to paste into config.yaml for this import."""
    data = {"data": {"ratings": str(Path(ratings_path).resolve()), "images": str(Path(imported.images).resolve()),
                     "landmarks": None, "format": "long"}}
    names = {"groups": imported.groups, "traits": imported.traits}
    text = (yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=float("inf"))
            + yaml.safe_dump(names, sort_keys=False, allow_unicode=True, width=float("inf"), default_flow_style=None))
    return text.replace("  landmarks: null\n", "  landmarks: null  # none shipped with this dataset\n").rstrip("\n")


def select_traits(imported: Imported, traits) -> Imported:
    """Keep only the named traits (normalised like trait names); unknown names are an error."""
    wanted = [trait_name(t) for t in traits]
    unknown = [t for t in wanted if t not in imported.traits]
    if unknown:
        raise DataError(f"{imported.name}: unknown trait(s) {', '.join(unknown)} (found: {', '.join(imported.traits)})")
    imported.ratings = imported.ratings[imported.ratings.trait.isin(wanted)].reset_index(drop=True)
    if imported.per_rater is not None:
        imported.per_rater = imported.per_rater[imported.per_rater.trait.isin(wanted)].reset_index(drop=True)
    return imported


def run_import(name: str, source, out_dir, images=None, per_rater: bool = True, traits=None,
               noise_ceiling: bool = False, n_splits: int = 100, seed: int = 0, out=None) -> Imported:
    """Import one dataset into OUT_DIR (ratings.csv [+ ratings_per_rater.csv, noise_ceiling.csv]) and
    print a summary plus the config settings to use."""
    out = out or sys.stdout
    if name not in IMPORTERS:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(IMPORTERS)})")
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: dataset folder not found")
    out_dir = Path(out_dir)
    imported = IMPORTERS[name](source, images=images, per_rater=per_rater)
    if traits:
        imported = select_traits(imported, traits)
    if len(imported.ratings) == 0:
        raise DataError(f"{name}: no ratings left to write")
    ratings_path = write_csv(imported.ratings, out_dir / "ratings.csv")
    table = imported.ratings
    print(f"{name}: {table.image.nunique()} images, {table.identity.nunique()} identities, "
          f"{len(imported.groups)} group(s) ({', '.join(imported.groups)}), {len(imported.traits)} trait(s) "
          f"-> {len(table)} rows in {ratings_path.resolve()}", file=out)
    if imported.per_rater is not None:
        singles = imported.per_rater
        path = write_csv(singles, out_dir / "ratings_per_rater.csv")
        print(f"{name}: {len(singles)} single ratings from {singles.rater.nunique()} raters "
              f"-> {path.resolve()}", file=out)
        if noise_ceiling:
            ceilings = metrics.split_half_noise_ceiling(singles, n_splits=n_splits, seed=seed)
            path = write_csv(ceilings, out_dir / "noise_ceiling.csv")
            print(f"{name}: split-half noise ceilings ({n_splits} splits) -> {path.resolve()}", file=out)
            print(ceilings.to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=out)
    elif noise_ceiling:
        warn(f"{name}: no single ratings, so no noise ceiling")
    for note in imported.notes:
        print(f"note: {note}", file=out)
    print(f"licence: {imported.licence}; the CSVs written are derived data under the same terms "
          f"(keep them out of the repository)", file=out)
    # raters known by name: their file trains on the same group means and also allows the rater-level group test
    named_raters = imported.per_rater is not None and not imported.per_rater.rater.is_unique
    config_ratings = out_dir / "ratings_per_rater.csv" if named_raters else ratings_path
    print("\n# settings for this dataset, for a config file of your own outside the repository (the keys it leaves"
          "\n# out take config.yaml's defaults; its outputs go to results/, fig/, models/, cache/ beside it):", file=out)
    print(config_snippet(imported, config_ratings), file=out)
    return imported
