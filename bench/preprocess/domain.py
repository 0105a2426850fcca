"""How well one model's `in_domain` tells its own kind of picture from others, through the HTTP API.

POSTs every image of an in-domain set and of each out-of-domain set (folders made by
make_eval_sets.py; their labels are not used) to /models/MODEL/predict, and gives the share of
each set flagged (`in_domain: false`) and, for each out-of-domain set and for all of them
together, the AUROC of the served `domain_score` against the in-domain set's. An answer other
than 200 is counted apart (the preprocessing found nothing to classify) and left out of both.
For the committed fashion-mnist model: `--in-domain fashion-test --out-of-domain mnist-test letters`.

Usage: domain.py --url URL --model NAME --sets DIR --in-domain SET --out-of-domain SET... --out FILE.json
"""
import argparse
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from score import auroc, predict, rows_of


def answers_of(pool, url, folder):
    """The domain scores and flags of the set in `folder`, and the status codes other than 200."""
    rows = rows_of(folder)
    scores, flagged, refused = [], [], Counter()
    for status, body, _ in pool.map(lambda row: predict(url, folder / row["file"]), rows):
        if body is None:
            refused[str(status)] += 1
            continue
        scores.append(body["domain_score"])
        flagged.append(body.get("in_domain") is False)
    return {"images": len(rows), "refused": dict(refused), "scores": scores,
            "flagged_percent": round(100 * sum(flagged) / len(flagged), 2) if flagged else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the server's base URL")
    parser.add_argument("--model", required=True, help="the served model's name")
    parser.add_argument("--sets", type=Path, required=True, help="folder of sets from make_eval_sets.py")
    parser.add_argument("--in-domain", required=True, help="the set of the model's own kind of picture")
    parser.add_argument("--out-of-domain", nargs="+", required=True, help="sets of other pictures")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    args = parser.parse_args()

    url = f"{args.url.rstrip('/')}/models/{args.model}/predict"
    with ThreadPoolExecutor(args.concurrency) as pool:
        sets = {name: answers_of(pool, url, args.sets / name) for name in [args.in_domain, *args.out_of_domain]}
    own = sets[args.in_domain]["scores"]
    others = {name: sets[name]["scores"] for name in args.out_of_domain}
    others["all out-of-domain"] = [score for scores in others.values() for score in scores]
    aurocs = {name: round(auroc(own, scores), 4) for name, scores in others.items() if scores}
    for result in sets.values():
        del result["scores"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "in_domain": args.in_domain, "sets": sets,
                                    "auroc": aurocs}, indent=2) + "\n")

    print(f"| {args.model}: set | images | not 200 | flagged (`in_domain: false`) | AUROC against {args.in_domain} |")
    print("|---|---:|---:|---:|---:|")
    for name, result in sets.items():
        flagged = "n/a" if result["flagged_percent"] is None else f"{result['flagged_percent']:.2f}%"
        against = f"{aurocs[name]:.4f}" if name in aurocs else ""
        print(f"| {name} | {result['images']} | {sum(result['refused'].values())} | {flagged} | {against} |")
    print(f"| all out-of-domain | | | | {aurocs['all out-of-domain']:.4f} |")


if __name__ == "__main__":
    main()
