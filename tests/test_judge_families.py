"""Every judge model family a user is likely to load, as a tiny checkpoint with the family's
own classes, processor and tokenizer type (tests/tiny_judges.py): served by the real judge
service and called through the SDK, and one test per family quirk showing the wrong answer the
adapter (judge/families.py, judge/answer_layout.py) prevents."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest
import torch
from conftest import png_bytes, start_judge_service
from PIL import Image
from test_guard_service import metric_samples
from test_judge_service import check_verdict
from tiny_judges import FAMILIES, sentencepiece_bpe
from transformers import GemmaTokenizer
from transformers.utils import is_torchvision_available

from safetypairs.client import JudgeClient
from safetypairs.contract.errors import ModelError
from safetypairs.contract.policy import default_policy
from safetypairs.judge.answer_layout import AnswerLayout, continuation_ids
from safetypairs.judge.engine import JudgeEngine
from safetypairs.judge.families import ImagesOnlyVideoProcessor
from safetypairs.judge.prompts import load_template
from safetypairs.judge.structured import check_reachable, json_parser, regex_parser, tokenizer_data
from safetypairs.serving.launcher import ServiceProcess

pytestmark = pytest.mark.slow
SIZES = [(96, 80), (40, 120), (300, 200)]  # three shapes: the families tile and resize them
IMAGES = [png_bytes(size, (30 + 70 * i, 90, 200 - 60 * i)) for i, size in enumerate(SIZES)]
ANSWER = load_template("rate").answer


# -- through the service -------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(FAMILIES))
def served(
    request: pytest.FixtureRequest,
    judge_families: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, ServiceProcess]]:
    """The judge service on one family's checkpoint, one at a time."""
    name = request.param
    home = tmp_path_factory.mktemp(f"home-{name}")
    service = start_judge_service(
        home,
        home / "judge.log",
        {
            "SAFETYPAIRS_JUDGE_MODEL": str(judge_families[name]),
            "SAFETYPAIRS_JUDGE_RATIONALE_CHARS": "24",
            # long enough that three concurrent requests meet in one pass
            "SAFETYPAIRS_MAX_BATCH_WAIT_MS": "300",
        },
    )
    yield name, service
    assert service.stop() == 0, service.log()[-3000:]


def _batches(http: httpx.Client) -> tuple[float, float]:
    """(model calls, images) the micro-batcher made so far."""
    count = sum(metric_samples(http, "safetypairs_batch_size_count").values())
    return count, sum(metric_samples(http, "safetypairs_batch_size_sum").values())


def test_family_rates_single_batched_and_concurrent_alike(served) -> None:
    _, service = served
    with (
        JudgeClient(service.grpc_target, timeout=120) as judge,
        httpx.Client(base_url=service.http_url, timeout=60) as http,
    ):
        info = judge.model_info()
        assert info.untrained and info.architecture.endswith("ForConditionalGeneration")
        singles = [judge.rate(image) for image in IMAGES]
        for rated in singles:
            check_verdict(rated)
        batch = judge.rate_batch(IMAGES, image_ids=["a", "b", "c"])
        calls_before, images_before = _batches(http)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            concurrent_ = list(pool.map(judge.rate, IMAGES))
        calls, images = _batches(http)
        assert images - images_before == 3 and calls - calls_before < 3, "no pass was shared"
        # Padding, tiling and the appended answer change no row's numbers.
        for one, many, together in zip(singles, batch, concurrent_, strict=True):
            check_verdict(many)
            check_verdict(together)
            assert many.verdict.probability == pytest.approx(one.verdict.probability, abs=1e-3)
            assert together.verdict.probability == pytest.approx(one.verdict.probability, abs=1e-3)
        explained = judge.rate(IMAGES[2], rationale=True)
        check_verdict(explained)
        assert isinstance(explained.verdict.rationale, str)
        assert len(explained.verdict.rationale) <= 24 and '"' not in explained.verdict.rationale


def test_family_proposes_edits(served) -> None:
    name, service = served
    with JudgeClient(service.grpc_target, timeout=120) as judge:
        answer = judge.propose_edits(IMAGES[0], "to_unsafe", category="O6", count=2, seed=3)
    assert len(answer.proposals) == 2, f"{name} dropped a proposal"
    for p in answer.proposals:
        assert p.category == "O6" and p.instruction and p.element


# -- the quirks, each shown wrong without its fix ------------------------------------------


@pytest.fixture(scope="module")
def engines(judge_families: dict[str, Path]) -> dict[str, JudgeEngine]:
    return {
        name: JudgeEngine(judge_families[name], rationale_chars=16)
        for name in ("llava_next", "paligemma", "gemma3", "smolvlm", "qwen2_vl")
    }


def test_sentencepiece_answer_is_tokenized_whole_so_the_rating_is_read_at_its_word(
    engines,
) -> None:
    """Llama 2 / Mistral tokenizers start every separately tokenized piece with a space
    marker: the answer's pieces one by one put a bare "▁" where P(unsafe) is read."""
    engine = engines["llava_next"]
    tok = engine.tokenizer

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    piecewise = ids(ANSWER.open) + ids(ANSWER.unsafe)
    assert tok.convert_ids_to_tokens(piecewise[len(ids(ANSWER.open))]) == "▁"
    layout = engine.layout
    assert tok.convert_ids_to_tokens(layout.unsafe_token).startswith("U")
    whole = ids(ANSWER.open + ANSWER.unsafe)
    assert whole[: len(layout.open) + 1] == [*layout.open, layout.unsafe_token]


def test_prefix_lm_answer_tokens_cannot_be_seen_where_the_rating_is_read(engines) -> None:
    """PaliGemma attends both ways within the prompt (token type 0). Forced answer tokens
    marked as prompt would let the position where P(unsafe) is read see the forced word."""
    engine = engines["paligemma"]
    layout = engine.layout
    image = Image.new("RGB", (64, 48), (120, 40, 40))
    prompt = engine.chat(engine.rate_prompt(default_policy()))
    read_at = len(layout.open) - 1

    def rating_logits() -> list[torch.Tensor]:
        rows = []
        for word in (layout.unsafe_token, layout.safe_token):
            enc = engine._encode([prompt], [image], [[*layout.open, word]])
            logits = engine.model(**enc.inputs).logits[0]
            rows.append(logits[enc.starts[0] + enc.prompt_lengths[0] + read_at])
        return rows

    with torch.inference_mode():
        unsafe, safe = rating_logits()
        assert torch.equal(unsafe, safe)  # the adapter: answer tokens have token type 1
        fixed = engine.family
        engine.family = dataclasses.replace(fixed, answer_token_type=0)
        try:
            unsafe, safe = rating_logits()
        finally:
            engine.family = fixed
    assert not torch.allclose(unsafe, safe)  # marked as prompt, the forced word leaks back


@pytest.mark.parametrize("name", ["gemma3", "smolvlm"])
def test_one_list_of_images_per_prompt(engines, name: str) -> None:
    """Gemma 3 and SmolVLM take a batch's images as one list per prompt; a flat list is read
    as every image belonging to the first prompt."""
    engine = engines[name]
    prompts = [engine.chat("Describe the image.")] * 3
    images = [Image.new("RGB", size) for size in SIZES]
    with pytest.raises(ValueError, match="number of images"):
        engine.processor(text=prompts, images=images, return_tensors="pt", padding=True)
    enc = engine.processor(
        text=prompts, images=engine.family.images(images), return_tensors="pt", padding=True
    )
    assert enc["input_ids"].shape[0] == 3


def test_a_turn_ends_at_the_family_end_of_turn_token_too(engines) -> None:
    """Gemma 3's tokenizer names <eos> as its end, but the model ends its turn with
    <end_of_turn>: generation stopping at eos alone would run past the answer."""
    engine = engines["gemma3"]
    end_of_turn = engine.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert engine.tokenizer.eos_token_id != end_of_turn
    assert engine.tokenizer.eos_token_id in engine.stop_ids and end_of_turn in engine.stop_ids


def test_a_family_published_without_a_chat_template_gets_its_default(
    engines, judge_families
) -> None:
    """PaliGemma ships no chat template: its prompt is the text after the image tokens."""
    assert not (judge_families["paligemma"] / "chat_template.jinja").exists()
    assert engines["paligemma"].chat("Rate it.") == "<image>Rate it."


@pytest.mark.skipif(is_torchvision_available(), reason="torchvision installed: real video path")
def test_without_torchvision_video_families_load_for_images_only(engines) -> None:
    assert isinstance(engines["qwen2_vl"].processor.video_processor, ImagesOnlyVideoProcessor)


def test_a_tokenizer_that_merges_the_rating_word_into_the_quote_is_refused() -> None:
    """A vocabulary learnt across punctuation and words ('"U', 'nsafe') has no token where
    the rating word begins: refused by name at load, not read from the wrong position."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    vocab, merges = sentencepiece_bpe(specials, prepend=False, split=False)
    tok = GemmaTokenizer(vocab=vocab, merges=merges)
    with pytest.raises(ModelError, match="rating word does not begin a token"):
        AnswerLayout(tok, ANSWER, lambda c: ANSWER.none_category if c is None else c.code)


def test_a_missing_package_is_a_model_error_naming_the_fix(judge_families) -> None:
    """SmolVLM's processor needs num2words: without it the load fails as a ModelError that
    says what to install, not a bare ImportError."""
    code = (
        "import sys; sys.modules['num2words'] = None\n"
        "from safetypairs.contract.errors import ModelError\n"
        "from safetypairs.judge.engine import JudgeEngine\n"
        "try:\n"
        f"    JudgeEngine({str(judge_families['smolvlm'])!r})\n"
        "except ModelError as exc:\n"
        "    print('MODELERROR', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    ).stdout
    assert "MODELERROR" in out and "num2words" in out and "safetypairs[models]" in out


def test_a_policy_whose_categories_read_alike_is_refused_at_load(
    default_judge_dir_built: Path, tmp_path: Path
) -> None:
    """An answer format that labels every category the same way cannot tell the built-in
    policy's categories apart: the judge refuses to load, naming why."""
    prompts = resources.files("safetypairs.judge") / "prompts"
    rate = (prompts / "rate.yaml").read_text()
    label = 'category_label: "{{ code }}: {{ name }}"'
    assert label in rate
    (tmp_path / "rate.yaml").write_text(rate.replace(label, 'category_label: "Violation"'))
    (tmp_path / "propose.yaml").write_text((prompts / "propose.yaml").read_text())
    with pytest.raises(ModelError, match=r"prefix of another|same token"):
        JudgeEngine(default_judge_dir_built, prompts_dir=str(tmp_path))


def test_the_generate_constraint_is_checked_against_the_tokens_an_answer_takes(
    engines,
) -> None:
    """The check at load walks an answer's tokens through the constraint: a token the
    constraint does not allow is named."""
    engine = engines["llava_next"]
    tok, eos = engine.tokenizer, engine.stop_ids[0]
    constraint = r'\{"rating": "Safe"\}'
    check_reachable(tok, regex_parser(constraint), continuation_ids(tok, '{"rating": "Safe"}'), eos)
    wrong = continuation_ids(tok, '{"rating": "Unsafe"}')
    with pytest.raises(ValueError, match="does not allow token"):
        check_reachable(tok, regex_parser(constraint), wrong, eos)


def test_the_json_constraint_offers_no_token_that_would_end_a_string_early(engines) -> None:
    """lm-format-enforcer's JSON parser takes a "|" inside a string for a complete answer: a
    proposal that wrote one stopped there and was dropped as incomplete JSON."""
    parser = json_parser({"type": "object", "properties": {"a": {"type": "string"}}})
    for character in '{"a": "x|':
        parser = parser.add_character(character)
    assert parser.can_end()  # inside an open string
    engine = engines["gemma3"]
    offered = tokenizer_data(engine.tokenizer, engine.stop_ids[0]).regular_tokens
    assert offered and not any("|" in text for _, text, _ in offered)
    assert any("|" in engine.tokenizer.decode([t]) for t in range(len(engine.tokenizer)))
