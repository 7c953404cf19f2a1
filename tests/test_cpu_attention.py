"""The blocked CPU attention used for bf16 inference: same results as the stock SDPA path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from newsclf import cpu_attention
from newsclf.config import DEFAULT_LABELS as LABELS
from newsclf.modeling import build_model


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_blocked_attention_matches_sdpa_with_padding(dtype, tol):
    torch.manual_seed(0)
    # 5 sequences: the last block is a partial one.
    q, k, v = (torch.randn(5, 3, 17, 8, dtype=dtype) for _ in range(3))
    keep = torch.ones(5, 17, dtype=torch.bool)
    keep[1, 9:] = False
    keep[4, 2:] = False
    bias = cpu_attention.padding_bias(attention_mask=keep, dtype=dtype)
    assert bias.shape == (5, 1, 1, 17)
    with torch.inference_mode():
        got, weights = cpu_attention.blocked_attention(torch.nn.Module(), q, k, v, bias)
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :]).transpose(1, 2)
    assert weights is None and got.shape == (5, 17, 3, 8)
    assert torch.allclose(got.float(), want.float(), atol=tol), (got.float() - want.float()).abs().max()


def test_padding_bias_is_none_without_padding():
    assert cpu_attention.padding_bias(attention_mask=torch.ones(2, 4, dtype=torch.bool)) is None
    assert cpu_attention.padding_bias(attention_mask=None) is None


def test_model_with_blocked_attention_gives_the_sdpa_logits(tiny_backbone, toy_rows):
    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    enc = tok([r["title"] + r["text"][: 3 + 9 * i] for i, r in enumerate(toy_rows[:5])], padding=True,
              return_tensors="pt")
    assert (enc["attention_mask"] == 0).any()
    model = build_model(tiny_backbone, LABELS, pooling="cls").eval()
    with torch.inference_mode():
        want = model(**enc).logits
        model.set_attn_implementation(cpu_attention.register())
        got = model(**enc).logits
    assert model.config._attn_implementation == cpu_attention.NAME
    # Padding that leaked into attention would change the padded rows by far more than this.
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_training_falls_back_to_sdpa(tiny_backbone, toy_rows):
    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    enc = tok([r["title"] for r in toy_rows[:3]], padding=True, return_tensors="pt")
    model = build_model(tiny_backbone, LABELS, pooling="cls")
    model.set_attn_implementation(cpu_attention.register())
    loss = model(**enc, labels=torch.tensor([0, 1, 2])).loss
    loss.backward()
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad is not None
