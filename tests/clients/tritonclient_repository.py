"""The Open Inference Protocol's model repository extension as tritonclient calls it, against a
running max-mnist with its management API on: the index, unload and load (again from the
model's configured bucket), the admin key required, and the inference port's readiness
following each change.

Usage: tritonclient_repository.py HOST:PORT MANAGEMENT_HOST:PORT ADMIN_KEY
Exits non-zero, naming the check, at the first failure.
"""

import sys

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ADDRESS, MANAGEMENT, KEY = sys.argv[1:4]
ADMIN = {"Authorization": f"Bearer {KEY}"}

inference = httpclient.InferenceServerClient(url=ADDRESS)
repository = httpclient.InferenceServerClient(url=MANAGEMENT)


def ready_names():
    """The (name, state) pairs of the repository index."""
    return sorted((entry["name"], entry["state"]) for entry in repository.get_model_repository_index(headers=ADMIN))


assert ready_names() == [("fashion-mnist", "READY"), ("mnist", "READY")], ready_names()
assert inference.is_model_ready("fashion-mnist"), "fashion-mnist is served"

try:
    repository.unload_model("fashion-mnist")
    raise AssertionError("an unload without the admin key was accepted")
except InferenceServerException as refused:
    assert "401" in str(refused.status()), refused

repository.unload_model("fashion-mnist", headers=ADMIN)
assert ready_names() == [("fashion-mnist", "UNAVAILABLE"), ("mnist", "READY")], ready_names()
assert not inference.is_model_ready("fashion-mnist"), "an unloaded model is not ready"

repository.load_model("fashion-mnist", headers=ADMIN)
assert ready_names() == [("fashion-mnist", "READY"), ("mnist", "READY")], ready_names()
assert inference.is_model_ready("fashion-mnist"), "a loaded model is ready"

try:
    repository.load_model("mnist", headers=ADMIN, config='{"backend": "pytorch"}')
    raise AssertionError("a load with a Triton config was accepted")
except InferenceServerException as refused:
    assert "config" in refused.message(), refused

print("repository checks passed")
