"""Posts every photo of a set to a server's /model/predict, one request at a time, and
records, per photo, the wall time from the first byte sent to the last byte of the answer
(loopback), the status and whether the digit was right. Bodies are built before timing.

Usage: measure.py URL SET_DIR OUT.json [--runs 3]
"""
import argparse
import csv
import http.client
import json
import time
import urllib.parse
import uuid
from pathlib import Path


def multipart(path):
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return boundary, head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("set_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    rows = list(csv.DictReader(open(args.set_dir / "labels.csv")))
    bodies = {row["file"]: multipart(args.set_dir / row["file"]) for row in rows}
    results = []
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    for run in range(args.runs):
        for row in rows:
            boundary, body = bodies[row["file"]]
            started = time.perf_counter()
            connection.request("POST", url.path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
            response = connection.getresponse()
            answer = response.read()
            seconds = time.perf_counter() - started
            label = json.loads(answer)["predictions"][0]["label"] if response.status == 200 else None
            results.append({"run": run, "file": row["file"], "bytes": len(body), "status": response.status,
                            "seconds": seconds, "right": label == row["label"]})
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
