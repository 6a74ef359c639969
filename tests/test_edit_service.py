"""The real edit service (one process, HTTP + in-process gRPC) on the embedded tiny
InstructPix2Pix, called by real clients: the SDK, raw gRPC stubs, httpx and the CLI."""

import asyncio
import base64
import io
import json
import math
import re

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hostile import ACCEPTED, NOT_IMAGES, REFUSED, check_http_refusal, noise, png_declaring
from PIL import Image

from safetypairs.cli import main as cli_main
from safetypairs.client import AsyncEditClient, EditClient, EditProgress, EditResult
from safetypairs.contract.errors import DeadlineExceeded, InvalidInput, Overloaded, PayloadTooLarge
from safetypairs.serving.launcher import EDIT_SERVICE, ServiceProcess
from safetypairs.v1 import common_pb2, edit_pb2, edit_pb2_grpc

INSTRUCTION = "remove the gun from the table"
SOURCE = noise((64, 64), seed=1)  # the default test image: 64x64, 3 steps


@pytest.fixture(scope="module")
def edit_service(default_editor_home, tmp_path_factory):
    """The edit service on the embedded default, with small limits a test can reach; one
    edit at a time and one waiting, so the queue bound is visible."""
    log_path = tmp_path_factory.mktemp("logs") / "edit.log"
    service = ServiceProcess.start(
        EDIT_SERVICE,
        log_path,
        {
            "SAFETYPAIRS_EDIT_MODEL": "",
            "SAFETYPAIRS_HOME": str(default_editor_home),
            "BENTOML_HOME": str(default_editor_home / "bentoml"),
            "SAFETYPAIRS_EDIT_STEPS": "3",
            "SAFETYPAIRS_EDIT_MAX_STEPS": "400",
            "SAFETYPAIRS_EDIT_CONCURRENCY": "1",
            "SAFETYPAIRS_EDIT_QUEUE": "1",
            "SAFETYPAIRS_EDIT_MAX_INSTRUCTION_CHARS": "200",
            "SAFETYPAIRS_MAX_IMAGE_PIXELS": str(1_000_000),
            "SAFETYPAIRS_MAX_IMAGE_BYTES": str(2 * 1024 * 1024),  # the hostile corpus's
        },
    )
    yield service
    code = service.stop()
    assert code == 0, f"edit service exited {code} on SIGTERM:\n{service.log()[-3000:]}"


@pytest.fixture(scope="module")
def editor(edit_service):
    with EditClient(edit_service.grpc_target, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def http(edit_service):
    with httpx.Client(base_url=edit_service.http_url, timeout=60) as client:
        yield client


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def http_form(kwargs: dict) -> tuple[dict, dict]:
    """SDK keyword arguments as the HTTP form: (files, data)."""
    files, data = {}, {}
    for key, value in kwargs.items():
        if key in ("image", "mask"):
            files[key] = (f"{key}.png", value)
        elif key == "region":
            data[key] = ",".join(map(str, value))
        else:
            data[key] = str(value)
    return files, data


def http_result(body: dict) -> edit_pb2.EditResponse:
    from google.protobuf import json_format

    return json_format.ParseDict(body, edit_pb2.EditResponse())


# -- editing --------------------------------------------------------------------------------


def test_edit_over_grpc_says_what_it_used_and_that_it_is_untrained(editor):
    result = editor.edit(SOURCE, INSTRUCTION, seed=11, image_id="src")
    assert (result.width, result.height, result.mime_type) == (64, 64, "image/png")
    assert pixels(result.image).shape == (64, 64, 3)
    assert (result.seed, result.steps, result.guidance_scale) == (11, 3, 7.5)
    assert result.image_guidance_scale == 1.5
    assert result.model == "default-editor:2" and result.untrained
    assert result.pipeline == "StableDiffusionInstructPix2PixPipeline"
    assert result.image_id == "src" and result.seconds > 0
    # The change map is the per-pixel difference between source and output.
    diff = np.abs(pixels(result.image).astype(int) - pixels(SOURCE)).max(axis=2)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(result.change.map_png))), diff)
    assert result.change.changed_fraction == pytest.approx((diff > 16).mean())
    unseeded = editor.edit(SOURCE, INSTRUCTION)
    assert unseeded.seed != 0  # the server drew one and says which


def test_same_seed_identical_bytes_on_every_path(editor, http, edit_service):
    kwargs = {"seed": 42, "steps": 2}
    unary = editor.edit(SOURCE, INSTRUCTION, **kwargs).image
    assert editor.edit(SOURCE, INSTRUCTION, **kwargs).image == unary
    streamed = list(editor.edit_stream(SOURCE, INSTRUCTION, **kwargs))[-1]
    assert isinstance(streamed, EditResult) and streamed.image == unary

    async def with_async_client() -> bytes:
        async with AsyncEditClient(edit_service.grpc_target, timeout=60) as client:
            return (await client.edit(SOURCE, INSTRUCTION, **kwargs)).image

    assert asyncio.run(with_async_client()) == unary
    files, data = http_form({"image": SOURCE, "instruction": INSTRUCTION, **kwargs})
    reply = http.post("/v1/edit", files=files, data=data)
    assert reply.status_code == 200, reply.text
    assert base64.b64decode(reply.json()["image"]["data"]) == unary
    assert editor.edit(SOURCE, INSTRUCTION, seed=43, steps=2).image != unary


def test_edit_stream_sends_progress_then_the_image(editor):
    events = list(editor.edit_stream(SOURCE, INSTRUCTION, seed=3, steps=4))
    progress, result = events[:-1], events[-1]
    assert all(isinstance(e, EditProgress) for e in progress)
    assert [(e.step, e.total) for e in progress] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert [e.elapsed_s for e in progress] == sorted(e.elapsed_s for e in progress)
    assert isinstance(result, EditResult) and result.steps == 4

    seen: list[EditProgress] = []
    via_callback = editor.edit(SOURCE, INSTRUCTION, seed=3, steps=4, on_progress=seen.append)
    assert via_callback.image == result.image and len(seen) == 5


def test_http_stream_is_ndjson_progress_then_result(http):
    files, data = http_form({"image": SOURCE, "instruction": INSTRUCTION, "seed": 5})
    with http.stream("POST", "/v1/stream/edit", files=files, data=data) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in reply.iter_lines() if line]
    assert [e["progress"]["step"] for e in events[:-1]] == [0, 1, 2, 3]
    result = http_result(events[-1]["result"])
    assert result.seed == 5 and result.untrained and pixels(result.image.data).shape == (64, 64, 3)


@pytest.mark.parametrize("how", ["region", "mask"])
def test_nothing_outside_the_region_or_mask_moves(editor, how):
    area = {"region": (8, 16, 24, 32)}  # x, y, width, height
    if how == "mask":
        mask = np.zeros((64, 64), dtype=np.uint8)
        mask[16:48, 8:32] = 255
        buf = io.BytesIO()
        Image.fromarray(mask, "L").save(buf, format="PNG")
        area = {"mask": buf.getvalue()}
    result = editor.edit(SOURCE, INSTRUCTION, seed=9, **area)
    out, src = pixels(result.image), pixels(SOURCE)
    inside = np.zeros((64, 64), dtype=bool)
    inside[16:48, 8:32] = True
    assert np.array_equal(out[~inside], src[~inside])  # outside: the source's own pixels
    assert not np.array_equal(out[inside], src[inside])  # inside: the model's
    change = result.change
    assert change.max_diff_outside == 0
    b = change.bbox
    assert b is not None and b.x >= 8 and b.y >= 16
    assert b.x + b.width <= 32 and b.y + b.height <= 48


def test_size_policy_keeps_the_source_size_rounded_to_the_model(editor):
    result = editor.edit(noise((70, 50), seed=2), INSTRUCTION, seed=1, format="webp")
    assert (result.width, result.height) == (64, 48) and result.mime_type == "image/webp"
    assert Image.open(io.BytesIO(result.image)).format == "WEBP"


# -- bad input --------------------------------------------------------------------------------

SMALL_MASK = noise((32, 32), seed=5)
BAD = {
    "not_an_image": ({"image": NOT_IMAGES["text"]}, InvalidInput, "not a supported image"),
    "empty_instruction": ({"instruction": "   "}, InvalidInput, "instruction is empty"),
    "long_instruction": (
        {"instruction": "x" * 201},
        InvalidInput,
        "instruction is 201 characters, over the limit of 200",
    ),
    "mask_wrong_size": (
        {"mask": SMALL_MASK},
        InvalidInput,
        "mask is 32x32; it must match the image's 64x64",
    ),
    "mask_not_an_image": ({"mask": NOT_IMAGES["svg"]}, InvalidInput, "mask: not a supported"),
    "zero_steps": ({"steps": 0}, InvalidInput, "steps is 0; it must lie in 1..400"),
    "too_many_steps": ({"steps": 401}, InvalidInput, "steps is 401; it must lie in 1..400"),
    "negative_guidance": ({"guidance_scale": -1.0}, InvalidInput, "guidance_scale is -1.0"),
    "huge_guidance": ({"guidance_scale": 31.0}, InvalidInput, r"must lie in \[0, 30.0\]"),
    "nan_guidance": ({"guidance_scale": math.nan}, InvalidInput, "guidance_scale is nan"),
    "huge_image_guidance": (
        {"image_guidance_scale": 99.0},
        InvalidInput,
        "image_guidance_scale is 99.0",
    ),
    "region_outside": (
        {"region": (40, 40, 30, 10)},
        InvalidInput,
        "reaches outside the 64x64 image",
    ),
    "region_empty": ({"region": (0, 0, 0, 5)}, InvalidInput, "must have a positive size"),
    "change_threshold": ({"change_threshold": 300}, InvalidInput, "change_threshold is 300"),
    # Over the pixel limit is RESOURCE_EXHAUSTED (PayloadTooLarge), the project's one mapping.
    "over_pixel_limit": (
        {"image": png_declaring(2000, 2000)},
        PayloadTooLarge,
        "4000000 pixels, over the limit of 1000000 pixels",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_refused_by_name_and_the_service_keeps_serving(editor, http, case):
    change, error, needle = BAD[case]
    kwargs = {"image": SOURCE, "instruction": INSTRUCTION, "seed": 1, **change}
    image, instruction = kwargs.pop("image"), kwargs.pop("instruction")
    with pytest.raises(error, match=needle):
        editor.edit(image, instruction, **kwargs)
    with pytest.raises(error, match=needle):
        list(editor.edit_stream(image, instruction, **kwargs))
    files, data = http_form({"image": image, "instruction": instruction, **kwargs})
    for route in ("/v1/edit", "/v1/stream/edit"):
        reply = http.post(route, files=files, data=data)
        assert reply.status_code == error.http_status.value, (route, reply.text)
        body = reply.json()["error"]
        assert body["kind"] == error.__name__ and re.search(needle, body["message"]), body
    assert editor.edit(SOURCE, INSTRUCTION, seed=1).width == 64  # still serving


def test_raw_grpc_status_and_error_kind(edit_service):
    with grpc.insecure_channel(edit_service.grpc_target) as channel:
        stub = edit_pb2_grpc.EditStub(channel)
        request = edit_pb2.EditRequest(image=common_pb2.Image(data=SOURCE), instruction=INSTRUCTION)
        request.options.steps = 0
        for call in (stub.Edit, lambda r: list(stub.EditStream(r))):
            with pytest.raises(grpc.RpcError) as info:
                call(request)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert ("safetypairs-error-kind", "InvalidInput") in info.value.trailing_metadata()
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="safetypairs.v1.Edit"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


# -- slots ------------------------------------------------------------------------------------


async def test_full_queue_is_refused_and_a_cancelled_stream_frees_its_slot(edit_service, http):
    big, slow = noise((256, 256), seed=4), {"steps": 400, "seed": 1}
    async with AsyncEditClient(edit_service.grpc_target, timeout=120) as client:
        first = client.edit_stream(big, INSTRUCTION, **slow)
        assert (await anext(first)).step == 0  # it holds the only slot
        second = client.edit_stream(big, INSTRUCTION, **slow)
        second_started = asyncio.ensure_future(anext(second))
        await asyncio.sleep(1.0)
        assert not second_started.done()  # waiting in the queue (one place)
        with pytest.raises(Overloaded, match="1 edits running and 1 waiting"):
            await client.edit(SOURCE, INSTRUCTION)
        await first.aclose()  # cancels the first edit on the server...
        started = await asyncio.wait_for(second_started, 30)
        assert started.step == 0  # ...whose slot goes to the waiting one
        await second.aclose()
        result = await client.edit(SOURCE, INSTRUCTION, seed=1)
        assert result.steps == 3
    # Streams are counted when they end, cancelled ones too.
    cancelled = [
        line
        for line in http.get("/metrics").text.splitlines()
        if line.startswith("safetypairs_requests_total{")
        and 'method="EditStream"' in line
        and 'code="499",grpc_code="CANCELLED"' in line
    ]
    assert cancelled and float(cancelled[0].rsplit(" ", 1)[1]) >= 2


def test_a_passed_deadline_stops_the_edit_and_frees_its_slot(editor):
    import time

    with pytest.raises(DeadlineExceeded):
        editor.edit(noise((256, 256), seed=4), INSTRUCTION, steps=400, timeout=1.0)
    started = time.perf_counter()
    assert editor.edit(SOURCE, INSTRUCTION, seed=1).steps == 3
    # The abandoned 400-step edit stopped after its current step instead of running on.
    assert time.perf_counter() - started < 5


# -- description, SDK, CLI ----------------------------------------------------------------------


def test_model_info_over_grpc_and_http(editor, http):
    info = editor.model_info()
    assert info.untrained and "UNTRAINED" in info.notice
    assert info.pipeline == "StableDiffusionInstructPix2PixPipeline"
    assert info.reference.startswith("embedded default")
    assert (info.default_steps, info.max_steps, info.size_multiple) == (3, 400, 8)
    assert (info.concurrency, info.queue, info.device, info.dtype) == (1, 1, "cpu", "float32")
    assert info.scheduler == "EulerAncestralDiscreteScheduler"
    body = http.post("/v1/model_info").json()
    assert body["name"] == "default-editor" and body["untrained"] is True


def test_cli_edit_writes_the_image_and_shows_progress(edit_service, tmp_path, capsys):
    source = tmp_path / "in.png"
    source.write_bytes(SOURCE)
    out, change = tmp_path / "out.png", tmp_path / "change.png"
    argv = ["edit", str(source), "--instruction", INSTRUCTION, "--out", str(out)]
    argv += ["--target", edit_service.grpc_target, "--seed", "42", "--steps", "2"]
    argv += ["--change-map", str(change), "--region", "0,0,32,32"]
    assert cli_main(argv) == 0
    captured = capsys.readouterr()
    assert "denoising: 100% 2/2" in captured.err and "UNTRAINED" not in captured.err
    assert "\r" not in captured.err  # not a terminal: plain lines
    assert "is untrained" in captured.out and "seed 42" in captured.out
    assert pixels(out.read_bytes()).shape == (64, 64, 3)
    assert np.asarray(Image.open(change)).shape == (64, 64)

    assert cli_main([*argv[:6], "--target", edit_service.grpc_target, "--steps", "0"]) == 2
    assert "steps is 0" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_images_are_refused_by_name_over_both_protocols(editor, http, name):
    data, error, phrase = REFUSED[name]
    with pytest.raises(error) as err:
        editor.edit(data, INSTRUCTION, seed=1)
    assert phrase in err.value.message
    files, form = http_form({"image": data, "instruction": INSTRUCTION, "seed": 1})
    reply = http.post("/v1/edit", files=files, data=form)
    check_http_refusal(reply, error, phrase)
    assert editor.edit(SOURCE, INSTRUCTION, seed=1).width == 64  # still serving


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_unusual_valid_images_are_edited(editor, name):
    result = editor.edit(ACCEPTED[name], INSTRUCTION, seed=1)
    assert result.width > 0 and Image.open(io.BytesIO(result.image)).mode == "RGB"
