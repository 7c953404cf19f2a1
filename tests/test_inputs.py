from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from newsclf.inputs import article_text, encode_article, encode_articles, pool_chunk_logits


@pytest.fixture(scope="module")
def tok(tiny_backbone):
    return AutoTokenizer.from_pretrained(tiny_backbone)


def test_article_text_puts_title_first():
    assert article_text(" 标题 ", "正文") == "标题\n正文"
    assert article_text("", "正文") == "正文"


@pytest.mark.parametrize("mode", ["head", "head_tail", "chunks"])
def test_modes_respect_max_length_and_special_tokens(tok, mode):
    text = "市应急管理局开展安全生产隐患排查。" * 40
    seqs = encode_article(tok, "隐患排查", text, mode=mode, max_length=32, max_chunks=3)
    assert all(len(s) <= 32 for s in seqs)
    assert all(s[0] == tok.cls_token_id and s[-1] == tok.sep_token_id for s in seqs)
    assert len(seqs) == (3 if mode == "chunks" else 1)


def test_head_tail_keeps_the_end(tok):
    text = "会议" * 200 + "博物馆"
    seq = encode_article(tok, "标题", text, mode="head_tail", max_length=30)[0]
    assert tok.decode(seq[-4:-1]).replace(" ", "") == "博物馆"


def test_huge_text_is_bounded(tok):
    seqs = encode_article(tok, "标题", "安全" * 500_000, mode="chunks", max_length=64, max_chunks=2)
    assert len(seqs) == 2


def test_pool_chunk_logits_averages_per_article():
    out = pool_chunk_logits([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]], [0, 0, 1], 2)
    assert out.tolist() == [[2.0, 1.0], [5.0, 5.0]]


def test_unknown_mode(tok):
    with pytest.raises(ValueError, match="input mode 'tail' is not one of head, head_tail, chunks"):
        encode_article(tok, "a", "b", mode="tail")


@pytest.mark.parametrize("mode", ["head", "head_tail", "chunks"])
def test_many_articles_at_once_encode_as_one_at_a_time(tok, mode):
    # One tokenizer call for a list of texts gives the ids of one call per article.
    base = "市应急管理局开展安全生产隐患排查。"
    articles = [("隐患排查", base * n) for n in (0, 1, 3, 12, 40)] + [("", ""), ("标题", ""), ("", "正文 \n 结尾")]
    singles = [encode_article(tok, t, x, mode=mode, max_length=32, max_chunks=3) for t, x in articles]
    for n in (1, 2, 3, 4, len(articles)):
        assert encode_articles(tok, articles[:n], mode=mode, max_length=32, max_chunks=3) == singles[:n]
    assert encode_articles(tok, [], mode=mode) == []
