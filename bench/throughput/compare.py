"""The table of alternate_servers (bench/throughput/alternate.sh): for each concurrency, the
medians of req/s and p99 of two servers' wrk runs, and the ratio SECOND/FIRST of req/s.

    python3 compare.py OUT FIRST SECOND CONCURRENCY...
"""

import statistics
import sys
from pathlib import Path

from summarise import parse_wrk


def main():
    out, first, second, *concurrencies = sys.argv[1:]
    out = Path(out)
    print(f"| concurrency | {first} req/s | {second} req/s | {second}/{first} | {first} p99 (ms) | "
          f"{second} p99 (ms) | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for concurrency in concurrencies:
        runs = {side: [parse_wrk(path.read_text()) for path in sorted(out.glob(f"{side}_c{concurrency}_run*.txt"))]
                for side in (first, second)}
        median = {side: {key: statistics.median(run[key] for run in runs[side]) for key in ("rps", "p99_ms")}
                  for side in runs}
        errors = sum(run["errors"] for side in runs for run in runs[side])
        print(f"| {concurrency} | {median[first]['rps']:,.0f} | {median[second]['rps']:,.0f} | "
              f"**{median[second]['rps'] / median[first]['rps']:.2f}** | {median[first]['p99_ms']:.2f} | "
              f"{median[second]['p99_ms']:.2f} | {errors} |")


if __name__ == "__main__":
    main()
