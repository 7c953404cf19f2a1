#!/usr/bin/env python3
"""Benchmarks written as JSON: `backbone` (full vs restricted vocabulary), `train` (newsclf vs plain HF
Trainer fine-tuning), `predict` (newsclf.predict vs transformers.pipeline). Example:

    python scripts/bench.py train --out bench/train.json
    python scripts/bench.py predict --model runs/default/model --gold ../shared/gold/dev.jsonl
"""

import argparse
import json
import sys
from pathlib import Path

# Replace the scripts/ folder on the path with the repo root: scripts/evaluate.py would otherwise
# shadow the `evaluate` package, and the repo root lets a checkout run without installing.
sys.path[0] = str(Path(__file__).resolve().parents[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["backbone", "train", "predict"])
    parser.add_argument("--model", default="runs/default/model", help="saved model folder (predict)")
    parser.add_argument("--data", nargs="*", help="articles to run on (default: the embedded corpus)")
    parser.add_argument("--gold", help="labelled file: also report macro-F1 of each inference path (predict)")
    parser.add_argument("--n", type=int, default=None, help="number of articles")
    parser.add_argument("--out", help="JSON output (default: bench/<what>.json)")
    args = parser.parse_args()

    from newsclf import bench

    if args.what == "backbone":
        from newsclf.bench_backbone import bench_backbone

        result = bench_backbone(**({"n_articles": args.n} if args.n else {}))
    elif args.what == "train":
        result = bench.bench_train(data=args.data, **({"n_articles": args.n} if args.n else {}))
    else:
        result = bench.bench_predict(args.model, data=args.data, gold=args.gold, **({"n_articles": args.n} if args.n else {}))
    out = Path(args.out or f"bench/{args.what}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
