"""The judge engine: any image-text-to-text model transformers loads, used two ways.

* Rating: the prompt (policy filled in) is followed by the start of the answer the model is
  asked to write, `{"rating": "Unsafe", "category": "O`, teacher-forced. One forward pass then
  gives the probability of each rating word where the rating begins and of each category where
  the category begins, so the verdict is well-formed whatever the weights are. A rationale,
  when asked, is generated afterwards, continuing the decided verdict. The other mode
  (`generate`) generates the whole answer under a regular-expression constraint and parses it.
* Edit proposals: sampled under a JSON-schema constraint (lm-format-enforcer), N at a time.

Plain class: no BentoML, no gRPC. Not thread-safe: one thread (the batcher's) drives it.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import LogitsProcessorList, StoppingCriteriaList

from safetypairs.contract.errors import InvalidInput, ModelError
from safetypairs.contract.policy import Category, Policy, default_policy
from safetypairs.judge import families
from safetypairs.judge.answer_layout import AnswerLayout, CategoryReader, continuation_ids
from safetypairs.judge.jobs import JudgeCard, Proposal, ProposeJob, RateJob, RateOutput
from safetypairs.judge.parsing import parse_verdict
from safetypairs.judge.prompts import RateAnswer, load_template
from safetypairs.judge.structured import (
    Cancelled,
    EnforcedLogits,
    StopAtQuote,
    check_reachable,
    json_parser,
    regex_parser,
    verdict_pattern,
)
from safetypairs.serving.model_refs import UNTRAINED_MARK
from safetypairs.serving.torch_env import resolve_device, resolve_dtype

log = logging.getLogger(__name__)

NOTICE_MARK = "safetypairs_notice"
UNTRAINED_NOTICE = (
    "UNTRAINED: this judge has random weights; its verdicts and proposals are well-formed and "
    "mean nothing about the image"
)
TO_SAFE, TO_UNSAFE = "to_safe", "to_unsafe"
ACTIONS = {TO_SAFE: ("remove", "change"), TO_UNSAFE: ("add", "change")}


def _clean(text: str) -> str:
    return " ".join(text.split())


@dataclass
class _Encoded:
    inputs: dict[str, Any]
    starts: list[int]  # index where each row's prompt begins (after left padding)
    prompt_lengths: list[int] = field(default_factory=list)


class JudgeEngine:
    def __init__(
        self,
        path: str | Path,
        *,
        name: str = "",
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        prompts_dir: str = "",
        rationale_chars: int = 400,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.processor, self.model, self.family = families.load(
            path, self.dtype, self.device, trust_remote_code
        )
        self.tokenizer = self.processor.tokenizer
        self.stop_ids = self.family.stop_ids(self.tokenizer, self.model.generation_config)
        self._limits_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        config = self.model.config
        untrained = bool(getattr(config, UNTRAINED_MARK, False))
        self.card = JudgeCard(
            name=name or Path(str(getattr(config, "_name_or_path", "") or path)).name,
            architecture=type(self.model).__name__,
            dtype=str(self.dtype).removeprefix("torch."),
            device=self.device,
            untrained=untrained,
            notice=getattr(config, NOTICE_MARK, "") or (UNTRAINED_NOTICE if untrained else ""),
        )
        self.rate_template = load_template("rate", prompts_dir)
        self.propose_template = load_template("propose", prompts_dir)
        if self.rate_template.answer is None:
            raise ModelError(f"prompt template {self.rate_template.source} has no answer section")
        self.answer: RateAnswer = self.rate_template.answer
        self.rationale_chars = rationale_chars
        self.layout = AnswerLayout(self.tokenizer, self.answer, self.label)
        try:  # the built-in policy must be readable, and a verdict writable, by this model
            policy = default_policy()
            self.layout.category_reader(policy)
            for unsafe in (False, True):  # both rating words where generate mode reads them
                check_reachable(
                    self.tokenizer,
                    regex_parser(self._answer_pattern(policy)),
                    continuation_ids(self.tokenizer, self._verdict_text(policy, unsafe, None)),
                    self.stop_ids[0],
                )
        except (InvalidInput, ValueError) as exc:
            raise ModelError(f"this judge cannot write the verdict format: {exc}") from None

    # -- prompts -------------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def chat(self, user_text: str) -> str:
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text}]}
        ]
        return self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def rate_prompt(self, policy: Policy) -> str:
        return self.rate_template.render(
            policy=policy, categories=[c.to_dict() for c in policy.categories]
        )

    def propose_prompt(self, policy: Policy, category: Category, direction: str) -> str:
        return self.propose_template.render(
            policy=policy,
            category=category.to_dict(),
            direction=direction,
            actions=ACTIONS[direction],
        )

    def label(self, category: Category | None) -> str:
        if category is None:
            return self.answer.none_category
        return self.answer.label(category.code, category.name)

    def category_reader(self, policy: Policy) -> CategoryReader:
        """How this policy's categories are read from one forward pass; InvalidInput when two
        of its categories cannot be told apart (see answer_layout.py)."""
        return self.layout.category_reader(policy)

    # -- batching ------------------------------------------------------------------------

    def _encode(
        self, prompts: Sequence[str], images: Sequence[Image.Image], suffixes: Sequence[list[int]]
    ) -> _Encoded:
        """Process prompts and images as one batch, append each row's answer tokens and pad on
        the left again (rows' answers differ in length)."""
        enc = self.processor(
            text=list(prompts),
            images=self.family.images(list(images)),
            return_tensors="pt",
            padding=True,
        )
        enc.pop("labels", None)  # PaliGemma's processor adds training labels: no loss here
        ids, mask = enc["input_ids"], enc["attention_mask"].bool()
        per_token = [k for k, v in enc.items() if torch.is_tensor(v) and v.shape == ids.shape]
        rows = {k: [enc[k][i][mask[i]].tolist() for i in range(len(prompts))] for k in per_token}
        prompt_lengths = [len(r) for r in rows["input_ids"]]
        for i, suffix in enumerate(suffixes):
            for k in per_token:
                rows[k][i] += (
                    suffix if k == "input_ids" else [self.family.answer_fill(k)] * len(suffix)
                )
        width = max(len(r) for r in rows["input_ids"])
        pad = {"input_ids": self.tokenizer.pad_token_id}
        for k in per_token:
            enc[k] = torch.tensor(
                [[pad.get(k, 0)] * (width - len(r)) + r for r in rows[k]], dtype=ids.dtype
            )
        starts = [width - len(r) for r in rows["input_ids"]]
        inputs = {
            k: (v.to(self.device, self.dtype) if torch.is_floating_point(v) else v.to(self.device))
            if torch.is_tensor(v)
            else v
            for k, v in enc.items()
        }
        return _Encoded(inputs, starts, prompt_lengths)

    # -- rating --------------------------------------------------------------------------

    @torch.inference_mode()
    def rate(self, jobs: Sequence[RateJob], mode: str = "forward") -> list[RateOutput]:
        if mode == "generate":
            return self._rate_by_generation(jobs)
        outputs = self._rate_forward(jobs)
        wanted = [i for i, j in enumerate(jobs) if j.rationale]
        if wanted:
            texts = self._rationales([jobs[i] for i in wanted], [outputs[i] for i in wanted])
            for i, text in zip(wanted, texts, strict=True):
                outputs[i] = RateOutput(**{**outputs[i].__dict__, "rationale": text})
        return outputs

    def _rate_forward(self, jobs: Sequence[RateJob]) -> list[RateOutput]:
        readers = [self.category_reader(j.policy) for j in jobs]
        layout = self.layout
        suffixes = [layout.open + list(r.prefix) + list(r.path) for r in readers]
        enc = self._encode(
            [self.chat(self.rate_prompt(j.policy)) for j in jobs], [j.image for j in jobs], suffixes
        )
        # Every read position is in the answer, at the end of the (left-padded) rows: logits of a
        # whole 5,000-token prompt over a 150k-250k vocabulary would take gigabytes.
        keep = max(len(s) for s in suffixes) + 1
        width = enc.inputs["input_ids"].shape[1]
        if self._limits_logits:
            logits = self.model(**enc.inputs, logits_to_keep=keep).logits.float()
            first = width - keep
        else:
            logits, first = self.model(**enc.inputs).logits.float(), 0
        results = []
        for i, (job, reader) in enumerate(zip(jobs, readers, strict=True)):
            base = enc.starts[i] + enc.prompt_lengths[i] - first
            rating = logits[
                i, base + len(layout.open) - 1, [layout.safe_token, layout.unsafe_token]
            ]
            p_unsafe = float(torch.softmax(rating, dim=0)[1])
            at = base + len(layout.open) + len(reader.prefix) - 1
            logp = torch.log_softmax(logits[i, at : at + len(reader.path) + 1], dim=-1)
            along = torch.cumsum(
                torch.tensor([0.0] + [float(logp[d, t]) for d, t in enumerate(reader.path)]), 0
            )
            scores = torch.tensor([float(along[d] + logp[d, t]) for _, d, t in reader.keys])
            probs = torch.softmax(scores, dim=0).tolist()
            category_probs = {
                code: p for (code, _, _), p in zip(reader.keys, probs, strict=True) if code
            }
            unsafe = p_unsafe >= job.threshold
            category = max(category_probs, key=category_probs.__getitem__) if unsafe else ""
            results.append(RateOutput(unsafe, p_unsafe, category_probs, category))
        return results

    def _verdict_text(self, policy: Policy, unsafe: bool, code: str | None) -> str:
        category = policy.category(code) if code else None
        a = self.answer
        return a.open + (a.unsafe if unsafe else a.safe) + a.category + self.label(category)

    def _rationales(self, jobs: Sequence[RateJob], outputs: Sequence[RateOutput]) -> list[str]:
        """Free text continuing each decided verdict's `"rationale": "`, up to the closing
        quote or rationale_chars."""
        suffixes = [
            self._ids(self._verdict_text(j.policy, o.unsafe, o.category) + self.answer.rationale)
            for j, o in zip(jobs, outputs, strict=True)
        ]
        enc = self._encode(
            [self.chat(self.rate_prompt(j.policy)) for j in jobs], [j.image for j in jobs], suffixes
        )
        width = enc.inputs["input_ids"].shape[1]
        generated = self.model.generate(
            **enc.inputs,
            max_new_tokens=self.rationale_chars,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.stop_ids,
            stopping_criteria=StoppingCriteriaList(
                [StopAtQuote(self.tokenizer, width), Cancelled([j.cancelled for j in jobs])]
            ),
        )
        texts = self.tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        return [_clean(t.split('"', 1)[0])[: self.rationale_chars] for t in texts]

    def _answer_pattern(self, policy: Policy, rationale: bool = False) -> str:
        labels = [self.label(c) for c in policy.categories] + [self.label(None)]
        return verdict_pattern(self.answer, labels, self.rationale_chars if rationale else None)

    def _rate_by_generation(self, jobs: Sequence[RateJob]) -> list[RateOutput]:
        """Generate the whole answer under a regular-expression constraint, then parse it. The
        probability of "unsafe" is read from the step where the rating word begins."""
        enc = self._encode(
            [self.chat(self.rate_prompt(j.policy)) for j in jobs],
            [j.image for j in jobs],
            [[] for _ in jobs],
        )
        width = enc.inputs["input_ids"].shape[1]
        parsers = [regex_parser(self._answer_pattern(j.policy, j.rationale)) for j in jobs]
        budget = len(self._ids(self._answer_pattern(jobs[0].policy, False))) + 64
        out = self.model.generate(
            **enc.inputs,
            max_new_tokens=budget + (self.rationale_chars if any(j.rationale for j in jobs) else 0),
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.stop_ids,
            logits_processor=LogitsProcessorList(
                [EnforcedLogits(self.tokenizer, parsers, width, self.stop_ids)]
            ),
            stopping_criteria=StoppingCriteriaList([Cancelled([j.cancelled for j in jobs])]),
            return_dict_in_generate=True,
            output_logits=True,
        )
        safe_tok, unsafe_tok = self.layout.safe_token, self.layout.unsafe_token
        results = []
        for i, job in enumerate(jobs):
            tokens = out.sequences[i, width:].tolist()
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            parsed = parse_verdict(text, job.policy.categories, self.answer)
            step = self._step_after(tokens, self.answer.open)
            p_unsafe = None
            if step is not None:
                rating = out.logits[step][i, [safe_tok, unsafe_tok]].float()
                p_unsafe = float(torch.softmax(rating, dim=0)[1])
            if parsed is None:  # nothing readable: the rating-token probability decides
                p = p_unsafe if p_unsafe is not None else 0.0
                unsafe = p >= job.threshold
                results.append(RateOutput(unsafe, p, {}, "", "", "logits"))
                continue
            if p_unsafe is None:
                p_unsafe = 1.0 if parsed.unsafe else 0.0
            category = parsed.category if parsed.unsafe else ""
            results.append(
                RateOutput(
                    parsed.unsafe,
                    p_unsafe,
                    {category: 1.0} if category else {},
                    category,
                    _clean(parsed.rationale) if job.rationale else "",
                    parsed.source,
                )
            )
        return results

    def _step_after(self, tokens: list[int], prefix: str) -> int | None:
        """The generation step whose token follows exactly `prefix` of the text, if any."""
        for step in range(len(tokens)):
            text = self.tokenizer.decode(tokens[:step], skip_special_tokens=True)
            if text == prefix:
                return step
            if len(text) > len(prefix):
                return None
        return None

    # -- edit proposals --------------------------------------------------------------------

    def proposal_schema(self, direction: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": list(ACTIONS[direction])},
                "element": {"type": "string", "minLength": 3, "maxLength": 80},
                "instruction": {"type": "string", "minLength": 8, "maxLength": 240},
            },
            "required": ["action", "element", "instruction"],
            "additionalProperties": False,
        }

    @torch.inference_mode()
    def propose(self, job: ProposeJob) -> list[Proposal]:
        prompt = self.chat(self.propose_prompt(job.policy, job.category, job.direction))
        enc = self._encode([prompt], [job.image], [[]])
        width = enc.inputs["input_ids"].shape[1]
        torch.manual_seed(job.seed)  # only this thread samples: the seed fixes the answer
        out = self.model.generate(
            **enc.inputs,
            do_sample=True,
            num_return_sequences=job.count,
            max_new_tokens=400,  # the schema's bounds fit well inside
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.stop_ids,
            logits_processor=LogitsProcessorList(
                [
                    EnforcedLogits(
                        self.tokenizer,
                        [json_parser(self.proposal_schema(job.direction))],
                        width,
                        self.stop_ids,
                        rows_per_parser=job.count,
                    )
                ]
            ),
            stopping_criteria=StoppingCriteriaList([Cancelled([job.cancelled])]),
        )
        proposals = []
        for text in self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True):
            try:
                data = json.loads(text, strict=False)
            except ValueError:
                log.warning("dropped a proposal that is not complete JSON: %r", text[:200])
                continue
            proposals.append(
                Proposal(
                    data["action"],
                    _clean(data["element"]),
                    _clean(data["instruction"]),
                    job.category.code,
                )
            )
        if not proposals and not job.cancelled():
            raise ModelError("the judge produced no well-formed edit proposal")
        return proposals
