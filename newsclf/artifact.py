"""The saved model folder: the one module that writes and reads it.

A model folder is a standard Hugging Face folder (``config.json`` with ``id2label``, ``model.safetensors``,
tokenizer files), so ``transformers.pipeline("text-classification", model=DIR)`` loads it with no custom
code, plus ``newsclf.json``: the :class:`ModelMeta` that newsclf needs to use the model as it was trained
(labels, how an article becomes model inputs, the calibration temperature, the abstain threshold, the
training data's fingerprint and the resolved config). Reports written at the end of training (metrics,
predictions, plots, the model card) live in the same folder.

``save`` writes everything into a temporary folder beside the target and renames it into place, so an
interrupted save never leaves half a model; files are made world-readable (0644, folders 0755) like
``save_pretrained`` does under a usual umask, so colleagues can load a shared model. ``load`` checks every
required file and that the weights' config, the metadata and the label list agree before anything runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsclf import __version__

META_FILE = "newsclf.json"
SCHEMA_VERSION = 1
INPUT_MODES = ("head", "head_tail", "chunks")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
_TRAIN_HINT = "re-train it with `newsclf train`, or restore the folder from a backup"


class ModelFolderError(ValueError):
    """A model folder that is missing files or whose files disagree; the message says what and how to fix."""


@dataclass
class ModelMeta:
    """newsclf's metadata for a saved model (``newsclf.json``)."""

    labels: list[str]
    input_mode: str = "head"
    max_length: int = 256
    max_chunks: int = 4
    pooling: str = "mean"
    backbone: str = ""
    vocab: str = "full"
    temperature: float = 1.0
    abstain_threshold: float = 0.0
    abstain: dict[str, Any] = field(default_factory=dict)
    # The TF-IDF baseline blended into the probabilities ({"model": a, "baseline": b}, see
    # newsclf.calibration.blend_logits); its weights are the folder's baseline.* files. None: the model alone.
    blend: dict[str, float] | None = None
    train_fingerprint: str = ""
    # The run's saved splits, relative to the model folder ("../dataset"), so a copied run folder still works.
    dataset_dir: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    newsclf_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        labels = self.labels
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
            raise ModelFolderError(f"'labels' must be a list of at least two label names, found {labels!r}")
        if len(set(labels)) != len(labels):
            raise ModelFolderError(f"'labels' must name each label once, found {labels!r}")
        if self.input_mode not in INPUT_MODES:
            raise ModelFolderError(f"'input_mode' must be one of {', '.join(INPUT_MODES)}, found {self.input_mode!r}")
        for key, low in (("max_length", 8), ("max_chunks", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ModelFolderError(f"'{key}' must be an integer >= {low}, found {value!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ModelFolderError(f"'temperature' must be a positive finite number, found {t!r}")
        a = self.abstain_threshold
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 <= a <= 1:
            raise ModelFolderError(f"'abstain_threshold' must be a probability in [0, 1], found {a!r}")
        b = self.blend
        if b is not None and not (
            isinstance(b, dict) and set(b) == {"model", "baseline"}
            and all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in b.values())
        ):
            raise ModelFolderError(f"'blend' must be null or {{\"model\": a, \"baseline\": b}} with a, b >= 0, found {b!r}")
        if not isinstance(self.schema_version, int) or self.schema_version > SCHEMA_VERSION:
            raise ModelFolderError(
                f"schema version {self.schema_version!r} is newer than this newsclf reads ({SCHEMA_VERSION}); "
                "upgrade newsclf"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMeta:
        """Read metadata; folders written before schema versions (version 0) hold the same keys."""
        if not isinstance(data, dict):
            raise ModelFolderError(f"expected a JSON object, found {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("schema_version", 0)
        if "labels" not in values:
            raise ModelFolderError("the metadata has no 'labels'")
        if values.get("abstain_threshold") is None:
            values["abstain_threshold"] = 0.0
        return cls(**values)


# ---------------------------------------------------------------- reading


def _required(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"no model folder at {path}; train one with `newsclf train` or pass the folder it wrote "
            "(model= / --model / $NEWSCLF_MODEL)"
        )
    if not path.is_dir():
        raise ModelFolderError(f"{path} is a file; expected a model folder written by `newsclf train`")
    if not (path / META_FILE).exists():
        raise ModelFolderError(
            f"{path} has no {META_FILE}: it is not a newsclf model folder (newsclf needs its metadata: labels, "
            f"input mode, calibration); {_TRAIN_HINT}"
        )
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not any((path / f).exists() for f in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        missing.append("the tokenizer (" + " or ".join(TOKENIZER_FILES) + ")")
    if missing:
        raise ModelFolderError(f"model folder {path} is incomplete: missing {', '.join(missing)}; {_TRAIN_HINT}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFolderError(f"{path} is not valid JSON ({err}); {_TRAIN_HINT}") from None


def read_meta(path: str | Path) -> ModelMeta:
    """The checked metadata of the model folder at ``path``, without loading weights (fast)."""
    path = Path(path)
    _required(path)
    try:
        meta = ModelMeta.from_dict(_read_json(path / META_FILE))
    except ModelFolderError as err:
        raise ModelFolderError(f"{path / META_FILE}: {err}; {_TRAIN_HINT}") from None
    hf = _read_json(path / "config.json")
    id2label = hf.get("id2label") or {}
    found = [id2label.get(str(i), id2label.get(i)) for i in range(len(id2label))]
    num_labels = hf.get("num_labels", len(id2label))
    if num_labels != len(meta.labels) or found != meta.labels:
        raise ModelFolderError(
            f"model folder {path}: the weights' config.json has {num_labels} labels {found} but {META_FILE} "
            f"lists {meta.labels}; the two files come from different models. {_TRAIN_HINT}"
        )
    if meta.blend is not None:
        from newsclf.baseline import BASELINE_FILES

        absent = [name for name in BASELINE_FILES if not (path / name).is_file()]
        if absent:
            raise ModelFolderError(
                f"model folder {path}: {META_FILE} blends in the TF-IDF baseline but {', '.join(absent)} is missing; "
                f"{_TRAIN_HINT}"
            )
    return meta


def load_baseline(path: str | Path, meta: ModelMeta) -> Any:
    """The TF-IDF baseline the model at ``path`` blends in (:class:`newsclf.baseline.TfidfBaseline`), or None."""
    if meta.blend is None:
        return None
    from newsclf.baseline import TfidfBaseline

    try:
        base = TfidfBaseline.load(path)
    except ValueError as err:
        raise ModelFolderError(f"model folder {path}: its blended baseline is unreadable ({err}); {_TRAIN_HINT}") from None
    if base.labels != meta.labels:
        raise ModelFolderError(
            f"model folder {path}: the baseline's labels {base.labels} differ from {META_FILE}'s {meta.labels}; {_TRAIN_HINT}"
        )
    return base


def dataset_dir(path: str | Path, meta: ModelMeta) -> Path | None:
    """The saved training splits of the model at ``path`` (relative entries are relative to the folder)."""
    if not meta.dataset_dir:
        return None
    d = Path(meta.dataset_dir)
    return d if d.is_absolute() else (Path(path) / d).resolve()


def load(path: str | Path) -> tuple[Any, Any, ModelMeta]:
    """Load ``(model, tokenizer, meta)`` from a checked model folder."""
    from transformers import AutoModelForSequenceClassification

    path = Path(path)
    meta = read_meta(path)
    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path)
    except Exception as err:  # truncated or corrupt weights
        raise ModelFolderError(f"model folder {path}: cannot load its weights ({err}); {_TRAIN_HINT}") from None
    return model, tokenizer, meta


def load_tokenizer(path: str | Path) -> Any:
    """The checked tokenizer of the model folder at ``path`` (a runtime that has the weights elsewhere needs only this).

    A folder with a ``tokenizer.json`` (every folder newsclf writes) is read as a fast tokenizer directly:
    ``AutoTokenizer``'s import alone pulls in torch, ~300 MB that an OpenVINO process never uses.
    """
    path = Path(path)
    try:
        if (path / "tokenizer.json").is_file():
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # transformers raises many types for broken tokenizer files
        raise ModelFolderError(f"model folder {path}: cannot load its tokenizer ({err}); {_TRAIN_HINT}") from None
    # A folder whose tokenizer lost its vocabulary can still load, with only its special tokens: refuse it.
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)) + 1:
        raise ModelFolderError(
            f"model folder {path}: its tokenizer has only {len(tokenizer)} tokens, so the tokenizer files are "
            f"missing or broken; {_TRAIN_HINT}"
        )
    return tokenizer


# ---------------------------------------------------------------- writing


def make_readable(root: Path) -> None:
    """0755 folders and 0644 files: temporary files and mkdtemp folders are private (0600/0700) by default."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``, replacing an older one with two renames."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def save(
    path: str | Path,
    model: Any,
    tokenizer: Any,
    meta: ModelMeta,
    *,
    files: dict[str, Any] | None = None,
    baseline: Any = None,
) -> Path:
    """Write a complete model folder at ``path`` atomically and world-readable; returns ``path``.

    ``files`` maps extra file names to their content: ``str``/``bytes`` are written as they are, any other
    value as JSON, and a callable is called with the destination path (plots, the model card).
    ``baseline``: the fitted TF-IDF baseline that ``meta.blend`` weighs in (its ``baseline.*`` files).
    """
    if (baseline is None) != (meta.blend is None):
        raise ValueError("meta.blend and baseline go together: pass both (a blended model) or neither")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.config.num_labels != len(meta.labels):
        raise ModelFolderError(f"the model has {model.config.num_labels} outputs but the metadata {len(meta.labels)} labels")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-tmp-", dir=path.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / META_FILE).write_text(json.dumps(meta.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if baseline is not None:
            baseline.save(tmp)
        for name, content in (files or {}).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                content(target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, str):
                target.write_text(content, encoding="utf-8")
            else:
                from newsclf.report import write_json

                write_json(target, content)
        read_meta(tmp)  # what we wrote must pass the reader's checks
        make_readable(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def fingerprint(path: str | Path) -> str:
    """A short id of the saved model at ``path``: its metadata, its weights' config and the weight file sizes.

    ``newsclf.json`` changes with every training (metrics, temperature, data fingerprint), so this tells two
    models apart without hashing hundreds of megabytes of weights.
    """
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    for name in (META_FILE, "config.json"):
        h.update((path / name).read_bytes())
    for name in WEIGHT_FILES:
        if (path / name).exists():
            h.update(f"{name}:{(path / name).stat().st_size}".encode())
    return h.hexdigest()[:16]
