"""The mean-pooling layer and the inference shortcut that skips its per-token work."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from newsclf.config import DEFAULT_LABELS as LABELS
from newsclf.modeling import MeanPoolShortcut, build_model, has_mean_pool_layer
from newsclf.predict import Classifier


def _batch(backbone, rows):
    tok = AutoTokenizer.from_pretrained(backbone)
    # Different lengths, so the batch carries padding that the mean must ignore.
    enc = tok([r["title"] + r["text"][: 5 + 7 * i] for i, r in enumerate(rows[:6])], padding=True,
              return_tensors="pt")
    assert (enc["attention_mask"] == 0).any()
    return enc["input_ids"], enc["attention_mask"]


def _randomise_head(model):
    # A freshly built head starts near identity; random weights make the comparison less forgiving.
    torch.manual_seed(1)
    with torch.no_grad():
        model.bert.pooler.dense.weight.normal_(0, 0.5)
        model.classifier.weight.normal_(0, 0.5)


def test_mean_pool_layer_is_the_masked_mean(tiny_backbone, toy_rows):
    model = build_model(tiny_backbone, LABELS).eval()
    ids, mask = _batch(tiny_backbone, toy_rows)
    with torch.no_grad():
        out = model.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hidden = out.hidden_states[-2]
    w = mask.unsqueeze(-1).float()
    mean = (hidden * w).sum(1) / w.sum(1)
    normalised = torch.nn.functional.layer_norm(mean, mean.shape[-1:], eps=model.config.layer_norm_eps)
    # The [CLS] output is the normalised mean (the residual [CLS] is 1/1000 of it), not the [CLS] state.
    assert torch.allclose(out.last_hidden_state[:, 0], normalised, atol=5e-3)
    assert not torch.allclose(out.last_hidden_state[:, 0], hidden[:, 0], atol=5e-2)


def test_shortcut_gives_the_stock_logits(tiny_backbone, toy_rows):
    model = build_model(tiny_backbone, LABELS).eval()
    _randomise_head(model)
    assert has_mean_pool_layer(model)
    ids, mask = _batch(tiny_backbone, toy_rows)
    with torch.no_grad():
        stock = model(input_ids=ids, attention_mask=mask).logits
        fast = MeanPoolShortcut(model)(ids, mask)
    assert stock.abs().max() > 0.1
    assert torch.allclose(fast, stock, atol=1e-5), (fast - stock).abs().max()


def test_classifier_uses_the_shortcut_only_where_it_is_exact(tiny_backbone):
    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    meta = {"labels": LABELS, "input_mode": "head", "max_length": 32}
    mean_model = build_model(tiny_backbone, LABELS)
    assert Classifier(mean_model, tok, meta, precision="fp32")._forward is not None
    cls_model = build_model(tiny_backbone, LABELS, pooling="cls")
    assert not has_mean_pool_layer(cls_model)
    assert Classifier(cls_model, tok, meta, precision="fp32")._forward is None
    # A pooling layer whose query weights were changed no longer averages: the stock forward must run.
    broken = build_model(tiny_backbone, LABELS)
    with torch.no_grad():
        broken.bert.encoder.layer[-1].attention.self.query.weight[0, 0] = 0.5
    assert not has_mean_pool_layer(broken)
    assert Classifier(broken, tok, meta, precision="fp32")._forward is None


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_shortcut_runs_at_reduced_precision(tiny_backbone, toy_rows, precision):
    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    meta = {"labels": LABELS, "input_mode": "head", "max_length": 32}
    model = build_model(tiny_backbone, LABELS)
    _randomise_head(model)
    ref = Classifier(build_model(tiny_backbone, LABELS), tok, meta, precision="fp32")
    _randomise_head(ref.model)
    clf = Classifier(model, tok, meta, precision=precision)
    assert clf._forward is not None
    articles = [(r["title"], r["text"]) for r in toy_rows]
    got, want = clf.logits(articles), ref.logits(articles)
    assert got.shape == want.shape
    assert abs(got - want).max() < 0.1 * abs(want).max()
