"""Config loading: defaults, overrides, path resolution, and one-line errors for every mistake."""
from pathlib import Path
import pytest

from facetraits import config
from facetraits.errors import ConfigError
from conftest import ROOT


def test_shipped_config_loads_with_documented_defaults():
    cfg = config.load(ROOT / "config.yaml")
    assert cfg.groups == ("ASD", "NT") and cfg.traits == ("warm", "strong")
    assert cfg.model.weights == "imagenet"
    assert cfg.model.head == "ridge" and cfg.model.layers == ("block5_pool",) and cfg.model.grid == 1
    assert [s.label() for s in cfg.ridge.feature_sets] == ["block5_pool@1", "block4_pool+block5_pool@1", "block4_pool@3"]
    assert cfg.cv.n_folds == 5 and cfg.permutation.n_permutations == 1000
    assert cfg.data.ratings == ROOT / "data" / "demo" / "ratings.csv"


def test_paths_resolve_relative_to_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("data:\n  ratings: r.csv\n  images: ../imgs\nmodel:\n  weights: w/vgg.h5\n")
    cfg = config.load(path)
    assert cfg.data.ratings == tmp_path / "sub" / "r.csv"
    assert cfg.data.images.resolve() == (tmp_path / "imgs").resolve()
    assert cfg.model.weights == str(tmp_path / "sub" / "w" / "vgg.h5")


def test_a_default_grid_too_fine_for_the_input_size_blames_the_input_size(tmp_path):
    """The file sets only the input size; the grid at fault is a built-in default the user never wrote."""
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  input_size: 32\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value) == (f"{path}: model.input_size: grid 3 cannot cut a 2x2 map into 3x3 average cells (block4_pool "
                              f"at model.input_size=32 by the default ridge.feature_sets); choose another "
                              f"model.input_size or ridge.feature_sets")


def test_output_folders_a_config_file_leaves_out_sit_beside_it(tmp_path, monkeypatch):
    """A study's own small config must not write into whatever folder the command ran from (e.g. the
    repository, over the demo's results)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    path = tmp_path / "study" / "c.yaml"
    path.write_text("output:\n  fig_dir: figures\n")
    cfg = config.load(path)
    assert cfg.output.results_dir == tmp_path / "study" / "results"
    assert cfg.output.fig_dir == tmp_path / "study" / "figures"
    path.write_text("seed: 1\n")
    assert config.load(path).output.cache_dir == tmp_path / "study" / "cache"
    assert config.load(None).output.cache_dir == Path("cache")  # no file: the current folder


def test_overrides_are_parsed_as_yaml_and_paths_resolve_from_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.load(ROOT / "config.yaml", ["training.epochs=7", "groups=[NT]", "model.weights=none",
                                              "data.ratings=mine.csv", "explain.overlays=false"])
    assert cfg.training.epochs == 7 and cfg.groups == ("NT",)
    assert cfg.model.weights == "none" and cfg.explain.overlays is False
    assert cfg.data.ratings == tmp_path / "mine.csv"


def test_hash_changes_with_settings():
    assert config.load(None).hash() == config.load(None).hash()
    assert config.load(None).hash() != config.load(None, ["seed=1"]).hash()
    assert config.load(None).hash() == config.load(None, ["output.fig_dir=elsewhere"]).hash()


@pytest.mark.parametrize("text, message", [
    ("trainng:\n  epochs: 3\n", "unknown key trainng (did you mean training?)"),
    ("training:\n  epoch: 3\n", "unknown key training.epoch (did you mean training.epochs?)"),
    ("training:\n  epochs: ten\n", "training.epochs: expected an integer, got 'ten'"),
    ("training:\n  epochs: 0\n", "training.epochs: 0 is out of range"),
    ("training:\n  learning_rate: fast\n", "training.learning_rate: expected a finite number, got 'fast'"),
    ("cv:\n  group_by: person\n", "cv.group_by: 'person' is not one of identity, none"),
    ("explain:\n  analyzer: lrp.epsilonn\n", "explain.analyzer: 'lrp.epsilonn' is not one of"),
    ("explain:\n  faithfulness_analyzers: [gradient, grad]\n", "explain.faithfulness_analyzers: 'grad' is not one of"),
    ("groups: []\n", "groups: expected a non-empty list"),
    ("traits: [warm, warm]\n", "traits: names repeat"),
    ("explain:\n  overlays: maybe\n", "explain.overlays: expected true or false"),
    ("model: vgg\n", "model: expected a section"),
    ("model:\n  pooling: gap\n", "model.pooling is no longer a setting; use model.grid"),
    ("permutation:\n  null_model: same\n", "permutation.null_model is no longer a setting; use model.head"),
    ("lrp:\n  overlays: false\n", "lrp is no longer a setting; use explain (lrp.alpha is now explain.significance_level)"),
    ("lrp:\n  alpha: 0.01\n", "lrp is no longer a setting; use explain (lrp.alpha is now explain.significance_level)"),
    ("explain:\n  alpha: 0.01\n", "explain.alpha is no longer a setting; use explain.significance_level"),
    ("explain:\n  significance_level: 1.5\n", "explain.significance_level: 1.5 is out of range [0.0, 1.0]"),
    ("explain:\n  map_display: blur\n", "explain.map_display: 'blur' is not one of pixels, smooth, conv"),
    ("model:\n  layers: [block6_pool]\n", "model.layers: 'block6_pool' is not one of"),
    ("ridge:\n  feature_sets: [{layers: [block4_pool], grid: 6}]\n",
     "ridge.feature_sets[0].grid: grid 6 cannot cut a 14x14 map into 6x6 average cells (block4_pool at model.input_size=224)"),
    ("ridge:\n  feature_sets: [{layer: [block4_pool]}]\n", "unknown key ridge.feature_sets[0].layer "),
    ("ridge:\n  alphas: [1, -2]\n", "ridge.alphas: expected a non-empty list of positive numbers"),
    ("ridge:\n  alphas: [1, .nan]\n", "ridge.alphas: expected a non-empty list of positive numbers"),
    ("training:\n  learning_rate: .nan\n", "training.learning_rate: expected a finite number, got nan"),
    ("training:\n  learning_rate: .inf\n", "training.learning_rate: expected a finite number, got inf"),
    ("training:\n  learning_rate: 0\n", "training.learning_rate: 0.0 is out of range (0.0, any]"),
    ("model:\n  dropout: .nan\n", "model.dropout: expected a finite number"),
    ("training:\n  validation_split: nan\n", "training.validation_split: expected a finite number, got 'nan'"),
    ("training:\n  learning_rate: 1" + "0" * 400 + "\n", "training.learning_rate: expected a finite number"),
    ("- a\n- b\n", "expected a mapping of settings"),
    ("data: [\n", "not valid YAML (line 2:"),
    ("seed: 1\nseed: 2\n", "line 2: key 'seed' appears twice in one section (first at line 1)"),
    ("compare:\n  n_bootstrap: 10\nseed: 1\ncompare:\n  n_permutations: 5\n", "line 4: key 'compare' appears twice"),
    ("ridge:\n  feature_sets: [{layers: [block4_pool], grid: 1, grid: 3}]\n", "key 'grid' appears twice"),
    # the line of the key at fault
    ("seed: 1\npermutaton:\n  n_permutations: 5\n", "bad.yaml line 2: unknown key permutaton (did you mean permutation?)"),
    ("seed: 1\ntraining:\n  batch_size: 4\n  epoch: 3\n", "bad.yaml line 4: unknown key training.epoch "),
    ("seed: 1\n\ntraining:\n  epochs: ten\n", "bad.yaml line 4: training.epochs: expected an integer"),
    ("ridge:\n  feature_sets:\n    - {layers: [block5_pool], grid: 1}\n    - layers: [block4_pool]\n      gird: 3\n",
     "bad.yaml line 5: unknown key ridge.feature_sets[1].gird"),
    # keys under an alias are written at the anchor (line 2): no line rather than the anchor's
    ("explain: &shared\n  n_extremes: 2\ncompare: *shared\n", "bad.yaml: unknown key compare.n_extremes"),
])
def test_bad_config_gives_one_line_error_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_value_given_with_set_is_blamed_on_the_set_not_the_file(tmp_path):
    """Errors only the data reveal (an unknown group, too few identities) use Config.origin: a value from
    --set is named as such, and an override's key no longer points at the file's line."""
    path = tmp_path / "c.yaml"
    path.write_text("traits: [warm]\ntraining:\n  epochs: 3\n")
    cfg = config.load(path, ["traits=[warm, kind]", "output.fig_dir=elsewhere"])
    assert cfg.origin("traits") == "--set traits=[warm, kind]"
    assert cfg.origin("output.fig_dir") == "--set output.fig_dir=elsewhere"
    assert cfg.origin("groups") == f"{path}: groups"
    assert config.load(path, ["ridge.feature_sets=[{layers: [block5_pool], grid: 1}]"]).origin("ridge.feature_sets[0].grid").startswith("--set ridge")
    with pytest.raises(ConfigError) as caught:
        config.load(path, ["training.epochs=ten"])
    assert str(caught.value).startswith("--set training.epochs=ten: training.epochs: expected an integer")


def test_merge_keys_still_work_beside_the_duplicate_key_check(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("ridge:\n  feature_sets:\n    - &gap {layers: [block4_pool], grid: 1}\n"
                    "    - <<: *gap\n      grid: 2\n")
    assert [s.grid for s in config.load(path).ridge.feature_sets] == [1, 2]


def test_numbers_written_without_a_dot_are_numbers():
    """YAML 1.1 (PyYAML) reads 1e-3 as text; a researcher means 0.001."""
    cfg = config.load(None, ["training.learning_rate=1e-3", "ridge.alphas=[1e-3, 1e2]"])
    assert cfg.training.learning_rate == 0.001 and cfg.ridge.alphas == (0.001, 100.0)


def test_bad_override_is_rejected():
    with pytest.raises(ConfigError, match="expected key=value"):
        config.load(None, ["training.epochs"])
    with pytest.raises(ConfigError, match="unknown key training.epoch "):
        config.load(None, ["training.epoch=3"])
    with pytest.raises(ConfigError, match=r"--set 'groups=\[ASD, NT': not valid YAML"):
        config.load(None, ["groups=[ASD, NT"])  # was taken as the group name "[ASD, NT"
    with pytest.raises(ConfigError, match="key 'n_bootstrap' appears twice"):
        config.load(None, ["compare={n_bootstrap: 10, n_bootstrap: 20}"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.yaml")


def test_the_dataclass_defaults_are_the_shipped_config():
    """config.yaml is the documented source of defaults: a file that leaves a key out gets the same value."""
    shipped = config.as_dict(config.load(ROOT / "config.yaml"))
    defaults = config.as_dict(config.load(None))
    for section in ("data", "output"):  # paths: the file's resolve relative to the file
        shipped.pop(section), defaults.pop(section)
    shipped.pop("source"), defaults.pop("source")
    assert shipped == defaults


@pytest.mark.parametrize("override, old", [("lrp.alpha=0.01", "lrp"), ("lrp.analyzer=gradient", "lrp"),
                                           ("lrp={}", "lrp"), ("explain.alpha=0.01", "explain.alpha")])
def test_old_explain_keys_given_with_set_name_the_new_key(override, old):
    """The section was called lrp and its significance level lrp.alpha: the error says what replaced them."""
    with pytest.raises(ConfigError) as caught:
        config.load(ROOT / "config.yaml", [override])
    message = str(caught.value)
    assert message.startswith(f"--set {override}: {old} is no longer a setting; use explain")  # not the file
    assert "explain.significance_level" in message and "\n" not in message


def test_old_lrp_section_is_refused_even_beside_the_new_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("explain:\n  overlays: false\nlrp:\n  batch_size: 2\n")
    with pytest.raises(ConfigError, match=r"lrp is no longer a setting; use explain \(lrp.alpha is now "
                                          r"explain.significance_level\)"):
        config.load(path)


def test_explain_section_loads_with_renamed_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("explain:\n  significance_level: 0.01\n  analyzer: gradient\n  overlays: false\n")
    cfg = config.load(path, ["explain.batch_size=3"])
    assert isinstance(cfg.explain, config.ExplainConfig)
    assert cfg.explain.significance_level == 0.01 and cfg.explain.analyzer == "gradient"
    assert cfg.explain.overlays is False and cfg.explain.batch_size == 3
    assert config.load(None, ["explain.significance_level=0.1"]).explain.significance_level == 0.1
    shipped = config.load(ROOT / "config.yaml")
    assert shipped.explain.significance_level == 0.05 and not hasattr(shipped, "lrp")
    assert "lrp" not in config.as_dict(shipped) and "alpha" not in config.as_dict(shipped)["explain"]


def test_display_cell_is_the_deepest_candidate_layers_cell():
    assert config.display_cell(config.load(ROOT / "config.yaml")) == 32  # block5_pool: 7 x 7 at 224 px
    only_block4 = config.load(None, ["ridge.feature_sets=[{layers: [block4_pool], grid: 1}]", "model.input_size=64"])
    assert config.display_cell(only_block4) == 16  # block4_pool: 4 x 4 at 64 px
    mlp = config.load(None, ["model.head=mlp", "model.layers=[block3_pool]", "model.input_size=96"])
    assert config.display_cell(mlp) == 8  # block3_pool: 12 x 12 at 96 px


def test_feature_map_sides_are_those_of_vgg16_pooling_down():
    """Each pool halves the side, rounding down: 56 px gives block5 maps of 1 (56, 28, 14, 7, 3, 1), not 2."""
    assert config.feature_map_size("block5_pool", 56) == 1
    assert config.feature_map_size("block4_pool", 100) == 6 and config.feature_map_size("block4_conv1", 100) == 12


def test_hash_is_of_the_settings_not_of_the_file_they_came_from(tmp_path):
    """The same settings read from two files (or given with --set) are one configuration."""
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("seed: 3\n")
    assert (config.load(tmp_path / "a.yaml").hash() == config.load(tmp_path / "b.yaml").hash()
            == config.load(None, ["seed=3"]).hash())


def test_weight_keywords_are_case_insensitive():
    assert config.load(None, ["model.weights=ImageNet"]).model.weights == "imagenet"
    assert config.load(None, ["model.weights=None"]).model.weights == "none"
