"""``newsclf serve``: label articles over HTTP (FastAPI + uvicorn), with micro-batching.

The contract (what other tools are written against):

- ``POST /predict`` with ``{"articles": [item, ...]}`` answers ``{"results": [result, ...]}`` in the same
  order; ``{"article": item}`` answers ``{"result": result}``. An item and a result are exactly what
  :func:`newsclf.predict.predict` takes and returns; the body may add ``top_k``, ``threshold`` and
  ``explain`` (same meaning, same checks). An empty list answers ``{"results": []}``.
- ``GET /health``: 200 ``{"status": "ok", ...}`` when the model is loaded, 503 ``{"status": "loading"}``
  (with ``Retry-After``) before, 503 ``{"status": "failed"}`` if loading failed (the server then exits).
- ``GET /labels``: the labels, the model's fingerprint (:func:`newsclf.artifact.fingerprint`) and its abstain
  threshold. ``GET /docs`` and ``/openapi.json``: FastAPI's OpenAPI pages.
- Errors are JSON ``{"detail": "..."}``: 400 malformed JSON or an empty body, 413 a body over
  ``max_body_bytes`` or more than ``max_articles`` articles, 415 a content type other than JSON, 422 a body
  ``predict`` would refuse (the detail is ``predict``'s own message, ``item 3: ...`` naming the item's index
  in ``articles``), 429 the queue is full and 503 the model is not loaded yet (both with ``Retry-After``).
  Nothing a client sends gives a 5xx.

Micro-batching: requests wait in one queue; a single asyncio task gathers them into a batch of up to
``batch_size`` articles (or what has arrived ``max_wait_ms`` after the oldest one), and one worker thread
runs the batch through :meth:`Classifier.predict`, so torch is never called concurrently. A request's
articles are never split across batches (a request larger than ``batch_size`` is a batch of its own). The
requests of a batch are grouped by their options (``top_k``, ``threshold``, ``explain``): each group is one
``Classifier.predict`` call, so a result is computed exactly as ``predict`` computes it; clients that use the
same options (the usual case) share one forward pass. The queue holds at most ``max_queue`` articles; a
request that would take it past that is refused with 429, except that a request is always let into an empty
queue (so one larger than ``max_queue`` is not refused forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import signal
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsclf import __version__
from newsclf.artifact import fingerprint, read_meta
from newsclf.microbatch import ApiError, Batcher
from newsclf.predict import BACKENDS, PRECISIONS
from newsclf.serve_request import (  # noqa: F401  (BODY_KEYS, OPTION_KEYS: also this module's API)
    _ERROR,
    _RESULT,
    BODY_KEYS,
    OPTION_KEYS,
    _openapi_predict,
    _read_json,
    parse_body,
)

log = logging.getLogger("newsclf.serve")

@dataclass(frozen=True)
class ServeSettings:
    """The server's limits and batching knobs (``newsclf serve --help`` names them)."""

    batch_size: int = 16  # articles gathered into one Classifier.predict call (also its forward batch size)
    max_wait_ms: float = 5.0  # how long the oldest waiting request waits for others to fill a batch
    max_queue: int = 2048  # articles waiting for the model before requests get 429
    max_body_bytes: int = 2_000_000  # a larger body gets 413
    max_articles: int = 1000  # more articles in one request get 413
    precision: str = "auto"  # as newsclf.load
    backend: str = "auto"  # as newsclf.load: OpenVINO with the newsclf[openvino] extra and precision auto
    graceful_timeout_s: float = 30.0  # on SIGTERM/Ctrl-C, how long in-flight requests may take to finish

    def __post_init__(self) -> None:
        for key in ("batch_size", "max_queue", "max_body_bytes", "max_articles"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key.replace('_', '-')}: expected an integer >= 1, found {value!r}")
        for key in ("max_wait_ms", "graceful_timeout_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key.replace('_', '-')}: expected a number >= 0, found {value!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")


class _JSON(JSONResponse):
    """Compact UTF-8 JSON; falls back to ``\\u`` escapes when a string holds a lone surrogate (an echoed key)."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> _JSON:
    return _JSON({"detail": detail}, status_code=status, headers=headers)


# -- the app -------------------------------------------------------------------------------------
def create_app(
    model_dir: str | Path, settings: ServeSettings | None = None, *, on_failure: Callable[[str], None] | None = None
) -> FastAPI:
    """The FastAPI app serving the model folder ``model_dir`` (checked now; the weights load in the background).

    ``on_failure`` is called with the error if loading fails (``serve`` uses it to stop the server).
    """
    settings = settings or ServeSettings()
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)  # a broken folder fails here, before anything binds
    labels = list(meta.labels)
    model_info = {"labels": labels, "fingerprint": fingerprint(model_dir),
                  "abstain_threshold": float(meta.abstain_threshold or 0.0), "newsclf_version": __version__}
    batcher = Batcher(model_dir, settings, on_failure)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="newsclf-model")
        task = asyncio.create_task(batcher.run(executor))
        try:
            yield
        finally:
            # uvicorn runs this after in-flight requests have finished (or the graceful timeout ran out).
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            batcher.fail_pending(503, "the server is shutting down")
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="newsclf",
        version=__version__,
        description="Label Chinese newspaper articles by section. Items, results and their checks are those of "
        "`newsclf.predict`; see the README's *Serving over HTTP*.",
        lifespan=lifespan,
        default_response_class=_JSON,
    )
    app.state.batcher = batcher
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> _JSON:
        return _error(err.status, err.detail, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> _JSON:
        return _error(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> _JSON:
        log.exception("unexpected error")
        return _error(500, f"internal error: {type(err).__name__}: {err} (a newsclf bug; please report it)")

    @app.post(
        "/predict",
        summary="Label one article or a list of articles",
        openapi_extra=_openapi_predict(labels, settings),
        responses={
            200: {"description": '{"results": [result, ...]} for "articles", {"result": result} for "article"',
                  "content": {"application/json": {"schema": {"oneOf": [
                      {"type": "object", "properties": {"results": {"type": "array", "items": _RESULT}}},
                      {"type": "object", "properties": {"result": _RESULT}}]}}}},
            400: {"description": "malformed JSON or an empty body", **_ERROR},
            413: {"description": "body over the size limit, or too many articles", **_ERROR},
            415: {"description": "Content-Type is not JSON", **_ERROR},
            422: {"description": "an item or option predict refuses; the detail is predict's message", **_ERROR},
            429: {"description": "the queue is full; see Retry-After", **_ERROR},
            503: {"description": "the model is loading; see Retry-After", **_ERROR},
        },
    )
    async def predict_endpoint(request: Request) -> _JSON:
        body = await _read_json(request, settings.max_body_bytes)
        items, options, single = parse_body(body, len(labels), settings)
        if not items:
            return _JSON({"results": []})
        results = await batcher.submit(items, options)
        return _JSON({"result": results[0]} if single else {"results": results})

    @app.get("/health", summary="200 when the model is loaded, 503 while it loads")
    async def health() -> _JSON:
        if batcher.state == "ready":
            assert batcher.clf is not None
            return _JSON({"status": "ok", "precision": batcher.clf.precision, "backend": batcher.clf.backend, "queued_articles": batcher.pending_articles,
                          "running_articles": batcher.running_articles, "batches": batcher.batches,
                          "articles": batcher.articles_done})
        if batcher.state == "loading":
            return _JSON({"status": "loading"}, status_code=503, headers={"Retry-After": "1"})
        return _JSON({"status": "failed", "detail": batcher.error}, status_code=503)

    @app.get("/labels", summary="labels, model fingerprint and abstain threshold")
    async def labels_endpoint() -> _JSON:
        return _JSON(model_info)

    return app


# -- running it ----------------------------------------------------------------------------------
def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port); OSError says what went wrong."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise OSError(f"--host {host!r}: cannot resolve it ({err})") from None
    family, kind, proto, _, addr = infos[0]
    # proto must be IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on such sockets, and without it every
    # keep-alive response waits ~40 ms for a delayed ACK (Nagle), as uvicorn writes headers and body apart.
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only loopback addresses (127.0.0.0/8, ::1, localhost)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def serve(
    model_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServeSettings | None = None,
    quiet: bool = False,
) -> int:
    """Run the HTTP service until SIGTERM or Ctrl-C (in-flight requests finish first); returns the exit status.

    0 after a requested stop, 1 if the model failed to load. A bad model folder or an address that cannot be
    bound raises (ValueError/OSError) before anything is served.
    """
    import uvicorn

    settings = settings or ServeSettings()
    failure: list[str] = []
    server: uvicorn.Server | None = None

    def failed(error: str) -> None:
        failure.append(error)
        if server is not None:
            server.should_exit = True

    app = create_app(model_dir, settings, on_failure=failed)
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    if not is_loopback(host):
        print(f"warning: newsclf serve listens on {host} ({bound_host}), reachable from other machines; it has "
              "no authentication or TLS, so put it behind a proxy that has them", file=sys.stderr)
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"newsclf serve: {Path(model_dir)} on http://{shown}:{bound_port} (docs at /docs; /health is 503 until "
          "the model has loaded)", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app, log_level="warning" if quiet else "info", access_log=not quiet, lifespan="on", ws="none",
        timeout_graceful_shutdown=settings.graceful_timeout_s,
    )
    server = uvicorn.Server(config)
    # uvicorn handles SIGTERM/SIGINT (stop accepting, finish in-flight requests), then re-raises the signal
    # with the handler it found; ours just notes it, so a requested stop exits 0 instead of dying by signal.
    stops: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda s, f: stops.append(s))
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if failure:
        print(f"error: the model failed to load: {failure[0]}", file=sys.stderr)
        return 1
    if stops:
        print(f"newsclf serve: stopped ({signal.Signals(stops[0]).name})", file=sys.stderr)
    return 0
