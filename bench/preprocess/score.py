"""Scores a running server on the evaluation sets through its HTTP API.

POSTs every image listed in SETS/<set>/labels.csv to /model/predict (multipart field `image`)
and counts, per set, correct and wrong top-1 answers; a non-200 answer counts as wrong, and its
status code and a few of its messages are recorded. For the served probability it gives the
expected calibration error (ECE, 15 equal-width bins of the top probability, over the 200
answers). For "not a digit" it gives the share of each set flagged (`in_domain: false`) and,
for each out-of-domain set (label `none`), the AUROC of the served `domain_score` against the
MNIST test set's (with a server that serves no domain score, of the top probability instead).
Writes the figures as JSON and prints Markdown tables. A server that stops answering aborts
the run rather than scoring zeros.

Usage: score.py --url http://127.0.0.1:PORT --sets DIR --label NAME --out FILE.json [--concurrency 8]
"""
import argparse
import csv
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from scipy.stats import rankdata

EXAMPLES_KEPT = 5
CALIBRATION_BINS = 15
NOT_A_DIGIT = "none"
IN_DOMAIN_SET = "mnist-test"
local = threading.local()


def predict(url, path):
    """(status code, the first prediction's body or None, error message or None) for one image."""
    if not hasattr(local, "session"):  # a Session is not meant to be shared between threads
        local.session = requests.Session()
    with open(path, "rb") as image:
        answer = local.session.post(url, files={"image": (f"image{path.suffix}", image)}, timeout=120)
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code == 200:
        return 200, body["predictions"][0], None
    return answer.status_code, None, body.get("message", answer.text[:200])


def expected_calibration_error(confidences, correct, bins=CALIBRATION_BINS):
    """Σ over equal-width bins of |accuracy - mean confidence| × the bin's share of answers."""
    confidences, correct = np.asarray(confidences, float), np.asarray(correct, float)
    if len(confidences) == 0:
        return None
    which = np.minimum((confidences * bins).astype(int), bins - 1)
    gaps = [abs(correct[which == b].mean() - confidences[which == b].mean()) * np.mean(which == b)
            for b in range(bins) if np.any(which == b)]
    return float(np.sum(gaps))


def auroc(positives, negatives):
    """The probability that a random positive scores above a random negative (ties count half)."""
    ranks = rankdata(np.concatenate([positives, negatives]))
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def uncalibrated(probabilities, temperature):
    """The softmax of the logits themselves, from the softmax of the logits over `temperature`:
    p^T, normalised (the logits are T·log p plus a constant per image)."""
    raised = np.asarray(probabilities, float) ** temperature
    return raised / raised.sum()


def rows_of(folder):
    """The rows of a set's labels.csv (`file`, `label`, ...), as make_eval_sets.py wrote them."""
    with open(folder / "labels.csv", newline="") as listing:
        return list(csv.DictReader(listing))


def score_set(pool, url, folder, temperature):
    rows = rows_of(folder)
    answers = pool.map(lambda row: predict(url, folder / row["file"]), rows)
    digits = rows[0]["label"] != NOT_A_DIGIT if rows else True
    result = {"images": len(rows), "correct": 0, "wrong": 0, "non_200": 0, "status_codes": Counter(),
              "error_examples": [], "wrong_examples": [], "domain_score_served": False}
    confidences, correct, scores, flagged, raw_confidences = [], [], [], [], []
    for row, (status, body, message) in zip(rows, answers):
        result["status_codes"][str(status)] += 1
        if body is not None:
            confidences.append(body["probability"])
            raw_confidences.append(uncalibrated(body["probabilities"], temperature).max())
            correct.append(digits and body["prediction"] == int(row["label"]))
            scores.append(body.get("domain_score", body["probability"]))
            result["domain_score_served"] = "domain_score" in body
            flagged.append(body.get("in_domain") is False)
        if not digits:
            continue
        if body is not None and body["prediction"] == int(row["label"]):
            result["correct"] += 1
            continue
        result["wrong"] += 1
        if status != 200:
            result["non_200"] += 1
            if len(result["error_examples"]) < EXAMPLES_KEPT:
                result["error_examples"].append({"file": row["file"], "status": status, "message": message})
        elif len(result["wrong_examples"]) < EXAMPLES_KEPT:
            result["wrong_examples"].append({"file": row["file"], "label": int(row["label"]),
                                             "prediction": body["prediction"], "probability": body["probability"]})
    result["digits"] = digits
    result["accuracy_percent"] = round(100 * result["correct"] / len(rows), 2) if digits else None
    result["ece_percent"] = (round(100 * expected_calibration_error(confidences, correct), 2)
                             if digits and confidences else None)
    result["ece_uncalibrated_percent"] = (round(100 * expected_calibration_error(raw_confidences, correct), 2)
                                          if digits and confidences else None)
    result["flagged_percent"] = round(100 * np.mean(flagged), 2) if flagged else None
    result["domain_scores"] = scores
    return result


def out_of_domain(sets, domain_score_served):
    """AUROC of each out-of-domain set and of all of them together against the MNIST test set."""
    if IN_DOMAIN_SET not in sets:
        return {}
    digits = sets[IN_DOMAIN_SET]["domain_scores"]
    others = {name: result["domain_scores"] for name, result in sets.items() if not result["digits"]}
    if others:
        others["all out-of-domain"] = [score for scores in others.values() for score in scores]
    return {name: {"auroc": round(auroc(digits, scores), 4),
                   "score": "domain_score" if domain_score_served else "top probability"}
            for name, scores in others.items() if scores}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the server's base URL")
    parser.add_argument("--sets", type=Path, required=True, help="folder of sets from make_eval_sets.py")
    parser.add_argument("--label", required=True, help="name of this server in the report")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    args = parser.parse_args()

    url = args.url.rstrip("/") + "/model/predict"
    metadata = requests.get(args.url.rstrip("/") + "/model/metadata", timeout=30).json()
    temperature = metadata.get("calibration", {}).get("temperature", 1.0)
    folders = sorted(path.parent for path in args.sets.glob("*/labels.csv"))
    with ThreadPoolExecutor(args.concurrency) as pool:
        sets = {folder.name: score_set(pool, url, folder, temperature) for folder in folders}
    auroc_by_set = out_of_domain(sets, all(result["domain_score_served"] for result in sets.values()))
    for result in sets.values():
        del result["domain_scores"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"label": args.label, "url": args.url, "temperature": temperature, "sets": sets,
              "out_of_domain": auroc_by_set}
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    percent = lambda value: "n/a" if value is None else f"{value:.2f}%"
    print(f"| set ({args.label}) | images | correct | wrong | non-200 | accuracy | ECE at T=1 "
          f"| ECE served (T={temperature:.3f}) | flagged not a digit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in sets.items():
        print(f"| {name} | {result['images']} | {result['correct']} | {result['wrong']} | {result['non_200']} "
              f"| {percent(result['accuracy_percent'])} | {percent(result['ece_uncalibrated_percent'])} "
              f"| {percent(result['ece_percent'])} | {percent(result['flagged_percent'])} |")
    if auroc_by_set:
        print(f"\n| out of domain ({args.label}) | AUROC against {IN_DOMAIN_SET} | score |")
        print("|---|---:|---|")
        for name, figures in auroc_by_set.items():
            print(f"| {name} | {figures['auroc']:.4f} | {figures['score']} |")


if __name__ == "__main__":
    main()
