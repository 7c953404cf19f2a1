"""The lines of a printed newspaper page, each classified for :func:`newsclf.data.pages.split_page`.

:func:`_tokenize` reads a page (plain text or light Markdown) line by line and tells what each line is on
its own and next to its neighbours: a Markdown heading, a short headline-like line (title, kicker,
column name or subheading; see :func:`_is_short`), a body paragraph (with its opening dateline cut off),
a photo caption or credit, a closing byline such as ``（本报记者 张三）``, or a ``---`` rule. The splitter
then decides, from the sequence of these tokens, where one article ends and the next begins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A title, kicker or subheading is rarely longer than this; longer unpunctuated lines are body fragments.
SHORT_MAX = 40
# A caption is a sentence or two; a longer paragraph before a photo credit is body text, not its caption.
CAPTION_MAX = 150

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
