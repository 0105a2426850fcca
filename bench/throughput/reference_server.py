"""The reference: an MNIST server written the way the Flask + PyTorch tutorials write one.

The same network and the same weights as max-mnist (read from its safetensors file,
MODEL_WEIGHTS, never from a pickle), or a user's TorchScript file (MODEL_TORCHSCRIPT, loaded
with `torch.jit.load`, as bench/own_model.sh serves the README's LeNet); one image per request
from the multipart field `image`, PIL to decode and resize to 28x28, MNIST's normalisation,
`torch.set_num_threads(1)`, and an answer of the same shape. Served by gunicorn with 2 sync
workers (bench/throughput.sh):

    MODEL_WEIGHTS=… gunicorn --workers 2 --bind 127.0.0.1:PORT reference_server:app
"""

import io
import os

import torch
import torch.nn.functional as F
from flask import Flask, jsonify, request
from PIL import Image
from safetensors.torch import load_file
from torch import nn

torch.set_num_threads(1)

MEAN, STD = 0.1307, 0.3081


class Block(nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(outputs)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.norm(self.conv(x))), 2)


class Net(nn.Module):
    """cnn-bn-8-16-32, with max-mnist's variable names."""

    def __init__(self):
        super().__init__()
        self.block1, self.block2, self.block3 = Block(1, 8), Block(8, 16), Block(16, 32)
        self.hidden = nn.Linear(32 * 3 * 3, 128)
        self.output = nn.Linear(128, 10)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(x)))
        return self.output(F.relu(self.hidden(x.flatten(1))))


if "MODEL_TORCHSCRIPT" in os.environ:
    model = torch.jit.load(os.environ["MODEL_TORCHSCRIPT"])
else:
    model = Net()
    model.load_state_dict(load_file(os.environ["MODEL_WEIGHTS"]))
model.eval()

app = Flask(__name__)


@app.post("/model/predict")
def predict():
    upload = request.files.get("image")
    if upload is None:
        return jsonify(status="error", message="no image"), 400
    image = Image.open(io.BytesIO(upload.read())).convert("L").resize((28, 28))
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).float() / 255.0
    batch = ((pixels - MEAN) / STD).view(1, 1, 28, 28)
    with torch.no_grad():
        probabilities = F.softmax(model(batch), dim=1)[0]
    digit = int(probabilities.argmax())
    prediction = dict(
        prediction=digit,
        label=str(digit),
        probability=float(probabilities[digit]),
        probabilities=probabilities.tolist(),
    )
    return jsonify(status="ok", predictions=[prediction])
