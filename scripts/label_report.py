"""How good are the section labels? Evaluate the rules + lexicon labeller and count the labels of a corpus.

    python scripts/label_report.py --against ../shared/gold/dev.jsonl      # precision/recall vs a labelled file
    python scripts/label_report.py --corpus                                # label counts over the config's data
    python scripts/label_report.py --config reference --against gold/corpus-labels.csv --corpus

``--against`` takes a JSONL with id, title, text, label (and optionally source), or a CSV/TSV of id,label
whose ids are looked up in the config's data. The labeller is judged on rules and lexicons alone: gold
files are ignored for the evaluation, so the numbers say how well it labels articles nobody has labelled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Replace the scripts/ folder on the path with the repo root: scripts/evaluate.py would otherwise
# shadow the `evaluate` package, and the repo root lets a checkout run without installing.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from newsclf.config import load_config, parse_value  # noqa: E402
from newsclf.data.labeling import (  # noqa: E402
    evaluate_labeller,
    format_evaluation,
    format_label_report,
    label_articles,
    label_report,
    load_articles_for_labelling,
    read_labelled_rows,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="reference",
                    help="config file or shipped name (default: reference, the real-corpus run)")
    ap.add_argument("--rules", help="label rules YAML (default: the config's label_rules)")
    ap.add_argument("--against", action="append", default=[],
                    help="labelled file to evaluate the labeller on (repeatable)")
    ap.add_argument("--corpus", action="store_true", help="label the config's data and print the label report")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    ap.add_argument("--errors", type=int, default=0, help="also list this many disagreements per --against file")
    args = ap.parse_args(argv)
    if not args.against and not args.corpus:
        ap.error("nothing to do: give --against FILE and/or --corpus")

    overrides = {k: parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
    if args.rules:
        overrides["label_rules"] = args.rules
    config = load_config(args.config, overrides)
    corpus = None
    for path in args.against:
        rows = read_labelled_rows(path)
        if rows and "title" not in rows[0]:  # an id,label file: fetch the articles from the config's data
            corpus = corpus if corpus is not None else load_articles_for_labelling(config)
            by_id = {a["id"]: a for a in corpus.to_list()}
            rows = [{**by_id[r["id"]], "label": r["label"]} for r in rows if r["id"] in by_id]
        ev = evaluate_labeller(rows, config)
        print(f"== labeller vs {path} (rules: {config.label_rules or 'shipped default'}; gold ignored)")
        print(format_evaluation(ev))
        for e in ev["errors"][: args.errors]:
            print(f"  {e['id']}: gold {e['gold']}, labeller {e['pred']}  {e['evidence']}")
        print()
    if args.corpus:
        corpus = corpus if corpus is not None else load_articles_for_labelling(config)
        labelled = label_articles(corpus, config)
        print(f"== labels over {', '.join(config.data)} (gold: {', '.join(config.gold) or 'none'})")
        print(format_label_report(label_report(labelled)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
