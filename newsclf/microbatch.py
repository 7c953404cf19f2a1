"""Micro-batching for ``newsclf serve``: one queue of requests, one model thread.

Requests wait in one queue; a single asyncio task gathers them into a batch of up to ``batch_size`` articles
(or what has arrived ``max_wait_ms`` after the oldest one), and one worker thread runs the batch through
:meth:`Classifier.predict`, so torch is never called concurrently. See :mod:`newsclf.serve` for the HTTP
contract built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsclf.predict import Classifier

if TYPE_CHECKING:
    from newsclf.serve import ServeSettings

log = logging.getLogger("newsclf.serve")


class ApiError(Exception):
    """A client-facing error: an HTTP status, a one-line detail and optional headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}



# -- the queue and the model thread --------------------------------------------------------------
@dataclass
class _Job:
    items: list[Any]
    options: tuple[Any, Any, bool]  # top_k, threshold, explain
    future: asyncio.Future
    enqueued: float


class Batcher:
    """Loads the model in its worker thread, then gathers queued requests into batches run on that thread."""

    def __init__(self, model_dir: Path, settings: ServeSettings, on_failure: Callable[[str], None] | None = None):
        self.model_dir = model_dir
        self.settings = settings
        self.on_failure = on_failure
        self.clf: Classifier | None = None
        self.state = "loading"  # loading | ready | failed
        self.error: str | None = None
        self.pending: deque[_Job] = deque()
        self.pending_articles = 0
        self.running_articles = 0
        self.batches = 0
        self.articles_done = 0
        self._sec_per_article: float | None = None
        self._wake: asyncio.Event | None = None

    # -- called on the event loop --
    def retry_after(self) -> str:
        """Seconds until the queue has likely drained (at least 1), from the measured time per article."""
        per = self._sec_per_article or 0.05
        return str(max(1, min(60, math.ceil((self.pending_articles + self.running_articles) * per))))

    def submit(self, items: list[Any], options: tuple[Any, Any, bool]) -> asyncio.Future:
        """Queue one request's (already checked) items; its future gets the list of results."""
        if self.state == "loading":
            raise ApiError(503, "the model is still loading; retry shortly", {"Retry-After": "1"})
        if self.state != "ready":
            raise ApiError(503, f"the model failed to load: {self.error}")
        n = len(items)
        if self.pending and self.pending_articles + n > self.settings.max_queue:
            raise ApiError(
                429,
                f"the queue is full ({self.pending_articles} articles waiting, at most {self.settings.max_queue}); "
                "retry after the Retry-After seconds",
                {"Retry-After": self.retry_after()},
            )
        loop = asyncio.get_running_loop()
        job = _Job(items, options, loop.create_future(), loop.time())
        self.pending.append(job)
        self.pending_articles += n
        assert self._wake is not None
        self._wake.set()
        return job.future

    def _take_batch(self) -> list[_Job]:
        batch: list[_Job] = []
        size = 0
        while self.pending:
            job = self.pending[0]
            if job.future.done():  # the client went away (its handler was cancelled)
                self.pending.popleft()
                self.pending_articles -= len(job.items)
                continue
            if batch and size + len(job.items) > self.settings.batch_size:
                break
            self.pending.popleft()
            self.pending_articles -= len(job.items)
            batch.append(job)
            size += len(job.items)
        return batch

    async def run(self, executor: ThreadPoolExecutor) -> None:
        """Load the model on the worker thread, then batch forever (cancelled at shutdown)."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            self.clf = await loop.run_in_executor(
                executor, lambda: Classifier.from_dir(self.model_dir, precision=self.settings.precision,
                                                   backend=self.settings.backend)
            )
            # Ready means fast: the first request should not pay for compiling a graph.
            await loop.run_in_executor(executor, self.clf.warm_up, self.settings.batch_size)
        except Exception as err:  # a broken folder found only now, out of memory, ...
            self.state, self.error = "failed", f"{type(err).__name__}: {err}"
            log.error("could not load the model at %s: %s", self.model_dir, self.error)
            self.fail_pending(503, f"the model failed to load: {self.error}")
            if self.on_failure:
                self.on_failure(self.error)
            return
        self.state = "ready"
        log.info("model loaded from %s (%s, precision %s)", self.model_dir, self.clf.backend, self.clf.precision)
        wait = self.settings.max_wait_ms / 1000
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            deadline = self.pending[0].enqueued + wait
            while self.pending_articles < self.settings.batch_size:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), left)
            batch = self._take_batch()
            if not batch:
                continue
            n = sum(len(job.items) for job in batch)
            self.running_articles = n
            start = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(executor, self._compute, batch)
            finally:
                self.running_articles = 0
            per = (time.perf_counter() - start) / n
            self._sec_per_article = per if self._sec_per_article is None else 0.8 * self._sec_per_article + 0.2 * per
            self.batches += 1
            self.articles_done += n
            for job, out in zip(batch, outputs):
                if job.future.done():
                    continue
                if isinstance(out, BaseException):
                    job.future.set_exception(out)
                else:
                    job.future.set_result(out)

    def fail_pending(self, status: int, detail: str) -> None:
        while self.pending:
            job = self.pending.popleft()
            if not job.future.done():
                job.future.set_exception(ApiError(status, detail))
        self.pending_articles = 0

    # -- called on the worker thread --
    def _compute(self, batch: list[_Job]) -> list[list[dict] | BaseException]:
        """Results per job: one Classifier.predict call per option set; a failing call is retried per job."""
        assert self.clf is not None
        outputs: list[list[dict] | BaseException] = [RuntimeError("not computed")] * len(batch)
        groups: dict[tuple[Any, Any, bool], list[int]] = {}
        for i, job in enumerate(batch):
            groups.setdefault(job.options, []).append(i)
        for (top_k, threshold, explain), idxs in groups.items():
            kwargs = {"top_k": top_k, "threshold": threshold, "explain": explain, "batch_size": self.settings.batch_size}
            try:
                results = self.clf.predict([it for i in idxs for it in batch[i].items], **kwargs)
                at = 0
                for i in idxs:
                    outputs[i] = results[at : at + len(batch[i].items)]
                    at += len(batch[i].items)
            except Exception:
                # Inputs were checked before queueing, so this is a bug; keep it to the request that causes it.
                for i in idxs:
                    try:
                        outputs[i] = self.clf.predict(batch[i].items, **kwargs)
                    except Exception as err:
                        log.exception("labelling failed")
                        outputs[i] = ApiError(500, f"internal error while labelling: {type(err).__name__}: {err} "
                                                   "(a newsclf bug; please report it)")
        return outputs
