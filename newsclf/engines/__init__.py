"""Tagging on a data engine: the per-batch function that Ray Data and Spark run, one output row per input row.

The batch function is the local engine's (:func:`newsclf.tagging._predict_batch`): it takes articles as
:func:`newsclf.tagging.to_article` makes them (``id``, ``title``, ``text``, ``loc``, or ``id`` and ``error``
for a record that could not be read) and gives one row per article, ``id, label, score, abstained[,
reason]`` or ``id, error``. Engines need a fixed set of columns, so a row travels as :data:`OUTPUT_COLUMNS`
(absent fields are null) and :func:`output_row` turns it back into the local engine's JSON line.

``newsclf.engines.ray_engine`` runs it under Ray Data (``newsclf predict --engine ray``); for Spark,
:func:`spark_tagger` wraps :func:`tag_pandas` for ``DataFrame.mapInPandas`` with :data:`SPARK_SCHEMA`.
Nothing here imports Ray or Spark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "INPUT_COLUMNS",
    "OUTPUT_COLUMNS",
    "SPARK_SCHEMA",
    "output_row",
    "spark_tagger",
    "tag_pandas",
    "tag_records",
]

# What the readers hand the batch function (all strings; ``error`` set means the record is unreadable).
INPUT_COLUMNS = ("id", "title", "text", "loc", "error")
# What the batch function gives back, with the Arrow/Spark type of each column.
OUTPUT_COLUMNS = (("id", "string"), ("label", "string"), ("score", "double"), ("abstained", "boolean"),
                  ("reason", "string"), ("error", "string"))
SPARK_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in OUTPUT_COLUMNS)


def _blank(value: Any) -> bool:
    """None, or the NaN pandas puts in an empty cell."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _article(rec: dict[str, Any]) -> dict[str, Any]:
    """An input row as ``to_article`` makes it: ``{"id", "error"}`` or ``{"id", "title", "text", "loc"}``."""
    rid = None if _blank(rec.get("id")) else str(rec["id"])
    if not _blank(rec.get("error")):
        return {"id": rid, "error": rec["error"]}
    title, text = rec.get("title"), rec.get("text")
    return {"id": rid, "title": "" if _blank(title) else title, "text": "" if _blank(text) else text,
            "loc": None if _blank(rec.get("loc")) else rec["loc"]}


def tag_records(clf: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One output column-row per input row (columns :data:`OUTPUT_COLUMNS`, absent fields None), in order."""
    from newsclf.tagging import _predict_batch

    rows = _predict_batch(clf, [_article(r) for r in records])
    return [{name: row.get(name) for name, _ in OUTPUT_COLUMNS} for row in rows]


def output_row(rec: dict[str, Any]) -> dict[str, Any]:
    """The local engine's JSON line for a column-row: ``id, label, score, abstained[, reason]`` or ``id, error``."""
    if rec.get("error") is not None:
        return {"id": rec["id"], "error": rec["error"]}
    row = {"id": rec["id"], "label": rec["label"], "score": rec["score"], "abstained": bool(rec["abstained"])}
    if rec.get("reason"):
        row["reason"] = rec["reason"]
    return row


def tag_pandas(df: Any, model: str | Path | Any, *, precision: str = "auto") -> Any:
    """Tag one pandas DataFrame (columns ``id`` and ``title`` and/or ``text``; ``loc``/``error`` optional).

    Returns a DataFrame with :data:`OUTPUT_COLUMNS`, one row per input row in the same order. ``model`` is a
    model folder (loaded once per process and cached) or a loaded :class:`newsclf.Classifier`.
    """
    import pandas as pd

    from newsclf.predict import Classifier, load

    cols = list(df.columns)
    if "id" not in cols or not ({"title", "text"} & set(cols)):
        raise ValueError(
            f"tag_pandas: expected columns 'id' and 'title' and/or 'text', found {cols}; rename or select them "
            "(Spark: .withColumnRenamed / .selectExpr) before tagging"
        )
    clf = model if isinstance(model, Classifier) else load(model, precision=precision)
    rows = tag_records(clf, df.to_dict("records")) if len(df) else []
    return pd.DataFrame(rows, columns=[name for name, _ in OUTPUT_COLUMNS]).astype(
        {"score": "float64", "abstained": "object"}
    )


def spark_tagger(model: str | Path, *, precision: str = "auto") -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A function for Spark's ``df.mapInPandas(spark_tagger(model), SPARK_SCHEMA)``.

    Each Python worker loads the model folder once (``newsclf.load`` caches it per process; Spark reuses
    its Python workers by default), so ``model`` must be a path every executor can read.
    """
    path = str(model)

    def tag_partition(batches: Iterator[Any]) -> Iterator[Any]:
        for df in batches:
            yield tag_pandas(df, path, precision=precision)

    return tag_partition
