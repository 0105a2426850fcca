"""Medians of bench/batch_delay.sh's runs, one row per request kind, concurrency and delay.

    python3 delays.py RESULTS_DIR    (wrk outputs named delayD_SCENARIO_cC_runN.txt)
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

from summarise import medians, parse_wrk


def main():
    results = Path(sys.argv[1])
    runs = defaultdict(list)
    for path in results.glob("delay*_c*_run*.txt"):
        delay, scenario, concurrency, _run = re.fullmatch(r"delay(\d+)_(.+)_c(\d+)_run(\d+)\.txt", path.name).groups()
        runs[(scenario != "single", int(concurrency), int(delay))].append(parse_wrk(path.read_text()))
    lines = [
        "| request | concurrency | MAX_BATCH_DELAY_US | req/s | images/s | p50 | p99 | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (batch, concurrency, delay), point in sorted(runs.items()):
        point = medians(point)
        images = 32 if batch else 1
        lines.append(
            f"| {'32 images' if batch else '1 image'} | {concurrency} | {delay} | {point['rps']:,.0f} "
            f"| {point['rps'] * images:,.0f} | {point['p50_ms']:.2f} ms | {point['p99_ms']:.2f} ms | {point['errors']:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    (results / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
