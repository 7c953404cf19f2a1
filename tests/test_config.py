from __future__ import annotations

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
    with pytest.raises(FileNotFoundError, match="does not exist; shipped configs"):
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
