"""One flat configuration for a newsclf run, loaded from YAML.

Every script reads the same dataclass, so a single config file describes a whole run: where the articles
come from, how they are labelled and split, which backbone is fine-tuned and how. Unknown keys and bad
values are errors that name the key, the value and what is allowed, because a typo that silently falls
back to a default would make published numbers lie.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
CONFIG_DIR = REPO_DIR / "configs"
DEFAULT_LABELS = ["governance", "party_building", "safety", "culture", "other"]


@dataclass
class Config:
    """All settings of a run; see the commented files in ``configs/`` for what each one means."""

    # --- run ---
    name: str = "default"
    output_dir: str = "runs"
    seed: int = 42

    # --- data: where the articles come from ---
    data: list[str] = field(default_factory=lambda: ["embedded"])
    field_map: dict[str, Any] = field(default_factory=dict)
    on_bad_record: Literal["error", "skip"] = "error"
    min_chars: int = 20
    dataset_dir: str | None = None

    # --- labelling ---
    labels: list[str] = field(default_factory=lambda: list(DEFAULT_LABELS))
    gold: list[str] = field(default_factory=list)
    label_rules: str | None = None
    use_weak_labels: bool = True
    max_per_label: int | None = None

    # --- splitting ---
    split_by: Literal["auto", "date", "stratified"] = "auto"
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    dedup_threshold: float = 0.8

    # --- model ---
    backbone: str = "e5-small"
    vocab: Literal["full", "restricted"] = "restricted"
    pooling: Literal["mean", "cls"] = "mean"
    input_mode: Literal["head", "head_tail", "chunks"] = "head"
    max_length: int = 256
    max_chunks: int = 4

    # --- training ---
    epochs: float = 4.0
    max_steps: int = -1
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    batch_size: int = 16
    eval_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    class_weights: bool = True
    early_stopping_patience: int = 2
    eval_steps: int | None = None
    bf16: bool = True
    freeze_embeddings: bool = False
    num_threads: int | None = None

    # --- prediction ---
    abstain_threshold: float | None = None

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# key -> (low, high, allowed); a bound given as a float is exclusive, as an int inclusive.
_RANGES: dict[str, tuple[float | int | None, float | int | None, str]] = {
    "validation_fraction": (0, 0.5, "a fraction in [0, 0.5)"),
    "test_fraction": (0, 0.5, "a fraction in [0, 0.5)"),
    "dedup_threshold": (0.0, 1, "a similarity in (0, 1]"),
    "max_length": (8, 8192, "an integer from 8 to 8192"),
    "max_chunks": (1, 64, "an integer from 1 to 64"),
    "epochs": (0.0, None, "a positive number"),
    "learning_rate": (0.0, 1.0, "a positive number below 1"),
    "head_learning_rate": (0.0, 1.0, "a positive number below 1"),
    "batch_size": (1, None, "a positive integer"),
    "eval_batch_size": (1, None, "a positive integer"),
    "gradient_accumulation_steps": (1, None, "a positive integer"),
    "min_chars": (0, None, "a non-negative integer"),
    "early_stopping_patience": (0, None, "a non-negative integer"),
    "max_per_label": (1, None, "a positive integer or null"),
    "eval_steps": (1, None, "a positive integer or null"),
    "num_threads": (1, None, "a positive integer or null"),
    "abstain_threshold": (0, 1, "a probability in [0, 1] or null"),
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widened to floats) or raise."""
    origin = typing.get_origin(tp)
    bad = ValueError(f"config key {key!r}: got {value!r}, expected {_type_name(tp)}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(key, value, arg)
            except ValueError:
                continue
        raise bad
    if tp is type(None):
        if value is not None:
            raise bad
        return None
    if origin is list:
        if isinstance(value, str):  # a single path is a list of one; saves users a pair of brackets
            value = [value]
        if not isinstance(value, list):
            raise bad
        return [_coerce(key, v, typing.get_args(tp)[0]) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key!r}")


def _check_range(key: str, value: Any) -> None:
    if key not in _RANGES or value is None:
        return
    lo, hi, allowed = _RANGES[key]
    too_low = lo is not None and (value <= lo if isinstance(lo, float) else value < lo)
    too_high = hi is not None and (value >= hi if isinstance(hi, float) else value > hi)
    if too_low or too_high:
        raise ValueError(f"config key {key!r}: got {value!r}, expected {allowed}")


def parse_value(text: str) -> Any:
    """Read a command-line override value the way YAML would (``3`` → 3, ``null`` → None, ``[a, b]`` → list)."""
    return yaml.safe_load(text) if text.strip() else text


def make_config(values: dict[str, Any] | None = None) -> Config:
    """Build a :class:`Config` from a mapping, validating every key and value."""
    values = dict(values or {})
    hints = typing.get_type_hints(Config)
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown config key {unknown[0]!r} (value {values[unknown[0]]!r}); allowed keys: {', '.join(sorted(known))}"
        )
    checked = {}
    for key, value in values.items():
        checked[key] = _coerce(key, value, hints[key])
        _check_range(key, checked[key])
    cfg = Config(**checked)
    if len(cfg.labels) < 2:
        raise ValueError(f"config key 'labels': got {cfg.labels!r}, expected at least two distinct labels")
    if len(set(cfg.labels)) != len(cfg.labels):
        raise ValueError(f"config key 'labels': got {cfg.labels!r}, expected each label once")
    if cfg.validation_fraction + cfg.test_fraction >= 0.9:
        raise ValueError(
            "config keys 'validation_fraction' + 'test_fraction': got "
            f"{cfg.validation_fraction + cfg.test_fraction}, expected a sum below 0.9 so training data remains"
        )
    return cfg


def resolve_config_path(path: str | Path | None) -> Path:
    """``None`` → the shipped default; a bare name like ``tiny`` → ``configs/tiny.yaml``."""
    if path is None:
        path = CONFIG_DIR / "default.yaml"
    p = Path(path)
    if not p.exists() and not p.suffix and (CONFIG_DIR / f"{p}.yaml").exists():
        p = CONFIG_DIR / f"{p}.yaml"
    if not p.exists():
        choices = ", ".join(sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))) or "none found"
        raise FileNotFoundError(f"config file {str(path)!r} does not exist; shipped configs: {choices}")
    return p


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config (``None`` = ``configs/default.yaml``) and apply ``overrides`` on top.

    Relative data, gold and rule paths are taken from the current directory first, then from the folder
    above the config file (the project root for ``configs/*.yaml``), so configs work from anywhere.
    """
    p = resolve_config_path(path)
    try:
        values = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {p} is not valid YAML: {err}") from err
    if not isinstance(values, dict):
        raise ValueError(f"config file {p}: expected a mapping of key: value, found {type(values).__name__}")
    values.update(overrides or {})
    cfg = make_config(values)
    return _anchor_paths(cfg, p.resolve().parent.parent)


_PATH_KEYS = ("data", "gold", "label_rules", "dataset_dir")


def _anchor_paths(cfg: Config, root: Path) -> Config:
    """Relative paths that do not exist from the current directory are tried from the config's project root."""

    def anchor(value: str) -> str:
        if value.startswith("embedded") or Path(value).is_absolute() or Path(value).exists():
            return value
        candidate = root / value
        return str(candidate) if candidate.exists() else value

    for key in _PATH_KEYS:
        value = getattr(cfg, key)
        if isinstance(value, list):
            setattr(cfg, key, [anchor(v) for v in value])
        elif isinstance(value, str):
            setattr(cfg, key, anchor(value))
    return cfg
