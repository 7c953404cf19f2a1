"""OpenVINO as newsclf's CPU runtime (the ``newsclf[openvino]`` extra), behind ``load(precision=...)``.

Why: on CPUs with VNNI, OpenVINO's int8 kernels run e5-small about 1.6x faster than our tuned PyTorch bf16
path, and its static-shape kernels add more (``benchmarks/bench_openvino.py`` measures both against a stock
conversion of the same model). What newsclf adds to a stock conversion, each measured there:

- the mean-pool shortcut (:class:`newsclf.modeling.MeanPoolShortcut`) is what gets exported, so the frozen
  pooling layer runs on one vector instead of every token (~1/13 of the compute);
- full batches at the model's ``max_length`` (most news articles) run on a graph compiled for that exact
  shape; other shapes share one dynamic-shape graph;
- int8 weights and activations (NNCF post-training quantisation) are used by ``auto`` only where they agree
  with fp32: each conversion is checked on held-out articles of the shipped corpus, and kept only when at
  least ``INT8_MIN_AGREEMENT`` of the labels match.

A model is converted once and cached under ``$NEWSCLF_CACHE/openvino-<key>`` (atomic, like the backbone
cache). The key hashes the weights' content, so a retrained or replaced model is converted again rather
than served stale; an entry whose files no longer match their recorded hashes is rebuilt.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import math
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from newsclf.inputs import encode_article, pad_rows

log = logging.getLogger(__name__)

# Bump when the exported graph or the quantisation recipe changes: old cache entries are then ignored.
RECIPE = "ov-4"
INT8_MIN_AGREEMENT = 0.99
CALIBRATION_ARTICLES = 64
CHECK_ARTICLES = 256
ENTRY_FILE = "newsclf-openvino.json"
EMBEDDINGS = "embeddings.npy"
FALLBACK_XML = "fp32.xml"
# int8 rows whose top-two logit margin is under this percentile of the margin shifts int8 caused on the
# check articles are run again on the fp32 graph (bf16 hint). On the reference model: ~3% of rows, and the
# one dev article (of 295) that int8 alone flipped comes back.
RECHECK_PERCENTILE = 99
# A call with at most this many full-length rows runs them one by one on the one-row graph; a larger one pads
# them to whole rounds of the streamed graph (the copies' logits are dropped). Both are static-shape graphs,
# which give a row the same logits whatever rows share its call (the batch-dynamic 1..8-row graph used before
# did not: up to 0.064 logits apart from the streamed graph on the reference model's dev rows, so a score
# changed with a row's place in its batch). On the reference model (AMD EPYC): one row 15.6-15.9 ms on the
# one-row graph, a round of 8 streamed rows ~90-100 ms, so up to 5 rows singly is faster.
LEFTOVER_SINGLES = 5
# Rows per request on the streamed static graph: calls with enough full-length rows run slices of this many
# as concurrent requests, one per stream (OpenVINO's THROUGHPUT hint: one stream per core here), instead of
# one request spread over both cores. On the reference model's int8 graph, 192 full-length rows: 9.3-9.4 ms
# an article against 10.0 (one LATENCY request of 8 rows), and the same memory as the 8-row latency graph it
# replaced (~160 MB).
STREAM_ROWS = 4
# A row at least this share of max_length long is padded to it, to run on the static graphs (the one-row
# graph alone or in small calls, the streamed one in larger calls); shorter rows run on the dynamic graph. The choice
# depends on the row alone, never on the rows batched with it: the static and dynamic int8 graphs round apart
# (up to ~0.15 logits on dev rows), and an article's score must not change with how a run was chunked
# (resume, engines, batch sizes). First calls at a new width on the dynamic graph are slow, and on the
# default model's int8 graph (AMD EPYC, 16 dev rows) width 220-236 took 13.2-13.5 ms a row padded against
# 14.9-15.9 on the dynamic graph; at 191 mixed (13.1 vs 11.8 at 16 rows, 10.8 vs 10.9 at 8); at 160 padding lost.
PAD_FROM = 0.75
# A shorter single article is padded up to a multiple of this on the dynamic graph: a one-row call at a width
# the process has not run before costs ~13 ms more (measured on the reference model, 14 vs 27 ms), so few
# widths are better than exact ones. In a batch they run at the width of the longest of them.
SINGLE_WIDTH_STEP = 32
INSTALL_HINT = "install it with: pip install 'newsclf[openvino]'"


class OpenVINOUnavailable(RuntimeError):
    """The openvino (or, for int8, nncf) package is missing, or this CPU lacks what a precision needs."""


@functools.cache
def missing_reason() -> str | None:
    """Why the OpenVINO backend cannot run here (None when it can)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return f"the openvino package is not installed; {INSTALL_HINT}"
    return None


@functools.cache
def capabilities() -> frozenset[str]:
    """OpenVINO's own report of what this CPU runs natively, e.g. {"FP32", "BF16", "INT8"}."""
    import openvino as ov

    try:
        return frozenset(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:  # no CPU plugin: nothing natively
        return frozenset()


def has_amx(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later), read from the kernel's CPU flags.

    OpenVINO reports "BF16" both for AMX and for AVX-512 BF16 (AMD Zen 4/5), but one row costs very different
    times on them (see OpenVINOForward.on_fallback), and it has no property that tells them apart. Where the
    flags cannot be read (not Linux), the answer is no: lone rows then stay on int8, right on every CPU."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_tile" in line.split() for line in text.splitlines())


def _nncf_missing() -> str | None:
    # Looked up, not imported: importing nncf imports torch (~300 MB), needed only when converting.
    if importlib.util.find_spec("nncf") is None:
        return f"int8 needs the nncf package, which is not installed; {INSTALL_HINT}"
    return None


def _file_sha(path: Path) -> str:
    from newsclf.backbones.cache import _file_hash

    return _file_hash(path)


def source_key(model_dir: Path, variant: str) -> str:
    """Cache key of one conversion: the weights' content, the model's config, the runtime and the recipe."""
    import openvino as ov

    from newsclf.artifact import META_FILE, WEIGHT_FILES

    h = hashlib.sha256(f"{RECIPE}|{variant}|{ov.__version__}".encode())
    h.update((model_dir / "config.json").read_bytes())
    meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    h.update(json.dumps({k: meta.get(k) for k in ("labels", "pooling", "max_length")}, sort_keys=True).encode())
    for name in WEIGHT_FILES:
        if (model_dir / name).is_file():
            h.update(f"{name}:{_file_sha(model_dir / name)}".encode())
    return h.hexdigest()[:20]


# ------------------------------------------------------------------------------------------ conversion
def _export(model: Any, example: tuple[Any, Any]) -> tuple[Any, bool]:
    """The torch model as an OpenVINO graph (word embeddings, mask) -> logits, through the mean-pool shortcut
    when the model has one.

    The word-embedding lookup stays outside the graph (:class:`OpenVINOForward` does it on a memory-mapped
    table): inside, every compiled shape would hold its own unpacked copy of the 100k-row table (~150-250 MB
    each), which is what kept static shapes from fitting a 1 GB process.
    """
    import openvino as ov
    import torch

    from newsclf.modeling import MeanPoolShortcut, has_mean_pool_layer

    shortcut = has_mean_pool_layer(model)

    class FromEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = MeanPoolShortcut(model) if shortcut else model

        def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            if shortcut:
                return self.m(None, attention_mask, inputs_embeds=inputs_embeds)
            return self.m(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits

    with torch.no_grad():
        graph = ov.convert_model(FromEmbeddings().eval(), example_input=example,
                                 input=[ov.PartialShape([-1, -1, example[0].shape[-1]]), ov.PartialShape([-1, -1])])
    return graph, shortcut


def _chunks(clf_encode: Any, n_skip: int, n: int) -> list[list[int]]:
    """First input chunks of ``n`` shipped-corpus articles after the first ``n_skip`` (a fixed, public sample)."""
    from newsclf.data.loaders import load_articles

    ds = load_articles(["embedded"])
    order = sorted(range(len(ds)), key=lambda i: hashlib.sha256(str(ds["id"][i]).encode()).hexdigest())
    picked = order[n_skip : n_skip + n]
    return [clf_encode(ds["title"][i], ds["text"][i])[0] for i in picked]


def _logits_of(forward: OpenVINOForward, rows: list[list[int]], pad: int) -> np.ndarray:
    return np.concatenate([forward(*pad_rows(rows[start : start + 8], pad)) for start in range(0, len(rows), 8)])


def _padded(ids: np.ndarray, mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows right-padded to ``width`` tokens (unchanged if already that wide); the mask keeps the logits."""
    pad = ((0, 0), (0, max(0, width - ids.shape[1])))
    return (np.pad(ids, pad), np.pad(mask, pad)) if pad[1][1] else (ids, mask)


def margins(logits: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
    """Logit of ``label`` (default: the top one) minus the best other logit, per row."""
    rows = np.arange(len(logits))
    label = logits.argmax(1) if label is None else label
    others = logits.copy()
    others[rows, label] = -np.inf
    return logits[rows, label] - others.max(1)


@contextlib.contextmanager
def _stdout_to_stderr() -> Any:
    """Send what the converters print to stderr: ``newsclf predict`` writes JSON lines to stdout, and NNCF
    prints its progress bars there and logs through a handler bound to ``sys.stdout`` at import. NNCF's
    info lines are held back meanwhile: one per graph node it leaves unquantised (~100 a model), internals a
    user cannot act on that buried even ``--quiet`` output; its warnings and progress bars still show."""
    handler = None
    if "nncf" in sys.modules or importlib.util.find_spec("nncf") is not None:
        from nncf.common.logging.logger import stdout_handler as handler
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(max(level, logging.WARNING))
    # Assigned, not setStream(): that flushes the old stream, which may be closed by now (e.g. the stdout
    # that was current when nncf was first imported).
    old = handler.stream if handler is not None else None
    if handler is not None:
        handler.stream = sys.stderr
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        nncf_log.setLevel(level)
        if handler is not None:
            handler.stream = old


def _convert(model_dir: Path, int8: bool, tmp: Path) -> None:
    """Write the converted model (``model.xml``/``.bin``, ``embeddings.npy``) and its entry record into ``tmp``."""
    with _stdout_to_stderr():
        _convert_quietly(model_dir, int8, tmp)


def _convert_quietly(model_dir: Path, int8: bool, tmp: Path) -> None:
    import openvino as ov
    import torch

    from newsclf import artifact

    model, tokenizer, meta = artifact.load(model_dir)
    model.eval()

    def encode(title: str, text: str) -> list[list[int]]:
        return encode_article(tokenizer, title, text, mode=meta.input_mode, max_length=meta.max_length,
                              max_chunks=meta.max_chunks)

    pad = tokenizer.pad_token_id or 0
    table = model.get_input_embeddings().weight.detach().float().numpy()
    np.save(tmp / EMBEDDINGS, table)
    cal = _chunks(encode, 0, CALIBRATION_ARTICLES)
    ids, mask = pad_rows(cal[:2], pad)
    graph, shortcut = _export(model, (torch.from_numpy(table[ids]), torch.from_numpy(mask)))
    del model
    record: dict[str, Any] = {"recipe": RECIPE, "openvino": ov.__version__, "source": str(model_dir.resolve()),
                              "int8": int8, "mean_pool_shortcut": shortcut}
    if int8:
        import nncf

        # The fp32 graph stays in the entry: rows whose int8 margin is too thin are run again on it.
        ov.save_model(graph, tmp / FALLBACK_XML, compress_to_fp16=False)
        check = _chunks(encode, CALIBRATION_ARTICLES, CHECK_ARTICLES)
        fp32_logits = _logits_of(OpenVINOForward(tmp / FALLBACK_XML, "f32", meta.max_length), check, pad)
        dataset = nncf.Dataset(cal, lambda row: [table[pad_rows([row], pad)[0]], pad_rows([row], pad)[1]])
        # The tail (pooling layer, pooler, classifier) runs on one vector per article: int8 saves nothing
        # there and only adds error where the label is decided.
        tail = nncf.IgnoredScope(patterns=[".*pool_layer.*", ".*pooler.*", ".*classifier.*"], validate=False)
        graph = nncf.quantize(graph, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(cal),
                              ignored_scope=tail)
        ov.save_model(graph, tmp / "model.xml", compress_to_fp16=False)
        hint = "bf16" if "BF16" in capabilities() else "f32"
        int8_logits = _logits_of(OpenVINOForward(tmp / "model.xml", hint, meta.max_length), check, pad)
        ref = fp32_logits.argmax(1)
        shift = np.abs(margins(int8_logits, ref) - margins(fp32_logits))
        recheck = float(np.percentile(shift, RECHECK_PERCENTILE))
        cascaded = OpenVINOForward(tmp / "model.xml", hint, meta.max_length, fallback=tmp / FALLBACK_XML,
                                   recheck_margin=recheck)
        after = _logits_of(cascaded, check, pad).argmax(1)
        record["recheck_margin"] = round(recheck, 4)
        record["agreement"] = {
            "articles": len(check), "articles_from": "the shipped corpus (embedded)", "against": "the fp32 graph",
            "same_label_int8_alone": round(float((int8_logits.argmax(1) == ref).mean()), 4),
            "same_label": round(float((after == ref).mean()), 4),
            "rechecked_share": round(float((margins(int8_logits) < recheck).mean()), 4),
        }
        files = ("model.xml", "model.bin", FALLBACK_XML, FALLBACK_XML.replace(".xml", ".bin"), EMBEDDINGS)
    else:
        ov.save_model(graph, tmp / "model.xml", compress_to_fp16=False)
        files = ("model.xml", "model.bin", EMBEDDINGS)
    record["files"] = {name: _file_sha(tmp / name) for name in files}
    (tmp / ENTRY_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")


_CONVERT_LOCK = threading.Lock()


def converted(model_dir: str | Path, int8: bool) -> tuple[Path, dict[str, Any]]:
    """The cached OpenVINO conversion of ``model_dir`` (converted now if missing, stale or corrupt)."""
    from newsclf.backbones.cache import _build_cached, cache_dir

    model_dir = Path(model_dir)
    if int8 and (why := _nncf_missing()):
        raise OpenVINOUnavailable(why)
    name = f"openvino-{source_key(model_dir, 'int8' if int8 else 'fp32')}"
    with _CONVERT_LOCK:
        entry = cache_dir() / name
        if (entry / ENTRY_FILE).is_file():
            problem = _entry_problem(entry)
            if problem is None:
                return entry, json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
            log.warning("OpenVINO cache entry %s is unusable (%s); converting the model again", entry, problem)
            shutil.rmtree(entry, ignore_errors=True)
        log.warning("converting %s for OpenVINO (%s; once, cached in %s)", model_dir, "int8" if int8 else "fp32", entry)
        entry = _build_cached(name, lambda tmp: _convert(model_dir, int8, tmp), marker=ENTRY_FILE)
        return entry, json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))


def _entry_problem(entry: Path) -> str | None:
    try:
        record = json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
        files = record["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable record: {err}"
    for name, sha in files.items():
        if not (entry / name).is_file():
            return f"{name} is missing"
        if _file_sha(entry / name) != sha:
            return f"{name} does not match its recorded hash"
    return None


# ------------------------------------------------------------------------------------------ running
class OpenVINOForward:
    """``(ids, mask) -> logits`` on a converted model (one call at a time: a lock guards the requests).

    Compiled forms of one graph, each on first use (~1 s): rows from ``PAD_FROM`` of ``max_length`` (most
    news articles reach it) are padded to it and run on static-shape graphs: calls of more than
    ``LEFTOVER_SINGLES`` such rows in slices of ``STREAM_ROWS`` as concurrent requests on a graph compiled for
    exactly that shape with one stream per core (static shapes measured ~8% faster than a batch-dynamic
    graph, streams another ~6%), whole rounds only; fewer rows, and single articles, one by one on a graph
    compiled for one row; rows shorter than that on the fully dynamic graph (which graph
    depends on each row's own length, see PAD_FROM). With ``fallback`` (int8), rows whose top-two margin is under
    ``recheck_margin`` are run again on the fallback graph, and with ``lone_on_fallback`` (None: where the
    CPU has AMX) a lone row runs on it straight away (see :meth:`on_fallback`).
    """

    def __init__(self, xml: Path, precision_hint: str, max_length: int, fallback: Path | None = None,
                 recheck_margin: float = 0.0, lone_on_fallback: bool | None = None):
        import openvino as ov

        self.core = ov.Core()
        self.graph = self.core.read_model(xml)
        self.fallback = self.core.read_model(fallback) if fallback is not None else None
        self.recheck_margin = recheck_margin
        # See on_fallback; None: where the CPU has AMX.
        self.lone_on_fallback = fallback is not None and (has_amx() if lone_on_fallback is None else lone_on_fallback)
        self.rechecked = 0
        # Infer requests are not thread-safe, and explain/evaluate call the Classifier outside its lock.
        self._lock = threading.Lock()
        # Memory-mapped: a process touches only the rows of the tokens it sees.
        self.table = np.load(xml.parent / EMBEDDINGS, mmap_mode="r")
        self.config = {"INFERENCE_PRECISION_HINT": precision_hint, "PERFORMANCE_HINT": "LATENCY"}
        self.max_length = max_length
        self._requests: dict[str, Any] = {}
        self._streams: Any = None  # the static graph's AsyncInferQueue, one request per stream
        self.record: dict[str, Any] = {}  # the cache entry's record (conversion, int8 agreement), set by runtime()

    def _request(self, kind: str) -> Any:
        if kind not in self._requests:
            # With lone_on_fallback, the lone-row graphs ("single", "lone_dynamic") are the fallback's, and
            # "row" is int8's one-row graph (elsewhere "single" is, and "row" is not used).
            on_fallback = kind == "fallback" or (kind in ("single", "lone_dynamic") and self.lone_on_fallback)
            graph = self.fallback if on_fallback else self.graph
            if kind not in ("dynamic", "lone_dynamic"):
                # The fallback runs few rows at a time, padded to max_length (see _recheck): one compiled
                # length, instead of a slow first call at every new width on a dynamic graph (~0.3-0.5 s).
                graph = self._at_max_length(graph, -1 if kind == "fallback" else 1)
            self._requests[kind] = self.core.compile_model(graph, "CPU", self.config).create_infer_request()
        return self._requests[kind]

    def _at_max_length(self, graph: Any, rows: Any) -> Any:
        """A copy of ``graph`` fixed to ``max_length`` tokens and ``rows`` rows (a number, -1 or a Dimension)."""
        import openvino as ov

        graph = graph.clone()
        graph.reshape({0: ov.PartialShape([rows, self.max_length, self.table.shape[1]]),
                       1: ov.PartialShape([rows, self.max_length])})
        return graph

    def _stream_queue(self) -> Any:
        """The static graph (``STREAM_ROWS`` x ``max_length``) compiled with one stream per core, as a queue of
        one infer request per stream; each request writes its logits into the ``(dict, key)`` it is given."""
        if self._streams is None:
            import openvino as ov

            graph = self._at_max_length(self.graph, STREAM_ROWS)
            compiled = self.core.compile_model(graph, "CPU", {**self.config, "PERFORMANCE_HINT": "THROUGHPUT"})
            queue = ov.AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            # Copied: the request reuses its output buffer for its next slice.
            queue.set_callback(lambda request, slot: slot[0].__setitem__(
                slot[1], np.array(request.get_output_tensor(0).data, dtype=np.float32)))
            self._streams = queue
        return self._streams

    def warm_up(self, batch_size: int = 16) -> None:
        """Compile, and run once, every graph a call of up to ``batch_size`` rows may use, so that no real call
        pays for a compile (~0.5-1 s each): the one-row graph and the dynamic graph at each width a shorter
        single article is padded to (a first call at a new width costs ~10 ms more: 5 widths at 256 tokens),
        both the fallback's where lone rows run there (see on_fallback), else int8's and the fallback that
        rechecks a lone thin row; with ``batch_size`` > 1 int8's one-row graph, where lone rows run on the
        fallback also int8's dynamic graph and the fallback for several rows, and above ``LEFTOVER_SINGLES``
        rows the streamed one (`serve` without it
        paid ~1 s in its first full batch, inside the benchmark's timed load)."""
        with self._lock:
            ids = np.zeros((1, self.max_length), dtype=np.int64)
            short = range(1, math.ceil(PAD_FROM * self.max_length))  # the widths that run on a dynamic graph
            for width in (self.max_length, *sorted({self._single_width(w) for w in short})):
                self._lone(ids[:, :width], np.ones_like(ids[:, :width]))
            if self.fallback is not None and not self.lone_on_fallback:
                self._recheck(ids, np.ones_like(ids))
            if batch_size > 1:
                rows = np.zeros((min(batch_size, LEFTOVER_SINGLES + 1), self.max_length), dtype=np.int64)
                self._static(rows[:2], np.ones_like(rows[:2]))  # int8's one-row graph ("row" on AMX)
                if self.lone_on_fallback:  # else compiled by the lone rows above
                    self._infer("dynamic", rows[:2, :SINGLE_WIDTH_STEP], np.ones_like(rows[:2, :SINGLE_WIDTH_STEP]))
                    self._recheck(rows[:2], np.ones_like(rows[:2]))
                if batch_size > LEFTOVER_SINGLES:  # the streamed graph, one round
                    self._static(rows, np.ones_like(rows))

    def _single_width(self, width: int) -> int:
        """The width a one-row call of ``width`` tokens runs at on the dynamic graph (see SINGLE_WIDTH_STEP)."""
        return min(self.max_length, -(-width // SINGLE_WIDTH_STEP) * SINGLE_WIDTH_STEP)

    def on_fallback(self, ids: np.ndarray) -> bool:
        """Whether a call of these rows runs them on the fallback graph whatever ``recheck`` says: a lone row,
        where ``lone_on_fallback`` (by default on CPUs with AMX). One row is latency-bound: on AMX the fallback
        (fp32 weights, bf16 hint) runs it a little slower than int8 (reference model, real articles, same
        process: 15.9-16.1 against 14.6-14.9 ms), while a thin int8 margin costs a second run, and the ~6% of
        dev articles rechecked set the p95 (single-article p95 28-30 ms before, 20-21 after). Without AMX
        (AVX-512 BF16 and VNNI, AMD EPYC) bf16 is slow: one full-length row took 20-22 ms on the fallback
        against 14-17 on int8 (default model), so lone rows stay on int8 under the recheck rules. A caller
        that rechecks later (a blended model) skips rows this is true of: they already have the fallback's
        logits."""
        return self.lone_on_fallback and len(ids) == 1

    def _lone(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One row: from ``PAD_FROM`` of ``max_length`` padded to it, on the one-row graph; shorter, padded to
        a ``SINGLE_WIDTH_STEP`` step on a dynamic graph (both the fallback's where lone rows run there). The
        row's own length decides, not the width it came padded to: a thin row rechecked out of a wider batch
        must run as it would alone."""
        width = max(1, int(mask[0].sum()))
        ids, mask = ids[:, :width], mask[:, :width]
        target = self.max_length if width >= PAD_FROM * self.max_length else self._single_width(width)
        kind = "single" if target == self.max_length else "lone_dynamic" if self.lone_on_fallback else "dynamic"
        return self._infer(kind, *_padded(ids, mask, target))

    def __call__(self, ids: np.ndarray, mask: np.ndarray, recheck: str = "thin") -> np.ndarray:
        """Logits of the rows. With a fallback graph, ``recheck`` says which rows it runs again: ``"thin"``
        those whose own margin is under ``recheck_margin``, ``"none"`` none (the caller decides later, as
        a blended model does on the blend's margin), ``"all"`` every row (the fallback alone). Rows that
        :meth:`on_fallback` puts there run once, on the fallback, whatever ``recheck`` says."""
        if recheck not in ("thin", "none", "all"):
            raise ValueError(f"recheck must be 'thin', 'none' or 'all', found {recheck!r}")
        with self._lock:
            if self.on_fallback(ids):
                return self._lone(ids, mask)
            if recheck == "all" and self.fallback is not None:
                self.rechecked += len(ids)
                return self._recheck(ids, mask)
            return self._call(ids, mask, recheck == "thin")

    def _recheck(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The fallback's logits of the rows (padded to max_length; a lone row as :meth:`_lone` runs it where
        lone rows run on the fallback)."""
        if len(ids) == 1 and self.lone_on_fallback:
            return self._lone(ids, mask)
        return self._infer("fallback", *_padded(ids, mask, self.max_length))

    def _call(self, ids: np.ndarray, mask: np.ndarray, recheck: bool = True) -> np.ndarray:
        out = self._fast(ids, mask)
        if self.fallback is not None and recheck:
            thin = np.flatnonzero(margins(out) < self.recheck_margin)
            if len(thin):
                self.rechecked += len(thin)
                out[thin] = self._recheck(ids[thin], mask[thin])
        return out

    def _fast(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if len(ids) == 1 and not self.lone_on_fallback:
            return self._lone(ids, mask)
        own = mask.sum(1)
        wide = own >= PAD_FROM * self.max_length  # by each row's own length (see PAD_FROM)
        if wide.all():
            return self._static(ids, mask)
        narrow = np.flatnonzero(~wide)
        width = int(own[narrow].max())  # the mask makes the width neutral on the dynamic graph
        short = self._infer("dynamic", ids[narrow, :width], mask[narrow, :width])
        if not wide.any():
            return short
        out = np.empty((len(ids), short.shape[1]), dtype=np.float32)
        out[narrow] = short
        out[wide] = self._static(ids[wide], mask[wide])
        return out

    def _static(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Rows padded to max_length on the static graphs: up to ``LEFTOVER_SINGLES`` one by one on int8's
        one-row graph, more as whole rounds on the streamed graph, the last round filled with copies of the
        last row (static shapes give each row the same logits whatever its call holds; see LEFTOVER_SINGLES)."""
        ids, mask = _padded(ids, mask, self.max_length)
        n = len(ids)
        if n <= LEFTOVER_SINGLES:
            row = "row" if self.lone_on_fallback else "single"
            return np.concatenate([self._infer(row, ids[i : i + 1], mask[i : i + 1]) for i in range(n)])
        streams = self._stream_queue()
        per_round = STREAM_ROWS * len(streams)
        # Whole rounds only: a round with an idle stream would leave one core of two idle for its duration.
        fill = -n % per_round
        if fill:
            ids = np.concatenate([ids, np.repeat(ids[-1:], fill, axis=0)])
            mask = np.concatenate([mask, np.repeat(mask[-1:], fill, axis=0)])
        out: dict[int, np.ndarray] = {}
        try:
            for start in range(0, len(ids), STREAM_ROWS):
                end = start + STREAM_ROWS
                streams.start_async([self.table[ids[start:end]], mask[start:end]], (out, start))
        finally:
            streams.wait_all()
        return np.concatenate([out[start] for start in range(0, len(ids), STREAM_ROWS)])[:n]

    def _infer(self, kind: str, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.array(self._request(kind).infer([self.table[ids], mask])[0], dtype=np.float32)


def runtime(model_dir: str | Path, precision: str, max_length: int) -> tuple[OpenVINOForward, str, dict[str, Any]]:
    """The OpenVINO forward for ``precision`` (auto/fp32/bf16/int8), the precision it runs and its cache record.

    ``auto``: int8 where this CPU has int8 kernels, nncf is installed and the conversion agreed with fp32 on
    at least ``INT8_MIN_AGREEMENT`` of the check articles; else bf16 where the CPU has it; else fp32.
    """
    if why := missing_reason():
        raise OpenVINOUnavailable(why)
    caps = capabilities()
    bf16 = "BF16" in caps
    if precision == "bf16" and not bf16:
        raise OpenVINOUnavailable(f"this CPU has no native bf16 (OpenVINO reports {sorted(caps)}); use precision='fp32'")
    if precision == "int8" and "INT8" not in caps:
        raise OpenVINOUnavailable(f"this CPU has no int8 kernels (OpenVINO reports {sorted(caps)}); use precision='fp32'")
    chosen = precision
    if precision == "auto":
        chosen = "bf16" if bf16 else "fp32"
        if "INT8" in caps and _nncf_missing() is None:
            try:
                entry, record = converted(model_dir, int8=True)
            except OSError:  # an unwritable cache fails the fp32 conversion too: let the caller decide
                raise
            except Exception as err:  # noqa: BLE001 - a quantiser failure must not stop a plain load
                log.warning("int8 conversion failed (%s: %s); running %s", type(err).__name__, err, chosen)
                record = {}
            agreement = record.get("agreement", {}).get("same_label", 0.0)
            if agreement >= INT8_MIN_AGREEMENT:
                chosen = "int8"
            elif record:
                log.warning("int8 agreed with fp32 on %.1f%% of the check articles (< %.0f%%): running %s",
                            100 * agreement, 100 * INT8_MIN_AGREEMENT, chosen)
    entry, record = converted(model_dir, int8=chosen == "int8")
    hint = "bf16" if chosen in ("bf16", "int8") and bf16 else "f32"
    if chosen == "int8":
        forward = OpenVINOForward(entry / "model.xml", hint, max_length, fallback=entry / FALLBACK_XML,
                                  recheck_margin=float(record.get("recheck_margin", 0.0)))
    else:
        forward = OpenVINOForward(entry / "model.xml", hint, max_length)
    forward.record = record
    return forward, chosen, record
