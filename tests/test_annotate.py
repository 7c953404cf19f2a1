"""``newsclf annotate``: the decision store, the HTTP API, the real server, and the page in headless Chromium.

The articles are self-written. The browser test drives Debian's chromium through its chromedriver (both from
apt, never downloaded at run time) and skips with the reason when either, or selenium, is missing.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsclf.annotate_store import Conflict, UnknownArticle, open_store, parse_guide
from newsclf.queue import read_queue, write_queue

LABELS = ["governance", "party_building", "safety", "culture", "other"]

# (id, title, text, suggested, keywords): short articles written for these tests.
ARTICLES = [
    ("a1", "县应急管理局检查烟花爆竹仓库", "检查组逐一查看仓库的防火间距和消防器材，要求企业落实安全生产责任，发现隐患立即整改。",
     "safety", ["烟花爆竹", "消防器材", "安全生产"]),
    ("a2", "老街戏台重开 地方戏曲每周上演", "修缮后的老戏台迎来首场演出，剧团排演了三出传统剧目，附近居民搬着板凳早早赶来。",
     "culture", ["戏台", "传统剧目"]),
    ("a3", "街道党工委为新党员举行入党宣誓",
     "七月一日上午，街道党工委在社区活动中心举行新党员入党宣誓仪式。二十名新党员面对党旗庄严宣誓，"
     "老党员代表分享了自己几十年来的入党经历和工作体会。\n"
     "仪式结束后，新党员们参观了社区党建展室，观看了基层党组织发展历程的图片资料。"
     "街道党工委负责人表示，将为每名新党员安排一名老党员结对帮带，帮助他们尽快熟悉支部工作。\n"
     "据了解，今年以来该街道共发展党员四十余名，其中青年党员占比超过六成。",
     "party_building", ["党员", "入党宣誓"]),
    ("a4", "城区新增三条公交线路", "公交公司根据市民出行需求调整线路，新线路连接高铁站和大学城。<script>alert(1)</script><b>粗体</b>",
     "other", ["公交"]),
    ("a5", "区政府出台老旧小区改造实施方案", "方案明确了改造范围、资金来源和居民议事程序，年内完成十个小区改造。",
     "governance", ["改造", "居民议事"]),
]


def _queue_rows() -> list[dict]:
    rows = []
    for rank, (aid, title, text, suggested, words) in enumerate(ARTICLES, 1):
        probs = {lab: (0.6 if lab == suggested else 0.1) for lab in LABELS}
        rows.append({
            "rank": rank, "id": aid, "title": title, "text": text, "reason": "uncertainty",
            "reasons": ["uncertainty", "disagreement"], "suggested": suggested, "score": 0.6,
            "scores": {"margin": 0.5, "probs": probs, "rule_label": "other"},
            "keywords": [{"word": w, "weight": round(0.3 - 0.1 * i, 2)} for i, w in enumerate(words)],
            "labels": LABELS,
        })
    return rows


@pytest.fixture()
def queue_file(tmp_path: Path) -> Path:
    return write_queue(_queue_rows(), tmp_path / "queue.jsonl")


@pytest.fixture()
def queue(queue_file: Path) -> list[dict]:
    return read_queue(queue_file)


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# -- the store -----------------------------------------------------------------------------------------
def test_decisions_are_written_at_once_and_read_by_the_gold_reader(tmp_path, queue):
    from newsclf.data.gold import load_gold

    out = tmp_path / "gold" / "labels.csv"
    with open_store(queue, out, "小王") as store:
        assert store.state()["position"] == 1
        store.decide("a1", "safety")
        st = store.decide("a2", None)  # skip
        assert (st["labelled"], st["skipped"], st["position"]) == (1, 1, 3)
        rows = _csv(out)  # on disk before the call returned, not at close
        assert [(r["id"], r["label"], r["annotator"]) for r in rows] == [("a1", "safety", "小王")]
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", rows[0]["timestamp"])
        store.decide("a3", "party_building")
    assert list(rows[0]) == ["id", "label", "annotator", "timestamp"]
    gold = load_gold([out], LABELS)
    assert {k: v[0] for k, v in gold.items()} == {"a1": "safety", "a3": "party_building"}
    ops = [json.loads(x) for x in out.with_name("labels.csv.journal.jsonl").read_text().splitlines()]
    assert ops[0] == {"journal": "newsclf-annotate/1", "labels": LABELS}
    assert [(o["op"], o["id"]) for o in ops[1:]] == [("label", "a1"), ("skip", "a2"), ("label", "a3")]


def test_undo_takes_back_labels_and_skips_and_resume_starts_at_the_first_undecided(tmp_path, queue):
    out = tmp_path / "labels.csv"
    with open_store(queue, out, "a") as store:
        store.decide("a1", "safety")
        store.decide("a2", None)
        store.decide("a3", "culture")
        st = store.undo("a3")
        assert st["position"] == 3 and st["last"]["id"] == "a2"
        st = store.undo()  # the skip
        assert st["position"] == 2 and st["skipped"] == 0
        store.decide("a2", "culture")
    assert [(r["id"], r["label"]) for r in _csv(out)] == [("a1", "safety"), ("a2", "culture")]
    with open_store(queue, out, "b") as store:  # a new session: same state, and undo still reaches back
        st = store.state()
        assert (st["position"], st["labelled"], st["last"]["id"]) == (3, 2, "a2")
        store.undo("a2")
        assert store.state()["position"] == 2
    assert [r["id"] for r in _csv(out)] == ["a1"]


def test_stale_or_wrong_actions_are_refused_and_change_nothing(tmp_path, queue):
    out = tmp_path / "labels.csv"
    with open_store(queue, out, "a") as store:
        with pytest.raises(Conflict, match="nothing to undo"):
            store.undo()
        store.decide("a1", "safety")
        before = out.read_bytes()
        with pytest.raises(Conflict, match="already labelled 'safety'"):
            store.decide("a1", "culture")  # a second tab still showing a1
        with pytest.raises(Conflict, match="not 'a9'"):
            store.undo("a9")
        with pytest.raises(UnknownArticle, match="'zz' is not in this queue"):
            store.decide("zz", "safety")
        with pytest.raises(ValueError, match="'sports' is not one of the queue's labels"):
            store.decide("a2", "sports")
        assert out.read_bytes() == before
        assert store.state()["position"] == 2


def test_a_second_annotator_on_the_same_csv_is_stopped_by_the_lock(tmp_path, queue):
    out = tmp_path / "labels.csv"
    first = open_store(queue, out, "alice")
    try:
        with pytest.raises(OSError, match=r"another annotator \(newsclf annotate, pid \d+, annotator alice; "
                                          r"lock file .*labels\.csv\.lock"):
            open_store(queue, out, "bob")
    finally:
        first.close()
    open_store(queue, out, "bob").close()  # released with the first store


def test_an_existing_csv_is_kept_and_a_hand_edited_one_is_not_overwritten(tmp_path, queue):
    out = tmp_path / "labels.csv"
    out.write_text("id,label\nold-1,culture\na2,culture\n", encoding="utf-8")
    with open_store(queue, out, "a") as store:
        st = store.state()
        assert (st["position"], st["labelled"], st["last"]) == (1, 1, None)  # a2 counts as done, not undoable
        store.decide("a1", "safety")
    assert [(r["id"], r["label"]) for r in _csv(out)] == [("old-1", "culture"), ("a2", "culture"), ("a1", "safety")]
    # The CSV may lag its journal by one entry (a crash between the two writes): repaired on open.
    out.write_text("id,label,annotator,timestamp\nold-1,culture,,\na2,culture,,\n", encoding="utf-8")
    open_store(queue, out, "a").close()
    assert [r["id"] for r in _csv(out)] == ["old-1", "a2", "a1"]
    out.write_text("id,label\nold-1,other\n", encoding="utf-8")
    with pytest.raises(ValueError, match="differs from its journal"):
        open_store(queue, out, "a")
    assert out.read_text(encoding="utf-8") == "id,label\nold-1,other\n"
    # A crash right after the journal was started: the CSV's rows are still taken in.
    fresh = tmp_path / "fresh.csv"
    fresh.write_text("id,label\na3,culture\n", encoding="utf-8")
    fresh.with_name("fresh.csv.journal.jsonl").write_text("", encoding="utf-8")
    with open_store(queue, fresh, "a") as store:
        assert store.state()["labelled"] == 1
    assert [(r["id"], r["label"]) for r in _csv(fresh)] == [("a3", "culture")]
    extra = tmp_path / "notes.csv"
    extra.write_text("id,label,note\nx,culture,hmm\n", encoding="utf-8")
    with pytest.raises(ValueError, match="columns"):
        open_store(queue, extra, "a")


def test_a_journal_line_cut_short_by_a_crash_is_dropped(tmp_path, queue):
    out = tmp_path / "labels.csv"
    with open_store(queue, out, "a") as store:
        store.decide("a1", "safety")
    journal = out.with_name("labels.csv.journal.jsonl")
    with journal.open("a", encoding="utf-8") as f:
        f.write('{"op": "label", "id": "a2", "lab')
    with open_store(queue, out, "a") as store:
        assert store.state()["position"] == 2
        store.decide("a2", "culture")
    assert all(json.loads(line) for line in journal.read_text().splitlines())
    journal.write_text(journal.read_text() + "garbage\n{}\n")
    with pytest.raises(ValueError, match="damaged"):
        open_store(queue, out, "a")


def test_outputs_that_cannot_be_written(tmp_path, queue):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        open_store(queue, tmp_path, "a")
    with pytest.raises(ValueError, match="expected a .csv file"):
        open_store(queue, tmp_path / "labels.jsonl", "a")
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: the permission case needs a normal user")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            open_store(queue, locked / "labels.csv", "a")
    finally:
        locked.chmod(0o700)


def test_the_default_guide_defines_every_default_label_and_a_user_guide_is_parsed():
    from newsclf.annotate import load_guide

    guide = load_guide(None, LABELS)
    assert set(guide["labels"]) == set(LABELS) and all(len(v) > 40 for v in guide["labels"].values())
    parsed = parse_guide("# 指南\n看主要\n内容。\n## safety — 安全\n事故、\n灾害。\n\nfire and\nfloods\n- 消防\n## 备注\n其他。"
                         "\n## other\n其余。", LABELS)
    assert parsed == {"intro": "看主要内容。", "labels": {"safety": "事故、灾害。\n\nfire and floods\n- 消防\n## 备注\n其他。",
                                                         "other": "其余。"}}


# -- the HTTP API (in process) -------------------------------------------------------------------------
@pytest.fixture()
def api(tmp_path, queue):
    pytest.importorskip("fastapi", reason="newsclf annotate needs the serve extra: pip install -e '.[serve]'")
    pytest.importorskip("httpx", reason="the API tests use starlette's TestClient (httpx, the dev extra)")
    from starlette.testclient import TestClient

    from newsclf.annotate import load_guide
    from newsclf.annotate_app import create_app

    store = open_store(queue, tmp_path / "labels.csv", "a")
    app = create_app(store, load_guide(None, LABELS))
    yield app, TestClient(app, base_url="http://127.0.0.1:8765", client=("127.0.0.1", 50000))
    store.close()


def test_api_answers_each_bad_request_with_its_status_and_a_message(api):
    app, client = api
    from starlette.testclient import TestClient

    assert client.get("/api/state").json()["article"]["id"] == "a1"
    assert "annotate.js" in client.get("/").text
    r = client.post("/api/decide", json={"id": "a1", "label": "sports"})
    assert r.status_code == 400 and "not one of the queue's labels" in r.json()["error"]
    r = client.post("/api/decide", json={"id": "gone", "label": "safety"})
    assert r.status_code == 404 and "not in this queue" in r.json()["error"]
    r = client.post("/api/decide", content='{"id": "a1", "label": "safety"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]  # what a cross-site form could send
    assert client.post("/api/decide", json={"id": "a1"}).status_code == 400
    assert client.post("/api/decide", json={"id": "a1", "label": "safety"}).status_code == 200
    r = client.post("/api/decide", json={"id": "a1", "label": "culture"})
    assert r.status_code == 409 and "already labelled" in r.json()["error"]
    assert client.post("/api/undo", json={"id": "a2"}).status_code == 409
    assert client.post("/api/undo", json={"id": "a1"}).json()["position"] == 1
    remote = TestClient(app, base_url="http://127.0.0.1:8765", client=("192.0.2.7", 50000))
    r = remote.get("/api/state")
    assert r.status_code == 403 and "--allow-remote" in r.json()["error"]
    rebound = TestClient(app, base_url="http://evil.example:8765", client=("127.0.0.1", 50000))
    assert rebound.get("/").status_code == 403


# -- the command ---------------------------------------------------------------------------------------
def _start(queue_file: Path, out: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``newsclf annotate`` on a free port; returns the process and the page's URL once it answers."""
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "newsclf.cli", "annotate", str(queue_file), "--out", str(out),
                             "--port", "0", "--annotator", "测试员", *extra],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"open (http://\S+/)", log.read_text())
        if m:
            try:
                urllib.request.urlopen(m.group(1) + "api/state", timeout=5).read()
                return proc, m.group(1)
            except OSError:
                pass
        if proc.poll() is not None:
            raise AssertionError(f"newsclf annotate exited {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"newsclf annotate did not start in 30 s:\n{log.read_text()}")


def _post(url: str, body: dict) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_real_server_serves_refuses_a_second_annotator_and_stops_cleanly(tmp_path, queue_file):
    pytest.importorskip("uvicorn", reason="newsclf annotate needs the serve extra: pip install -e '.[serve]'")
    out = tmp_path / "labels.csv"
    proc, url = _start(queue_file, out, tmp_path / "log")
    try:
        assert url.startswith("http://127.0.0.1:")
        assert _post(url + "api/decide", {"id": "a1", "label": "safety"})[0] == 200
        second = subprocess.run([sys.executable, "-m", "newsclf.cli", "annotate", str(queue_file), "--out", str(out),
                                 "--port", "0"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "error: --out" in second.stderr and "another annotator" in second.stderr and ".lock" in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    assert "stopped; 1 labelled, 0 skipped of 5" in (tmp_path / "log").read_text()
    assert [r["id"] for r in _csv(out)] == ["a1"]


def test_command_line_mistakes_end_in_one_error_line(tmp_path, queue_file, capsys):
    from newsclf.cli import main

    not_ours = tmp_path / "other.jsonl"
    not_ours.write_text('{"id": 1, "text": "一篇文章"}\n', encoding="utf-8")
    out = str(tmp_path / "labels.csv")
    assert main(["annotate", str(not_ours), "--out", out, "--port", "0"]) == 2
    assert "not a newsclf queue" in capsys.readouterr().err
    assert main(["annotate", str(queue_file), "--out", out, "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert main(["annotate", str(queue_file), "--out", out, "--guide", str(tmp_path / "none.md")]) == 2
    assert "--guide" in capsys.readouterr().err
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert main(["annotate", str(queue_file), "--out", out, "--port", str(busy.getsockname()[1])]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert not list(tmp_path.glob("labels.csv*"))  # nothing written before every check passed


# -- the page in a real browser ------------------------------------------------------------------------
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(binary) and os.path.exists(driver_path)):
        pytest.skip("the browser test needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver); .ci/run installs them")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=zh-CN"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


def test_label_three_by_keyboard_undo_kill_restart_resume_in_chromium(tmp_path, queue_file):
    pytest.importorskip("uvicorn", reason="newsclf annotate needs the serve extra: pip install -e '.[serve]'")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = tmp_path / "labels.csv"
    browser = _browser()
    proc = None
    try:
        proc, url = _start(queue_file, out, tmp_path / "log")
        wait = WebDriverWait(browser, 15)

        def counter_says(text: str) -> None:
            wait.until(lambda b: b.find_element(By.ID, "counter").text.startswith(text))

        def article_is(aid: str) -> None:
            wait.until(lambda b: b.find_element(By.ID, "article-id").text == aid)

        def press(key: str) -> None:
            browser.find_element(By.TAG_NAME, "body").send_keys(key)

        browser.get(url)
        article_is("a1")
        assert browser.find_element(By.ID, "title").text == "县应急管理局检查烟花爆竹仓库"
        assert [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#text mark")] == ["消防器材", "安全生产"]
        assert "消防器材" in browser.find_element(By.ID, "keywords").text
        assert "production safety" in browser.find_element(By.ID, "label-buttons").text  # the guide's wording
        press("?")
        assert browser.find_element(By.ID, "help").is_displayed()
        press("?")
        assert not browser.find_element(By.ID, "help").is_displayed()
        press("3")  # safety
        counter_says("1 of 5 labelled")
        article_is("a2")
        press("4")  # culture
        counter_says("2 of 5 labelled")
        press("2")  # party_building
        counter_says("3 of 5 labelled")
        article_is("a4")
        # a4's text carries markup: shown as text, never run or rendered.
        assert "<script>alert(1)</script><b>粗体</b>" in browser.find_element(By.ID, "text").text
        assert not browser.find_elements(By.CSS_SELECTOR, "#text b, #text script")
        press("u")
        counter_says("2 of 5 labelled")
        article_is("a3")
        assert float(browser.find_element(By.ID, "progress").get_attribute("value")) == 2

        proc.kill()  # SIGKILL: nothing acknowledged may be lost
        proc.wait(timeout=10)
        assert [(r["id"], r["label"], r["annotator"]) for r in _csv(out)] == [
            ("a1", "safety", "测试员"), ("a2", "culture", "测试员")]
        proc, url = _start(queue_file, out, tmp_path / "log2")
        assert "resuming at article 3" in (tmp_path / "log2").read_text()
        browser.get(url)
        article_is("a3")
        counter_says("2 of 5 labelled")
        shot = os.environ.get("NEWSCLF_ANNOTATE_SCREENSHOT")  # docs/annotate.png is made this way
        if shot:
            browser.set_window_size(1280, 1250)
            browser.save_screenshot(shot)
        for _ in range(3):  # skips are journal entries, not CSV rows
            position = browser.find_element(By.ID, "position").text
            press("s")
            wait.until(lambda b, p=position: not b.find_element(By.ID, "main").is_displayed()
                       or b.find_element(By.ID, "position").text != p)
        wait.until(lambda b: b.find_element(By.ID, "done").is_displayed())
        assert not browser.find_element(By.ID, "main").is_displayed()
        assert browser.find_element(By.ID, "counter").text == "2 of 5 labelled, 3 skipped"
    finally:
        browser.quit()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
    assert [(r["id"], r["label"]) for r in _csv(out)] == [("a1", "safety"), ("a2", "culture")]
