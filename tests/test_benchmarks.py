"""The benchmark command line (benchmarks/ lives outside the installed package; nothing is timed here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` does not put the repo root on the path
    sys.path.insert(0, str(ROOT))

from benchmarks import cli  # noqa: E402


def test_modules_import_without_loading_models():
    from benchmarks import bench_backbone, bench_predict, bench_train, common

    assert callable(bench_backbone.bench_backbone) and callable(bench_train.bench_train)
    assert callable(bench_predict.bench_predict) and callable(common.best_rate)


def test_the_newsclf_names_the_benchmarks_use_exist():
    """The benchmarks import newsclf lazily (inside the functions); catch a rename here, not mid-benchmark."""
    import ast
    import importlib

    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("newsclf"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path.name}: {node.module}.{alias.name} is gone"


def test_cli_writes_json_to_bench_what_by_default(tmp_path, monkeypatch, capsys):
    import benchmarks.bench_backbone as bb

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return {"benchmark": "fake", "ratio": 1.5, "名": "安全"}

    monkeypatch.setattr(bb, "bench_backbone", fake)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["backbone", "--n", "16"]) == 0
    assert seen == {"n_articles": 16}
    written = json.loads((tmp_path / "bench" / "backbone.json").read_text(encoding="utf-8"))
    assert written == {"benchmark": "fake", "ratio": 1.5, "名": "安全"}
    assert json.loads(capsys.readouterr().out) == written


def test_cli_passes_predict_arguments_and_out(tmp_path, monkeypatch):
    import benchmarks.bench_predict as bp

    seen = {}

    def fake(model, **kwargs):
        seen.update(model=model, **kwargs)
        return {"articles": 3}

    monkeypatch.setattr(bp, "bench_predict", fake)
    out = tmp_path / "x" / "p.json"
    assert cli.main(["predict", "--model", "m", "--data", "a.jsonl", "--gold", "g.jsonl", "--out", str(out)]) == 0
    assert seen == {"model": "m", "data": ["a.jsonl"], "gold": "g.jsonl"}
    assert json.loads(out.read_text(encoding="utf-8")) == {"articles": 3}


def test_cli_rejects_unknown_benchmark():
    with pytest.raises(SystemExit):
        cli.main(["everything"])
    with pytest.raises(ValueError, match="unknown benchmark 'everything'"):
        cli.run_benchmark("everything")


def test_installed_package_does_not_import_benchmarks():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "newsclf").rglob("*.py")
        if "from benchmarks" in p.read_text(encoding="utf-8") or "import benchmarks" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
    assert not (ROOT / "newsclf" / "bench.py").exists() and not (ROOT / "newsclf" / "bench_backbone.py").exists()
