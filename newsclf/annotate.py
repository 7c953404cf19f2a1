"""``newsclf annotate QUEUE --out CSV``: label a reading queue in the browser, one article at a time.

A FastAPI app on 127.0.0.1 serves one page (``newsclf/web/``) and a small JSON API; every decision goes
through :mod:`newsclf.annotate_store`, which makes it durable before the page hears it was taken. The page
shows the first article of the queue without a decision, so restarting with the same QUEUE and CSV resumes
where the last session stopped.

The page and its API are in :mod:`newsclf.annotate_app`; this module holds the command and the guide.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_GUIDE = Path(__file__).resolve().parent / "configs" / "labels-guide.md"
DEFAULT_PORT = 8765


def _default_annotator() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser() or "annotator"
    except Exception:  # getuser() raises when no user name can be found (containers without passwd entries)
        return "annotator"


def add_subcommand(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``newsclf annotate``."""
    p = sub.add_parser("annotate", parents=[common],
                       help="label a reading queue in the browser (keys: digits pick a label, s skip, u undo)",
                       description="Serve a local web page that shows the queue one article at a time and writes "
                                   "each decision at once to --out (id,label,annotator,timestamp), which a config's "
                                   "gold: reads. Restart with the same QUEUE and --out to resume.")
    p.add_argument("queue", help="a reading queue (JSONL) written by `newsclf suggest`")
    p.add_argument("--out", required=True, help="output CSV, e.g. gold/my-labels.csv (created, or resumed)")
    p.add_argument("--guide", help="Markdown label guide, one '## label' section per label "
                                   "(default: newsclf's guide for the default labels)")
    p.add_argument("--annotator", default=None, help="name written with each label (default: $USER)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--allow-remote", action="store_true",
                   help="accept requests from other machines (needed for a --host other than loopback); the page "
                        "has no login, so only on a network you trust")
    p.set_defaults(func=_cmd_annotate)


def _cmd_annotate(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        from newsclf.cli import UsageError

        raise UsageError(f"newsclf annotate needs FastAPI and uvicorn ({err}); install them with "
                         "pip install 'newsclf[serve]'") from None
    return run(args.queue, args.out, guide=args.guide, annotator=args.annotator or _default_annotator(),
               host=args.host, port=args.port, allow_remote=args.allow_remote, quiet=args.quiet)


def load_guide(path: str | Path | None, labels: list[str]) -> dict[str, Any]:
    """The guide the page shows: ``{"intro", "labels": {label: text}, "source"}``."""
    from newsclf.annotate_store import parse_guide

    source = Path(path) if path else DEFAULT_GUIDE
    if not source.is_file():
        raise FileNotFoundError(f"--guide {str(source)!r} is not a file; give a Markdown file with a '## label' "
                                "section per label, or leave --guide out for the default guide")
    guide = parse_guide(source.read_text(encoding="utf-8"), labels)
    if path and not guide["labels"]:
        raise ValueError(f"--guide {str(source)!r} defines none of the queue's labels {labels}; start each "
                         "definition with a heading '## <label>'")
    guide["source"] = str(source) if path else "newsclf default guide"
    return guide


def run(queue: str | Path, out: str | Path, *, guide: str | Path | None = None, annotator: str = "annotator",
        host: str = "127.0.0.1", port: int = DEFAULT_PORT, allow_remote: bool = False, quiet: bool = False) -> int:
    """Serve the page until Ctrl-C or SIGTERM; every check that can fail runs before anything is served."""
    import uvicorn

    from newsclf.annotate_app import create_app
    from newsclf.annotate_store import open_store
    from newsclf.queue import read_queue
    from newsclf.serve import _bind, is_loopback

    if not is_loopback(host) and not allow_remote:
        raise ValueError(f"--host {host!r} would let other machines reach the page, which has no login; add "
                         "--allow-remote if that is what you want, or leave --host out (127.0.0.1)")
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be from 0 to 65535, found {port}")
    rows = read_queue(queue)
    guide_data = load_guide(guide, list(rows[0]["labels"]))
    sock = _bind(host, port)  # before the store, so a busy port leaves no new file behind
    try:
        store = open_store(rows, out, annotator)
    except BaseException:
        sock.close()
        raise
    try:
        app = create_app(store, guide_data, allow_remote=allow_remote)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if bound_host in ("0.0.0.0", "::"):
            shown = "127.0.0.1"
        st = store.state()
        missing = [lab for lab in store.labels if lab not in guide_data["labels"]]
        if missing and not quiet:
            print(f"note: the guide defines no {missing}; pass --guide FILE.md with a '## label' section for each",
                  file=sys.stderr)
        where = "resuming at" if st["labelled"] + st["skipped"] else "starting at"
        at = f"{where} article {st['position']}" if st["position"] else "every article already has a decision"
        print(f"newsclf annotate: {st['total']} articles from {queue}, {st['labelled']} labelled, {st['skipped']} "
              f"skipped ({at}) -> {store.out}\nopen http://{shown}:{bound_port}/ (Ctrl-C to stop; every "
              "decision is already saved)", file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ws="none")
        server = uvicorn.Server(config)
        # uvicorn stops on SIGINT/SIGTERM, then re-raises the signal with the handler it found; ours only
        # notes it, so Ctrl-C ends with the summary below and exit 0 rather than a KeyboardInterrupt.
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda s, f: None)
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        sock.close()
        store.close()
    if not quiet:
        st = store.state()
        print(f"newsclf annotate: stopped; {st['labelled']} labelled, {st['skipped']} skipped of {st['total']} "
              f"-> {store.out}", file=sys.stderr)
    return 0
