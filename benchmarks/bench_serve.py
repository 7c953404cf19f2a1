"""Benchmark: ``newsclf serve`` under concurrent load vs in-process ``Classifier.predict``, then bad requests.

A real ``newsclf serve`` process on 127.0.0.1 (a free port) serves the model; ``clients`` threads each send
``requests`` requests of one real article over a keep-alive connection. The same articles then go through
``Classifier.predict`` in this process in batches of 16, so the ratio of the two rates (measured in the same
run, on the same machine) says how close micro-batching gets to the batch path. Then ``malformed`` bad
requests of about twenty kinds: none may get a 5xx, and ``/health`` and a real request must still work after.
With ``--stock``, the same load then goes to a stock OpenVINO server (:mod:`benchmarks.stock_server`, bf16
and NNCF int8), and stock OpenVINO runs in this process too, in rounds alternated with newsclf's in-process
path: the served rate against the stock ones, measured in the same run. Everything is loopback and bounded
(``deadline_s`` for the load phase). Example:

    python -m benchmarks.bench_serve --model runs/default/model                   # 32 clients x 50, 1,000 bad
    python -m benchmarks.bench_serve --model M --clients 4 --requests 5 --malformed 40 --out /tmp/s.json
    python -m benchmarks.bench_serve --model M --clients 16 --requests 40 --data ../shared/gold/dev.jsonl --stock
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import articles, best_rate, machine

CJK = "市应急管理局开展安全生产隐患排查\n检查组深入化工企业，排查危险化学品储存隐患，督促限期整改。"


def malformed_requests(max_body_bytes: int = 2_000_000) -> list[tuple[str, str, str, dict[str, str], bytes]]:
    """(kind, method, path, headers, body) of requests a client may get wrong; none may give a 5xx."""
    js = {"Content-Type": "application/json"}
    big = b'{"articles": ["' + "安".encode() * (max_body_bytes // 3 + 1000) + b'"]}'
    return [
        ("truncated_json", "POST", "/predict", js, b'{"articles": ['),
        ("not_json", "POST", "/predict", js, b"hello"),
        ("empty_body", "POST", "/predict", js, b""),
        ("not_utf8", "POST", "/predict", js, b'{"article": "\xff\xfe\xfa"}'),
        ("deep_nesting", "POST", "/predict", js, b"[" * 50_000 + b"]" * 50_000),
        ("int_of_5000_digits", "POST", "/predict", js, b'{"articles": [], "top_k": 1' + b"0" * 5000 + b"}"),
        ("text_plain", "POST", "/predict", {"Content-Type": "text/plain"}, b'{"articles": []}'),
        ("no_content_type", "POST", "/predict", {}, b'{"articles": []}'),
        ("form_encoded", "POST", "/predict", {"Content-Type": "application/x-www-form-urlencoded"}, b"articles=x"),
        ("top_level_array", "POST", "/predict", js, b'["a", "b"]'),
        ("no_articles_key", "POST", "/predict", js, b'{"texts": ["a"]}'),
        ("both_keys", "POST", "/predict", js, b'{"articles": [], "article": "a"}'),
        ("articles_not_a_list", "POST", "/predict", js, b'{"articles": "abc"}'),
        ("item_a_number", "POST", "/predict", js, b'{"articles": [1, 2]}'),
        ("item_empty", "POST", "/predict", js, b'{"articles": ["   "]}'),
        ("dict_without_text", "POST", "/predict", js, b'{"articles": [{"body": "x", "\\ud800": 1}]}'),
        ("title_not_a_string", "POST", "/predict", js, b'{"article": {"title": [1], "text": "x"}}'),
        ("threshold_nan", "POST", "/predict", js, b'{"article": "x", "threshold": NaN}'),
        ("threshold_1e400", "POST", "/predict", js, b'{"article": "x", "threshold": 1' + b"0" * 400 + b"}"),
        ("top_k_zero", "POST", "/predict", js, b'{"article": "x", "top_k": 0}'),
        ("top_k_string", "POST", "/predict", js, b'{"article": "x", "top_k": "2"}'),
        ("explain_string", "POST", "/predict", js, b'{"article": "x", "explain": "yes"}'),
        ("too_many_articles", "POST", "/predict", js, json.dumps({"articles": ["x"] * 1001}).encode()),
        ("body_too_large", "POST", "/predict", js, big),
        ("wrong_method", "GET", "/predict", {}, b""),
        ("unknown_path", "POST", "/nothing", js, b"{}"),
    ]


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def start_server(model: str | Path, precision: str, log: Path, timeout_s: float = 300,
                 extra: list[str] | None = None, command: list[str] | None = None) -> tuple[subprocess.Popen, str, int]:
    """A ``newsclf serve`` process on 127.0.0.1 (free port) once /health is 200: (process, host, port).
    ``extra``: more ``newsclf serve`` options (e.g. ``["--batch-size", "8"]``); ``command``: another server
    that prints its address the same way (the stock one)."""
    cmd = command or [sys.executable, "-m", "newsclf.cli", "serve", "--model", str(model), "--port", "0", "--quiet",
                      "--precision", precision, *(extra or [])]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout_s
    while True:
        m = re.search(r"on http://(127\.0\.0\.1):(\d+)", log.read_text())
        if m:
            host, port = m.group(1), int(m.group(2))
            try:
                conn = http.client.HTTPConnection(host, port, timeout=10)
                if _request(conn, "GET", "/health")[0] == 200:
                    conn.close()
                    return proc, host, port
                conn.close()
            except OSError:
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"{' '.join(cmd[1:4])} did not become healthy:\n{log.read_text()}")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen) -> int | None:
    """SIGTERM, then SIGKILL after 30 s; the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _load(host: str, port: int, bodies: list[list[bytes]], deadline_s: float) -> dict[str, Any]:
    """Each client (a thread, one keep-alive connection) sends its bodies in turn; latencies and statuses."""
    lat: list[float] = []
    labels: dict[tuple[int, int], str] = {}
    statuses: Counter = Counter()
    examples: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        for j, body in enumerate(bodies[k]):
            if time.monotonic() > stop_at:
                break
            t = time.perf_counter()
            try:
                status, _, data = _request(conn, "POST", "/predict", body, {"Content-Type": "application/json"})
                label = json.loads(data)["result"]["label"] if status == 200 else None
                key = str(status)
            except (OSError, http.client.HTTPException, ValueError, KeyError) as err:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=120)
                status, label, key = 0, None, type(err).__name__
            ms = 1000 * (time.perf_counter() - t)
            with lock:
                statuses[key] += 1
                if status == 200:
                    lat.append(ms)
                    labels[(k, j)] = label
                elif len(examples) < 5:
                    examples.append(f"client {k} request {j}: {key} {data[:200]!r}" if status else key)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(bodies))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    return {"lat": lat, "labels": labels, "statuses": statuses, "examples": examples, "seconds": seconds}


def bench_serve(
    model: str | Path = "runs/default/model", *, data: list[str] | None = None, clients: int = 32,
    requests: int = 50, malformed: int = 1000, n_articles: int | None = None, precision: str = "auto",
    deadline_s: float = 900, log: str | Path | None = None, batch_size: int = 16, max_wait_ms: float = 5.0,
    stock: bool = False,
) -> dict[str, Any]:
    """Serve ``model`` and measure: ``clients`` x ``requests`` one-article requests, then ``malformed`` bad ones.

    ``n_articles`` distinct articles (default: one per request) from ``data`` (default: the embedded corpus).
    ``batch_size``/``max_wait_ms``: the server's. ``stock``: also time stock OpenVINO (bf16 and NNCF int8,
    each with the latency and the throughput hint, as ``bench_openvino`` runs them) on the same articles in
    this process, with the server idle, so the served rate has a same-run stock figure to be compared with.
    """
    from newsclf.artifact import fingerprint
    from newsclf.predict import Classifier

    n_req = clients * requests
    rows = articles(data, n_articles or n_req)
    items = [{"title": r["title"], "text": r["text"]} for r in rows]
    per_request = [items[i % len(items)] for i in range(n_req)]
    bodies = [[json.dumps({"article": per_request[k * requests + j]}).encode() for j in range(requests)]
              for k in range(clients)]
    out: dict[str, Any] = {"model": str(model), "machine": machine()}
    if log is None:  # the server's stderr, shown if it fails to start
        tmp = tempfile.TemporaryDirectory(prefix="newsclf-bench-serve-")
        log_path = Path(tmp.name) / "server.log"
    else:
        log_path = Path(log)
    proc, host, port = start_server(model, precision, log_path, extra=
                                    ["--batch-size", str(batch_size), "--max-wait-ms", str(max_wait_ms)])
    try:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        health = json.loads(_request(conn, "GET", "/health")[2])
        served = json.loads(_request(conn, "GET", "/labels")[2])
        out["served_precision"] = health["precision"]
        out["served_backend"] = health.get("backend", "torch")
        out["server_settings"] = (f"batch_size {batch_size}, max_wait_ms {max_wait_ms:g}; defaults otherwise "
                                  "(max_queue 2048, 2 MB, 1000 articles)")
        for body in bodies[0][:4]:  # warm-up
            _request(conn, "POST", "/predict", body, {"Content-Type": "application/json"})
        before = json.loads(_request(conn, "GET", "/health")[2])
        run = _load(host, port, bodies, deadline_s)
        # A new connection: the server closes keep-alive connections idle for 5 s (uvicorn's default).
        conn = http.client.HTTPConnection(host, port, timeout=60)
        after = json.loads(_request(conn, "GET", "/health")[2])
        lat = run["lat"]
        done = sum(run["statuses"].values())
        served_rate = len(lat) / run["seconds"]
        batches = after["batches"] - before["batches"]
        out["load"] = {
            "clients": clients,
            "requests_per_client": requests,
            "requests_sent": done,
            "requests_planned": n_req,
            "ok": len(lat),
            "errors": done - len(lat),
            "statuses": dict(run["statuses"]),
            "error_examples": run["examples"],
            "seconds": round(run["seconds"], 3),
            "articles_per_s": round(served_rate, 2),
            "latency_ms": {
                "p50": round(statistics.median(lat), 1) if lat else None,
                "p95": round(float(np.percentile(lat, 95)), 1) if lat else None,
                "p99": round(float(np.percentile(lat, 99)), 1) if lat else None,
                "max": round(max(lat), 1) if lat else None,
            },
            "server_batches": batches,
            "mean_articles_per_batch": round((after["articles"] - before["articles"]) / batches, 2) if batches else None,
        }

        # The same articles in this process, batches of 16 (the server is idle meanwhile).
        # The server's own runtime (OpenVINO int8 is not PyTorch's dynamic int8), so labels must match.
        clf = Classifier.from_dir(model, precision=health["precision"], backend=health.get("backend", "torch"))
        clf.predict(per_request[:16])

        def in_process() -> list[dict]:
            res: list[dict] = []
            for i in range(0, len(per_request), 16):
                res.extend(clf.predict(per_request[i : i + 16], batch_size=16))
            return res

        rate, ref = best_rate(in_process, len(per_request), 1)
        out["in_process_batches_of_16"] = {"articles": len(per_request), "articles_per_s": round(rate, 2)}
        out["served_vs_in_process"] = round(served_rate / rate, 3)
        same = [run["labels"][(k, j)] == ref[k * requests + j]["label"] for (k, j) in run["labels"]]
        out["label_agreement_with_in_process"] = round(float(np.mean(same)), 4) if same else None
        out["labels_equal_predict"] = served["labels"] == clf.labels
        out["fingerprint_matches"] = served["fingerprint"] == fingerprint(model)
        out["abstain_threshold_matches"] = served["abstain_threshold"] == clf.abstain_threshold

        # Bad requests, each on a fresh connection (a server may close one after an error).
        kinds = malformed_requests()
        by_kind: dict[str, Counter] = {name: Counter() for name, *_ in kinds}
        start = time.perf_counter()
        for i in range(malformed):
            name, method, path, headers, body = kinds[i % len(kinds)]
            c = http.client.HTTPConnection(host, port, timeout=60)
            try:
                status = _request(c, method, path, body if method == "POST" else None, headers)[0]
                by_kind[name][str(status)] += 1
            except (OSError, http.client.HTTPException) as err:
                by_kind[name][type(err).__name__] += 1
            finally:
                c.close()
        counts = Counter()
        for cnt in by_kind.values():
            counts.update(cnt)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        health_after, _, _ = _request(conn, "GET", "/health")
        status, _, data = _request(conn, "POST", "/predict", json.dumps({"article": per_request[0]}).encode(),
                                   {"Content-Type": "application/json"})
        out["malformed"] = {
            "requests": malformed,
            "kinds": len(kinds),
            "seconds": round(time.perf_counter() - start, 2),
            "statuses": dict(counts),
            "status_5xx": sum(v for k, v in counts.items() if k.isdigit() and k.startswith("5")),
            "not_answered": sum(v for k, v in counts.items() if not k.isdigit()),
            "by_kind": {name: dict(cnt) for name, cnt in by_kind.items()},
            "health_after": health_after,
            "real_request_after": status,
            "real_request_label_matches": status == 200 and json.loads(data)["result"]["label"] == ref[0]["label"],
        }
        conn.close()
    finally:
        out["server_exit_status_after_sigterm"] = stop_server(proc)
    if stock:
        out["stock_openvino"] = _stock(model, bodies, [r["label"] for r in ref], per_request, in_process,
                                       deadline_s, log_path)
        s = out["stock_openvino"]
        out["served_vs_best_stock_served"] = round(served_rate / max(s["served"][k]["articles_per_s"] for k in s["served"]), 3)
        best_in = max(v for k, v in s["in_process_median"].items() if k != "newsclf")
        out["served_vs_best_stock_in_process"] = round(served_rate / best_in, 3)
        out["in_process_newsclf_vs_best_stock"] = round(s["in_process_median"]["newsclf"] / best_in, 3)
    return out


def _stock(model: str | Path, bodies: list[list[bytes]], ref: list[str], items: list[dict[str, str]],
           newsclf_in_process: Any, deadline_s: float, log: Path, rounds: int = 3) -> dict[str, Any]:
    """Stock OpenVINO on the same load: served by :mod:`benchmarks.stock_server` (bf16 and int8, each alone
    on the machine, the same clients and bodies), and in this process (the four configurations of
    ``bench_openvino``, length-sorted batches of 16) in ``rounds`` rotated rounds with newsclf's in-process
    path, so that a drift of the machine's speed hits all of them alike; medians."""
    from benchmarks.bench_openvino import StockOpenVINO

    out: dict[str, Any] = {"served": {}}
    requests = len(bodies[0])
    for precision in ("bf16", "int8"):
        cmd = [sys.executable, "-m", "benchmarks.stock_server", "--model", str(model), "--precision", precision]
        proc, host, port = start_server(model, precision, log, command=cmd)
        try:
            conn = http.client.HTTPConnection(host, port, timeout=60)
            for body in bodies[0][:4]:  # warm-up
                _request(conn, "POST", "/predict", body, {"Content-Type": "application/json"})
            conn.close()
            run = _load(host, port, bodies, deadline_s)
        finally:
            stop_server(proc)
        lat = run["lat"]
        same = [run["labels"][(k, j)] == ref[k * requests + j] for (k, j) in run["labels"]]
        out["served"][precision] = {
            "articles_per_s": round(len(lat) / run["seconds"], 2), "ok": len(lat),
            "errors": sum(run["statuses"].values()) - len(lat),
            "latency_ms": {"p50": round(statistics.median(lat), 1) if lat else None,
                           "p95": round(float(np.percentile(lat, 95)), 1) if lat else None},
            "label_agreement_with_newsclf": round(float(np.mean(same)), 4) if same else None,
        }
    max_length = int(json.loads((Path(model) / "newsclf.json").read_text(encoding="utf-8")).get("max_length", 256))
    texts = [f"{it['title']}\n{it['text']}" for it in items]
    cal = [f"{r['title']}\n{r['text']}" for r in articles(None, 64)]  # as newsclf's own int8 conversion
    paths: dict[str, Any] = {"newsclf": newsclf_in_process}
    for name, calibration, throughput in (("bf16_latency", None, False), ("bf16_throughput", None, True),
                                          ("int8_latency", cal, False), ("int8_throughput", cal, True)):
        runner = StockOpenVINO(str(model), calibration, max_length, throughput=throughput)
        runner.logits(texts[:32])  # first-call compilation
        paths[name] = lambda r=runner: r.logits(texts)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            rates[name].append(best_rate(paths[name], len(items), 1)[0])
    out["in_process_runs"] = {k: [round(x, 2) for x in v] for k, v in rates.items()}
    out["in_process_median"] = {k: round(statistics.median(v), 2) for k, v in rates.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bench_serve [--model M --clients N --requests M --malformed K --out F]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/default/model")
    p.add_argument("--data", nargs="*", help="articles to send (default: the embedded corpus)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=50, help="requests per client, one article each")
    p.add_argument("--malformed", type=int, default=1000)
    p.add_argument("--n", type=int, default=None, help="distinct articles (default: one per request)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--batch-size", type=int, default=16, help="the server's --batch-size")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="the server's --max-wait-ms")
    p.add_argument("--stock", action="store_true", help="also time stock OpenVINO in process (same articles)")
    p.add_argument("--out", default="bench/serve.json")
    args = p.parse_args(argv)
    result = bench_serve(args.model, data=args.data, clients=args.clients, requests=args.requests,
                         malformed=args.malformed, n_articles=args.n, precision=args.precision,
                         batch_size=args.batch_size, max_wait_ms=args.max_wait_ms, stock=args.stock)
    from benchmarks.common import write_result

    return write_result(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
