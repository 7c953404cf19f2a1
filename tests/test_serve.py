"""``newsclf serve`` over real HTTP: real ``newsclf serve`` processes on 127.0.0.1 with the tiny model.

No mocks: each server is the command a user runs, on a free port (``--port 0``; the port is read from the
line it prints), and every answer is compared with ``newsclf.predict`` on the same items. The model is
served in fp32 and compared with ``predict`` on the same model loaded in fp32, so scores agree to rounding
whatever the batch they were computed in. Every server started here is stopped here.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from newsclf.artifact import fingerprint
from newsclf.predict import load, predict

pytest.importorskip("fastapi", reason="newsclf serve needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="newsclf serve needs the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve tests talk to the server with httpx (the dev extra)")

# A mix of item forms, with one that is not Chinese (abstains with a reason) and one with a lone surrogate.
ITEMS = [
    "市政府常务会议研究部署营商环境优化工作\n会议审议通过了优化营商环境若干措施，要求各部门深化放管服改革。",
    {"title": "消防救援支队成功处置一起居民楼火灾", "text": "消防员迅速疏散群众，扑灭明火，无人员伤亡。", "id": "not-in-the-result"},
    {"text": "剪纸、皮影、豫剧等非遗项目轮番登场，吸引市民游客观看。"},
    "City council approves budget\nThe city council met on Monday to discuss the budget.",
    "小麦进入灌浆期 农技人员指导田间管理\n农业部门组织专家下田指导，确保夏粮丰收。\ud83d",
]
CJK = "村党支部书记带领党员开展志愿服务\n党支部组织党员先锋队走访困难群众，发挥基层党组织战斗堡垒作用。"


def _start(model: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str, list[int]]:
    """Start ``newsclf serve`` on a free port; return (process, base URL, /health statuses seen until 200)."""
    cmd = [sys.executable, "-m", "newsclf.cli", "serve", "--model", str(model), "--port", "0", "--precision", "fp32",
           *extra]
    err = log.open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    deadline = time.monotonic() + 60
    base = None
    while base is None:
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", log.read_text())
        if m:
            base = m.group(1)
        elif proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"newsclf serve did not start:\n{log.read_text()}")
        else:
            time.sleep(0.05)
    seen: list[int] = []
    while not seen or seen[-1] != 200:
        try:
            seen.append(httpx.get(f"{base}/health", timeout=5).status_code)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            _stop(proc)
            pytest.fail(f"newsclf serve never became healthy (saw {seen}):\n{log.read_text()}")
        time.sleep(0.05)
    return proc, base, seen


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """One server with the default limits: (base URL, /health statuses seen while it started)."""
    proc, base, seen = _start(tiny_model, tmp_path_factory.mktemp("serve") / "stderr.txt")
    try:
        yield base, seen
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def clf(tiny_model):
    return load(tiny_model, precision="fp32")


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server[0], timeout=30) as c:
        yield c


def _post(client, body, **kw) -> httpx.Response:
    """POST ``body`` as JSON the way Python writes it (``\\u`` escapes, so lone surrogates and NaN pass)."""
    return client.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"}, **kw)


def _plain(x):
    """What a result looks like after JSON (tuples become lists)."""
    return json.loads(json.dumps(x))


def _assert_same(got: dict, want: dict, tol: float = 1e-6) -> None:
    want = _plain(want)
    assert got.keys() == want.keys()
    assert (got["label"], got["abstained"]) == (want["label"], want["abstained"])
    assert got["score"] == pytest.approx(want["score"], abs=tol)
    assert got["scores"].keys() == want["scores"].keys()
    for lab, s in want["scores"].items():
        assert got["scores"][lab] == pytest.approx(s, abs=tol)
    if tol <= 1e-6:  # the same batch as predict's: the reason's printed digits agree too
        assert got["reason"] == want["reason"]
        assert got.get("keywords") == want.get("keywords")
        assert [k[0] for k in got.get("top_k", [])] == [k[0] for k in want.get("top_k", [])]


def test_health_labels_and_docs(server, client, clf, tiny_model):
    _, seen = server
    assert seen[-1] == 200 and set(seen) <= {200, 503}
    assert 503 in seen  # it listens before the weights load (importing transformers alone takes a second)
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["precision"] == "fp32"
    labels = client.get("/labels").json()
    assert labels["labels"] == clf.labels
    assert labels["fingerprint"] == fingerprint(tiny_model)
    assert labels["abstain_threshold"] == clf.abstain_threshold
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    assert "/predict" in spec["paths"] and "requestBody" in spec["paths"]["/predict"]["post"]


def test_batch_and_single_requests_equal_predict(client, clf):
    r = _post(client, {"articles": ITEMS, "top_k": 2})
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    want = predict(ITEMS, model=clf, top_k=2)
    assert len(got) == len(want) == len(ITEMS)
    for g, w in zip(got, want):
        _assert_same(g, w)
    assert got[3]["abstained"] and "Chinese" in got[3]["reason"]
    for item in ITEMS[:3]:
        r = _post(client, {"article": item, "threshold": 0.5})
        assert r.status_code == 200, r.text
        _assert_same(r.json()["result"], predict(item, model=clf, threshold=0.5))
    r = _post(client, {"article": ITEMS[1], "explain": True})
    _assert_same(r.json()["result"], predict(ITEMS[1], model=clf, explain=True))
    assert _post(client, {"articles": []}).json() == {"results": []}


@pytest.mark.parametrize(
    "body, args, kwargs",
    [
        ({"articles": [CJK, ""]}, ([CJK, ""],), {}),
        ({"articles": [CJK, {"title": 1, "text": "x"}]}, ([CJK, {"title": 1, "text": "x"}],), {}),
        ({"articles": [{"body": "x"}]}, ([{"body": "x"}],), {}),
        ({"articles": [CJK, CJK, 5]}, ([CJK, CJK, 5],), {}),
        ({"article": "   "}, ("   ",), {}),
        ({"article": None}, (None,), {}),
        ({"article": CJK, "top_k": 0}, (CJK,), {"top_k": 0}),
        ({"article": CJK, "top_k": True}, (CJK,), {"top_k": True}),
        ({"article": CJK, "top_k": 99}, (CJK,), {"top_k": 99}),
        ({"article": CJK, "threshold": float("nan")}, (CJK,), {"threshold": float("nan")}),
        ({"article": CJK, "threshold": "0.5"}, (CJK,), {"threshold": "0.5"}),
        ({"article": CJK, "threshold": 2}, (CJK,), {"threshold": 2}),
        ({"articles": [CJK], "explain": "yes"}, ([CJK],), {"explain": "yes"}),
    ],
)
def test_bad_input_is_422_with_predicts_message(client, clf, body, args, kwargs):
    with pytest.raises((TypeError, ValueError)) as err:
        predict(*args, model=clf, **kwargs)
    r = _post(client, body)
    assert r.status_code == 422
    assert r.json() == {"detail": str(err.value)}


@pytest.mark.parametrize(
    "content, ctype, status",
    [
        (b'{"articles": [', "application/json", 400),
        (b"hello", "application/json", 400),
        (b"", "application/json", 400),
        (b'{"article": "\xff\xfe"}', "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (b'{"top_k": 1' + b"0" * 5000 + b', "articles": []}', "application/json", 400),
        (b'{"articles": []}', "text/plain", 415),
        (b'{"articles": []}', None, 415),
        (b"articles=x", "application/x-www-form-urlencoded", 415),
        (b"[1, 2]", "application/json", 422),
        (b'"abc"', "application/json", 422),
        (b"{}", "application/json", 422),
        (b'{"articles": [], "article": "x"}', "application/json", 422),
        (b'{"articles": [], "top-k": 2}', "application/json", 422),
        (b'{"articles": "abc"}', "application/json", 422),
        (b'{"articles": [{"\\ud800": 1}]}', "application/json", 422),
        (b'{"articles": [], "threshold": 1' + b"0" * 400 + b"}", "application/json", 422),
    ],
)
def test_malformed_requests_are_4xx_with_a_json_detail(client, content, ctype, status):
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/predict", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]


def test_limits_and_wrong_methods(client):
    big = json.dumps({"articles": [CJK * 40] * 600}).encode()  # ~2.4 MB
    assert len(big) > 2_000_000
    r = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    r = _post(client, {"articles": ["x"] * 1001})
    assert r.status_code == 413 and "1000" in r.json()["detail"]
    assert client.get("/predict").status_code == 405
    assert client.get("/nothing-here").status_code == 404
    assert client.get("/health").status_code == 200
    assert _post(client, {"article": CJK}).status_code == 200


def test_concurrent_requests_are_batched_and_correct(server, clf):
    want = [_plain(predict(it, model=clf)) for it in ITEMS]
    failures: list[str] = []

    def client_thread(k: int) -> None:
        with httpx.Client(base_url=server[0], timeout=60) as c:
            for j in range(5):
                i = (k + j) % len(ITEMS)
                body = {"article": ITEMS[i]} if j % 2 else {"articles": [ITEMS[i], ITEMS[(i + 1) % len(ITEMS)]]}
                r = _post(c, body)
                try:
                    assert r.status_code == 200, r.text
                    got = [r.json()["result"]] if j % 2 else r.json()["results"]
                    for g, w in zip(got, [want[i]] if j % 2 else [want[i], want[(i + 1) % len(ITEMS)]]):
                        _assert_same(g, w, tol=1e-4)  # another batch, other padding: rounding differs
                except AssertionError as err:
                    failures.append(f"client {k} request {j}: {err}")

    before = httpx.get(f"{server[0]}/health").json()
    threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[:3]
    after = httpx.get(f"{server[0]}/health").json()
    articles = after["articles"] - before["articles"]
    assert articles == 8 * (3 * 2 + 2 * 1)
    assert after["batches"] - before["batches"] < 40  # 40 requests, sent 8 at a time: some shared a batch


def test_full_queue_is_429_and_sigterm_finishes_the_request_in_flight(tiny_model, clf, tmp_path):
    # Each request waits 2 s for others to fill a batch, and one waiting article fills the queue.
    proc, base, _ = _start(tiny_model, tmp_path / "stderr.txt", "--max-queue", "1", "--max-wait-ms", "2000",
                           "--batch-size", "64")
    try:
        def queued() -> int:
            return httpx.get(f"{base}/health", timeout=5).json()["queued_articles"]

        def post_in_thread(out: list) -> threading.Thread:
            t = threading.Thread(target=lambda: out.append(httpx.post(f"{base}/predict", json={"article": CJK}, timeout=30)))
            t.start()
            deadline = time.monotonic() + 10
            while queued() != 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert queued() == 1
            return t

        first: list[httpx.Response] = []
        t = post_in_thread(first)
        r = httpx.post(f"{base}/predict", json={"article": CJK}, timeout=10)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "queue is full" in r.json()["detail"]
        t.join(timeout=30)
        assert first[0].status_code == 200

        last: list[httpx.Response] = []
        t = post_in_thread(last)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=30)
        assert last and last[0].status_code == 200
        _assert_same(last[0].json()["result"], predict(CJK, model=clf))
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - start < 10
        assert "stopped (SIGTERM)" in (tmp_path / "stderr.txt").read_text()
    finally:
        _stop(proc)


def test_cli_refuses_a_missing_model_folder_before_listening(tmp_path, capsys):
    from newsclf.cli import main

    assert main(["serve", "--model", str(tmp_path / "nope"), "--port", "0"]) == 2
    assert "no model folder" in capsys.readouterr().err


def test_loopback_check():
    from newsclf.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")


def test_ten_thousand_articles_and_a_5mb_article_are_413(client):
    r = _post(client, {"articles": ["市政府召开常务会议\n会议研究部署工作"] * 10_000})  # ~0.9 MB: under the byte limit
    assert r.status_code == 413 and "1000" in r.json()["detail"]
    r = _post(client, {"articles": [CJK] * 10_000})  # ~6 MB: the byte limit answers first
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    r = _post(client, {"article": "市" * (5 * 1024 * 1024 // 3 + 10)})  # 5 MB of UTF-8 once escaped or not
    assert r.status_code == 413
    assert _post(client, {"article": CJK}).status_code == 200


def _raw(base: str) -> tuple[str, int]:
    host, port = base.rsplit("//", 1)[1].split(":")
    return host, int(port)


def test_slow_and_vanishing_clients_do_not_stop_the_service(server, client, clf):
    """A client that sends its body slowly is served; one that disconnects mid-body or mid-request is dropped;
    meanwhile and afterwards the service answers others."""
    import socket

    host, port = _raw(server[0])
    body = json.dumps({"article": CJK}).encode()
    head = (f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    # Slow: the body in 4 pieces, 0.2 s apart, while another client is served in between.
    with socket.create_connection((host, port), timeout=10) as slow:
        slow.sendall(head)
        for i in range(4):
            slow.sendall(body[i * len(body) // 4:(i + 1) * len(body) // 4])
            if i == 1:
                assert _post(client, {"article": CJK}).status_code == 200
            time.sleep(0.2)
        reply = b""
        while chunk := slow.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["result"]["label"] == predict(CJK, model=clf)["label"]
    # Vanishing: half a body then close; and a full request closed before its answer.
    for cut in (len(body) // 2, len(body)):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(head + body[:cut])
        s.close()
    time.sleep(0.3)
    assert client.get("/health").status_code == 200
    assert _post(client, {"articles": [CJK, ITEMS[0]]}).status_code == 200
