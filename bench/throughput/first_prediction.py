"""Time from starting a server to its first correct prediction.

Starts COMMAND, then POSTs the image FILE (multipart field `image`) to
http://127.0.0.1:PORT/model/predict every 2 ms until an answer predicts DIGIT; prints the
milliseconds from the start to that answer, then stops the server (SIGTERM, and waits).

    python3 first_prediction.py PORT FILE DIGIT -- COMMAND...
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time

BOUNDARY = "firstpredictionboundary"


def form(image):
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"digit.png\"\r\n"
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def predicted(port, body):
    """The predicted digit, or None while the server is not answering yet."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request(
            "POST", "/model/predict", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        )
        response = connection.getresponse()
        if response.status != 200:
            return None
        return json.loads(response.read())["predictions"][0]["prediction"]
    except OSError:
        return None


def main():
    port, file, digit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    command = sys.argv[sys.argv.index("--") + 1 :]
    with open(file, "rb") as image:
        body = form(image.read())
    started = time.monotonic()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while time.monotonic() - started < 120:
            if server.poll() is not None:
                sys.exit(f"the server exited with status {server.returncode} before answering")
            answer = predicted(port, body)
            if answer is not None:
                if answer != digit:
                    sys.exit(f"the first prediction was {answer}, not {digit}")
                print(f"{(time.monotonic() - started) * 1000:.0f}")
                return
            time.sleep(0.002)
        sys.exit("no prediction within 120 s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


if __name__ == "__main__":
    main()
