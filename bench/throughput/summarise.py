"""Medians of bench/throughput.sh's runs, as a Markdown table and JSON, with the targets.

Reads RESULTS_DIR: wrk outputs named SERVER_SCENARIO_cC_runN.txt and facts.txt (lines of
`SERVER KEY VALUE`: memory in kB, start-up times in ms). Writes table.md and summary.json
there and prints the table.

    python3 summarise.py RESULTS_DIR
"""

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

OURS, REFERENCE = "max-mnist", "reference"
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(text):
    """req/s, p50 and p99 in ms, and errors (non-2xx responses plus socket errors)."""

    def latency(percentile):
        value, unit = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
        return float(value) * UNIT_MS[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    requests = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    return {"rps": requests, "p50_ms": latency(50), "p99_ms": latency(99), "errors": errors}


def medians(runs):
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]} | {"runs": len(runs)}


def main():
    results = Path(sys.argv[1])
    runs = defaultdict(list)
    for path in sorted(results.glob("*_c*_run*.txt")):
        server, scenario, concurrency, _run = re.fullmatch(r"(.+)_(.+)_c(\d+)_run(\d+)\.txt", path.name).groups()
        runs[(server, scenario, int(concurrency))].append(parse_wrk(path.read_text()))
    points = {key: medians(value) for key, value in runs.items()}
    facts = defaultdict(lambda: defaultdict(list))
    for line in (results / "facts.txt").read_text().splitlines():
        server, key, value = line.split()
        facts[server][key].append(float(value))
    fact = {server: {key: statistics.median(values) for key, values in keys.items()} for server, keys in facts.items()}

    def point(server, scenario, concurrency):
        return points.get((server, scenario, concurrency))

    lines = [
        "| concurrency | max-mnist req/s | p50 | p99 | errors | reference req/s | p50 | p99 | errors | req/s ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency in sorted({c for (_s, scenario, c) in points if scenario == "single"}):
        ours, reference = point(OURS, "single", concurrency), point(REFERENCE, "single", concurrency)
        lines.append(
            f"| {concurrency} | {ours['rps']:,.0f} | {ours['p50_ms']:.2f} ms | {ours['p99_ms']:.2f} ms | {ours['errors']:.0f} "
            f"| {reference['rps']:,.0f} | {reference['p50_ms']:.2f} ms | {reference['p99_ms']:.2f} ms "
            f"| {reference['errors']:.0f} | **{ours['rps'] / reference['rps']:.1f}×** |"
        )
    photo_ours, photo_reference = point(OURS, "photo", 64), point(REFERENCE, "photo", 64)
    if photo_ours and photo_reference:
        lines.append(
            f"| 64, a 534×454 photo | {photo_ours['rps']:,.0f} | {photo_ours['p50_ms']:.2f} ms | {photo_ours['p99_ms']:.2f} ms "
            f"| {photo_ours['errors']:.0f} | {photo_reference['rps']:,.0f} | {photo_reference['p50_ms']:.2f} ms "
            f"| {photo_reference['p99_ms']:.2f} ms | {photo_reference['errors']:.0f} "
            f"| {photo_ours['rps'] / photo_reference['rps']:.1f}× |"
        )

    ours_fact, reference_fact = fact[OURS], fact[REFERENCE]
    batch = point(OURS, "batch32", 8)
    single_reference_8 = point(REFERENCE, "single", 8)
    lines += [
        "",
        "| | max-mnist | reference | ratio |",
        "|---|---:|---:|---:|",
        f"| memory after warm-up (max-mnist RSS; reference PSS of master + 2 workers) | {ours_fact['rss_warm_kb'] / 1024:.0f} MiB "
        f"| {reference_fact['pss_warm_kb'] / 1024:.0f} MiB | {ours_fact['rss_warm_kb'] / reference_fact['pss_warm_kb']:.2f} |",
        f"| memory after the load | {ours_fact['rss_loaded_kb'] / 1024:.0f} MiB "
        f"| {reference_fact['pss_loaded_kb'] / 1024:.0f} MiB | {ours_fact['rss_loaded_kb'] / reference_fact['pss_loaded_kb']:.2f} |",
        f"| start to first correct prediction (median of {len(facts[OURS]['start_ms'])}) | {ours_fact['start_ms']:.0f} ms "
        f"| {reference_fact['start_ms']:.0f} ms | {ours_fact['start_ms'] / reference_fact['start_ms']:.2f} |",
    ]
    if batch:
        lines.append(
            f"| images/s, 32-image forms at c=8 (reference: one image per request, c=8) | {batch['rps'] * 32:,.0f} "
            f"(p99 {batch['p99_ms']:.1f} ms, {batch['errors']:.0f} errors) | {single_reference_8['rps']:,.0f} "
            f"| {batch['rps'] * 32 / single_reference_8['rps']:.1f}× |"
        )

    ratio_64 = point(OURS, "single", 64)["rps"] / point(REFERENCE, "single", 64)["rps"]
    targets = [
        ("req/s at c=64 ≥ 10× the reference (floor 5×)", f"{ratio_64:.1f}×", ratio_64 >= 10),
        ("p99 at c=8 ≤ 5 ms", f"{point(OURS, 'single', 8)['p99_ms']:.2f} ms", point(OURS, "single", 8)["p99_ms"] <= 5),
        ("no errors at c=256", f"{point(OURS, 'single', 256)['errors']:.0f}", point(OURS, "single", 256)["errors"] == 0),
        (
            "RSS ≤ ⅓ of the reference's summed PSS",
            f"{ours_fact['rss_loaded_kb'] / reference_fact['pss_loaded_kb']:.2f}",
            ours_fact["rss_loaded_kb"] * 3 <= reference_fact["pss_loaded_kb"],
        ),
        ("start to first prediction ≤ 1 s", f"{ours_fact['start_ms']:.0f} ms", ours_fact["start_ms"] <= 1000),
    ]
    lines += ["", "| target | measured | met |", "|---|---:|:---:|"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in targets]

    table = "\n".join(lines) + "\n"
    (results / "table.md").write_text(table)
    summary = {"points": {f"{s}/{sc}/c{c}": v for (s, sc, c), v in points.items()}, "facts": fact}
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
