"""Typed, validated settings: config.yaml plus `--set key=value` overrides, loaded once.

Every section is a frozen dataclass whose defaults are the documented defaults; unknown keys,
wrong types and out-of-range values fail at load time with a one-line message naming the file
and the dotted key, so a typo never costs an hour of training.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from facetraits.errors import ConfigError

WEIGHT_KEYWORDS = ("imagenet", "none")
OFFLINE_HINT = ("set model.weights to a local VGG16 include_top=False .h5 file "
                "(--set model.weights=PATH/vgg16_notop.h5), or to none for a smoke test with random weights")

# VGG16 layers whose output can feed the head (model.layers, ridge.feature_sets).
VGG16_LAYERS = tuple(f"block{b}_{kind}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
                     for kind in [f"conv{i}" for i in range(1, n + 1)] + ["pool"])

# Keys of earlier versions: loading one fails with a line that names what replaced it.
RENAMED = {
    "model.pooling": "model.grid (1 = global average pooling, k = k x k average cells)",
    "permutation.null_model": "model.head (the permutation test now refits the configured head itself)",
    "permutation.ridge_alpha": "ridge.alphas (the penalty is chosen by inner cross-validation)",
    # a whole section: any lrp.* key (file or --set) fails here, before its keys are looked at
    "lrp": "explain (lrp.alpha is now explain.significance_level)",
    "explain.alpha": "explain.significance_level (the level of the group difference tests, not LRP's alpha)",
}

# Method names this project offers: iNNvestigate's analyzer names (checked against iNNvestigate's
# own registry in explanations.py as well; kept here so a typo fails without importing
# TensorFlow) and gradcam (explanations.GradCam).
ANALYZERS = (
    "lrp.sequential_preset_a_flat",
    "lrp.sequential_preset_b_flat",
    "lrp.epsilon",
    "lrp.z",
    "lrp.alpha_2_beta_1",
    "gradient",
    "smoothgrad",
    "integrated_gradients",
    "deep_taylor",
    "input_t_gradient",
    "gradcam",
)


def feature_map_size(layer: str, input_size: int) -> int:
    """Side of a VGG16 layer's output map: each block's pool halves it (floor)."""
    block = int(layer[5])
    return input_size // 2 ** (block if layer.endswith("pool") else block - 1)


def cell_bounds(size: int, grid: int) -> list[tuple[int, int]]:
    """[start, stop) of each of `grid` cells along a side of `size`: exactly the windows of Keras'
    AveragePooling2D(pool_size=strides=ceil(size/grid), padding="same"), which leaves the padding
    out of each average. Raises ValueError when that pooling does not give `grid` cells."""
    stride = -(-size // grid)
    if grid > size or -(-size // stride) != grid:
        raise ValueError(f"grid {grid} cannot cut a {size}x{size} map into {grid}x{grid} average cells")
    pad = max((grid - 1) * stride + stride - size, 0) // 2
    return [(max(i * stride - pad, 0), min(i * stride - pad + stride, size)) for i in range(grid)]


def choice(default, *options):
    """A string field that must be one of `options`."""
    return field(default=default, metadata={"choices": options})


def bounded(default, low=None, high=None, above_low=False):
    """A number field that must lie in [low, high] (in (low, high] with above_low)."""
    return field(default=default, metadata={"low": low, "high": high, "above_low": above_low})


def number(value):
    """A finite number from YAML, or None. PyYAML reads 1e-3 (no dot) as text, so text that is a
    number counts; NaN and infinity never make sense as a setting here."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        value = float(value)
    except (ValueError, OverflowError):  # text that is no number; an integer too large for a float
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class DataConfig:
    ratings: Path = Path("data/demo/ratings.csv")  # CSV, long form unless format: wide
    images: Path = Path("data/demo/images")  # folder; the CSV names files relative to it
    landmarks: Path | None = Path("data/demo/landmarks.csv")  # image,point,x,y (68 iBUG points)
    format: str = choice("long", "long", "wide")
    wide_separator: str = "_"  # wide form: one column per <group><sep><trait>
    identities: int = bounded(0, 0)  # only the first N identities (sorted by name); 0 = all


@dataclass(frozen=True)
class FeatureSet:
    """Head input: the named VGG16 layers' maps, each averaged over grid x grid cells, concatenated."""
    layers: tuple[str, ...] = field(default=("block5_pool",), metadata={"choices": VGG16_LAYERS})
    grid: int = bounded(1, 1, 14)  # 1 = global average pooling (reference study); k = k x k cells

    def label(self) -> str:
        return f"{'+'.join(self.layers)}@{self.grid}"


@dataclass(frozen=True)
class ModelConfig:
    weights: str = "imagenet"  # imagenet | none | path to a VGG16 include_top=False .h5
    input_size: int = bounded(224, 32, 1024)  # images are resized to input_size x input_size
    head: str = choice("ridge", "ridge", "mlp")  # ridge: closed form, chosen by inner CV | mlp: reference study
    layers: tuple[str, ...] = field(default=("block5_pool",), metadata={"choices": VGG16_LAYERS})  # mlp head input
    grid: int = bounded(1, 1, 14)  # mlp head input pooling: 1 = GAP (reference study), k = k x k cells
    dense_units: int = bounded(1024, 1)  # mlp only
    dropout: float = bounded(0.5, 0.0, 0.95)  # mlp only

    def mlp_features(self) -> FeatureSet:
        return FeatureSet(self.layers, self.grid)


DEFAULT_FEATURE_SETS = (FeatureSet(("block5_pool",), 1), FeatureSet(("block4_pool", "block5_pool"), 1),
                        FeatureSet(("block4_pool",), 3))


@dataclass(frozen=True)
class RidgeConfig:
    """The ridge head: feature set and penalty chosen by identity-grouped CV inside the training data."""
    feature_sets: tuple[FeatureSet, ...] = DEFAULT_FEATURE_SETS
    alphas: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)  # penalty / number of features
    inner_folds: int = bounded(5, 2)


@dataclass(frozen=True)
class TrainingConfig:
    optimizer: str = choice("adam", "adam", "sgd", "rmsprop")
    learning_rate: float = bounded(1e-3, 0.0, above_low=True)
    epochs: int = bounded(60, 1)
    batch_size: int = bounded(32, 1)
    validation_split: float = bounded(0.1, 0.0, 0.5)  # part of the TRAINING data, never the test fold
    early_stopping_patience: int = bounded(10, 0)  # 0 = off
    verbose: bool = False  # per-epoch Keras output


@dataclass(frozen=True)
class CVConfig:
    n_folds: int = bounded(5, 2)
    group_by: str = choice("identity", "identity", "none")
    repeats: int = bounded(1, 1)  # whole CV on this many splits (seeds seed, seed+1, ...): r's spread over splits


@dataclass(frozen=True)
class PermutationConfig:
    n_permutations: int = bounded(1000, 1)


@dataclass(frozen=True)
class CompareConfig:
    """compare_groups.py: rater groups compared by permuting raters (facetraits/group_comparison.py)."""
    n_permutations: int = bounded(10000, 1)  # rater label permutations; smallest p = 1/(n+1)
    n_bootstrap: int = bounded(2000, 1)  # resamples of raters within each group, for the CIs
    scale: str = choice("rating_per_area", "rating_per_area", "share_per_area")  # see facetraits/importance.py


@dataclass(frozen=True)
class ExplainConfig:
    """Heatmaps and what is computed from them: analyzer (LRP or not), figures, group tests, faithfulness."""
    analyzer: str = choice("lrp.sequential_preset_a_flat", *ANALYZERS)
    batch_size: int = bounded(8, 1)
    n_extremes: int = bounded(5, 1)  # k highest- and k lowest-rated faces in the extremes figure
    colormap: str = choice("signed", "signed", "positive")
    overlays: bool = True  # one overlay PNG per image under fig/lrp/<model>/
    align: bool = True  # average_saliency: align heatmaps to a mean face by landmarks
    map_display: str = choice("smooth", "pixels", "smooth", "conv")  # average and difference maps as drawn
    significance_level: float = bounded(0.05, 0.0, 1.0)  # model-level group tests (FWER) and faithfulness (Holm)
    n_sign_flips: int = bounded(10000, 1)  # sign flips of identities in the group tests (faithfulness: its own 9999)
    faithfulness_analyzers: tuple[str, ...] = field(
        default=("lrp.sequential_preset_a_flat", "lrp.epsilon", "gradient"), metadata={"choices": ANALYZERS})
    faithfulness_steps: int = bounded(4, 1)
    faithfulness_images: int = bounded(24, 1)
    faithfulness_random_orders: int = bounded(5, 1)
    faithfulness_reference: str = choice("mean_face", "mean_face", "blur")  # what replaced patches become
    faithfulness_random: str = choice("patches", "patches", "smooth")  # random baseline: shuffled or clustered patches


@dataclass(frozen=True)
class OutputConfig:
    results_dir: Path = Path("results")
    fig_dir: Path = Path("fig")
    models_dir: Path = Path("models")
    cache_dir: Path = Path("cache")


PROVENANCE_FIELDS = ("source", "overrides")  # where the settings came from, not settings


@dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    groups: tuple[str, ...] = ("ASD", "NT")
    traits: tuple[str, ...] = ("warm", "strong")
    seed: int = bounded(0, 0, 2**32 - 1)  # np.random.seed's range (derived seeds wrap: backend.seed_everything)
    model: ModelConfig = ModelConfig()
    ridge: RidgeConfig = RidgeConfig()
    training: TrainingConfig = TrainingConfig()
    cv: CVConfig = CVConfig()
    permutation: PermutationConfig = PermutationConfig()
    compare: CompareConfig = CompareConfig()
    explain: ExplainConfig = ExplainConfig()
    output: OutputConfig = OutputConfig()
    source: str = "<defaults>"  # the file it came from, for error messages
    overrides: tuple[str, ...] = ()  # the --set items, for error messages

    def origin(self, key: str) -> str:
        """Where a setting's value came from, to start an error about it that only the data reveal:
        '--set key=value' (the last --set that gave it), else 'config.yaml: key'."""
        item = self._override(key)
        return f"--set {item}" if item else f"{self.source}: {key}"

    def named(self, key: str) -> str:
        """The same inside a sentence: '--set key=value', else 'key in config.yaml'."""
        item = self._override(key)
        return f"--set {item}" if item else f"{key} in {self.source}"

    def _override(self, key: str) -> str | None:
        for item in reversed(self.overrides):
            given = item.split("=", 1)[0].strip()
            if key == given or key.startswith((given + ".", given + "[")):
                return item
        return None

    def hash(self) -> str:
        """A short digest of every setting, stored beside outputs to tell runs apart; where the
        outputs go is not a setting of them, so the output folders are left out."""
        settings = {k: v for k, v in as_dict(self).items() if k not in (*PROVENANCE_FIELDS, "output")}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def as_dict(cfg) -> dict:
    """Plain, JSON-ready dict of a config (paths as strings)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return list(value)
        return value
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=plain))


class _DuplicateKey(Exception):
    def __init__(self, key, line: int, first: int):
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: PyYAML keeps the last one silently,
    so a second `compare:` block further down would quietly replace the first."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: SafeLoader merges it below
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1, seen[key])
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                continue
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _yaml_error(err: yaml.YAMLError) -> str:
    """'line N: problem' from PyYAML's multi-line message."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def load(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read config.yaml (or only defaults when path is None), apply `key=value` overrides, validate.

    Paths in the file resolve relative to the file, and so do the output folders it leaves out;
    paths given with --set resolve relative to the current directory, like any other command-line path.
    """
    source = str(path) if path is not None else "<defaults>"
    raw = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({_yaml_error(err)})") from None
        except _DuplicateKey as err:
            raise ConfigError(f"{path} line {err.line}: key {err.key!r} appears twice in one section (first at "
                              f"line {err.first}); the second would silently replace the first") from None
        if raw is None:  # an empty file is a lost config, not a wish for the demo defaults
            raise ConfigError(f"{path}: config file is empty (no settings); copy the shipped config.yaml")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    lines = _key_lines(path.read_text()) if path is not None else {}
    base = path.parent.resolve() if path is not None else Path.cwd()
    if path is not None and isinstance(raw.get("output", {}), dict):
        # output folders the file leaves out sit beside it too, not in whatever folder the command ran from
        output = raw.setdefault("output", {})
        for item in dataclasses.fields(OutputConfig):
            output.setdefault(item.name, str(item.default))
    _resolve_paths(raw, base)
    for item in overrides:
        key, value = _parse_override(item, source)
        # checked alone first, so that an error in it names the command line, not the file
        _build(Config, _only(key, value), f"--set {item}", prefix="", extra={"source": source})
        _assign(raw, key, value, source)
        _resolve_paths(_only(key, value), Path.cwd(), into=raw)
    cfg = _build(Config, raw, source, prefix="", extra={"source": source, "overrides": tuple(overrides)}, lines=lines)
    _check_grids(cfg, lines)
    return cfg


def display_cell(cfg: Config) -> int:
    """Side in input pixels of one cell of the deepest VGG16 map any candidate head input reads
    (block5_pool: 32 px at 224): explain.map_display conv block-averages to it, smooth uses
    sigma = a quarter of it. Coarser detail than this is what the head's deepest features resolve."""
    sets = cfg.ridge.feature_sets if cfg.model.head == "ridge" else (cfg.model.mlp_features(),)
    deepest = max((layer for feature_set in sets for layer in feature_set.layers), key=VGG16_LAYERS.index)
    return -(-cfg.model.input_size // feature_map_size(deepest, cfg.model.input_size))


def _check_grids(cfg: Config, lines: dict) -> None:
    """Every feature set's grid must cut each of its layers' maps at this input size into cells.

    The error blames what the user set: a --set of the input size, else the grid where it was
    given, else (a built-in default grid) the input size."""
    sets = [("model", cfg.model.mlp_features())] + [(f"ridge.feature_sets[{i}]", s) for i, s in enumerate(cfg.ridge.feature_sets)]
    for key, feature_set in sets:
        for layer in feature_set.layers:
            try:
                cell_bounds(feature_map_size(layer, cfg.model.input_size), feature_set.grid)
            except ValueError as err:
                size = cfg.origin("model.input_size")
                section = key.split("[")[0] if key != "model" else "model.grid"
                grid_given = cfg.origin(key + ".grid").startswith("--set") or any(
                    name == section or name.startswith((section + ".", section + "[")) for name in lines)
                where = size if size.startswith("--set") or not grid_given else cfg.origin(key + ".grid")
                default = "" if grid_given else f" by the default {section}"
                raise ConfigError(f"{where}: {err} ({layer} at model.input_size={cfg.model.input_size}{default}); "
                                  f"choose another model.input_size or {section}") from None


def _parse_override(item: str, source: str):
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set training.epochs=20")
    key, text = item.split("=", 1)
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader) if text != "" else ""
    except _DuplicateKey as err:
        raise ConfigError(f"--set {item!r}: key {err.key!r} appears twice") from None
    except yaml.YAMLError as err:
        if text.lstrip().startswith(("[", "{")):  # meant as a list or section, not as a name
            raise ConfigError(f"--set {item!r}: not valid YAML ({_yaml_error(err)})") from None
        value = text  # e.g. a name with characters YAML reserves
    return key.strip(), value


def _assign(raw: dict, dotted: str, value, source: str):
    node = raw
    *parents, leaf = dotted.split(".")
    for name in parents:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: --set {dotted}: {name!r} is not a section")
    node[leaf] = value


def _only(dotted: str, value) -> dict:
    """The nested dict holding just one dotted key (to resolve just that path)."""
    out = {}
    _assign(out, dotted, value, "")
    return out


PATH_KEYS = {("data", "ratings"), ("data", "images"), ("data", "landmarks"), ("model", "weights"),
             ("output", "results_dir"), ("output", "fig_dir"), ("output", "models_dir"),
             ("output", "cache_dir")}


def _resolve_paths(raw: dict, base: Path, into: dict | None = None):
    target = raw if into is None else into
    for section, key in PATH_KEYS:
        value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
        if not isinstance(value, str) or value == "":
            continue
        if (section, key) == ("model", "weights") and value.lower() in WEIGHT_KEYWORDS:
            target[section][key] = value.lower()
            continue
        target[section][key] = str((base / Path(value).expanduser()))


def _build(cls, raw, source: str, prefix: str, extra: dict | None = None, lines: dict | None = None):
    """cls from a dict of settings, every key known and every value checked; `lines` (dotted key ->
    line in the file) lets an error name the line."""
    lines = lines or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{_at(source, lines, prefix.rstrip('.'))}: {prefix.rstrip('.')}: expected a section "
                          f"(key: value lines)")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in PROVENANCE_FIELDS}
    for key in raw:
        where = _at(source, lines, f"{prefix}{key}")
        if f"{prefix}{key}" in RENAMED:
            raise ConfigError(f"{where}: {prefix}{key} is no longer a setting; use {RENAMED[prefix + key]}")
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else f" (known: {', '.join(fields)})"
            raise ConfigError(f"{where}: unknown key {prefix}{key}{hint}")
    values = dict(extra or {})
    for name, f in fields.items():
        if name not in raw:
            continue
        key = prefix + name
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(kind, raw[name], source, key + ".", lines=lines)
        else:
            values[name] = _check(kind, raw[name], f, source, key, lines)
    return cls(**values)


def _at(source: str, lines: dict, key: str) -> str:
    """'config.yaml line 12' where the key's line is known, else the source alone."""
    return f"{source} line {lines[key]}" if key in lines else source


def _key_lines(text: str) -> dict:
    """Dotted key (list items as key[i]) -> its line in a YAML file. The keys under an alias
    (`*anchor`) are written at the anchor, not under the alias's key: they get no line there."""
    lines, seen = {}, set()

    def walk(node, prefix):
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    lines[prefix + key_node.value] = key_node.start_mark.line + 1
                    walk(value_node, prefix + key_node.value + ".")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[f"{prefix.rstrip('.')}[{i}]"] = item.start_mark.line + 1
                walk(item, f"{prefix.rstrip('.')}[{i}].")

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return lines


def _check(kind, value, f, source: str, key: str, lines: dict | None = None):
    lines = lines or {}
    where = f"{_at(source, lines, key)}: {key}"
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    elif kind is float:
        parsed = number(value)
        if parsed is None:
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        value = parsed
    elif kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        value = str(value)
    elif kind == tuple[FeatureSet, ...]:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}: expected a non-empty list of {{layers: [...], grid: k}} entries")
        return tuple(_build(FeatureSet, item, source, f"{key}[{i}].", lines=lines) for i, item in enumerate(value))
    elif kind == tuple[float, ...]:
        parsed = [number(v) for v in value] if isinstance(value, list) else []
        if not parsed or not all(v is not None and v > 0 for v in parsed):
            raise ConfigError(f"{where}: expected a non-empty list of positive numbers, got {value!r}")
        return tuple(parsed)
    elif kind == tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) for v in value):
            raise ConfigError(f"{where}: expected a non-empty list of names, got {value!r}")
        value = tuple(str(v) for v in value)
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: names repeat in {list(value)}")
    elif kind in (Path, Path | None):
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            if kind is Path:
                raise ConfigError(f"{where}: a path is required")
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    low, high, above_low = f.metadata.get("low"), f.metadata.get("high"), f.metadata.get("above_low")
    if low is not None and (value <= low if above_low else value < low) or high is not None and value > high:
        raise ConfigError(f"{where}: {value!r} is out of range {'(' if above_low else '['}{low}, "
                          f"{'any' if high is None else high}]")
    options = f.metadata.get("choices")
    if options:
        names = value if isinstance(value, tuple) else (value,)
        for name in names:
            if name not in options:
                raise ConfigError(f"{where}: {name!r} is not one of {', '.join(options)}")
    return value


def weights_file(cfg: ModelConfig, where: str = "model.weights") -> Path:
    """The local weights file model.weights names (not imagenet or none), checked to exist; `where`
    says where the setting came from (Config.origin)."""
    path = Path(cfg.weights)
    if not path.is_file():
        raise ConfigError(f"{where}: {path} not found; use imagenet (downloads once), or {OFFLINE_HINT}")
    return path
