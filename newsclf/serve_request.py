"""What a ``newsclf serve`` request and its answer look like: reading the body within its limits, checking it
exactly as ``predict`` would, and the OpenAPI description of ``POST /predict``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from newsclf.microbatch import ApiError
from newsclf.predict import check_predict_options, parse_item

if TYPE_CHECKING:
    from newsclf.serve import ServeSettings

OPTION_KEYS = ("top_k", "threshold", "explain")
BODY_KEYS = ("articles", "article", *OPTION_KEYS)
# After a body passes max_body_bytes the rest is still read (and dropped) up to this many times the limit, so
# the client is not reset mid-upload and can read the 413; beyond that the connection is simply closed.
_DRAIN_FACTOR = 8



# -- request parsing -----------------------------------------------------------------------------
async def _read_json(request: Request, limit: int) -> Any:
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime != "application/json" and not (mime.startswith("application/") and mime.endswith("+json")):
        raise ApiError(415, f"expected Content-Type: application/json, found {mime or 'none'}; send the body as JSON")
    too_big = ApiError(413, f"the body is larger than {limit} bytes (the server's --max-body-bytes); "
                            "send fewer articles per request")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit * _DRAIN_FACTOR:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit * _DRAIN_FACTOR:
                break
            if size <= limit:
                chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before the whole body arrived") from None
    if size > limit:
        raise too_big
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, 'the body is empty; send a JSON object such as {"articles": ["标题\\n正文"]}')
    try:
        return json.loads(raw)
    except RecursionError:
        raise ApiError(400, "the body is not usable JSON: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, bytes that are not UTF-8, an integer of too many digits
        raise ApiError(400, f"the body is not valid JSON: {err}") from None


def _type(x: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(x), type(x).__name__)


def parse_body(body: Any, n_labels: int, settings: ServeSettings) -> tuple[list[Any], tuple[Any, Any, bool], bool]:
    """(items, options, single) of a /predict body; ApiError 422/413 with ``predict``'s message otherwise."""
    if not isinstance(body, dict):
        raise ApiError(422, 'the body must be a JSON object: {"articles": [item, ...]} or {"article": item}, '
                            f"found a JSON {_type(body)}")
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        raise ApiError(422, f"unknown key(s) {unknown}; a body has 'articles' (a list) or 'article' (one item), "
                            f"and optionally {', '.join(OPTION_KEYS)}")
    if ("articles" in body) == ("article" in body):
        what = "both" if "articles" in body else "neither"
        raise ApiError(422, f"the body has {what} of 'articles' and 'article'; give 'articles' (a list of items) "
                            "or 'article' (one item)")
    top_k, threshold, explain = body.get("top_k", 1), body.get("threshold"), body.get("explain", False)
    try:
        check_predict_options(top_k=top_k, threshold=threshold, explain=explain, batch_size=settings.batch_size,
                              n_labels=n_labels)
    except (TypeError, ValueError, OverflowError) as err:
        raise ApiError(422, str(err)) from None
    except RecursionError:  # repr() of an option nested a thousand deep
        raise ApiError(422, "an option is nested too deeply; top_k is an int, threshold a number, explain a bool") from None
    single = "article" in body
    if single:
        items = [body["article"]]
        indices: list[int | None] = [None]
    else:
        items = body["articles"]
        if not isinstance(items, list):
            raise ApiError(422, f"'articles': expected a list of articles (each a string or an object with 'title' "
                                f"and 'text'), found a JSON {_type(items)}; for one article use 'article'")
        if len(items) > settings.max_articles:
            raise ApiError(413, f"{len(items)} articles in one request; at most {settings.max_articles} (the server's "
                                "--max-articles): split them over several requests")
        indices = list(range(len(items)))
    for item, index in zip(items, indices):
        try:
            parse_item(item, index)
        except (TypeError, ValueError) as err:
            raise ApiError(422, str(err)) from None
        except RecursionError:
            where = f"item {index}: " if index is not None else ""
            raise ApiError(422, f"{where}nested too deeply; an article is a string or an object with 'title' and 'text'") from None
    return items, (top_k, threshold, bool(explain)), single


_ITEM = {
    "oneOf": [
        {"type": "string", "description": "the title on the first line, then the body"},
        {"type": "object", "properties": {"title": {"type": "string"}, "text": {"type": "string"}},
         "description": "an article with 'title' and 'text' (other keys are ignored)"},
    ]
}
_RESULT = {
    "type": "object",
    "required": ["label", "score", "scores", "abstained", "reason"],
    "properties": {
        "label": {"type": "string"},
        "score": {"type": "number", "description": "calibrated probability of the model's top label"},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        "abstained": {"type": "boolean"},
        "reason": {"type": ["string", "null"], "description": "why the result abstained; null when answered"},
        "top_k": {"type": "array", "description": "with top_k > 1: [label, score] pairs, best first",
                  "items": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}]}},
        "keywords": {"type": "array", "description": "with explain: the words that drive the label",
                     "items": {"type": "object", "properties": {"word": {"type": "string"}, "weight": {"type": "number"}}}},
    },
}
_ERROR = {"content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}}


def _openapi_predict(labels: list[str], settings: ServeSettings) -> dict[str, Any]:
    body = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "articles": {"type": "array", "items": _ITEM, "maxItems": settings.max_articles},
            "article": _ITEM,
            "top_k": {"type": "integer", "minimum": 1, "maximum": len(labels), "default": 1},
            "threshold": {"type": ["number", "null"], "minimum": 0, "maximum": 1, "default": None,
                          "description": "null: the model's abstain threshold"},
            "explain": {"type": "boolean", "default": False},
        },
    }
    examples = {
        "batch": {"value": {"articles": ["市博物馆推出青铜器特展\n展览汇集馆藏文物两百余件。",
                                         {"title": "消防救援支队处置居民楼火灾", "text": "消防员迅速疏散群众。"}]}},
        "single": {"value": {"article": {"title": "市博物馆推出青铜器特展", "text": "展览汇集馆藏文物两百余件。"},
                             "top_k": 2}},
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body, "examples": examples}}}}
