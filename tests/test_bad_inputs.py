"""Bad inputs and faults, tried as a user would: each gets a clear error or a correct result.

CLI cases run ``newsclf.cli.main`` in-process. A *clear error* is exit status 2 and exactly one line on
standard error, starting ``error:``, naming what was wrong, with no traceback. A *kept* record is one
output line per input article, with an ``error`` field for the ones that cannot be classified. The
README's reliability section lists these cases; keep the two in step.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from newsclf.cli import main

ARTICLES = [
    ("市政府召开常务会议研究营商环境", "会议审议通过优化营商环境若干措施，要求各部门深化改革，推进政务服务一网通办。"),
    ("消防救援支队处置居民楼火灾", "消防员迅速疏散群众扑灭明火，无人员伤亡，提醒市民注意冬季用电用火安全。"),
    ("市博物馆推出青铜器特展", "展览汇集馆藏文物两百余件，讲述古代文明和文化遗产保护的故事，吸引众多市民参观。"),
]


def rows(n: int) -> list[dict]:
    return [{"id": f"a{i}", "title": ARTICLES[i % 3][0], "text": ARTICLES[i % 3][1]} for i in range(n)]


def jsonl(path: Path, records: list, extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(capsys, monkeypatch, *args: str, stdin: bytes | None = None) -> tuple[int, list[dict], str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    rc = main(list(args))
    cap = capsys.readouterr()
    out = [json.loads(line) for line in cap.out.splitlines() if line.startswith("{")]
    return rc, out, cap.err


def assert_clear_error(rc: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert "Traceback" not in err
    assert len([line for line in lines if line.startswith("error: ")]) == 1, err
    error = next(line for line in lines if line.startswith("error: "))
    for frag in fragments:
        assert frag in error, (frag, error)


# ---------------------------------------------------------------- predict: input files


def test_csv_gives_one_line_per_row(tiny_model, tmp_path, capsys, monkeypatch):
    path = tmp_path / "arts.csv"
    body = "".join(f"a{i},{t},{x}\n" for i, (t, x) in enumerate(ARTICLES * 20))
    path.write_text("id,title,text\n" + body, encoding="utf-8")
    rc, out, err = run(capsys, monkeypatch, "predict", str(path), "--model", str(tiny_model), "--quiet")
    assert rc == 0 and [r["id"] for r in out] == [f"a{i}" for i in range(60)]
    assert all("label" in r for r in out)


def test_tsv_and_field_map(tiny_model, tmp_path, capsys, monkeypatch):
    path = tmp_path / "arts.tsv"
    path.write_text("编号\t标题\t正文\n" + "".join(f"b{i}\t{t}\t{x}\n" for i, (t, x) in enumerate(ARTICLES)),
                    encoding="utf-8")
    rc, out, _ = run(capsys, monkeypatch, "predict", str(path), "--model", str(tiny_model), "--quiet",
                     "--field-map", "{id: 编号, title: 标题, text: 正文}")
    assert rc == 0 and [r["id"] for r in out] == ["b0", "b1", "b2"] and all("label" in r for r in out)


def test_json_file_of_json_lines_and_json_array(tiny_model, tmp_path, capsys, monkeypatch):
    lines = jsonl(tmp_path / "lines.json", rows(4))
    rc, out, _ = run(capsys, monkeypatch, "predict", str(lines), "--model", str(tiny_model), "--quiet")
    assert rc == 0 and len(out) == 4
    array = tmp_path / "array.json"
    array.write_text(json.dumps(rows(5), ensure_ascii=False), encoding="utf-8")
    rc, out, _ = run(capsys, monkeypatch, "predict", str(array), "--model", str(tiny_model), "--quiet")
    assert rc == 0 and [r["id"] for r in out] == [f"a{i}" for i in range(5)]


@pytest.mark.parametrize(
    "bad_line,expected",
    [
        ("not json", "line 2: malformed JSON"),
        ('{"id": "s", "title": "标题", "text": "正文\\ud83d内容"}', "line 2: the record holds a lone surrogate escape \\ud83d"),
        ("[1, 2]", "line 2: expected an object with title and text, found list"),
        ('"just a string"', "line 2: expected an object with title and text, found str"),
        ('{"id": "n", "title": "标题", "text": 12345}', "line 2: field 'text' holds a int, expected text"),
        ('{"id": "e", "title": "", "text": "   "}', "line 2: the article's title and text are both empty"),
    ],
)
def test_bad_jsonl_record_becomes_an_error_line_and_the_run_goes_on(tiny_model, tmp_path, capsys, monkeypatch,
                                                                  bad_line, expected):
    first, *rest = rows(3)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([json.dumps(first, ensure_ascii=False), bad_line]
                              + [json.dumps(r, ensure_ascii=False) for r in rest]) + "\n", encoding="utf-8")
    rc, out, err = run(capsys, monkeypatch, "predict", str(path), "--model", str(tiny_model), "--quiet")
    assert rc == 0 and len(out) == 4, err
    assert "label" in out[0] and "label" in out[2] and "label" in out[3]
    assert out[1]["error"].startswith("in.jsonl, ") and expected in out[1]["error"], out[1]
    assert "1 with an error field" in err


def test_undecodable_line_after_good_ones_is_an_error_line(tiny_model, tmp_path, capsys, monkeypatch):
    path = tmp_path / "in.jsonl"
    good = json.dumps(rows(1)[0], ensure_ascii=False).encode()
    path.write_bytes(good + b"\n" + '{"id": "g", "title": "标题", "text": "内容"}'.encode("gb18030") + b"\n" + good + b"\n")
    rc, out, _ = run(capsys, monkeypatch, "predict", str(path), "--model", str(tiny_model), "--quiet")
    assert rc == 0 and len(out) == 3 and "not valid UTF-8" in out[1]["error"] and "line 2" in out[1]["error"]


def test_file_that_is_not_utf8_is_one_clear_error(tiny_model, tmp_path, capsys, monkeypatch):
    path = tmp_path / "gbk.jsonl"
    path.write_bytes(json.dumps(rows(1)[0], ensure_ascii=False).encode("gb18030") + b"\n")
    rc, _, err = run(capsys, monkeypatch, "predict", str(path), "--model", str(tiny_model), "--quiet")
    assert_clear_error(rc, err, "gbk.jsonl", "not valid UTF-8", "line 1", "iconv")


def test_truncated_gzip_is_one_clear_error_naming_the_file(tiny_model, tmp_path, capsys, monkeypatch):
    data = gzip.compress(("\n".join(json.dumps(r, ensure_ascii=False) for r in rows(200)) + "\n").encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    rc, _, err = run(capsys, monkeypatch, "predict", str(path), "--model", str(tiny_model), "--quiet")
    assert_clear_error(rc, err, "cut.jsonl.gz", "truncated gzip")


@pytest.mark.parametrize(
    "name,content,fragments",
    [
        ("missing.jsonl", None, ("missing.jsonl does not exist",)),
        ("notes.docx", b"PK\x03\x04", ("unknown file type '.docx'", "--format")),
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00", ("NUL byte",)),
        ("captions.md", "图为市民参观展览。记者 张三 摄\n".encode(), ("captions.md", "format 'text'")),
        ("empty.csv", b"", ("empty CSV file",)),
        ("nocol.csv", "标题,正文\n一,二\n".encode(), ("no CSV column 'text'", "field_map")),
        ("latin1.csv", "id,title,text\n1,caf\xe9,x\n".encode("latin-1"), ("latin1.csv", "not valid UTF-8")),
    ],
)
def test_unreadable_input_file_is_one_clear_error(tiny_model, tmp_path, capsys, monkeypatch, name, content, fragments):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    rc, out, err = run(capsys, monkeypatch, "predict", str(path), "--model", str(tiny_model), "--quiet")
    assert_clear_error(rc, err, *fragments)
    assert out == []


def test_csv_row_with_extra_fields_is_an_error_line(tiny_model, tmp_path, capsys, monkeypatch):
    path = tmp_path / "x.csv"
    path.write_text(f"id,title,text\n1,{ARTICLES[0][0]},{ARTICLES[0][1]}\n2,a,b,c\n3,{ARTICLES[1][0]},{ARTICLES[1][1]}\n",
                    encoding="utf-8")
    rc, out, _ = run(capsys, monkeypatch, "predict", str(path), "--model", str(tiny_model), "--quiet")
    assert rc == 0 and len(out) == 3 and "4 fields, but the header has 3" in out[1]["error"]


def test_folder_as_input_is_a_clear_error(tiny_model, tmp_path, capsys, monkeypatch):
    rc, _, err = run(capsys, monkeypatch, "predict", str(tmp_path), "--model", str(tiny_model), "--quiet")
    assert_clear_error(rc, err, "unknown file type")


# ---------------------------------------------------------------- predict: standard input


def test_stdin_jsonl_with_blank_first_line(tiny_model, capsys, monkeypatch):
    data = ("\n" + "\n".join(json.dumps(r, ensure_ascii=False) for r in rows(3)) + "\n").encode()
    rc, out, _ = run(capsys, monkeypatch, "predict", "-", "--model", str(tiny_model), "--quiet", stdin=data)
    assert rc == 0 and [r["id"] for r in out] == ["a0", "a1", "a2"]


def test_stdin_json_array_needs_format(tiny_model, capsys, monkeypatch):
    data = json.dumps(rows(3), ensure_ascii=False).encode()
    rc, _, err = run(capsys, monkeypatch, "predict", "-", "--model", str(tiny_model), "--quiet", stdin=data)
    assert_clear_error(rc, err, "standard input does not look like JSONL", "--format")
    rc, out, _ = run(capsys, monkeypatch, "predict", "-", "--model", str(tiny_model), "--quiet", "--format", "json",
                     stdin=data)
    assert rc == 0 and len(out) == 3


def test_stdin_plain_text_needs_format(tiny_model, capsys, monkeypatch):
    data = "\n".join(ARTICLES[0]).encode()
    rc, _, err = run(capsys, monkeypatch, "predict", "-", "--model", str(tiny_model), "--quiet", stdin=data)
    assert_clear_error(rc, err, "does not look like JSONL")
    rc, out, _ = run(capsys, monkeypatch, "predict", "-", "--model", str(tiny_model), "--quiet", "--format", "text",
                     stdin=data)
    assert rc == 0 and len(out) == 1 and "label" in out[0]


# ---------------------------------------------------------------- predict: text that is not Chinese news


@pytest.mark.parametrize("text", ["Council approves budget\nThe council met on Monday.", "😀😀😀👍👍🔥🔥",
                                  "2024 12 31\n0123456789", "きょうはいいてんき\nあしたもはれるでしょう"])
def test_text_that_is_not_chinese_abstains_with_a_reason(tiny_model, text):
    from newsclf import predict

    res = predict(text, model=tiny_model)
    assert res["abstained"] and res["label"] == "other" and "Chinese characters" in res["reason"]


# ---------------------------------------------------------------- model folders


def broken_copy(tiny_model: Path, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / f"model-{how}"
    shutil.copytree(tiny_model, folder)
    meta_path = folder / "newsclf.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if how == "no-tokenizer":
        for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            (folder / name).unlink(missing_ok=True)
    elif how == "no-weights":
        (folder / "model.safetensors").unlink()
    elif how == "bad-json":
        meta_path.write_text("{not json", encoding="utf-8")
    elif how == "labels-disagree":
        meta["labels"] = list(reversed(meta["labels"]))
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    elif how == "zero-temperature":
        meta["temperature"] = 0
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    elif how == "truncated-weights":
        w = folder / "model.safetensors"
        w.write_bytes(w.read_bytes()[:1000])
    elif how == "no-meta":
        meta_path.unlink()
    return folder


@pytest.mark.parametrize(
    "how,fragments",
    [
        ("no-tokenizer", ("is incomplete: missing the tokenizer",)),
        ("no-weights", ("is incomplete: missing model.safetensors",)),
        ("bad-json", ("newsclf.json is not valid JSON",)),
        ("labels-disagree", ("come from different models",)),
        ("zero-temperature", ("'temperature' must be a positive finite number",)),
        ("truncated-weights", ("cannot load its weights",)),
        ("no-meta", ("it is not a newsclf model folder",)),
    ],
)
def test_broken_model_folder_is_a_clear_error(tiny_model, tmp_path, capsys, monkeypatch, how, fragments):
    folder = broken_copy(tiny_model, tmp_path, how)
    src = jsonl(tmp_path / "in.jsonl", rows(2))
    rc, out, err = run(capsys, monkeypatch, "predict", str(src), "--model", str(folder), "--quiet")
    assert_clear_error(rc, err, *fragments)


def test_missing_model_folder(tmp_path, capsys, monkeypatch):
    src = jsonl(tmp_path / "in.jsonl", rows(1))
    rc, _, err = run(capsys, monkeypatch, "predict", str(src), "--model", str(tmp_path / "nope"), "--quiet")
    assert_clear_error(rc, err, "no model folder at", "newsclf train")


def test_model_folder_is_readable_by_colleagues(tiny_model):
    assert tiny_model.stat().st_mode & 0o777 == 0o755
    for p in tiny_model.rglob("*"):
        assert p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644), p


def test_saved_model_loads_in_a_plain_pipeline(tiny_model):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(tiny_model))
    assert pipe("市博物馆推出青铜器特展")[0]["label"] in json.loads((tiny_model / "newsclf.json").read_text())["labels"]


# ---------------------------------------------------------------- predict: options


def test_resume_needs_out_and_file_inputs(tiny_model, tmp_path, capsys, monkeypatch):
    src = jsonl(tmp_path / "in.jsonl", rows(1))
    rc, _, err = run(capsys, monkeypatch, "predict", str(src), "--model", str(tiny_model), "--resume")
    assert_clear_error(rc, err, "--resume needs --out")


def test_field_map_must_be_a_mapping(tiny_model, tmp_path, capsys, monkeypatch):
    src = jsonl(tmp_path / "in.jsonl", rows(1))
    rc, _, err = run(capsys, monkeypatch, "predict", str(src), "--model", str(tiny_model), "--field-map", "[a, b")
    assert_clear_error(rc, err, "--field-map", "not a valid YAML value")


def test_output_path_that_is_a_folder(tiny_model, tmp_path, capsys, monkeypatch):
    src = jsonl(tmp_path / "in.jsonl", rows(1))
    (tmp_path / "out.jsonl.partial").mkdir()
    rc, _, err = run(capsys, monkeypatch, "predict", str(src), "--model", str(tiny_model), "--out",
                     str(tmp_path / "out.jsonl"), "--quiet")
    assert_clear_error(rc, err, "out.jsonl.partial")


@pytest.mark.parametrize(
    "kwargs,exc,fragment",
    [
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"threshold": 2}, ValueError, "threshold"),
        ({"threshold": math.nan}, ValueError, "threshold"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"top_k": True}, TypeError, "top_k"),
    ],
)
def test_predict_options_are_checked(tiny_model, kwargs, exc, fragment):
    from newsclf import predict

    with pytest.raises(exc, match=fragment):
        predict(ARTICLES[0][0] + "\n" + ARTICLES[0][1], model=tiny_model, **kwargs)


def test_unknown_precision(tiny_model):
    import newsclf

    with pytest.raises(ValueError, match="precision 'fp16' is not one of auto, fp32, bf16, int8"):
        newsclf.load(tiny_model, precision="fp16")


# ---------------------------------------------------------------- train, evaluate, split


@pytest.mark.parametrize(
    "args,fragments",
    [
        (("--config", "nope"), ("config file 'nope' does not exist", "default, reference, tiny")),
        (("--config", "tiny", "--epoch", "3"), ("unknown config key 'epoch'",)),
        (("--config", "tiny", "--batch_size", "0"), ("'batch_size': got 0, expected a positive integer",)),
        (("--config", "tiny", "--data", "[a.jsonl"), ("--data", "not a valid YAML value")),
        (("--config", "tiny", "--learning_rate", ".nan"), ("'learning_rate': got nan, expected a number",)),
        (("--config", "tiny", "stray"), ("unexpected argument 'stray'",)),
    ],
)
def test_train_bad_config_is_a_clear_error(tmp_path, capsys, monkeypatch, args, fragments):
    rc, _, err = run(capsys, monkeypatch, "train", *args, "--output_dir", str(tmp_path))
    assert_clear_error(rc, err, *fragments)


def test_train_missing_data_and_resume_without_checkpoint(tmp_path, capsys, monkeypatch):
    rc, _, err = run(capsys, monkeypatch, "train", "--config", "tiny", "--output_dir", str(tmp_path), "--data",
                     str(tmp_path / "none.jsonl"))
    assert_clear_error(rc, err, "none.jsonl: no such file or folder")
    rc, _, err = run(capsys, monkeypatch, "train", "--config", "tiny", "--output_dir", str(tmp_path), "--resume")
    assert_clear_error(rc, err, "no checkpoint in")


def test_evaluate_bad_inputs(tiny_model, tmp_path, capsys, monkeypatch):
    unlabelled = jsonl(tmp_path / "u.jsonl", rows(2))
    rc, _, err = run(capsys, monkeypatch, "evaluate", "--model", str(tiny_model), "--data", str(unlabelled),
                     "--out", str(tmp_path / "e1"), "--quiet")
    assert_clear_error(rc, err, "have no 'label'")
    other = jsonl(tmp_path / "o.jsonl", [{**r, "label": "sports"} for r in rows(2)])
    rc, _, err = run(capsys, monkeypatch, "evaluate", "--model", str(tiny_model), "--data", str(other),
                     "--out", str(tmp_path / "e2"), "--quiet")
    assert_clear_error(rc, err, "labels ['sports']", "not among the model's labels")
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    labelled = jsonl(tmp_path / "l.jsonl", [{**r, "label": "other"} for r in rows(2)])
    rc, _, err = run(capsys, monkeypatch, "evaluate", "--model", str(tiny_model), "--data", str(labelled),
                     "--out", str(blocker / "report"), "--quiet")
    assert_clear_error(rc, err, "cannot write to the report folder", "--out")


def test_evaluate_from_another_folder(tiny_model, tmp_path, capsys, monkeypatch):
    labelled = jsonl(tmp_path / "l.jsonl", [{**r, "label": lab} for r, lab in zip(rows(3), ["governance", "safety", "culture"])])
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, monkeypatch, "evaluate", "--model", str(tiny_model), "--data", str(labelled),
                     "--out", "rep", "--quiet")
    assert rc == 0, err
    assert json.loads((tmp_path / "rep" / "eval.json").read_text())["baseline_train_articles"] == 20


@pytest.mark.parametrize("content,fragment", [("", "empty page"), ("   \n\n", "empty page")])
def test_split_bad_pages(tmp_path, capsys, monkeypatch, content, fragment):
    page = tmp_path / "p.md"
    page.write_text(content, encoding="utf-8")
    rc, _, err = run(capsys, monkeypatch, "split", str(page))
    assert_clear_error(rc, err, "p.md", fragment)
    rc, _, err = run(capsys, monkeypatch, "split", str(tmp_path / "missing.md"))
    assert_clear_error(rc, err, "missing.md does not exist")


def test_unexpected_errors_are_one_line_too(tiny_model, tmp_path, capsys, monkeypatch):
    """A bug (not the user's doing) still prints one line, says how to see the traceback, and exits 1."""
    import newsclf.tagging as tagging

    monkeypatch.setattr(tagging, "_predict_batch", lambda clf, batch: 1 / 0)
    src = jsonl(tmp_path / "in.jsonl", rows(1))
    rc, _, err = run(capsys, monkeypatch, "predict", str(src), "--model", str(tiny_model), "--quiet")
    assert rc == 1 and "Traceback" not in err and "unexpected ZeroDivisionError" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["predict", str(src), "--model", str(tiny_model), "--quiet", "--debug"])
