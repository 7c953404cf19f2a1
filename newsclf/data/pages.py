"""Splitting a printed newspaper page (plain text or light Markdown) into its articles.

A page as it comes out of a PDF or OCR tool is a flat run of lines: a page banner, column names and kickers
above headlines, headlines, subheadings inside long stories, datelines and author lines, photo captions
that the layout dropped between the two halves of a paragraph, paragraphs cut mid-sentence (even mid-word)
at column breaks, and now and then a paragraph printed twice. :func:`split_page` turns such a page into a
list of :class:`Article` objects whose ``text`` holds only the body, with the other pieces kept in their
own fields so that nothing on the page is lost.

How headlines are told apart from subheadings (both are short unpunctuated lines, ``#`` headings in
Markdown): a headline starts a new article when

* it is the first headline on the page, or the previous article was closed by a closing byline such as
  ``（本报记者 张三）`` or a ``---`` rule;
* short lines (a column name, a kicker) stand between the previous article's body and it;
* a dateline (``本报讯（记者…）``) or an author line follows it;
* nothing marks the running article as one with subheadings.

Otherwise it is a subheading and stays in the article: a lone heading right after body text, inside a
running article that a closing byline further down still belongs to, or that opened with an author line
under its headline (features carry subheadings), or one Markdown level deeper than the article's title.
On a Markdown page, unmarked short lines between body paragraphs are body text. The rules are deterministic, so the same page always gives the same articles.

Each line is first classified (headline-like, body, caption, byline, rule: see
:mod:`newsclf.data.page_lines`); this module decides from that sequence where articles start and end.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from newsclf.data.page_lines import CAPTION_MAX as CAPTION_MAX
from newsclf.data.page_lines import SHORT_MAX, _is_author, _is_subtitle, _Tok, _tokenize, ends_sentence

__all__ = ["Article", "split_page", "page_to_records"]

# Shorter repeated paragraphs (a slogan, a one-word line) may be repeated on purpose.
DEDUP_MIN = 8


@dataclass
class Article:
    """One article cut from a page.

    ``text`` is the body: paragraphs (subheadings as their own lines) separated by ``"\\n"``, with column
    breaks rejoined, captions, bylines and repeated paragraphs taken out. The other fields hold what is not
    body text; ``joined_breaks`` and ``duplicates_removed`` count the repairs made.
    """

    title: str
    text: str = ""
    kicker: list[str] = field(default_factory=list)
    subtitle: str = ""
    bylines: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    subheadings: list[str] = field(default_factory=list)
    index: int = 0
    joined_breaks: int = 0
    duplicates_removed: int = 0

    @property
    def paragraphs(self) -> list[str]:
        return [p for p in self.text.split("\n") if p]

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (lists copied), e.g. for JSON output."""
        return asdict(self)



class _Splitter:
    def __init__(self, toks: list[_Tok]):
        self.toks = toks
        self.markdown = any(t.kind == "heading" for t in toks)

    def headish(self, t: _Tok) -> bool:
        return t.kind in ("heading", "short")

    def run_end(self, i: int) -> int:
        """End of the run of headline-like lines starting at i (captions inside the run are skipped)."""
        j = i
        while j < len(self.toks) and (self.headish(self.toks[j]) or self.toks[j].kind == "caption"):
            j += 1
        return j

    def roles(self, i: int, j: int) -> tuple[list[str], _Tok | None, list[str], list[str]]:
        """Kicker lines, the title token, subtitle lines and author lines of the heading run toks[i:j]."""
        run = [t for t in self.toks[i:j] if t.kind != "caption"]
        heads = [k for k, t in enumerate(run) if t.kind == "heading"]
        if heads:
            t_idx = heads[-1]
        else:
            t_idx = len(run) - 1
            while t_idx > 0 and (_is_author(run[t_idx].text) or _is_subtitle(run[t_idx].text)):
                t_idx -= 1
        kicker = [t.text for t in run[:t_idx]]
        subtitle, authors = [], []
        for t in run[t_idx + 1 :]:
            (authors if _is_author(t.text) and not _is_subtitle(t.text) else subtitle).append(t.text)
        return kicker, run[t_idx], subtitle, authors

    def definite_start(self, i: int, j: int) -> bool:
        """Whether the heading run toks[i:j] certainly opens a new article (see the module docstring)."""
        kicker, _, subtitle, authors = self.roles(i, j)
        if kicker or authors or subtitle:
            return True
        nxt = self.toks[j] if j < len(self.toks) else None
        return nxt is not None and nxt.kind == "body" and bool(nxt.dateline)

    def closed_later(self, j: int) -> bool:
        """Whether a closing byline comes before the next certain article start after position j."""
        k = j
        while k < len(self.toks):
            t = self.toks[k]
            if t.kind == "closing":
                return True
            if t.kind == "rule":
                return False
            if self.headish(t):
                e = self.run_end(k)
                if self.definite_start(k, e):
                    return False
                k = e
                continue
            k += 1
        return False

    def split(self) -> list[Article]:
        arts: list[Article] = []
        bodies: list[list[tuple[str, str]]] = []  # per article: (kind, text) with kind "p" or "sub"
        levels: list[int] = []
        by_author: list[bool] = []
        cur: Article | None = None
        closed = False
        # Captions and bylines met before any article go to the first one.
        pending_caps: list[str] = []
        pending_bylines: list[str] = []
        i = 0
        while i < len(self.toks):
            t = self.toks[i]
            if t.kind == "rule":
                closed = True
                i += 1
                continue
            if t.kind == "caption":
                (cur.captions if cur is not None else pending_caps).append(t.text)
                i += 1
                continue
            if t.kind == "closing":
                if cur is None:
                    pending_bylines.append(t.text)  # the end of a story from another page
                else:
                    cur.bylines.append(t.text)
                    closed = True
                i += 1
                continue
            if t.kind == "body":
                if cur is None:
                    # Body before any headline (a story continued from another page): keep it, untitled.
                    cur, closed = Article(title="", index=len(arts), captions=pending_caps), False
                    cur.bylines, pending_caps, pending_bylines = pending_bylines, [], []
                    arts.append(cur)
                    bodies.append([])
                    levels.append(0)
                    by_author.append(False)
                if t.dateline:
                    cur.bylines.append(t.dateline)
                self._add_body(cur, bodies[-1], t.text)
                i += 1
                continue
            j = self.run_end(i)
            if self.markdown and not any(x.kind == "heading" for x in self.toks[i:j]) and cur is not None:
                # On a Markdown page headlines and subheadings are marked; unmarked short lines between
                # body paragraphs are body text (often half a sentence cut by a column break).
                for x in self.toks[i:j]:
                    if x.kind == "caption":
                        cur.captions.append(x.text)
                    else:
                        self._add_body(cur, bodies[-1], x.text)
                i = j
                continue
            run_caps = [x.text for x in self.toks[i:j] if x.kind == "caption"]
            nxt = self.toks[j] if j < len(self.toks) else None
            if nxt is None or nxt.kind != "body":
                # Short lines with no body after them (end of page, or right before a closing byline or a
                # rule) are not a headline; they stay with the running article so nothing is lost.
                if cur is None:
                    raise ValueError(
                        "page has headlines but no article body: expected body paragraphs after a headline, "
                        f"found only short lines from line {self.toks[i].line} on; pass the full page text"
                    )
                for x in self.toks[i:j]:
                    if x.kind == "caption":
                        cur.captions.append(x.text)
                    elif _is_author(x.text):
                        cur.bylines.append(x.text)
                    else:
                        bodies[-1].append(("p", x.text))
                i = j
                continue
            kicker, title, subtitle, authors = self.roles(i, j)
            is_sub = (
                cur is not None
                and not closed
                and sum(x.kind != "caption" for x in self.toks[i:j]) == 1
                and not self.definite_start(i, j)
                and (
                    (self.markdown and title.kind == "heading" and levels[-1] and title.level > levels[-1])
                    or self.closed_later(j)
                    # A feature with an author line under its headline is the usual home of subheadings.
                    or bool(by_author[-1])
                )
            )
            if is_sub:
                cur.captions.extend(run_caps)
                cur.subheadings.append(title.text)
                bodies[-1].append(("sub", title.text))
                i = j
                continue
            cur = Article(
                title=title.text,
                kicker=kicker,
                subtitle=" ".join(subtitle),
                bylines=pending_bylines + authors,
                captions=pending_caps + run_caps,
                index=len(arts),
            )
            pending_caps, pending_bylines = [], []
            closed = False
            arts.append(cur)
            bodies.append([])
            levels.append(title.level)
            by_author.append(bool(authors))
            i = j
        if not arts or all(a.title == "" for a in arts):
            raise ValueError(
                "page has no headline: every paragraph reads as body text; expected a '#' Markdown heading or "
                f"a short line (at most {SHORT_MAX} characters, no final punctuation) before the body. Add the "
                "headlines, or load the text as a single article instead"
            )
        for art, body in zip(arts, bodies):
            self._finish(art, body)
        return arts

    def _add_body(self, art: Article, body: list[tuple[str, str]], text: str) -> None:
        # Column breaks: a paragraph that does not end a sentence continues in the next body paragraph,
        # even with captions in between (they were pulled out as separate tokens already).
        if body and body[-1][0] == "p" and not ends_sentence(body[-1][1]):
            body[-1] = ("p", body[-1][1] + text)
            art.joined_breaks += 1
        else:
            body.append(("p", text))

    def _finish(self, art: Article, body: list[tuple[str, str]]) -> None:
        seen: set[str] = set()
        out: list[str] = []
        for kind, text in body:
            key = re.sub(r"\s+", "", text)
            if kind == "p" and len(key) >= DEDUP_MIN:
                if key in seen:
                    art.duplicates_removed += 1
                    continue
                seen.add(key)
            out.append(text)
        art.text = "\n".join(out)


def split_page(text: str) -> list[Article]:
    """Split one newspaper page (plain text or light Markdown) into its articles.

    Raises ``ValueError`` for an empty page, a binary one, and a page in which no headline can be found.
    See the module docstring for how headlines, subheadings, bylines and captions are recognised.
    """
    if not isinstance(text, str):
        raise TypeError(
            f"split_page expects the page as a str, got {type(text).__name__}; decode bytes first"
        )
    if "\x00" in text:
        raise ValueError(
            f"page contains NUL characters (first at character {text.index(chr(0))}): this looks like a "
            "binary file, expected plain text or Markdown"
        )
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise ValueError(
            "empty page: expected the text of a newspaper page with headlines and body paragraphs"
        )
    toks = _tokenize(text)
    if not any(t.kind in ("body", "short", "heading") for t in toks):
        raise ValueError(
            "page has no headline or body text: it holds only captions, bylines or rules; expected a page "
            "with headlines and body paragraphs"
        )
    return _Splitter(toks).split()


def page_to_records(text: str, *, source: str, date: str | None = None, page: str = "") -> list[dict]:
    """Split a page and return one flat record per article, ready for :func:`load_articles`.

    ``id`` is ``{source}-{index:03d}`` (stable: the same page gives the same ids); ``section`` is the
    first kicker line (a page banner or column name), else ``""``.
    """
    records = []
    for art in split_page(text):
        records.append(
            {
                "id": f"{source}-{art.index:03d}",
                "title": art.title,
                "text": art.text,
                "date": date or "",
                "source": source,
                "page": page,
                "section": art.kicker[0] if art.kicker else "",
                "label": None,
            }
        )
    return records
