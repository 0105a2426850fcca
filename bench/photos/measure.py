"""Posts every photo of a set to a server's /model/predict, one request at a time, and
records, per photo, the wall time from the first byte sent to the last byte of the answer
(loopback), the status and whether the digit was right. Bodies are built before timing.
With --concurrency N, N clients post at once instead (a flood), client i the i-th photo
(cycling through the set), once per run.

Usage: measure.py URL SET_DIR OUT.json [--runs 3] [--concurrency N]
"""
import argparse
import csv
import http.client
import json
import threading
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
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    rows = list(csv.DictReader(open(args.set_dir / "labels.csv")))
    bodies = {row["file"]: multipart(args.set_dir / row["file"]) for row in rows}
    results = []
    lock = threading.Lock()

    def client(index):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        photos = rows if args.concurrency == 1 else [rows[index % len(rows)]]
        for run in range(args.runs):
            for row in photos:
                boundary, body = bodies[row["file"]]
                started = time.perf_counter()
                headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
                try:
                    connection.request("POST", url.path, body, headers)
                    response = connection.getresponse()
                    status, answer = response.status, response.read()
                except OSError:  # a refusal that closed the connection under the upload
                    connection.close()
                    status, answer = None, b""
                seconds = time.perf_counter() - started
                label = json.loads(answer)["predictions"][0]["label"] if status == 200 else None
                with lock:
                    results.append({"run": run, "file": row["file"], "bytes": len(body), "status": status,
                                    "seconds": seconds, "right": label == row["label"]})

    threads = [threading.Thread(target=client, args=(index,)) for index in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
