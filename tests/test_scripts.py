"""The scripts as users run them: a subprocess from the repo root, on the embedded corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_train_script_tiny_end_to_end_then_predict(tmp_path):
    res = run("scripts/train.py", "--config", "tiny", "--output_dir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    model = tmp_path / "tiny" / "model"
    meta = json.loads((model / "newsclf.json").read_text(encoding="utf-8"))
    assert meta["metrics"]["train_articles"] > 100  # the embedded corpus, labelled, de-duplicated and split
    assert (tmp_path / "tiny" / "dataset" / "dataset_dict.json").exists()
    res = run("-m", "newsclf.cli", "predict", "newsclf/corpus/pages/city-daily-page-1.md", "--model", str(model), "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(rows) >= 4 and all(r["label"] in meta["labels"] for r in rows)


def test_train_script_rejects_unknown_override(tmp_path):
    res = run("scripts/train.py", "--config", "tiny", "--output_dir", str(tmp_path), "--epoch", "3")
    assert res.returncode == 2
    assert "unknown config key 'epoch' (value 3); allowed keys:" in res.stderr


def test_build_dataset_script_writes_splits_and_report(tmp_path):
    out = tmp_path / "ds"
    res = run("scripts/build_dataset.py", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "train" in res.stdout and (out / "label_report.txt").exists()
    from datasets import load_from_disk

    dsd = load_from_disk(str(out))
    ids = [set(dsd[s]["id"]) for s in ("train", "validation", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    groups = [set(dsd[s]["group"]) for s in ("train", "validation", "test")]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


@pytest.mark.slow
def test_train_script_real_backbone_smoke(tmp_path):
    """The default config's real path (e5-small, restricted vocabulary, bf16) for a few steps."""
    res = run("scripts/train.py", "--output_dir", str(tmp_path), "--max_steps", "3", "--max_length", "64",
              "--eval_steps", "3", "--epochs", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "default" / "model" / "newsclf.json").read_text(encoding="utf-8"))
    assert meta["backbone"] == "e5-small" and meta["vocab"] == "restricted"
