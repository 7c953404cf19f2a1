"""The web side of ``newsclf annotate``: the page (``newsclf/web/``) and a small JSON API over a Store.

- ``GET /``, ``/annotate.js``, ``/annotate.css``: the page; ``GET /api/state``: the current article and counts;
  ``GET /api/guide``: the label definitions.
- ``POST /api/decide`` ``{"id", "label"}`` or ``{"id", "skip": true}``; ``POST /api/undo`` ``{"id"}`` (the
  decision the page means to take back). 400 for a malformed body or a label outside the label set, 404 for
  an article id not in the queue, 409 when another tab already changed what the page shows.

Requests from other machines are refused unless ``--allow-remote`` was given (which ``--host`` other than
loopback also needs), and so are requests whose ``Host`` header is not a loopback name: a page on another
site could otherwise make the browser post decisions here (DNS rebinding). The API accepts JSON bodies
only, which a cross-site form cannot send without a preflight this server never allows.

Imported only when the command runs, so FastAPI stays out of ``newsclf --help``.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from newsclf.annotate_store import Conflict, Store, UnknownArticle

WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_BODY = 10_000  # a decision is a few dozen bytes


def _loopback_address(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _loopback_host_header(value: str) -> bool:
    """Whether a ``Host`` header names this machine (``localhost``, 127.x, ``[::1]``; any port)."""
    name = value.strip().lower()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name == "localhost" or name.endswith(".localhost") or _loopback_address(name)


def create_app(store: Store, guide: dict[str, Any], *, allow_remote: bool = False) -> Any:
    """The page and its API over an open store."""
    app = FastAPI(title="newsclf annotate", docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"error": detail}, status_code=status)

    @app.middleware("http")
    async def only_this_machine(request: Request, call_next: Any) -> Any:
        if not allow_remote:
            client = request.client.host if request.client else None
            if not _loopback_address(client):
                return error(403, f"newsclf annotate accepts requests from this machine only (yours came from "
                                  f"{client}); restart it with --allow-remote to accept others")
            if not _loopback_host_header(request.headers.get("host", "")):
                return error(403, f"Host {request.headers.get('host')!r} is not this machine; open the page as "
                                  "http://127.0.0.1:PORT/ (or restart with --allow-remote)")
        return await call_next(request)

    def page_file(name: str, media: str) -> Response:
        # Read on each request: a few kB, and an edited page shows on reload while developing it.
        return Response((WEB_DIR / name).read_bytes(), media_type=media, headers={"Cache-Control": "no-store"})

    @app.get("/", response_class=HTMLResponse)
    def index() -> Response:
        return page_file("annotate.html", "text/html; charset=utf-8")

    @app.get("/annotate.js")
    def script() -> Response:
        return page_file("annotate.js", "text/javascript; charset=utf-8")

    @app.get("/annotate.css")
    def style() -> Response:
        return page_file("annotate.css", "text/css; charset=utf-8")

    @app.get("/api/state")
    def state() -> JSONResponse:
        return JSONResponse(store.state(), headers={"Cache-Control": "no-store"})

    @app.get("/api/guide")
    def guide_endpoint() -> JSONResponse:
        return JSONResponse(guide)

    async def body(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ValueError("send the body as JSON (Content-Type: application/json)")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ValueError(f"body of {len(raw)} bytes; a decision is a small JSON object")
        try:
            obj = json.loads(raw or b"{}")
        except json.JSONDecodeError as err:
            raise ValueError(f"body is not JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError("body must be a JSON object such as {\"id\": \"...\", \"label\": \"safety\"}")
        return obj

    def act(fn: Any, *a: Any) -> JSONResponse:
        try:
            return JSONResponse(fn(*a))
        except UnknownArticle as err:
            return error(404, str(err))
        except Conflict as err:
            return error(409, str(err))
        except ValueError as err:
            return error(400, str(err))

    # The store fsyncs, so its calls run in a worker thread (starlette's) instead of the event loop.
    @app.post("/api/decide")
    async def decide(request: Request) -> JSONResponse:
        try:
            obj = await body(request)
        except ValueError as err:
            return error(400, str(err))
        aid, label, skip = obj.get("id"), obj.get("label"), obj.get("skip") is True
        if not isinstance(aid, str) or not aid:
            return error(400, "'id' must name the article the decision is for, as a string")
        if skip == (label is not None):
            return error(400, "give either 'label' (one of the queue's labels) or \"skip\": true")
        if not skip and not isinstance(label, str):
            return error(400, f"'label' must be a string, one of {store.labels}")
        return await run_in_threadpool(act, store.decide, aid, None if skip else label)

    @app.post("/api/undo")
    async def undo(request: Request) -> JSONResponse:
        try:
            obj = await body(request)
        except ValueError as err:
            return error(400, str(err))
        expect = obj.get("id")
        if expect is not None and not isinstance(expect, str):
            return error(400, "'id' must be the id of the decision to take back, as a string")
        return await run_in_threadpool(act, store.undo, expect)

    return app
