"""A stock OpenVINO server, the comparison for ``newsclf serve`` in ``bench_serve --stock``.

What a user builds from the FastAPI and OpenVINO documentation without newsclf: the saved model converted as
:class:`benchmarks.bench_openvino.StockOpenVINO` converts it (bf16 hint; ``int8``: NNCF's transformer preset
on 64 shipped-corpus articles), compiled with the THROUGHPUT hint (one stream per core), and a plain sync
endpoint that FastAPI runs on its thread pool: each request tokenises its article and runs it on its
thread's own infer request, so concurrent requests fill the streams. No micro-batching, no TF-IDF blend.

    python -m benchmarks.stock_server --model runs/default/model --precision int8   # prints its address
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any


def build_app(model: str, precision: str) -> Any:
    """The FastAPI app: ``POST /predict`` with ``{"article": {"title", "text"}}`` → ``{"result": {"label"}}``."""
    import numpy as np
    from fastapi import FastAPI

    from benchmarks.bench_openvino import StockOpenVINO
    from benchmarks.common import articles

    max_length = int(json.loads((Path(model) / "newsclf.json").read_text(encoding="utf-8")).get("max_length", 256))
    calibration = [f"{r['title']}\n{r['text']}" for r in articles(None, 64)] if precision == "int8" else None
    runner = StockOpenVINO(model, calibration, max_length, throughput=True)
    config = json.loads((Path(model) / "config.json").read_text(encoding="utf-8"))
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    local = threading.local()
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "precision": precision}

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        article = body["article"]
        enc = runner.tok([f"{article['title']}\n{article['text']}"], truncation=True, max_length=max_length,
                         return_tensors="np")
        if not hasattr(local, "request"):
            local.request = runner.compiled.create_infer_request()
        logits = np.array(local.request.infer({k: enc[k] for k in runner.names})[0])[0]
        return {"result": {"label": labels[int(logits.argmax())]}}

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--precision", choices=("bf16", "int8"), default="int8")
    args = p.parse_args(argv)
    import uvicorn

    app = build_app(args.model, args.precision)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a free port, printed for the benchmark to read
    print(f"stock OpenVINO server ({args.precision}) on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr,
          flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
