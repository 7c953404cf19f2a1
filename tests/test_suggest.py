"""`newsclf suggest`: what it queues, why, and that the queue is a valid newsclf queue."""

from __future__ import annotations

import json

import numpy as np
import pytest

from newsclf.queue import read_queue, write_queue
from newsclf.suggest import REASONS, rank_candidates
from tests.conftest import TOY_ARTICLES

LABELS = ["governance", "party_building", "safety", "culture", "other"]


def _pool():
    """Toy articles twice over (the second copy reversed), with rules-style labels: some wrong, some missing."""
    ids, titles, texts, given, sources, truth = [], [], [], [], [], []
    for k, (lab, t, x) in enumerate(TOY_ARTICLES):
        for copy in (0, 1):
            ids.append(f"a{k:02d}-{copy}")
            # the copy reversed: the same characters for the TF-IDF model, no shared 4-grams (not a near-duplicate)
            titles.append(t if copy == 0 else t[::-1])
            texts.append(x if copy == 0 else x[::-1])
            truth.append(lab)
            given.append(lab)
            sources.append("lexicon")
    given[2], given[10], given[20] = "other", "culture", "safety"  # wrong rule labels
    given[5] = given[15] = given[25] = None  # the labeller abstained
    for i in (0, 8, 16):
        sources[i] = "gold"
    return ids, titles, texts, given, sources, truth


def test_queue_rows_are_valid_and_skip_gold(tmp_path):
    ids, titles, texts, given, sources, _ = _pool()
    queue = rank_candidates(ids, titles, texts, given, sources, LABELS, n=12, folds=3, cache=False)
    assert len(queue) == 12
    assert len({r["id"] for r in queue}) == 12
    gold = {ids[i] for i in (0, 8, 16)}
    assert not gold & {r["id"] for r in queue}
    for r in queue:
        assert r["reason"] in REASONS and r["reason"] == r["reasons"][0]
        assert r["suggested"] in LABELS
        assert abs(sum(r["scores"]["probs"].values()) - 1) < 1e-3
        assert r["score"] == pytest.approx(max(r["scores"]["probs"].values()), abs=1e-3)
    assert [r["rank"] for r in queue] == list(range(1, 13))
    back = read_queue(write_queue(queue, tmp_path / "q.jsonl"))
    assert [r["id"] for r in back] == [r["id"] for r in queue]


def test_near_duplicates_collapsed_and_gold_twins_skipped():
    ids, titles, texts, given, sources, _ = _pool()
    # a near-copy of article 1 and one of gold article 0
    ids += ["dup-1", "dup-0"]
    titles += [titles[2], titles[0]]
    texts += [texts[2] + "。", texts[0] + "。"]
    given += [given[2], given[0]]
    sources += ["lexicon", "lexicon"]
    queue = rank_candidates(ids, titles, texts, given, sources, LABELS, n=len(ids), folds=3, cache=False)
    queued = {r["id"] for r in queue}
    assert "dup-0" not in queued  # its twin is already gold
    assert len(queued & {"a01-0", "dup-1"}) == 1  # one of the pair
    from newsclf.data.splits import group_near_duplicates

    groups = group_near_duplicates([f"{t}\n{x}" for t, x in zip(titles, texts)], 0.8)
    gold_groups = {groups[i] for i, s in enumerate(sources) if s == "gold"}
    group_of = dict(zip(ids, groups))
    assert sorted(group_of[i] for i in queued) == sorted(set(groups) - gold_groups)  # one per group without gold


def test_seeded_and_reproducible():
    args = _pool()[:5]
    a = rank_candidates(*args, LABELS, n=10, folds=3, seed=3, cache=False)
    b = rank_candidates(*args, LABELS, n=10, folds=3, seed=3, cache=False)
    assert [r["id"] for r in a] == [r["id"] for r in b]


def test_quota_reads_every_label_and_model_signals():
    from newsclf.data.splits import group_near_duplicates

    ids, titles, texts, given, sources, _ = _pool()
    n = len(ids)
    groups = group_near_duplicates([f"{t}\n{x}" for t, x in zip(titles, texts)], 0.8)
    # two rule-labelled governance articles alone in their near-duplicate group (tiny texts can share one)
    alone = [i for i in range(n) if given[i] == "governance" and sources[i] == "lexicon"
             and (groups == groups[i]).sum() == 1]
    u, d = alone[:2]
    probs = np.full((n, 5), 0.01)
    probs[np.arange(n), [LABELS.index(g) if g else 4 for g in given]] = 0.96  # model agrees with the rules
    probs[u] = [0.2, 0.2, 0.2, 0.2, 0.2]  # unsure
    probs[d] = [0.01, 0.01, 0.01, 0.96, 0.01]  # sure it is culture; the rules said governance
    queue = rank_candidates(ids, titles, texts, given, sources, LABELS, n=5, folds=3, model_probs=probs, cache=False)
    by_id = {r["id"]: r for r in queue}
    assert {r["suggested"] for r in queue} == set(LABELS)  # one of each: the quota
    assert by_id[ids[d]]["reason"] == "disagreement" and by_id[ids[d]]["scores"]["rule_label"] == "governance"
    free = rank_candidates(ids, titles, texts, given, sources, LABELS, n=2, folds=3, model_probs=probs, cache=False,
                           quota=False)
    assert [r["id"] for r in free] == [ids[u], ids[d]]  # priority 1.0 (uniform), then 0.99 (1 - P(rule label))
    assert free[0]["reason"] == "uncertainty"


def test_bad_arguments():
    args = _pool()[:5]
    with pytest.raises(ValueError, match="positive"):
        rank_candidates(*args, LABELS, n=0, folds=3, cache=False)
    with pytest.raises(ValueError, match="shape"):
        rank_candidates(*args, LABELS, n=3, folds=3, model_probs=np.ones((2, 5)), cache=False)
    bad = list(args)
    bad[3] = ["sports"] + list(bad[3][1:])
    with pytest.raises(ValueError, match="sports"):
        rank_candidates(*bad, LABELS, n=3, folds=3, cache=False)


def _toy_jsonl(path, with_labels=False):
    with open(path, "w", encoding="utf-8") as f:
        for k, (lab, t, x) in enumerate(TOY_ARTICLES * 2):
            row = {"id": f"t{k}", "title": t if k < 20 else t + "，", "text": x if k < 20 else x[::-1]}
            if with_labels:
                row["label"] = lab
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def test_cli_with_model_and_cache(tmp_path, tiny_model, capsys, monkeypatch):
    from newsclf.cli import main

    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path / "cache"))
    data = _toy_jsonl(tmp_path / "archive.jsonl")
    gold = tmp_path / "gold.csv"
    gold.write_text("id,label\nt0,governance\nt4,party_building\nnot-in-this-archive,culture\n", encoding="utf-8")
    out = tmp_path / "queue.jsonl"
    argv = ["suggest", str(data), "--n", "6", "--out", str(out), "--model", str(tiny_model), "--gold", str(gold),
            "--folds", "3"]
    assert main(argv) == 0
    queue = read_queue(out)
    assert len(queue) == 6 and not {"t0", "t4"} & {r["id"] for r in queue}
    assert all(r["scores"]["source"] == "model" and isinstance(r["keywords"], list) for r in queue)
    assert "6 articles queued" in capsys.readouterr().err
    cached = list((tmp_path / "cache" / "scores").glob("model-*.npz"))
    assert len(cached) == 1
    assert main(argv) == 0 and [r["id"] for r in read_queue(out)] == [r["id"] for r in queue]  # from the cache


def test_cli_errors(tmp_path, capsys):
    from newsclf.cli import main

    data = _toy_jsonl(tmp_path / "archive.jsonl")
    assert main(["suggest", str(data), "--n", "0", "--out", str(tmp_path / "q.jsonl")]) == 2
    assert main(["suggest", str(data), "--n", "3", "--out", str(tmp_path)]) == 2
    assert main(["suggest", str(tmp_path / "missing.jsonl"), "--n", "3", "--out", str(tmp_path / "q.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err
    labelled = _toy_jsonl(tmp_path / "labelled.jsonl", with_labels=True)
    assert main(["suggest", str(labelled), "--n", "3", "--out", str(tmp_path / "q.jsonl"), "--folds", "3"]) == 0
    assert "0 articles queued" in capsys.readouterr().err  # everything is already labelled
