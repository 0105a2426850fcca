"""Scores a running server on the evaluation sets through its HTTP API.

POSTs every image listed in SETS/<set>/labels.csv to /model/predict (multipart field `image`)
and counts, per set, correct and wrong top-1 answers; a non-200 answer counts as wrong, and its
status code and a few of its messages are recorded. Writes the counts as JSON and prints a
Markdown table. A server that stops answering aborts the run rather than scoring zeros.

Usage: score.py --url http://127.0.0.1:PORT --sets DIR --label NAME --out FILE.json [--concurrency 8]
"""
import argparse
import csv
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

EXAMPLES_KEPT = 5
local = threading.local()


def predict(url, path):
    """(status code, predicted digit or None, error message or None) for one image."""
    if not hasattr(local, "session"):  # a Session is not meant to be shared between threads
        local.session = requests.Session()
    with open(path, "rb") as image:
        answer = local.session.post(url, files={"image": (f"image{path.suffix}", image)}, timeout=120)
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code == 200:
        return 200, body["predictions"][0]["prediction"], None
    return answer.status_code, None, body.get("message", answer.text[:200])


def score_set(pool, url, folder):
    with open(folder / "labels.csv", newline="") as listing:
        rows = list(csv.DictReader(listing))
    answers = pool.map(lambda row: predict(url, folder / row["file"]), rows)
    result = {"images": len(rows), "correct": 0, "wrong": 0, "non_200": 0, "status_codes": Counter(),
              "error_examples": [], "wrong_examples": []}
    for row, (status, prediction, message) in zip(rows, answers):
        result["status_codes"][str(status)] += 1
        if prediction == int(row["label"]):
            result["correct"] += 1
            continue
        result["wrong"] += 1
        if status != 200:
            result["non_200"] += 1
            if len(result["error_examples"]) < EXAMPLES_KEPT:
                result["error_examples"].append({"file": row["file"], "status": status, "message": message})
        elif len(result["wrong_examples"]) < EXAMPLES_KEPT:
            result["wrong_examples"].append({"file": row["file"], "label": int(row["label"]), "prediction": prediction})
    result["accuracy_percent"] = round(100 * result["correct"] / len(rows), 2)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the server's base URL")
    parser.add_argument("--sets", type=Path, required=True, help="folder of sets from make_eval_sets.py")
    parser.add_argument("--label", required=True, help="name of this server in the report")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    args = parser.parse_args()

    url = args.url.rstrip("/") + "/model/predict"
    folders = sorted(path.parent for path in args.sets.glob("*/labels.csv"))
    with ThreadPoolExecutor(args.concurrency) as pool:
        sets = {folder.name: score_set(pool, url, folder) for folder in folders}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"label": args.label, "url": args.url, "sets": sets}, indent=2) + "\n")

    print(f"| set ({args.label}) | images | correct | wrong | non-200 | accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, result in sets.items():
        print(f"| {name} | {result['images']} | {result['correct']} | {result['wrong']} | {result['non_200']} "
              f"| {result['accuracy_percent']:.2f}% |")


if __name__ == "__main__":
    main()
