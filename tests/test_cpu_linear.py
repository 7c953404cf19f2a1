"""Packed oneDNN linears for bf16 inference: same outputs as the stock layers, within bf16 rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from newsclf.config import DEFAULT_LABELS as LABELS
from newsclf.cpu_linear import PackedLinear, pack_linears, packing_available
from newsclf.modeling import build_model

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN linear ops")


@pytest.mark.parametrize("activation", [None, "gelu", "relu"])
@pytest.mark.parametrize("rows", [1, 37])
def test_packed_linear_matches_linear(activation, rows):
    torch.manual_seed(0)
    lin = torch.nn.Linear(24, 40).to(torch.bfloat16)
    x = torch.randn(rows, 24, dtype=torch.bfloat16)
    with torch.inference_mode():
        want = lin(x).float()
        want = {None: want, "gelu": F.gelu(want), "relu": F.relu(want)}[activation]
        got = PackedLinear(lin, activation)(x)
        got3d = PackedLinear(lin, activation)(x.unsqueeze(0))
    assert got.shape == (rows, 40) and got.dtype == torch.bfloat16
    assert got3d.shape == (1, rows, 40)
    # bf16 keeps ~3 significant digits; values here reach ~4, so 0.05 is a few units in the last place.
    assert torch.allclose(got.float(), want, atol=5e-2), (got.float() - want).abs().max()


def test_pack_linears_keeps_the_models_logits(tiny_backbone, toy_rows):
    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    enc = tok([r["title"] + r["text"][:40] for r in toy_rows[:4]], padding=True, return_tensors="pt")
    model = build_model(tiny_backbone, LABELS, pooling="mean").eval().to(torch.bfloat16)
    with torch.no_grad():
        # A random classifier gives near-zero logits; scale it so a wrong layer would show.
        model.classifier.weight.mul_(50)
    n_linear = sum(type(m) is torch.nn.Linear for m in model.modules())
    with torch.inference_mode():
        want = model(**enc).logits.float()
        swapped = pack_linears(model)
        got = model(**enc).logits.float()
    assert swapped == n_linear
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    intermediate = model.bert.encoder.layer[0].intermediate
    assert isinstance(intermediate.intermediate_act_fn, torch.nn.Identity) and intermediate.dense.attr == "gelu"
    assert torch.allclose(got, want, atol=0.1 + 0.02 * want.abs().max()), (got - want).abs().max()
    assert (got.argmax(1) == want.argmax(1)).all()


def test_fp32_models_are_left_alone(tiny_backbone):
    model = build_model(tiny_backbone, LABELS, pooling="cls").eval()
    assert pack_linears(model) == 0
    assert isinstance(model.classifier, torch.nn.Linear)
