"""Bad input found by trying the project as a new user: each is one line naming the file and key or line."""
import pytest

import train_regression
from facetraits import config
from facetraits.errors import ConfigError
from conftest import write_config


def one_line(caught) -> str:
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("seed", [-1, 2**33])
def test_seed_outside_32_bits_stops_the_run_before_anything_is_written(blob_data, tmp_path, capsys, seed):
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    with pytest.raises(SystemExit) as caught:
        train_regression.main(["--config", str(path), "--set", f"seed={seed}"])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert str(path) in err and f"seed: {seed} is out of range [0, 4294967295]" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_largest_32_bit_seed_is_accepted():
    assert config.load(None, [f"seed={2**32 - 1}"]).seed == 2**32 - 1


@pytest.mark.parametrize("text", ["", "\n# only a comment\n"])
def test_empty_config_file_is_an_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert one_line(caught) == f"{path}: config file is empty (no settings); copy the shipped config.yaml"


@pytest.mark.parametrize("override, key, name", [("groups=[ASD, N__T]", "groups", "N__T"),
                                                 ("traits=[warm, very__strong]", "traits", "very__strong")])
def test_group_or_trait_name_with_the_model_separator_is_refused(blob_data, tmp_path, capsys, override, key, name):
    path = write_config(tmp_path / "c.yaml", blob_data, tmp_path)
    with pytest.raises(SystemExit) as caught:
        train_regression.main(["--config", str(path), "--set", override])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {path}: {key}: {name!r} contains '__', which separates group and trait in model file "
                   f"names (<group>__<trait>.h5)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
