"""load_articles on every supported format, field mapping, bad records, bad files and the load report."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from pathlib import Path

import pytest
from datasets import Value

from newsclf.data.loaders import COLUMNS, PAGES_DIR, load_articles, load_report, normalize_date

FIX = Path(__file__).resolve().parent / "fixtures"
CSV_MAP = {"id": "编号", "date": "日期", "title": "标题", "text": ["导语", "正文"], "section": "栏目"}


def _rows(ds) -> list[dict]:
    return [dict(r) for r in ds]


def _write_jsonl(path: Path, records: list, raw_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    for n, raw in (raw_lines or {}).items():
        lines.insert(n - 1, raw)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


REC = {"id": "a", "title": "标题", "text": "这是一篇足够长的测试正文，用来检查加载。", "date": "2024-01-02"}


def test_jsonl_columns_types_and_normalisation():
    ds = load_articles(FIX / "articles.jsonl")
    assert ds.column_names == COLUMNS
    assert all(ds.features[c] == Value("string") for c in COLUMNS)
    rows = _rows(ds)
    assert [r["id"] for r in rows] == ["fx-1", "fx-2", "articles-3"]  # missing id: file stem + line
    assert [r["date"] for r in rows] == ["2024-05-21", "2024-05-22", "2024-05-23"]
    assert [r["label"] for r in rows] == ["safety", "culture", None]
    assert rows[0]["text"].split("\n")[1] == "300余名队员参加。"  # full-width indentation stripped
    assert {r["source"] for r in rows} == {"江河日报"} and {r["page"] for r in rows} == {""}
    assert load_report(ds) == {
        "files": [str(FIX / "articles.jsonl")],
        "records_read": 3,
        "loaded": 3,
        "dropped": {},
    }


def test_gzip_json_and_parquet_give_the_same_rows(tmp_path):
    plain = _rows(load_articles(FIX / "articles.jsonl", source="x"))
    gz = tmp_path / "articles.jsonl.gz"
    gz.write_bytes(gzip.compress((FIX / "articles.jsonl").read_bytes()))
    assert _rows(load_articles(gz, source="x")) == plain
    records = [json.loads(line) for line in (FIX / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    js = tmp_path / "articles.json"
    js.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    from_json = _rows(load_articles(js))
    assert from_json[:2] == plain[:2] and from_json[2]["id"] == "articles-3"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), tmp_path / "articles.parquet")
    from_parquet = _rows(load_articles(tmp_path / "articles.parquet"))
    assert from_parquet[:2] == plain[:2] and from_parquet[2]["id"] == "articles-3"


def test_csv_with_field_map_joins_parts_and_skips_empty_ones():
    rows = _rows(load_articles(FIX / "articles.csv", field_map=CSV_MAP))
    assert [r["id"] for r in rows] == ["c-1", "c-2"]
    assert rows[0]["text"] == "检查组走访5个小区。\n检查组实地察看物业服务和维修资金使用情况，听取业主意见。"
    assert rows[1]["text"].startswith("书屋还定期") and rows[1]["text"].count("\n") == 1  # empty lead skipped
    assert rows[1]["title"] == '社区书屋"夜读"受欢迎'  # CSV-escaped quotes
    assert [r["section"] for r in rows] == ["要闻", "文化"] and [r["date"] for r in rows] == [
        "2024-06-26",
        "2024-06-24",
    ]
    assert [r["source"] for r in rows] == ["articles", "articles"] and rows[0]["label"] is None


def test_csv_without_text_column_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"articles\.csv: no CSV column 'text' for 'text' \(columns: 编号, 日期.*field_map"
    ):
        load_articles(FIX / "articles.csv")
    with pytest.raises(ValueError, match="no CSV column '题目' for 'title'"):
        load_articles(FIX / "articles.csv", field_map={**CSV_MAP, "title": "题目"})


def test_page_file_folder_and_embedded_pages(tmp_path):
    single = _rows(load_articles(FIX / "page.txt"))
    assert [r["title"] for r in single] == ["城南区开展消防安全大检查", "春季读书节开幕"]
    assert [r["id"] for r in single] == ["page-000", "page-001"] and single[0]["source"] == "page"
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(FIX / "page.txt", folder / "b-page.txt")
    shutil.copy(PAGES_DIR / "city-daily-page-1.md", folder / "jhrb-2024-05-22.md")
    (folder / "notes.csv").write_text("not a page\n", encoding="utf-8")
    rows = _rows(load_articles(folder, source="江河日报"))
    assert [r["id"] for r in rows[:2]] == ["b-page-000", "b-page-001"]  # sorted by file name, stable
    assert len(rows) == 7 and {r["source"] for r in rows} == {"江河日报"}
    assert {r["date"] for r in rows[2:]} == {"2024-05-22"} and rows[0]["date"] == ""
    assert rows[2]["section"] == "守牢安全底线 护航高质量发展"
    embedded = load_articles("embedded-pages")
    assert len(embedded) == 10 and len(set(embedded["id"])) == 10
    assert sum(1 for s in embedded["section"] if s) == 4  # two kicker-topped stories a page


def test_embedded_corpus_loads_with_labels():
    ds = load_articles("embedded")
    assert len(ds) >= 3 and len(set(ds["id"])) == len(ds)
    assert all(isinstance(lab, str) and lab for lab in ds["label"])
    assert all(len(d) == 10 for d in ds["date"] if d)


def test_malformed_line_is_an_error_naming_file_line_and_fix(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [REC, {**REC, "id": "b"}], {2: '{"id": "x", "text": '})
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: malformed JSON .*on_bad_record='skip'"):
        load_articles(path)


def test_missing_field_is_an_error_naming_the_field(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", [REC, {"id": "b", "title": "无正文", "body": "正文"}])
    with pytest.raises(
        ValueError,
        match=r"c\.jsonl, line 2: missing required field 'text' for 'text' \(fields present: id, title, body\); "
        r"fix the record, map the field with field_map, or pass on_bad_record='skip'",
    ):
        load_articles(path)


def test_skip_counts_every_reason_and_reports_it(tmp_path, capsys, caplog):
    records = [
        REC,
        {**REC, "id": "b", "text": ""},  # empty text
        {"id": "c", "title": "t"},  # missing text
        {**REC, "id": "d", "date": "2024-13-40"},  # unreadable date
        {**REC, "id": "e", "text": ["列表", "不是文本"]},  # wrong type
        {**REC},  # duplicate id "a"
        {**REC, "id": "f", "text": "太短。"},  # shorter than min_chars
        [1, 2],  # not an object
        {**REC, "id": "g"},
    ]
    path = _write_jsonl(tmp_path / "mixed.jsonl", records, {3: "{oops"})
    with caplog.at_level(logging.WARNING, logger="newsclf.data.loaders"):
        ds = load_articles(path, on_bad_record="skip", min_chars=10)
    assert ds["id"] == ["a", "g"]
    dropped = {
        "bad type in field 'text'": 1,
        "duplicate id": 1,
        "empty text": 1,
        "malformed JSON": 1,
        "missing field 'text'": 1,
        "not a JSON object": 1,
        "shorter than min_chars=10": 1,
        "unreadable date": 1,
    }
    assert load_report(ds) == {"files": [str(path)], "records_read": 10, "loaded": 2, "dropped": dropped}
    err = capsys.readouterr().err
    assert "kept 2 of 10 records" in err and "1 duplicate id" in err and "1 shorter than min_chars=10" in err
    assert any("kept 2 of 10" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (
            {**REC, "date": "2024-13-40"},
            r"line 1: field 'date': unreadable date '2024-13-40'; expected YYYY-MM-DD",
        ),
        ({**REC, "text": {"a": 1}}, r"line 1: field for 'text' holds a dict, expected text"),
        ({**REC, "text": "  \u3000\n "}, r"line 1: field for 'text' is empty"),
    ],
)
def test_each_bad_value_is_an_error_in_error_mode(tmp_path, record, match):
    with pytest.raises(ValueError, match=match):
        load_articles(_write_jsonl(tmp_path / "one.jsonl", [record]))


def test_duplicate_id_names_both_places(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [REC, {**REC, "title": "另一篇"}])
    with pytest.raises(
        ValueError, match=r"d\.jsonl, line 2: duplicate id 'a' \(first seen at d\.jsonl, line 1\)"
    ):
        load_articles(path)


def test_everything_filtered_out_is_an_error_saying_why(tmp_path):
    path = _write_jsonl(tmp_path / "s.jsonl", [REC, {**REC, "id": "b"}])
    with pytest.raises(
        ValueError,
        match=r"no articles left .*2 records read; 2 shorter than min_chars=500\); lower min_chars",
    ):
        load_articles(path, min_chars=500)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no articles left .*the input holds no records"):
        load_articles(empty)


@pytest.mark.parametrize("name", ["gbk.jsonl", "gbk.md", "gbk.csv"])
def test_non_utf8_file_names_file_and_byte_offset(tmp_path, name):
    head = b'{"id": "a", "title": "t", "text": "' if name.endswith("jsonl") else b"text\n"
    if name.endswith("md"):
        head = "## 标题\n\n".encode()
    data = head + "本报讯 正文内容。".encode("gb18030") + b'"}\n'
    path = tmp_path / name
    path.write_bytes(data)
    offset = len(head)  # the first GB18030 byte
    with pytest.raises(ValueError, match=rf"{name}.*not valid UTF-8 at byte offset {offset} .*iconv"):
        load_articles(path)


def test_binary_file_is_an_error(tmp_path):
    path = tmp_path / "image.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(
        ValueError, match=r"image\.md: NUL byte at byte offset 8; this looks like a binary file"
    ):
        load_articles(path)
    gz = tmp_path / "broken.jsonl.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"broken\.jsonl\.gz: broken or truncated gzip data"):
        load_articles(gz)


def test_bad_page_file_error_names_the_file(tmp_path):
    (tmp_path / "blank.md").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"blank\.md: empty page"):
        load_articles(tmp_path / "blank.md")
    (tmp_path / "nohead.txt").write_text("会议要求各部门抓好落实。\n确保取得实效。\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"nohead\.txt: page has no headline"):
        load_articles(tmp_path / "nohead.txt")


def test_bad_arguments_and_paths(tmp_path):
    with pytest.raises(
        ValueError, match="field_map key 'body' is not a column; expected one of id, title, text"
    ):
        load_articles(FIX / "articles.jsonl", field_map={"body": "text"})
    with pytest.raises(
        ValueError, match=r"field_map\['text'\] = \[\]; expected a field name or a non-empty list"
    ):
        load_articles(FIX / "articles.jsonl", field_map={"text": []})
    with pytest.raises(ValueError, match="on_bad_record='drop'; expected 'error' or 'skip'"):
        load_articles(FIX / "articles.jsonl", on_bad_record="drop")
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl: no such file or folder; expected a file"):
        load_articles(tmp_path / "nope.jsonl")
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"x\.xlsx: unknown file type '\.xlsx'; expected one of \.jsonl"):
        load_articles(tmp_path / "x.xlsx")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jsonl").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"folder holds no page files \(\.md/\.txt\), found a\.jsonl"):
        load_articles(tmp_path / "d")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200526", "2020-05-26"),
        ("2020-5-6", "2020-05-06"),
        ("2020/05/26", "2020-05-26"),
        ("2020年5月26日", "2020-05-26"),
        ("2020-05-26T08:00:00", "2020-05-26"),
        (None, ""),
        ("", ""),
    ],
)
def test_normalize_date(value, expected):
    assert normalize_date(value) == expected


@pytest.mark.shared
def test_gold_and_sample_page_from_shared(shared_dir):
    gold = load_articles(shared_dir / "gold" / "dev.jsonl")
    assert len(gold) == 295 and all(gold["label"]) and all(len(d) == 10 for d in gold["date"])
    page = load_articles(shared_dir / "pages")
    assert len(page) == 8 and set(page["date"]) == {""}  # a year-month file name is not a date
    assert page["source"][0] == "pingdingshan-daily-2024-01-page"


@pytest.mark.shared
@pytest.mark.slow
def test_both_shared_corpora_load_fast(shared_dir):
    import time

    start = time.perf_counter()
    ds = load_articles(
        [
            shared_dir / "corpus" / "rmrb-2019-2020.jsonl.gz",
            shared_dir / "corpus" / "xwlb-2022-2024.jsonl.gz",
        ],
        field_map={"text": ["lead", "subtitle", "body"]},
        on_bad_record="skip",
    )
    elapsed = time.perf_counter() - start
    report = load_report(ds)
    assert report["records_read"] == 8347 + 11749
    assert report["loaded"] + sum(report["dropped"].values()) == report["records_read"]
    assert set(ds.unique("source")) == {"rmrb", "xwlb"}
    assert elapsed < 20, f"loading took {elapsed:.1f} s"
