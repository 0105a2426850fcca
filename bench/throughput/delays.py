"""Medians of bench/batch_delay.sh's runs, one row per delay and concurrency.

    python3 delays.py RESULTS_DIR    (wrk outputs named delayD_cC_runN.txt)
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
        delay, concurrency, _run = map(int, re.fullmatch(r"delay(\d+)_c(\d+)_run(\d+)\.txt", path.name).groups())
        runs[(concurrency, delay)].append(parse_wrk(path.read_text()))
    lines = ["| concurrency | MAX_BATCH_DELAY_US | req/s | p50 | p99 | errors |", "|---:|---:|---:|---:|---:|---:|"]
    for (concurrency, delay), point in sorted(runs.items()):
        point = medians(point)
        lines.append(
            f"| {concurrency} | {delay} | {point['rps']:,.0f} | {point['p50_ms']:.2f} ms | {point['p99_ms']:.2f} ms "
            f"| {point['errors']:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    (results / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
