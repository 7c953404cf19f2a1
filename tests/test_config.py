from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from newsclf.config import load_config, make_config, parse_value


def test_defaults_are_valid():
    cfg = make_config({})
    assert cfg.labels[-1] == "other"
    assert cfg.backbone == "e5-small"


def test_unknown_key_names_key_value_and_allowed():
    with pytest.raises(ValueError, match=r"unknown config key 'lerning_rate' \(value 0.1\); allowed keys: .*learning_rate"):
        make_config({"lerning_rate": 0.1})


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("input_mode", "tail", r"'input_mode': got 'tail', expected one of 'head', 'head_tail', 'chunks'"),
        ("batch_size", 0, r"'batch_size': got 0, expected a positive integer"),
        ("batch_size", "16", r"'batch_size': got '16', expected an integer"),
        ("class_weights", "yes", r"'class_weights': got 'yes', expected true or false"),
        ("test_fraction", 0.5, r"'test_fraction': got 0.5, expected a fraction in \[0, 0.5\)"),
        ("labels", ["only"], r"'labels': got \['only'\], expected at least two distinct labels"),
    ],
)
def test_bad_values_are_named(key, value, expected):
    with pytest.raises(ValueError, match=expected):
        make_config({key: value})


def test_yaml_file_and_overrides(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("# a test config\nname: x\nepochs: 2\n", encoding="utf-8")
    cfg = load_config(f, {"epochs": parse_value("3"), "data": parse_value("a.jsonl")})
    assert (cfg.name, cfg.epochs, cfg.data) == ("x", 3.0, ["a.jsonl"])


def test_missing_config_file_lists_shipped(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; pass a YAML file or a shipped config: default, reference, tiny"):
        load_config(tmp_path / "nope.yaml")


def test_broken_yaml(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_config(f)


def test_public_predict_is_the_function_even_after_importing_the_submodule():
    import subprocess
    import sys

    code = "import newsclf.predict, newsclf; from newsclf import predict; print(callable(predict), newsclf.__all__[0])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "predict"]


def test_shipped_configs_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("tiny").backbone == "tiny"
    assert load_config().name == "default"
    ref = load_config("reference")
    assert ref.label_rules and Path(ref.label_rules).is_file()  # anchored beside the shipped config


def test_one_source_of_defaults():
    """The shipped default config only names what differs from the dataclass: the two must not disagree."""
    import yaml

    from newsclf.config import CONFIG_DIR, Config

    shipped = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text(encoding="utf-8"))
    defaults = Config()
    assert set(shipped) <= {"name", "data", "split_by"}, "default.yaml names a key whose default is config.py's job"
    for f in dataclasses.fields(Config):
        assert f.metadata.get("help"), f"config key {f.name} has no help text"
    assert defaults.epochs == load_config("default").epochs


@pytest.mark.parametrize("text", ["[a.jsonl", "{x: 1", "a: b: c"])
def test_override_yaml_errors_are_clear(text):
    with pytest.raises(ValueError, match=r"--data .* is not a valid YAML value .*quote strings"):
        parse_value(text, "data")


@pytest.mark.parametrize("key,value", [("learning_rate", float("nan")), ("epochs", float("inf"))])
def test_non_finite_numbers_rejected(key, value):
    with pytest.raises(ValueError, match=f"config key '{key}'"):
        make_config({key: value})


def test_direct_construction_is_validated_too():
    from newsclf.config import Config

    with pytest.raises(ValueError, match="'batch_size': got 0"):
        Config(batch_size=0)
