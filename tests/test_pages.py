"""split_page on the real sample page, on our two shipped pages (exact structure) and on small bad inputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsclf.data.pages import Article, ends_sentence, page_to_records, split_page

PAGES = Path(__file__).resolve().parents[1] / "newsclf" / "corpus" / "pages"
SAMPLE = "pages/pingdingshan-daily-2024-01-page.md"


def _plain(md: str) -> str:
    """The same page without Markdown: headings become bare lines, as a PDF-to-text tool would give."""
    return re.sub(r"(?m)^#+\s*", "", md)


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _check_invariants(page: str, arts: list[Article]) -> None:
    """Properties every split must have, whatever the page."""
    for art in arts:
        paras = art.paragraphs
        # Every body paragraph except subheadings ends a sentence: column breaks were all rejoined.
        for p in paras:
            if p not in art.subheadings:
                assert ends_sentence(p), (art.title, p[-20:])
        # Captions and bylines were pulled out of the body.
        for cap in art.captions:
            assert _squash(cap) not in _squash(art.text)
            assert cap.split()[-1] not in art.text
        # No paragraph twice.
        keys = [_squash(p) for p in paras if p not in art.subheadings]
        assert len(keys) == len(set(keys)), art.title
        assert art.text == art.text.strip()
    # Nothing lost: every character of the page (minus markup and whitespace) is in some field.
    kept = "".join(
        _squash(a.title + a.text + "".join(a.kicker + a.bylines + a.captions) + a.subtitle) for a in arts
    )
    page_chars = _squash(_plain(page)).replace("（", "").replace("）", "").replace("(", "").replace(")", "")
    kept = kept.replace("（", "").replace("）", "").replace("(", "").replace(")", "")
    dup_chars = sum(a.duplicates_removed for a in arts)
    assert len(kept) <= len(page_chars)
    if not dup_chars:
        assert sorted(kept) == sorted(page_chars)
    for ch in set(page_chars):
        assert ch in kept


@pytest.mark.shared
@pytest.mark.parametrize("plain", [False, True], ids=["markdown", "plain-text"])
def test_sample_page_structure(shared_dir, plain):
    page = (shared_dir / SAMPLE).read_text(encoding="utf-8")
    if plain:
        page = _plain(page)
    arts = split_page(page)
    assert len(arts) == 8
    assert all(a.title and a.text for a in arts)
    # The long feature keeps its three subheadings and ends with one closing byline.
    feature = [a for a in arts if a.subheadings]
    assert len(feature) == 1 and feature[0].index == 0
    assert len(feature[0].subheadings) == 3
    assert len(feature[0].bylines) == 1 and "记者" in feature[0].bylines[0]
    # The page banner and the kicker above the first headline are kept as kicker lines, not as articles.
    assert len(arts[0].kicker) == 2
    # Its photo caption sat between the halves of a broken paragraph: pulled out, halves rejoined.
    assert len(feature[0].captions) == 1 and feature[0].captions[0].endswith("摄")
    assert feature[0].joined_breaks == 3
    # Every other article is a separate story with exactly one byline (author line or dateline).
    assert all(len(a.bylines) == 1 for a in arts)
    assert sum(a.bylines[0].startswith("本报讯") for a in arts) == 5
    assert sum(1 for a in arts if a.kicker) == 3
    assert sum(a.joined_breaks for a in arts) == 10
    # One paragraph was printed twice; exactly one copy is kept.
    assert [a.duplicates_removed for a in arts].count(1) == 1
    assert sum(a.duplicates_removed for a in arts) == 1
    _check_invariants(page, arts)


@pytest.mark.shared
def test_sample_page_is_stable_and_plain_equals_markdown(shared_dir):
    page = (shared_dir / SAMPLE).read_text(encoding="utf-8")
    first = [a.to_dict() for a in split_page(page)]
    assert first == [a.to_dict() for a in split_page(page)]
    assert first == [a.to_dict() for a in split_page(_plain(page))]
    # Windows line endings and full-width indentation change nothing.
    crlf = "\r\n".join("\u3000\u3000" + line for line in page.split("\n"))
    assert first == [a.to_dict() for a in split_page(crlf)]


# (title, kicker, subtitle, bylines, n_captions, n_subheadings, joined_breaks, duplicates_removed, n_paragraphs)
# fmt: off
EXPECTED = {
    "city-daily-page-1.md": [
        ("东湖区：织密汛期“安全网”", ["守牢安全底线 护航高质量发展", "防汛备汛进行时"], "",
         ["本报记者 周晓岚 通讯员 方志成"], 1, 3, 1, 0, 10),
        ("防汛没有“旁观者”", [], "", ["林一帆"], 0, 0, 1, 0, 4),
        ("青石县非遗展演走进城市社区", ["文化走亲"], "", ["本报讯（记者 何思雨 通讯员 龙小溪）"], 0, 0, 0, 1, 4),
        ("北塘区推行“一窗通办” 企业开办压缩至半天", [], "", ["本报讯（记者 宋明哲）"], 1, 0, 1, 0, 2),
        ("溪川至云港城际铁路开工建设", [], "", ["本报讯（记者 罗建平）", "记者 罗建平"], 0, 0, 0, 0, 2),
    ],
    "city-daily-page-2.md": [
        ("小网格里的“红色引擎”", ["江河日报 · 基层治理", "喜迎建党纪念日"], "——北塘区推进党建引领网格化治理见闻",
         ["本报记者 陈嘉禾 通讯员 刘思远"], 1, 3, 1, 0, 10),
        ("让“小网格”释放“大能量”", ["江河时评"], "", ["本报评论员 韩清"], 0, 0, 0, 0, 3),
        ("市人大常委会开展物业管理条例执法检查", [], "", ["本报讯（记者 易婉清）"], 0, 0, 1, 1, 4),
        ("社区书屋“夜读”受欢迎", [], "", ["本报讯（记者 何思雨）"], 1, 0, 0, 0, 2),
        ("夏季“夜经济”持续升温", [], "", ["本报讯（记者 罗建平）", "记者 罗建平 实习生 苏航"], 0, 0, 0, 0, 2),
    ],
}
# fmt: on


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("plain", [False, True], ids=["markdown", "plain-text"])
def test_shipped_pages_exact_structure(name, plain):
    page = (PAGES / name).read_text(encoding="utf-8")
    if plain:
        page = _plain(page)
    arts = split_page(page)
    got = [
        (
            a.title,
            a.kicker,
            a.subtitle,
            a.bylines,
            len(a.captions),
            len(a.subheadings),
            a.joined_breaks,
            a.duplicates_removed,
            len(a.paragraphs),
        )
        for a in arts
    ]
    assert got == EXPECTED[name]
    assert [a.index for a in arts] == list(range(len(arts)))
    _check_invariants(page, arts)


def test_shipped_page_repairs_are_the_right_ones():
    arts = split_page((PAGES / "city-daily-page-1.md").read_text(encoding="utf-8"))
    flood, comment, culture, service, _ = arts
    # A word cut by a column break with a photo between its halves is whole again, the photo is a caption.
    assert "做到接令即动、快速处置。" in flood.text
    assert flood.captions[0].startswith("5月21日") and "抢险队伍" not in flood.text.split("接令即动")[1]
    assert flood.subheadings == ["隐患排查不留死角", "物资队伍提前到位", "预警信息直达末梢"]
    # Subheadings stay in the body as their own lines, in place.
    assert flood.paragraphs[1] == "隐患排查不留死角"
    assert "地下车库的挡水板是否到位" in comment.text
    # The repeated quote is kept once, at its first place.
    assert culture.text.count("竹马舞我小时候") == 1 and culture.paragraphs[1].startswith("“竹马舞")
    # A one-line caption (图为… 摄) between halves of a paragraph.
    assert "全程免费办理" in service.text and service.captions[0].startswith("图为")
    page2 = split_page((PAGES / "city-daily-page-2.md").read_text(encoding="utf-8"))
    # The repeated paragraph's second copy was itself broken across columns; still recognised.
    assert page2[2].text.count("检查组指出") == 1
    assert "停车位划线等事项" in page2[0].text


def test_plain_text_page_without_markup():
    page = (
        "城南区开展消防安全大检查\n"
        "本报讯（记者 林一）3月2日，城南区组织开展消防安全大检查，重点检查商场、\n"
        "学校和养老机构。\n"
        "检查发现隐患15处，已全部督促整改。\n"
        "春季读书节开幕\n"
        "市图书馆春季读书节昨日开幕，将持续一个月。\n"
        "活动期间，图书馆每周举办两场讲座。\n"
    )
    arts = split_page(page)
    assert [a.title for a in arts] == ["城南区开展消防安全大检查", "春季读书节开幕"]
    assert arts[0].bylines == ["本报讯（记者 林一）"]
    assert arts[0].paragraphs[0] == "3月2日，城南区组织开展消防安全大检查，重点检查商场、学校和养老机构。"
    assert arts[0].joined_breaks == 1
    assert arts[1].bylines == [] and len(arts[1].paragraphs) == 2


def test_deeper_markdown_heading_is_a_subheading_and_rule_closes_article():
    page = (
        "# 老街焕新颜\n\n本报讯 老街改造完成，街面整洁。\n\n### 一、拆违腾地\n\n共拆除违建40处。\n\n"
        "---\n\n# 新学期开学\n\n全市中小学今日开学。\n"
    )
    arts = split_page(page)
    assert [a.title for a in arts] == ["老街焕新颜", "新学期开学"]
    assert arts[0].subheadings == ["一、拆违腾地"]
    assert arts[0].bylines == ["本报讯"]
    assert arts[0].text == "老街改造完成，街面整洁。\n一、拆违腾地\n共拆除违建40处。"


def test_headings_without_any_subheading_signal_are_separate_articles():
    page = "## 甲地新闻\n\n甲地今日召开会议。\n\n## 乙地新闻\n\n乙地今日举办展览。\n"
    assert [a.title for a in split_page(page)] == ["甲地新闻", "乙地新闻"]


def test_page_to_records_gives_stable_ids_and_section():
    page = (PAGES / "city-daily-page-2.md").read_text(encoding="utf-8")
    recs = page_to_records(page, source="jhrb-p2", date="2024-06-27")
    assert [r["id"] for r in recs] == [f"jhrb-p2-{i:03d}" for i in range(5)]
    assert recs[0]["section"] == "江河日报 · 基层治理" and recs[1]["section"] == "江河时评"
    assert recs[2]["section"] == "" and all(r["date"] == "2024-06-27" for r in recs)
    assert recs == page_to_records(page, source="jhrb-p2", date="2024-06-27")


@pytest.mark.parametrize("page", ["", "   \n\n\u3000\n"])
def test_empty_page_is_an_error(page):
    with pytest.raises(ValueError, match="empty page"):
        split_page(page)


def test_page_without_headline_is_an_error():
    body = "今天上午，市里召开会议，部署下一阶段工作。\n会议要求各部门抓好落实，确保取得实效。\n"
    with pytest.raises(ValueError, match="no headline.*Add the headlines"):
        split_page(body)


def test_page_with_headlines_but_no_body_is_an_error():
    with pytest.raises(ValueError, match="no article body"):
        split_page("## 第一版\n\n要闻\n")


def test_binary_text_is_an_error():
    with pytest.raises(ValueError, match=r"NUL characters \(first at character 3\).*binary"):
        split_page("标题\n\x00\x01正文。")
    with pytest.raises(TypeError, match="decode bytes first"):
        split_page(b"## title")  # type: ignore[arg-type]


def test_plain_page_short_headline_question_headline_and_author_names():
    page = (
        "文化走亲\n春耕时节\n田野里一片繁忙景象，农民正在播种。\n"
        "防汛，你准备好了吗？\n王小明\n汛期将至，各地要提前做好准备。\n"
    )
    arts = split_page(page)
    # 春耕时节 is four characters like a name, but no surname: a headline, with 文化走亲 as its kicker.
    assert [(a.title, a.kicker, a.bylines) for a in arts] == [
        ("春耕时节", ["文化走亲"], []),
        ("防汛，你准备好了吗？", [], ["王小明"]),
    ]


def test_body_before_the_first_headline_is_kept_as_an_untitled_article():
    page = "（本报记者 张三）\n\n上接第一版的内容写在这里。\n\n## 新闻标题\n\n本报讯 这是正文。\n"
    first, second = split_page(page)
    assert (first.title, first.text, first.bylines) == ("", "上接第一版的内容写在这里。", ["本报记者 张三"])
    assert (second.title, second.text, second.bylines) == ("新闻标题", "这是正文。", ["本报讯"])
