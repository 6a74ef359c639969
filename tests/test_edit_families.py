"""Every supported pipeline family through the one engine interface: FLUX.1 Kontext and
Qwen-Image-Edit built tiny from their architecture configs with random weights (InstructPix2Pix
is the embedded default, see test_edit_engine.py), and the real-size configs the device check
builds checked for consistency without building them."""

import numpy as np
import pytest
from PIL import Image

from safetypairs.edit.engine import FAMILIES, EditEngine, EditJob
from safetypairs.edit.random_pipelines import FLUX_KONTEXT, QWEN_IMAGE_EDIT, random_pipeline


@pytest.mark.parametrize("pipeline", ["FluxKontextPipeline", "QwenImageEditPipeline"])
def test_family_edits_through_the_engine_deterministically(pipeline):
    engine = EditEngine(*random_pipeline(pipeline, "tiny"))
    assert engine.family is FAMILIES[pipeline] and engine.card.untrained
    assert engine.size_multiple == 16  # 8x VAE, 2x2 latent patches
    width, height = engine.working_size(70, 50, 1_000_000)
    assert (width, height) == (64, 48)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    seen: list[tuple[int, int]] = []
    job = EditJob(image, "remove the gun", 7, 2, engine.family.guidance_scale)
    first = np.asarray(engine.edit(job, progress=lambda i, n: seen.append((i, n))))
    assert seen == [(1, 2), (2, 2)] and first.shape == (48, 64, 3)
    assert np.array_equal(first, np.asarray(engine.edit(job)))
    other = EditJob(image, "remove the gun", 8, 2, engine.family.guidance_scale)
    assert not np.array_equal(first, np.asarray(engine.edit(other)))


def test_real_size_configs_fit_together():
    flux = FLUX_KONTEXT["real"]
    assert flux["transformer"]["in_channels"] == flux["vae"]["latent_channels"] * 4
    assert sum(flux["transformer"]["axes_dims_rope"]) == flux["transformer"]["attention_head_dim"]
    assert flux["transformer"]["joint_attention_dim"] == flux["t5"]["d_model"]
    assert flux["transformer"]["pooled_projection_dim"] == flux["clip"]["projection_dim"]
    qwen = QWEN_IMAGE_EDIT["real"]
    assert qwen["transformer"]["joint_attention_dim"] == qwen["text"]["hidden_size"]
    assert qwen["vision"]["out_hidden_size"] == qwen["text"]["hidden_size"]
    head = qwen["text"]["hidden_size"] // qwen["text"]["num_attention_heads"]
    assert sum(qwen["text"]["rope_scaling"]["mrope_section"]) * 2 == head
    assert sum(qwen["transformer"]["axes_dims_rope"]) == qwen["transformer"]["attention_head_dim"]
