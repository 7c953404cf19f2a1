"""How good are the section labels? The label report of a labelled corpus and the labeller's evaluation.

:func:`label_report` counts a labelled dataset's labels, label sources and gold-vs-auto conflicts;
:func:`evaluate_labeller` scores the rules + lexicon labeller (gold ignored) against articles whose label is
known. :func:`run_label_report` is the ``newsclf label-report`` command behind both.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from newsclf.config import Config, load_config, parse_value
from newsclf.data.gold import load_articles_for_labelling, read_labelled_rows
from newsclf.data.label_rules import _resolve
from newsclf.data.lexicon_scorer import _rows, auto_labels


def label_report(dataset: Any, max_examples: int = 5) -> dict[str, Any]:
    """Coverage, counts per label / label source / data source, and gold-vs-auto conflicts of a labelled dataset."""
    for col in ("label", "label_source"):
        if col not in dataset.column_names:
            raise ValueError(f"label_report needs column {col!r}; found {dataset.column_names}. Run "
                             "label_articles(dataset, config) first")
    labels = dataset["label"]
    sources = dataset["label_source"]
    n = len(labels)
    labelled = sum(lab is not None for lab in labels)
    kinds = Counter(s.split(":")[0] if s.startswith("rule:") else s for s in sources)
    per_source = Counter(sources)
    data_src = dataset["source"] if "source" in dataset.column_names else ["?"] * n
    by_data: dict[str, Counter] = {}
    for lab, ds in zip(labels, data_src):
        by_data.setdefault(ds or "?", Counter())[lab or "(abstain)"] += 1
    conflicts: dict[str, Any] = {"count": 0, "pairs": Counter(), "examples": []}
    if "label_auto" in dataset.column_names:
        for gid, lab, src, auto in zip(dataset["id"], labels, sources, dataset["label_auto"]):
            if src.startswith("gold") and auto is not None and auto != lab:
                conflicts["count"] += 1
                conflicts["pairs"][f"gold={lab} auto={auto}"] += 1
                if len(conflicts["examples"]) < max_examples:
                    conflicts["examples"].append({"id": gid, "gold": lab, "auto": auto})
    conflicts["pairs"] = dict(conflicts["pairs"].most_common())
    return {
        "articles": n,
        "labelled": labelled,
        "coverage": labelled / n if n else 0.0,
        "per_label": dict(Counter(lab for lab in labels if lab is not None).most_common()),
        "per_source_kind": dict(kinds.most_common()),
        "per_label_source": dict(per_source.most_common()),
        "per_data_source": {k: dict(v.most_common()) for k, v in sorted(by_data.items())},
        "conflicts": conflicts,
    }


def format_label_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`label_report`'s result."""
    lines = [f"articles: {report['articles']}   labelled: {report['labelled']}   coverage: {report['coverage']:.1%}",
             "", "label            count   share"]
    for lab, c in report["per_label"].items():
        lines.append(f"{lab:<15} {c:>6}  {c / max(report['labelled'], 1):6.1%}")
    lines += ["", "label source                          count"]
    for s, c in report["per_label_source"].items():
        lines.append(f"{s:<36} {c:>6}")
    lines += ["", "per data source: " + "; ".join(
        f"{k}: " + ", ".join(f"{lab} {c}" for lab, c in v.items()) for k, v in report["per_data_source"].items())]
    conf = report["conflicts"]
    lines.append(f"conflicts (gold vs rules/lexicon): {conf['count']}")
    for pair, c in conf["pairs"].items():
        lines.append(f"  {pair}: {c}")
    for ex in conf["examples"]:
        lines.append(f"  e.g. {ex['id']}: gold {ex['gold']}, auto {ex['auto']}")
    return "\n".join(lines)


def evaluate_labeller(articles: Any, config: Config | None = None) -> dict[str, Any]:
    """Compare the rules + lexicon labeller (gold ignored) with the articles' own ``label`` column.

    Returns coverage, ``precision`` (accuracy on the articles it labels), per-label precision/recall/F1 and
    two macro-F1s: ``macro_f1_covered`` over labelled articles only, ``macro_f1_all`` with every abstention
    counted as wrong. ``by_source`` gives coverage and precision per data source (e.g. xwlb vs rmrb).
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    config, rules = _resolve(config)
    rows = _rows(articles)
    if not rows:
        raise ValueError("evaluate_labeller got no articles; pass a labelled dataset (id, title, text, label)")
    bad = [(i, r.get("label")) for i, r in enumerate(rows) if r.get("label") not in rules.labels]
    if bad:
        i, lab = bad[0]
        raise ValueError(f"article {rows[i].get('id')!r} (row {i}) has label {lab!r}, which is not in the label "
                         f"set {rules.labels}; evaluation needs every article labelled from that set")
    autos = auto_labels(rows, rules, use_lexicon=config.use_weak_labels)
    y_true = [r["label"] for r in rows]
    y_pred = [a[0] for a in autos]
    covered = [(t, p) for t, p in zip(y_true, y_pred) if p is not None]
    labels = rules.labels
    ABSTAIN = "(abstain)"
    yp_all = [p if p is not None else ABSTAIN for p in y_pred]
    p, r, f, s = precision_recall_fscore_support(y_true, yp_all, labels=labels, zero_division=0)
    per_label = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
                       "predicted": sum(x == lab for x in y_pred)} for i, lab in enumerate(labels)}
    ct, cp = [t for t, _ in covered], [q for _, q in covered]
    by_source: dict[str, dict[str, float]] = {}
    for src in sorted({str(r.get("source", "")) for r in rows}):
        idx = [i for i, r in enumerate(rows) if str(r.get("source", "")) == src]
        cov = [i for i in idx if y_pred[i] is not None]
        by_source[src or "?"] = {
            "articles": len(idx),
            "coverage": len(cov) / len(idx),
            "precision": (sum(y_pred[i] == y_true[i] for i in cov) / len(cov)) if cov else math.nan,
        }
    errors = [{"id": rows[i].get("id"), "gold": y_true[i], "pred": y_pred[i], "evidence": autos[i][2][:160]}
              for i in range(len(rows)) if y_pred[i] is not None and y_pred[i] != y_true[i]]
    return {
        "articles": len(rows),
        "labelled": len(covered),
        "coverage": len(covered) / len(rows),
        "precision": (sum(t == q for t, q in covered) / len(covered)) if covered else math.nan,
        # Recall here counts abstentions as misses, so it is recall over all articles of that label.
        "per_label": per_label,
        "macro_f1_covered": float(f1_score(ct, cp, labels=labels, average="macro", zero_division=0)) if covered else 0.0,
        "macro_f1_all": float(f1_score(y_true, yp_all, labels=labels, average="macro", zero_division=0)),
        "by_source": by_source,
        "errors": errors,
    }


def format_evaluation(ev: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_labeller`'s result."""
    lines = [f"articles: {ev['articles']}   labelled: {ev['labelled']}   coverage: {ev['coverage']:.1%}   "
             f"precision on labelled: {ev['precision']:.3f}",
             "", "label            prec  recall    f1  support  predicted"]
    for lab, m in ev["per_label"].items():
        lines.append(f"{lab:<15} {m['precision']:5.3f}  {m['recall']:5.3f}  {m['f1']:5.3f}  {m['support']:>7}  "
                     f"{m['predicted']:>9}")
    lines += ["", f"macro-F1 on labelled articles: {ev['macro_f1_covered']:.3f}",
              f"macro-F1 with abstentions counted wrong (recall over all): {ev['macro_f1_all']:.3f}", ""]
    for src, m in ev["by_source"].items():
        lines.append(f"source {src}: {m['articles']} articles, coverage {m['coverage']:.1%}, precision "
                     f"{m['precision']:.3f}")
    return "\n".join(lines)



LABEL_REPORT_USAGE = """\
Evaluate the rules + lexicon labeller and count the labels of a corpus.

    newsclf label-report --against ../shared/gold/dev.jsonl      # precision/recall vs a labelled file
    newsclf label-report --corpus                                # label counts over the config's data
    newsclf label-report --config reference --against gold/corpus-labels.csv --corpus

``--against`` takes a JSONL with id, title, text, label (and optionally source), or a CSV/TSV of id,label
whose ids are looked up in the config's data. The labeller is judged on rules and lexicons alone: gold
files are ignored for the evaluation, so the numbers say how well it labels articles nobody has labelled.
"""


def add_label_report_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``newsclf label-report`` options to ``ap`` (a parser or a subcommand's parser); returns it."""
    ap.add_argument("--config", default="reference",
                    help="config file or shipped name (default: reference, the real-corpus run)")
    ap.add_argument("--rules", help="label rules YAML (default: the config's label_rules)")
    ap.add_argument("--against", action="append", default=[],
                    help="labelled file to evaluate the labeller on (repeatable)")
    ap.add_argument("--corpus", action="store_true", help="label the config's data and print the label report")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    ap.add_argument("--errors", type=int, default=0, help="also list this many disagreements per --against file")
    return ap


def run_label_report(config: str | None = "reference", *, against: Sequence[str] = (), corpus: bool = False,
                     rules: str | None = None, overrides: Sequence[str] = (), errors: int = 0) -> int:
    """The ``newsclf label-report`` command: print the labeller's evaluation and/or a corpus label report.

    ``config`` is a config file or shipped name; ``against`` labelled files to evaluate the labeller on
    (see :data:`LABEL_REPORT_USAGE`); ``corpus`` also labels the config's data and prints
    :func:`label_report`; ``rules`` replaces the config's ``label_rules``; ``overrides`` are ``KEY=VALUE``
    config overrides (values read as YAML); ``errors`` lists that many disagreements per ``against`` file.
    Prints to standard output and returns the exit status (0). Raises ``ValueError`` when there is
    nothing to do.
    """
    # Imported here, not at the top: newsclf.data.labeling imports this module.
    from newsclf.data.labeling import label_articles

    if not against and not corpus:
        raise ValueError("nothing to do: give --against FILE and/or --corpus")
    parsed = {k: parse_value(v) for k, _, v in (s.partition("=") for s in overrides)}
    if rules:
        parsed["label_rules"] = rules
    cfg = load_config(config, parsed)
    articles = None
    for path in against:
        rows = read_labelled_rows(path)
        if rows and "title" not in rows[0]:  # an id,label file: fetch the articles from the config's data
            articles = articles if articles is not None else load_articles_for_labelling(cfg)
            by_id = {a["id"]: a for a in articles.to_list()}
            rows = [{**by_id[r["id"]], "label": r["label"]} for r in rows if r["id"] in by_id]
        ev = evaluate_labeller(rows, cfg)
        print(f"== labeller vs {path} (rules: {cfg.label_rules or 'shipped default'}; gold ignored)")
        print(format_evaluation(ev))
        for e in ev["errors"][:errors]:
            print(f"  {e['id']}: gold {e['gold']}, labeller {e['pred']}  {e['evidence']}")
        print()
    if corpus:
        articles = articles if articles is not None else load_articles_for_labelling(cfg)
        labelled = label_articles(articles, cfg)
        print(f"== labels over {', '.join(cfg.data)} (gold: {', '.join(cfg.gold) or 'none'})")
        print(format_label_report(label_report(labelled)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``newsclf label-report`` as a stand-alone entry point (``scripts/label_report.py`` calls it)."""
    ap = argparse.ArgumentParser(prog="newsclf label-report", description=LABEL_REPORT_USAGE,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    args = add_label_report_arguments(ap).parse_args(argv)
    if not args.against and not args.corpus:
        ap.error("nothing to do: give --against FILE and/or --corpus")
    return run_label_report(args.config, against=args.against, corpus=args.corpus, rules=args.rules,
                            overrides=args.set, errors=args.errors)


if __name__ == "__main__":
    sys.exit(main())
