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
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Article", "split_page", "page_to_records"]

# A title, kicker or subheading is rarely longer than this; longer unpunctuated lines are body fragments.
SHORT_MAX = 40
# A caption is a sentence or two; a longer paragraph before a photo credit is body text, not its caption.
CAPTION_MAX = 150
# Shorter repeated paragraphs (a slogan, a one-word line) may be repeated on purpose.
DEDUP_MIN = 8

_SENTENCE_END = set("。！？!?…；;：:")
_CLOSERS = set("”’」』）)】》\"'")
_CJK_NAME = r"[\u4e00-\u9fff·]{2,4}"
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^(?:-{3,}|\*{3,}|_{3,}|—{3,}|={3,})$")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\([^)]*\)$")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
# 本报讯（记者…）, 本报北京3月5日讯（…）, 新华社北京3月5日电（…）, 央视网消息（…）: the opening dateline.
_DATELINE = re.compile(
    r"^(?:本报[\u4e00-\u9fff]{0,6}(?:\d{1,2}月\d{1,2}日)?讯|[\u4e00-\u9fff]{2,6}社[\u4e00-\u9fff]{0,8}\d{1,2}月\d{1,2}日电"
    r"|[\u4e00-\u9fff]{2,6}消息)\s*(?:[（(][^（）()]{1,60}[）)])?[：:]?\s*"
)
_PERSON_WORDS = r"(?:本报|新华社|央视)?(?:特约|实习)?(?:记者|通讯员|撰稿|编辑|评论员)"
# （本报记者 张三）, （记者 张三 通讯员 李四）, (王五): the closing byline that ends an article.
_CLOSING = re.compile(
    rf"[（(]\s*(?:{_PERSON_WORDS}[:：\s]*)?{_CJK_NAME}(?:[\s、，,]+(?:{_PERSON_WORDS}[:：\s]*)?{_CJK_NAME})*\s*[）)]$"
)
# The photo credit: 本报记者 张三 摄, 张三摄, （李四 摄）, 王五 供图, （资料图片）.
_CREDIT = re.compile(
    rf"[（(]?\s*(?:{_PERSON_WORDS}\s*)?(?:{_CJK_NAME}[\s、，,]*){{1,3}}(?:摄|摄影|供图)\s*[）)]?$|[（(]资料图片[）)]$"
)
_CAPTION_START = re.compile(r"^(?:图为|图片为|上图|下图|左图|右图|▲|△|图[：:])")


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


@dataclass
class _Tok:
    kind: str  # heading | short | body | caption | closing | rule
    text: str
    level: int = 0  # Markdown heading level; 0 for plain lines
    line: int = 0  # 1-based line number, for error messages
    dateline: str = ""  # the opening dateline cut off a body paragraph


def ends_sentence(text: str) -> bool:
    """Whether a paragraph ends a sentence (so the next paragraph does not continue it)."""
    t = text.rstrip()
    if not t:
        return True
    if t[-1] in _SENTENCE_END:
        return True
    # 。” ends a sentence; a bare closing quote after a word (…学习交流的“新”) may not.
    return t[-1] in _CLOSERS and len(t) > 1 and (t[-2] in _SENTENCE_END or t[-2] in _CLOSERS)


def _clean(line: str) -> str:
    line = line.replace("\u3000", " ").strip()
    line = re.sub(r"^>\s?", "", line)
    return _EMPHASIS.sub(r"\2", line).strip()


def _is_short(text: str) -> bool:
    """A headline-like line: short, unpunctuated at the end, and not the first half of a broken sentence."""
    if len(text) > SHORT_MAX:
        return False
    # A headline may end in a question or exclamation mark (防汛，你准备好了吗？) but carries no other stops.
    core = text.rstrip("”’」』\"'").rstrip("？！?!") if len(text) <= 20 else text
    if ends_sentence(core) or re.search(r"[。！？!?；;]", core):
        return False
    text = core
    commas = len(re.findall(r"[，,]", text))
    # Headlines seldom carry more than one comma, a long list or end on a particle; a half sentence cut by
    # a column break often does (…检查发现隐患后，在 / …为居民提供的).
    if commas >= 2 or (commas and len(text) > 20) or (text.count("、") >= 2 and len(text) > 20):
        return False
    return text[-1] not in _DANGLING


_DANGLING = set("的在和与及对从向把被将并或而、，,“‘(（《")


def _is_credit(text: str) -> bool:
    """A photo credit on its own (``本报记者 张三 摄``), not a sentence that happens to end in 摄."""
    return len(text) <= 30 and bool(_CREDIT.fullmatch(text))


def _inline_caption(text: str) -> bool:
    """A one-line caption: a caption sentence followed by its credit, or one starting 图为/▲."""
    if _CAPTION_START.match(text) and len(text) <= CAPTION_MAX:
        return True
    m = re.search(r"[。！？!?]\s*([^。！？!?]{2,30})$", text)
    return bool(m) and len(text) <= CAPTION_MAX + 30 and _is_credit(m.group(1).strip())


# Common surnames: a bare two-to-four character line is an author's name only if it starts with one, so
# that a short headline such as 春耕时节 is not taken for a byline.
_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴"
    "霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚"
    "岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑"
    "迟邝虎"
)


def _is_name(text: str) -> bool:
    return bool(re.fullmatch(_CJK_NAME, text)) and (
        text[0] in _SURNAMES or text[:2] in ("欧阳", "司马", "上官", "诸葛")
    )


def _is_author(text: str) -> bool:
    """An author line under a headline: ``张三``, ``本报记者 张三``, ``市政协副主席 张三``."""
    if re.search(r"[。！？!?；;，,]", text) or len(text) > SHORT_MAX:
        return False
    if re.search(_PERSON_WORDS, text):
        return True
    return _is_name(text) or bool(re.fullmatch(r"[^\s]{1,30}\s+\S{2,4}", text) and _is_name(text.split()[-1]))


def _is_subtitle(text: str) -> bool:
    return text.startswith(("——", "—", "--"))


def _tokenize(page: str) -> list[_Tok]:
    toks: list[_Tok] = []
    for n, raw in enumerate(page.splitlines(), 1):
        line = _clean(raw)
        if not line:
            continue
        m = _HEADING.match(line)
        if m:
            if m.group(2):
                toks.append(_Tok("heading", m.group(2), level=len(m.group(1)), line=n))
            continue
        if _RULE.match(line):
            toks.append(_Tok("rule", line, line=n))
            continue
        img = _IMAGE.match(line)
        if img:
            toks.append(_Tok("caption", img.group(1).strip() or "[图片]", line=n))
            continue
        if _is_credit(line):
            # A credit on its own line is the end of a caption whose text is the paragraph just before it.
            prev = toks[-1] if toks else None
            if (
                prev is not None
                and prev.kind in ("body", "short")
                and not prev.dateline
                and len(prev.text) <= CAPTION_MAX
                and prev.line < n
            ):
                toks[-1] = _Tok("caption", f"{prev.text} {line}", line=prev.line)
            else:
                toks.append(_Tok("caption", line, line=n))
            continue
        if _inline_caption(line):
            toks.append(_Tok("caption", line, line=n))
            continue
        if _CLOSING.fullmatch(line):
            toks.append(_Tok("closing", line[1:-1].strip(), line=n))
            continue
        if _is_short(line) and not _continues_previous(toks):
            toks.append(_Tok("short", line, line=n))
            continue
        tok = _Tok("body", line, line=n)
        d = _DATELINE.match(line)
        if d and d.end() < len(line):
            tok.dateline, tok.text = d.group(0).strip(), line[d.end() :].strip()
        # A closing byline printed at the end of the last paragraph: （本报记者 张三） after the full stop.
        c = re.search(r"(?<=[。！？!?”])" + _CLOSING.pattern, tok.text)
        toks.append(tok)
        if c:
            tok.text = tok.text[: c.start()].rstrip()
            toks.append(_Tok("closing", c.group(0).strip()[1:-1].strip(), line=n))
    return toks


def _continues_previous(toks: list[_Tok]) -> bool:
    """A short line right after an unfinished body paragraph (captions aside) is its other half."""
    for t in reversed(toks):
        if t.kind == "caption":
            continue
        return t.kind == "body" and not ends_sentence(t.text)
    return False


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
