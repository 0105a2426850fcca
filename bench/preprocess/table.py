"""The before/after Markdown table from two score.py reports: one row per set, its accuracy
under each server (with the count of non-200 answers, if any), and the issue's targets.

Usage: table.py BEFORE.json AFTER.json
"""
import json
import sys

# The targets: MNIST's own test set must not regress while realistic uploads improve.
TARGETS = {"mnist-test": 99.4}
REALISTIC_TARGET = 97.0


def cell(result):
    errors = f" ({result['non_200']} non-200)" if result["non_200"] else ""
    return f"{result['accuracy_percent']:.2f}%{errors}"


def main():
    before, after = (json.load(open(path)) for path in sys.argv[1:3])
    print(f"| set | images | before: {before['label']} | after: {after['label']} | target |")
    print("|---|---:|---:|---:|---:|")
    for name, result in after["sets"].items():
        old = before["sets"].get(name)
        print(f"| {name} | {result['images']} | {cell(old) if old else 'n/a'} | {cell(result)} "
              f"| ≥ {TARGETS.get(name, REALISTIC_TARGET)}% |")


if __name__ == "__main__":
    main()
