"""One flat configuration for a newsclf run: the :class:`Config` dataclass is the one source of defaults.

Every command reads the same dataclass, so a single config file describes a whole run: where the articles
come from, how they are labelled and split, which backbone is fine-tuned and how. Each field carries its
meaning in ``metadata["help"]`` (``newsclf train --help`` lists them), and every value is checked in
``Config.__post_init__``: unknown keys and bad values are errors that name the key, the value and what is
allowed, because a typo that silently fell back to a default would make published numbers lie.

The shipped configs (``newsclf/configs/*.yaml``: ``default``, ``tiny``, ``reference``) hold only what their
run changes from these defaults, with the reason next to each value.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "configs"
# In a source checkout the repo root holds gold/ and sits beside ../shared; an installed package has none.
REPO_DIR = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").exists() else None
DEFAULT_LABELS = ["governance", "party_building", "safety", "culture", "other"]


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field whose meaning travels with it (as in transformers' TrainingArguments)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Config:
    """All settings of a run. Build it with :func:`load_config` (YAML + overrides) or :func:`make_config`."""

    # --- run ---
    name: str = _f("default", "run name; the run is written to <output_dir>/<name>/")
    output_dir: str = _f("runs", "folder that holds run folders")
    seed: int = _f(42, "seed for head initialisation, dropout and batch order (and, unless data_seed is "
                   "set, for the data sample and split)")
    data_seed: int | None = _f(None, "seed for which articles are kept under max_per_label and for the split's "
                               "tie-breaks; unset = seed. Fix it to compare training seeds on the same data")

    # --- data: where the articles come from ---
    data: list[str] = _f(["embedded"], "article files/folders (JSONL, JSON, CSV/TSV, Parquet, pages), "
                         "'embedded' (shipped labelled corpus) or 'embedded-pages'")
    field_map: dict[str, Any] = _f({}, "our column -> your field name(s), e.g. {text: [lead, body]}")
    on_bad_record: Literal["error", "skip"] = _f("error", "a bad input record stops the run ('error') or is "
                                                 "skipped and counted ('skip')")
    min_chars: int = _f(20, "records with fewer characters of text are dropped and counted")
    dataset_dir: str | None = _f(None, "a dataset saved by `newsclf build-dataset` to train on instead of "
                                 "building one from data")

    # --- labelling ---
    labels: list[str] = _f(list(DEFAULT_LABELS), "the sections, in order; the last is usually the catch-all")
    gold: list[str] = _f([], "hand-label files (CSV/TSV of id,label or labelled JSONL), trusted over rules")
    label_rules: str | None = _f(None, "YAML of metadata rules and lexicons (default: the shipped rules)")
    use_weak_labels: bool = _f(True, "label unlabelled articles with the rules/lexicon labeller")
    max_per_label: int | None = _f(None, "cap on training articles per label (hand labels kept first)")

    # --- splitting ---
    split_by: Literal["auto", "date", "stratified"] = _f("auto", "'date' puts the latest articles in test; "
                                                         "'auto' = date when the data has dates")
    validation_fraction: float = _f(0.15, "share of articles (by near-duplicate group) for validation")
    test_fraction: float = _f(0.15, "share of articles (by near-duplicate group) for test")
    dedup_threshold: float = _f(0.8, "cosine of character 4-gram TF-IDF above which articles share a group")

    # --- model ---
    backbone: str = _f("e5-small", "encoder: e5-small, tiny, hf:/path/to/folder or hf:<cached hub name>")
    vocab: Literal["full", "restricted"] = _f("restricted", "'restricted' keeps the CJK/ASCII vocabulary "
                                              "pieces: half the parameters, same tokens on Chinese news")
    pooling: Literal["mean", "cls"] = _f("mean", "sentence vector: masked mean (what e5 was trained with) or [CLS]")
    input_mode: Literal["head", "head_tail", "chunks"] = _f("head_tail", "which tokens of a long article the "
                                                            "model reads (see newsclf/inputs.py)")
    max_length: int = _f(256, "tokens per model input")
    max_chunks: int = _f(4, "windows per article in chunks mode")

    # --- training ---
    epochs: float = _f(4.0, "training epochs (early stopping may end sooner)")
    max_steps: int = _f(-1, "stop after this many optimizer steps (-1: use epochs)")
    learning_rate: float = _f(8e-5, "peak learning rate of the encoder")
    head_learning_rate: float = _f(2e-3, "learning rate of the freshly initialised classification head")
    batch_size: int = _f(16, "training articles per step")
    eval_batch_size: int = _f(32, "inputs per evaluation batch")
    gradient_accumulation_steps: int = _f(1, "steps whose gradients are summed before an update")
    weight_decay: float = _f(0.01, "AdamW weight decay of the encoder")
    warmup_ratio: float = _f(0.06, "share of steps with a linearly rising learning rate")
    layer_lr_decay: float = _f(1.0, "layer-wise learning-rate decay: each encoder layer learns this times the "
                               "rate of the layer above, the embeddings below the lowest (1: one rate)")
    class_weights: bool = _f(True, "weight the loss by inverse label frequency")
    early_stopping_patience: int = _f(3, "evaluations without a better validation macro-F1 before stopping "
                                      "(0: never stop early)")
    eval_steps: int | None = _f(None, "evaluate and checkpoint every N steps (null: every epoch)")
    average_from: float | None = _f(0.5, "ship the mean of the weights at every evaluation from this share of "
                                    "the training steps on (SWA), not the best checkpoint (null: the best)")
    bf16: bool = _f(True, "bf16 autocast (fast on CPUs with AVX-512 BF16/AMX and on GPUs)")
    freeze_embeddings: bool = _f(False, "keep the word embeddings fixed")
    num_threads: int | None = _f(None, "torch threads (null: torch's default)")

    # --- prediction ---
    blend_baseline: bool = _f(True, "blend the TF-IDF baseline (trained on the training split) into the "
                              "probabilities, weighted by two exponents fitted on validation; saved in the model")
    abstain_threshold: float | None = _f(None, "fixed abstain threshold (null: chosen on validation for a "
                                         "target precision)")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            _check_range(f.name, value)
            object.__setattr__(self, f.name, value)
        if len(self.labels) < 2:
            raise ValueError(f"config key 'labels': got {self.labels!r}, expected at least two distinct labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"config key 'labels': got {self.labels!r}, expected each label once")
        if any(not lab.strip() for lab in self.labels):
            raise ValueError(f"config key 'labels': got {self.labels!r}, expected non-empty label names")
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                "config keys 'validation_fraction' + 'test_fraction': got "
                f"{self.validation_fraction + self.test_fraction}, expected a sum below 0.9 so training data remains"
            )

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_help() -> str:
    """One line per config key: name, default and meaning (for ``newsclf train --help``)."""
    lines = []
    for f in dataclasses.fields(Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"  --{f.name} (default {default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines)


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
    "weight_decay": (0, None, "a non-negative number"),
    "warmup_ratio": (0, 1, "a fraction in [0, 1]"),
    "layer_lr_decay": (0.0, 1, "a factor in (0, 1]"),
    "average_from": (0, 1, "a fraction in [0, 1] or null"),
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
        if not isinstance(value, (list, tuple)):
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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
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


def parse_value(text: str, key: str | None = None) -> Any:
    """Read a command-line override value the way YAML would (``3`` → 3, ``null`` → None, ``[a, b]`` → list)."""
    if not text.strip():
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = f"--{key} " if key else ""
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"override {where}{text!r} is not a valid YAML value ({first}); quote strings that contain "
            "YAML syntax, e.g. --name 'run: 2', and close brackets in lists, e.g. --data '[a.jsonl, b.jsonl]'"
        ) from None


def make_config(values: dict[str, Any] | None = None) -> Config:
    """Build a :class:`Config` from a mapping, validating every key and value."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown config key {unknown[0]!r} (value {values[unknown[0]]!r}); allowed keys: {', '.join(sorted(known))}"
        )
    return Config(**values)


def shipped_configs() -> list[str]:
    """Names of the configs shipped in the package (``newsclf train --config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(path: str | Path | None) -> Path:
    """``None`` → the shipped default; a shipped name like ``tiny`` → its file; anything else is a path."""
    if path is None:
        path = "default"
    p = Path(path)
    shipped = CONFIG_DIR / f"{p.name}.yaml"
    if not p.exists() and not p.suffix and len(p.parts) == 1 and shipped.exists():
        return shipped
    if not p.exists() and p.suffix in (".yaml", ".yml") and len(p.parts) <= 2 and (CONFIG_DIR / p.name).exists():
        return CONFIG_DIR / p.name  # configs/tiny.yaml, as older docs and scripts wrote it
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "does not exist"
        raise FileNotFoundError(
            f"config file {str(path)!r} {what}; pass a YAML file or a shipped config: "
            f"{', '.join(shipped_configs()) or 'none found'}"
        )
    return p


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config (``None`` = the shipped ``default``) and apply ``overrides`` on top.

    Relative data, gold and rule paths are taken from the current directory first, then from the config
    file's folder, then (in a source checkout) from the repository root; found paths are stored absolute,
    so a saved model's config works from any folder.
    """
    p = resolve_config_path(path)
    try:
        values = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {p} is not valid YAML: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {p} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {p}: expected a mapping of key: value, found {type(values).__name__}")
    values.update(overrides or {})
    cfg = make_config(values)
    roots = [p.resolve().parent] + ([REPO_DIR] if REPO_DIR else [])
    return _anchor_paths(cfg, roots)


_PATH_KEYS = ("data", "gold", "label_rules", "dataset_dir")


def _anchor_paths(cfg: Config, roots: list[Path]) -> Config:
    """Relative paths are tried from the current directory, then from each root; found ones become absolute."""

    def anchor(value: str) -> str:
        if value.startswith("embedded") or Path(value).is_absolute():
            return value
        for candidate in [Path(value)] + [root / value for root in roots]:
            if candidate.exists():
                return str(candidate.resolve())
        return value  # left as given: the reader names it in its error

    for key in _PATH_KEYS:
        value = getattr(cfg, key)
        if isinstance(value, list):
            setattr(cfg, key, [anchor(v) for v in value])
        elif isinstance(value, str):
            setattr(cfg, key, anchor(value))
    return cfg
