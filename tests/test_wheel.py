"""What a new user does: build the wheel, install it into a fresh virtual environment, run ``newsclf``.

The fresh environment takes its dependencies (torch, transformers, …) from the project's own virtual
environment through a ``.pth`` path entry, so nothing is downloaded; the editable install of ``newsclf``
in that environment must not leak in (its finder is registered by a ``.pth`` file, which Python runs only
in site directories, never in a plain path entry), so every command below runs the code and the data
files that the wheel holds, from an empty folder. Exit codes, line counts and fields are checked, never
the tiny model's labels (it is random).
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What the build reads: the package and the files pyproject.toml names.
BUILD_INPUTS = ("pyproject.toml", "README.md", "setup.py", "setup.cfg", "MANIFEST.in", "LICENSE")
LABELS = ("governance", "party_building", "safety", "culture", "other")

# Self-written articles: (id, label, title, text).
ARTICLES = [
    ("w01", "governance", "市政府召开常务会议研究营商环境", "会议审议优化营商环境措施，要求各部门推进一网通办，提高审批效率。"),
    ("w02", "governance", "区人大常委会开展执法检查", "检查组听取政府工作汇报，要求依法履职，推进基层治理。"),
    ("w03", "party_building", "社区党支部开展主题党日活动", "党员重温入党誓词，集中学习党章党规，交流心得体会。"),
    ("w04", "party_building", "机关党委召开专题组织生活会", "党员干部开展批评与自我批评，查摆问题并明确整改措施。"),
    ("w05", "safety", "消防宣传走进老旧小区", "消防员向居民讲解灭火器使用方法，排查楼道堆物等火灾隐患。"),
    ("w06", "safety", "江堤防汛演练检验抢险能力", "应急部门组织抢险队伍演练转移群众、封堵管涌，做好汛期准备。"),
    ("w07", "culture", "博物馆推出青铜器特展", "展览汇集馆藏文物一百余件，讲述古代工匠技艺与文明交流。"),
    ("w08", "culture", "剪纸传承人走进小学课堂", "非遗传承人现场示范，孩子们动手剪出窗花，感受传统技艺。"),
    ("w09", "other", "全市夏粮喜获丰收", "农业部门组织农机抢收小麦，农户算起增收账，脸上笑开了花。"),
    ("w10", "other", "中学生田径运动会开幕", "来自各校的运动员参加短跑跳远比赛，赛场上加油声此起彼伏。"),
]


def _run(cmd: list, *, cwd: Path, env: dict, stdin: str | None = None, timeout: int = 300,
         umask: int = -1) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout, umask=umask)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _user_error(proc: subprocess.CompletedProcess) -> str:
    """A user error: exit 2, one ``error: …`` line on stderr, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, f"{proc.args} exited {proc.returncode}\n{proc.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def _build_preconditions() -> None:
    """Skip (with the reason) where a wheel cannot be built offline from this interpreter."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip(f"building the wheel needs pip in {sys.executable}")
    pip = tuple(int(p) for p in importlib.metadata.version("pip").split(".")[:2] if p.isdigit())
    if pip < (22, 3):
        pytest.skip(f"installing into another environment needs pip>=22.3 (pip --python), found {pip}")
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip(f"building the wheel offline (--no-build-isolation) needs setuptools>=64 in {sys.executable}")
    version = importlib.metadata.version("setuptools")  # not imported: its distutils shim dislikes late imports
    if int(version.split(".")[0]) < 64:
        pytest.skip(f"building the wheel offline needs setuptools>=64, found {version}")


def _copy_source(dest: Path) -> Path:
    """The files a build reads, copied out of the checkout, so the build writes nothing into it."""
    dest.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "newsclf", dest / "newsclf",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return dest


def _fresh_venv(root: Path) -> Path:
    """A virtual environment whose only extra path is the project environment's site-packages."""
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(root)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    paths = sysconfig.get_paths()
    deps = dict.fromkeys([paths["purelib"], paths["platlib"]])  # the project .venv's, in order, once
    (site / "_project_deps.pth").write_text("".join(f"{p}\n" for p in deps), encoding="utf-8")
    return python


@pytest.mark.slow  # about 70 s on two busy cores: a build, a tiny training run and ten CLI runs
def test_wheel_installs_and_runs_like_a_new_user(tmp_path):
    _build_preconditions()
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "NEWSCLF_MODEL", "PYTHONSTARTUP")}
    base_env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONDONTWRITEBYTECODE="1")

    # 1. Build the wheel, offline, from a copy of the source.
    src = _copy_source(tmp_path / "src")
    dist = tmp_path / "dist"
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "-w", dist, src], cwd=tmp_path, env=base_env)
    _ok(build)
    (wheel,) = dist.glob("newsclf-*.whl")
    # Every file of the package (configs, corpus, metrics scripts, rules …) is in the wheel.
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = {n for n in zf.namelist() if n.startswith("newsclf/")}
    in_source = {p.relative_to(src).as_posix() for p in (src / "newsclf").rglob("*") if p.is_file()}
    assert not in_source - in_wheel, f"package files missing from the wheel: {sorted(in_source - in_wheel)}"
    for needed in ("newsclf/configs/tiny.yaml", "newsclf/corpus/pages/city-daily-page-1.md"):
        assert needed in in_wheel

    # 2. A fresh environment: dependencies from the project's, newsclf only from the wheel.
    nv = tmp_path / "nv"
    python = _fresh_venv(nv)
    empty = tmp_path / "empty"
    empty.mkdir()
    probe = "import newsclf; print(newsclf.__file__)"
    leak = _run([python, "-c", probe], cwd=empty, env=base_env)
    assert leak.returncode != 0 and "No module named 'newsclf'" in leak.stderr, (
        f"the editable install leaks into the fresh environment: {leak.stdout}{leak.stderr}")
    _ok(_run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel],
             cwd=tmp_path, env=base_env))
    where = Path(_ok(_run([python, "-c", probe], cwd=empty, env=base_env)).stdout.strip()).resolve()
    assert where.is_relative_to(nv.resolve()), f"newsclf imported from {where}, not from the fresh environment"
    page_src = Path(_ok(_run([python, "-c", "import importlib.resources as r; "
                                            "print(r.files('newsclf') / 'corpus/pages/city-daily-page-1.md')"],
                             cwd=empty, env=base_env)).stdout.strip())
    assert page_src.resolve().is_relative_to(nv.resolve()) and page_src.is_file()

    newsclf = nv / "bin" / "newsclf"
    assert newsclf.is_file()
    env = {**base_env, "NEWSCLF_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PATH": f"{nv / 'bin'}{os.pathsep}{base_env.get('PATH', '')}"}
    work = tmp_path / "work"
    work.mkdir()

    def cli(*args, cwd: Path = work, **kw) -> subprocess.CompletedProcess:
        return _run([newsclf, *args], cwd=cwd, env=env, **kw)

    # 3a. Train the tiny model. A private umask: the model folder is made shareable by newsclf itself.
    train = _ok(cli("train", "--config", "tiny", "--output_dir", "runs", "--quiet", umask=0o077))
    model = work / "runs" / "tiny" / "model"
    assert model.is_dir() and (model / "newsclf.json").is_file(), train.stdout + train.stderr
    assert "model saved to" in train.stdout
    modes = {p.relative_to(model).as_posix() or ".": p.stat().st_mode & 0o777 for p in [model, *model.rglob("*")]}
    wrong = {k: oct(m) for k, m in modes.items() if m != (0o755 if (model / k).is_dir() else 0o644)}
    assert not wrong, f"model folder entries not 0644 (files) / 0755 (folders): {wrong}"
    # The TF-IDF blend is on by default (the tiny config's 59 validation articles are enough to fit it).
    assert json.loads((model / "newsclf.json").read_text(encoding="utf-8"))["blend"], "no blend in the model"
    assert (model / "baseline.json").is_file() and (model / "baseline.safetensors").is_file()

    # 3b. Predict a page shipped in the wheel: one line per article the splitter finds.
    page = work / "page.md"
    shutil.copyfile(page_src, page)
    split = _jsonl(_ok(cli("split", page)).stdout)
    assert len(split) >= 2 and all(a["title"] and a["text"] for a in split)
    rows = _jsonl(_ok(cli("predict", page, "--model", "runs/tiny/model", "--quiet")).stdout)
    assert len(rows) == len(split)
    assert all(r["label"] in LABELS and "error" not in r for r in rows), rows

    # 3c. JSONL with one broken line, to a file: five lines, the broken one with an error naming the line.
    lines = [json.dumps({"id": i, "title": t, "text": x}, ensure_ascii=False) for i, _, t, x in ARTICLES[:5]]
    lines[2] = lines[2][:-12]  # cut off mid-string: malformed JSON
    (work / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = _ok(cli("predict", "in.jsonl", "--model", "runs/tiny/model", "--out", "tags.jsonl", "--quiet"))
    assert proc.stdout.strip() == ""
    tags = _jsonl((work / "tags.jsonl").read_text(encoding="utf-8"))
    assert len(tags) == 5
    assert [t["id"] for t in tags[:2] + tags[3:]] == ["w01", "w02", "w04", "w05"]
    errors = [t for t in tags if "error" in t]
    assert len(errors) == 1 and errors[0] is tags[2] and "line 3" in errors[0]["error"], tags
    assert all(t["label"] in LABELS for t in tags if "error" not in t)

    # 3d. CSV: one line per row (it was once read as a single page), quoted commas and newlines included.
    with open(work / "in.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "title", "text"])
        for i, _, t, x in ARTICLES[:6]:
            writer.writerow([i, f"{t}, 组图" if i == "w03" else t, f"{x}\n第二段。" if i == "w03" else x])
    rows = _jsonl(_ok(cli("predict", "in.csv", "--model", "runs/tiny/model", "--quiet")).stdout)
    assert [r["id"] for r in rows] == [a[0] for a in ARTICLES[:6]], rows
    assert all(r["label"] in LABELS for r in rows)

    # 3e. JSONL on standard input (the broken line included): one line out per line in.
    rows = _jsonl(_ok(cli("predict", "-", "--model", "runs/tiny/model", "--quiet",
                          stdin="\n".join(lines) + "\n")).stdout)
    assert len(rows) == 5 and sum("error" in r for r in rows) == 1

    # 3f. Evaluate on labelled articles, here and from another folder with the absolute model path.
    labelled = work / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"id": i, "title": t, "text": x, "label": lab}, ensure_ascii=False) + "\n"
                                for i, lab, t, x in ARTICLES), encoding="utf-8")
    _ok(cli("evaluate", "--model", "runs/tiny/model", "--data", "labelled.jsonl", "--out", "evalrep", "--quiet"))
    here = json.loads((work / "evalrep" / "eval.json").read_text(encoding="utf-8"))
    assert here["articles"] == len(ARTICLES) and here["baseline_train_articles"] > 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _ok(cli("evaluate", "--model", model, "--data", labelled, "--quiet", cwd=elsewhere))
    there = json.loads((model.parent / "eval-labelled" / "eval.json").read_text(encoding="utf-8"))
    assert there["articles"] == len(ARTICLES)
    assert there["baseline_train_articles"] == here["baseline_train_articles"]  # the same training split
    assert not any(elsewhere.iterdir())

    # 3f'. `newsclf blend --off` from the wheel: the transformer alone, the baseline files gone, still predicting.
    _ok(cli("blend", "--model", "runs/tiny/model", "--off", "--quiet"))
    assert not (model / "baseline.json").exists()
    assert len(_jsonl(_ok(cli("predict", "in.csv", "--model", "runs/tiny/model", "--quiet")).stdout)) == 6

    # 3g. User errors: one line, exit 2, no traceback.
    assert "missing.jsonl" in _user_error(cli("predict", "missing.jsonl", "--model", "runs/tiny/model"))
    assert "nope" in _user_error(cli("train", "--config", "nope"))
    assert "source checkout" in _user_error(cli("bench", "predict"))  # benchmarks/ is not in the wheel
