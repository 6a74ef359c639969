"""The Open Inference Protocol v2 on the guard's gRPC port, called with the real Triton client."""

import numpy as np
import pytest
import tritonclient.grpc as triton
from hostile import NOT_IMAGES
from tritonclient.utils import InferenceServerException

from safetypairs.client import GuardClient
from safetypairs.contract.errors import InvalidInput
from safetypairs.guard.oip import decode_bytes_tensor

MODEL = "default-guard"


@pytest.fixture(scope="module")
def client(guard_service):
    c = triton.InferenceServerClient(guard_service.grpc_target)
    yield c
    c.close()


def images_input(blobs: list[bytes]) -> triton.InferInput:
    tensor = triton.InferInput("images", [len(blobs)], "BYTES")
    tensor.set_data_from_numpy(np.array(blobs, dtype=object))
    return tensor


def test_liveness_readiness_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "3")
    meta = client.get_server_metadata()
    assert meta.name == "safetypairs-guard"
    model = client.get_model_metadata(MODEL)
    assert (model.name, list(model.versions), model.platform) == (MODEL, ["3"], "onnxruntime_onnx")
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("images", "BYTES", [-1])
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [
        ("probabilities", "FP32", [-1, 3])
    ]
    config = client.get_model_config(MODEL).config
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["categories"] == "O3,O4,O6"
    assert params["not_covered"] == "O1,O2,O5,O7,O8,O9"
    assert params["member.open-nsfw"] == "O3,O4" and params["member.imagenet-baseline"] == "O6"
    assert config.max_batch_size == 32


def test_infer_matches_screen(client, guard_service, sample_photos):
    blobs = [p.read_bytes() for p in sample_photos]
    result = client.infer(
        MODEL, [images_input(blobs)], outputs=[triton.InferRequestedOutput("probabilities")]
    )
    probs = result.as_numpy("probabilities")
    assert probs.shape == (len(blobs), 3) and probs.dtype == np.float32
    with GuardClient(guard_service.grpc_target) as guard:
        for row, blob in zip(probs, blobs, strict=True):
            scores = {s.category: s.probability for s in guard.screen(blob).scores}
            np.testing.assert_allclose(row, [scores["O3"], scores["O4"], scores["O6"]], atol=1e-6)


def test_errors_are_statuses(client):
    with pytest.raises(InferenceServerException) as err:
        client.is_model_ready("no-such-model")
    assert (
        "StatusCode.NOT_FOUND" in str(err.value.status()) and "unknown model" in err.value.message()
    )
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODEL, [images_input([b"fine?", NOT_IMAGES["pdf"]])])
    assert "INVALID_ARGUMENT" in str(err.value.status()) and "image 0" in err.value.message()
    wrong = triton.InferInput("pixels", [1, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match="expected one input tensor 'images'"):
        client.infer(MODEL, [wrong])
    with pytest.raises(InferenceServerException) as err:
        client.get_model_repository_index()
    assert "UNIMPLEMENTED" in str(err.value.status())
    assert client.is_server_live()  # still serving


def test_bytes_tensor_decoding():
    raw = b"".join(len(b).to_bytes(4, "little") + b for b in (b"ab", b"", b"xyz"))
    assert decode_bytes_tensor(raw) == [b"ab", b"", b"xyz"]
    with pytest.raises(InvalidInput, match="claims 9 bytes, past the end"):
        decode_bytes_tensor((9).to_bytes(4, "little") + b"abc")
    with pytest.raises(InvalidInput, match="truncated at offset 0"):
        decode_bytes_tensor(b"\x01\x00")


# -- the REST routes (/v2 on the HTTP port) -------------------------------------------


@pytest.fixture(scope="module")
def rest(guard_service):
    import httpx

    with httpx.Client(base_url=guard_service.http_url, timeout=60) as http:
        yield http


def test_rest_health_and_metadata(rest):
    assert rest.get("/v2/health/live").json() == {"live": True}
    assert rest.get("/v2/health/ready").status_code == 200
    # BentoML mounts the routes under /v2/; a bare /v2 answers with a redirect there.
    assert rest.get("/v2", follow_redirects=True).json()["name"] == "safetypairs-guard"
    meta = rest.get(f"/v2/models/{MODEL}").json()
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert rest.get(f"/v2/models/{MODEL}/versions/3/ready").json()["ready"] is True
    missing = rest.get("/v2/models/nope/ready")
    assert missing.status_code == 404 and "unknown model 'nope'" in missing.json()["error"]


def test_rest_infer_matches_grpc(rest, client, sample_photos):
    import base64

    blobs = [p.read_bytes() for p in sample_photos[:2]]
    body = {
        "id": "r1",
        "inputs": [
            {
                "name": "images",
                "datatype": "BYTES",
                "shape": [2],
                "parameters": {"content_type": "base64"},
                "data": [base64.b64encode(b).decode() for b in blobs],
            }
        ],
    }
    answer = rest.post(f"/v2/models/{MODEL}/infer", json=body)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["id"] == "r1" and out["outputs"][0]["shape"] == [2, 3]
    over_grpc = client.infer(MODEL, [images_input(blobs)]).as_numpy("probabilities")
    np.testing.assert_allclose(
        np.array(out["outputs"][0]["data"]).reshape(2, 3), over_grpc, atol=1e-6
    )


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"inputs": []}, 400, "expected one input tensor 'images'"),
        (
            {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}]},
            400,
            "base64 strings with",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "images",
                        "datatype": "BYTES",
                        "shape": [1],
                        "parameters": {"content_type": "base64"},
                        "data": ["!!"],
                    }
                ]
            },
            400,
            "not valid base64",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "images",
                        "datatype": "BYTES",
                        "shape": [1],
                        "parameters": {"content_type": "base64"},
                        "data": ["aGk="],
                    }
                ]
            },
            400,
            "image 0: not a supported image",
        ),
    ],
)
def test_rest_infer_errors(rest, body, status, needle):
    answer = rest.post(f"/v2/models/{MODEL}/infer", json=body)
    assert answer.status_code == status and needle in answer.json()["error"]
