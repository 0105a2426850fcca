"""The Open Inference Protocol as tritonclient's documentation uses it, against a running
max-mnist: health, metadata, and `infer` with JSON and with binary tensor data, for pixels
[N, 1, 28, 28] and [N, 784] and for encoded images as BYTES, and the "not a digit" outputs.
Every answer is checked against the MNIST labels and against what `/model/predict` says of the
same image.

Usage: tritonclient_checks.py HOST:PORT (run from the repository root, with data/mnist).
Exits non-zero, naming the check, at the first failure.
"""

import base64
import json
import sys
import urllib.request
from importlib.metadata import version
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException
from urllib3 import encode_multipart_formdata

ADDRESS = sys.argv[1]
MODEL = "mnist"
DIGITS = 16
SAMPLES = [f"digit-{digit}.png" for digit in range(10)] + ["photo-4-exif.jpg", "scan-3.jpg"]


def mnist_test_set(count):
    """The first `count` MNIST test digits as pixels in [0, 1], [count, 1, 28, 28], and their labels."""
    with open("data/mnist/t10k-images-idx3-ubyte", "rb") as images:
        pixels = np.frombuffer(images.read()[16 : 16 + count * 784], np.uint8)
    with open("data/mnist/t10k-labels-idx1-ubyte", "rb") as labels:
        digits = np.frombuffer(labels.read()[8 : 8 + count], np.uint8)
    return (pixels / 255).astype(np.float32).reshape(count, 1, 28, 28), digits


def prediction(name):
    """What `/model/predict` answers for the sample `name`, posted as a form."""
    body, content_type = encode_multipart_formdata({"image": (name, Path("samples", name).read_bytes())})
    request = urllib.request.Request(
        f"http://{ADDRESS}/model/predict", data=body, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["predictions"][0]


def predict(name):
    """The probabilities `/model/predict` gives for the sample `name`."""
    return np.array(prediction(name)["probabilities"], np.float32)


def close(left, right, tolerance, what):
    check(left.shape == right.shape and np.allclose(left, right, atol=tolerance, rtol=0), f"{what}: {left} is not {right}")


def infer(client, tensor, binary_input, binary_output, **options):
    """`probabilities` for one input tensor, each way round of JSON and binary data."""
    datatype = "BYTES" if tensor.dtype == np.object_ else "FP32"
    name = "images" if datatype == "BYTES" else "pixels"
    request_input = httpclient.InferInput(name, list(tensor.shape), datatype)
    request_input.set_data_from_numpy(tensor, binary_data=binary_input)
    output = httpclient.InferRequestedOutput("probabilities", binary_data=binary_output)
    result = client.infer(MODEL, [request_input], outputs=[output], **options)
    return result.as_numpy("probabilities"), result.get_response()


checks = 0


def check(condition, what):
    global checks
    if not condition:
        sys.exit(f"failed: {what}")
    checks += 1


client = httpclient.InferenceServerClient(url=ADDRESS)
check(client.is_server_live(), "the server is live")
check(client.is_server_ready(), "the server is ready")
check(client.is_model_ready(MODEL), "the model is ready")
check(not client.is_model_ready("no-such-model"), "an unknown model is not ready")
server = client.get_server_metadata()
check(server["name"] == "max-mnist" and "binary_tensor_data" in server["extensions"], f"server metadata: {server}")
metadata = client.get_model_metadata(MODEL)
served = metadata["versions"][0]
check(metadata["name"] == MODEL and len(served) == 12, f"model metadata: {metadata}")
shapes = {tensor["name"]: (tensor["datatype"], tensor["shape"]) for tensor in metadata["inputs"]}
check(shapes == {"pixels": ("FP32", [-1, 1, 28, 28]), "images": ("BYTES", [-1])}, f"inputs: {shapes}")
check(client.is_model_ready(MODEL, model_version=served), "the served version is ready")

# Pixels: the four combinations of JSON and binary data agree, and read the MNIST labels.
pixels, labels = mnist_test_set(DIGITS)
reference, answer = infer(client, pixels, binary_input=True, binary_output=True)
check(answer["model_name"] == MODEL and answer["model_version"] == served, f"answer: {answer}")
check(reference.shape == (DIGITS, 10), f"shape {reference.shape}")
check((reference.argmax(axis=1) == labels).all(), f"{reference.argmax(axis=1)} against the labels {labels}")
for binary_input, binary_output in [(False, False), (True, False), (False, True)]:
    probabilities, _ = infer(client, pixels, binary_input, binary_output)
    close(probabilities, reference, 1e-6, f"pixels, binary input {binary_input}, output {binary_output}")
flat, _ = infer(client, pixels.reshape(DIGITS, 784), binary_input=True, binary_output=True)
close(flat, reference, 1e-6, "pixels as [N, 784]")
versioned, _ = infer(client, pixels, True, True, model_version=served)
close(versioned, reference, 1e-6, f"pixels on version {served}")

# Images: raw bytes in binary, base64 text in JSON; both as /model/predict says.
encoded = [Path("samples", name).read_bytes() for name in SAMPLES]
binary_images, _ = infer(client, np.array(encoded, dtype=np.object_), binary_input=True, binary_output=True)
base64_images = np.array([base64.b64encode(image) for image in encoded], dtype=np.object_)
json_images, _ = infer(client, base64_images, binary_input=False, binary_output=False)
for index, name in enumerate(SAMPLES):
    expected = predict(name)
    close(binary_images[index], expected, 1e-5, f"{name} in binary against /model/predict")
    close(json_images[index], expected, 1e-5, f"{name} in JSON against /model/predict")
check([int(name.split("-")[1].split(".")[0]) for name in SAMPLES] == list(binary_images.argmax(axis=1)), "images")

# "Not a digit": `in_domain` (BOOL) and `domain_score` (FP32), asked for by name, in binary and
# in JSON, say what /model/predict says of a digit and of a bag.
outputs = {tensor["name"]: (tensor["datatype"], tensor["shape"]) for tensor in metadata["outputs"]}
check(
    outputs == {"probabilities": ("FP32", [-1, 10]), "domain_score": ("FP32", [-1]), "in_domain": ("BOOL", [-1])},
    f"outputs: {outputs}",
)
names = ["digit-7.png", "fashion-bag.png"]
images = httpclient.InferInput("images", [len(names)], "BYTES")
images.set_data_from_numpy(np.array([Path("samples", name).read_bytes() for name in names], dtype=np.object_))
expected = [prediction(name) for name in names]
for binary_output in (True, False):
    asked = [httpclient.InferRequestedOutput(name, binary_data=binary_output) for name in ("in_domain", "domain_score")]
    result = client.infer(MODEL, [images], outputs=asked)
    flags = result.as_numpy("in_domain")
    check(flags.dtype == np.bool_ and flags.tolist() == [True, False], f"in_domain, binary {binary_output}: {flags}")
    check(flags.tolist() == [answer["in_domain"] for answer in expected], "in_domain as /model/predict says")
    scores = np.array([answer["domain_score"] for answer in expected], np.float32)
    close(result.as_numpy("domain_score"), scores, 1e-3, f"domain_score, binary {binary_output}")
    check(result.as_numpy("probabilities") is None, "only the outputs asked for")

# A refusal reaches the client as the server's message.
try:
    infer(client, np.zeros((1, 1, 27, 27), np.float32), True, True)
    sys.exit("failed: a 27×27 input was accepted")
except InferenceServerException as error:
    check("has shape [N, 1, 28, 28] or [N, 784]" in str(error), f"the refusal says why: {error}")

print(f"tritonclient {version('tritonclient')}: {checks} checks passed")
