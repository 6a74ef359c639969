"""The edit engine on the embedded tiny InstructPix2Pix, the change map on synthetic edits, and
the model slots, driven directly (no server)."""

import asyncio
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from safetypairs.contract.errors import InvalidInput, ModelError, Overloaded
from safetypairs.edit.changes import change_map
from safetypairs.edit.default_model import default_editor_dir
from safetypairs.edit.engine import EditCancelled, EditEngine, EditJob
from safetypairs.serving.slots import Slots


@pytest.fixture(scope="module")
def editor_dir(default_editor_home):
    return default_editor_dir(str(default_editor_home))


@pytest.fixture(scope="module")
def engine(editor_dir):
    return EditEngine.load(editor_dir)


def noise_image(size=(64, 48), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def job(seed=1, steps=3, **kw) -> EditJob:
    return EditJob(noise_image(), "remove the gun from the table", seed, steps, 7.5, 1.5, **kw)


def test_default_editor_is_a_real_pipeline_directory_marked_untrained(editor_dir, engine):
    index = json.loads((editor_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInstructPix2PixPipeline"
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    assert engine.pipe.unet.config.in_channels == 8
    assert engine.family.pipeline == "StableDiffusionInstructPix2PixPipeline"
    assert engine.card.untrained and "UNTRAINED" in engine.card.notice
    assert (engine.device, engine.size_multiple) == ("cpu", 8)
    # The tokenizer was trained on instructions: their words are known tokens, not <unk>.
    tokenizer = engine.pipe.tokenizer
    ids = tokenizer("remove the gun, please!").input_ids
    assert tokenizer.unk_token_id not in ids[1:-1]
    assert tokenizer.convert_ids_to_tokens(ids[1:4]) == ["remove</w>", "the</w>", "gun</w>"]


def test_same_seed_same_pixels_other_seed_other_pixels(engine):
    first = np.asarray(engine.edit(job(seed=5)))
    assert first.shape == (48, 64, 3)
    assert np.array_equal(first, np.asarray(engine.edit(job(seed=5))))
    assert not np.array_equal(first, np.asarray(engine.edit(job(seed=6))))


def test_progress_reports_each_step_and_cancel_stops_the_edit(engine):
    seen: list[tuple[int, int]] = []
    engine.edit(job(steps=4), progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]

    seen.clear()
    # Cancelled once two steps were reported: the step running then is the last one.
    with pytest.raises(EditCancelled, match="after step 3"):
        engine.edit(
            job(steps=6),
            progress=lambda i, n: seen.append((i, n)),
            cancelled=lambda: len(seen) == 2,
        )
    assert seen == [(1, 6), (2, 6)]


def test_working_size_keeps_the_source_size_rounded_to_the_model(engine):
    assert engine.working_size(64, 48, 1_000_000) == (64, 48)
    assert engine.working_size(100, 75, 1_000_000) == (96, 72)  # rounded down to 8
    w, h = engine.working_size(4000, 3000, 1_000_000)  # scaled down, aspect kept
    assert w * h <= 1_000_000 and w % 8 == 0 and h % 8 == 0 and abs(w / h - 4 / 3) < 0.01
    with pytest.raises(InvalidInput, match="at least 8 pixels on each side"):
        engine.working_size(5, 100, 1_000_000)


def test_scheduler_setting_takes_compatible_schedulers_only(editor_dir):
    assert EditEngine.load(editor_dir, scheduler="EulerDiscreteScheduler").scheduler == (
        "EulerDiscreteScheduler"
    )
    with pytest.raises(ModelError, match="FlowMatchEulerDiscreteScheduler does not fit"):
        EditEngine.load(editor_dir, scheduler="FlowMatchEulerDiscreteScheduler")


def test_unsupported_pipeline_and_non_pipeline_directories_are_refused(editor_dir, tmp_path):
    copy = tmp_path / "other"
    shutil.copytree(editor_dir, copy)
    index = json.loads((copy / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    (copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="StableDiffusionPipeline is not supported; supported:"):
        EditEngine.load(copy)
    with pytest.raises(ModelError, match="not a diffusers pipeline directory"):
        EditEngine.load(tmp_path)


# -- change map ---------------------------------------------------------------------------


def test_change_map_finds_a_known_edited_rectangle():
    source = np.asarray(noise_image((80, 60), seed=3))
    output = source.copy()
    output[10:30, 25:55] = 255 - output[10:30, 25:55]  # rows 10..29, columns 25..54
    output[10:30, 25:55, 0] = np.where(
        np.abs(output[10:30, 25:55, 0].astype(int) - source[10:30, 25:55, 0]) > 20,
        output[10:30, 25:55, 0],
        (source[10:30, 25:55, 0].astype(int) + 128) % 256,
    )  # every pixel of the rectangle moves by more than the threshold
    change = change_map(source, output, threshold=16)
    assert change.bbox == (25, 10, 30, 20)
    assert change.changed_fraction == pytest.approx(30 * 20 / (80 * 60))
    assert change.diff.shape == (60, 80) and change.diff[:10].max() == 0
    assert change.max_diff_outside == 0

    area = np.zeros((60, 80), dtype=bool)
    area[10:30, 25:55] = True
    assert change_map(source, output, 16, area).max_diff_outside == 0
    area[:, 40:] = False  # the edit reaches outside this smaller area
    assert change_map(source, output, 16, area).max_diff_outside > 16


def test_change_map_ignores_differences_under_the_threshold():
    source = np.asarray(noise_image((32, 32), seed=4)).astype(np.int16)
    output = np.clip(source + 5, 0, 255).astype(np.uint8)
    change = change_map(source.astype(np.uint8), output, threshold=16)
    assert change.bbox is None and change.changed_fraction == 0.0
    assert 0 < change.diff.max() <= 5


# -- slots --------------------------------------------------------------------------------


async def test_slots_bound_running_and_waiting_and_cancelled_waiters_leave():
    slots = Slots(concurrency=1, queue=1)
    release = asyncio.Event()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with slots.hold():
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("first"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold("waiter"))
    await asyncio.sleep(0)
    assert (slots.running, slots.waiting) == (1, 1)
    with pytest.raises(Overloaded, match="1 edits running and 1 waiting"):
        async with slots.hold():
            pass
    waiter.cancel()  # a waiter that gives up leaves the queue...
    await asyncio.gather(waiter, return_exceptions=True)
    assert slots.waiting == 0
    late = asyncio.create_task(hold("late"))  # ...so another fits
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, late)
    assert order == ["first", "late"] and (slots.running, slots.waiting) == (0, 0)


def test_serve_edit_stops_at_start_up_on_a_bad_reference(default_editor_home, tmp_path, capsys):
    """Refused before BentoML starts (so safe in process: serve() returns only on an error)."""
    from safetypairs.cli import main

    argv = ["serve", "edit", "--home", str(default_editor_home)]
    assert main([*argv, "--edit-model", str(default_editor_home / "nothing-here")]) == 2
    assert "cannot resolve model reference" in capsys.readouterr().err
    assert main([*argv, "--edit-model", str(tmp_path)]) == 2
    assert "holds no model_index.json" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_edit_stops_at_start_up_on_a_bad_engine_setting(default_editor_home):
    """The worker finds it while loading, and the whole server ends with the reason."""
    argv = [sys.executable, "-m", "safetypairs.cli", "serve", "edit"]
    argv += ["--home", str(default_editor_home), "--http-port", "0", "--grpc-port", "0"]
    argv += ["--edit-scheduler", "FlowMatchEulerDiscreteScheduler"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "FlowMatchEulerDiscreteScheduler does not fit" in result.stderr.splitlines()[-1]
