"""Prompt templates as versioned data files (prompts/*.yaml), rendered with sandboxed Jinja2.

A template names itself and its version; every answer records "name@version", so a dataset
says which wording produced each verdict. A directory of templates with the same names can
replace the built-in ones (setting judge_prompts_dir).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from safetypairs.contract.errors import InvalidInput, ModelError

_ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
_ANSWER_KEYS = (
    "open",
    "safe",
    "unsafe",
    "category",
    "category_label",
    "none_category",
    "rationale",
)


@dataclass(frozen=True)
class RateAnswer:
    """How the model writes a verdict, piece by piece (see prompts/rate.yaml)."""

    open: str
    safe: str
    unsafe: str
    category: str
    category_label: str
    none_category: str
    rationale: str

    def label(self, code: str, name: str) -> str:
        return _render(self.category_label, "answer.category_label", code=code, name=name)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    user: str
    source: str
    answer: RateAnswer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, **variables: Any) -> str:
        return _render(self.user, f"{self.source}: user", **variables).strip()


def _render(template: str, where: str, **variables: Any) -> str:
    try:
        return _ENV.from_string(template).render(**variables)
    except TemplateError as exc:
        raise ModelError(f"prompt template {where} failed to render: {exc}") from None


def _parse(text: str, source: str, expected: str) -> PromptTemplate:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(f"prompt template {source} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"prompt template {source} must be a mapping")
    for key in ("name", "version", "user"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ModelError(f"prompt template {source} needs a non-empty string {key!r}")
    if data["name"] != expected:
        raise ModelError(f"prompt template {source} is named {data['name']!r}, not {expected!r}")
    answer = None
    if "answer" in data:
        raw = data["answer"]
        missing = [k for k in _ANSWER_KEYS if not isinstance(raw.get(k), str) or not raw[k]]
        if missing:
            raise ModelError(f"prompt template {source}: answer lacks {', '.join(missing)}")
        answer = RateAnswer(**{k: raw[k] for k in _ANSWER_KEYS})
    try:
        _ENV.parse(data["user"])
    except TemplateError as exc:
        raise ModelError(f"prompt template {source}: user is not valid Jinja2: {exc}") from None
    return PromptTemplate(data["name"], data["version"], data["user"], source, answer)


def load_template(name: str, directory: str = "") -> PromptTemplate:
    """The template `name` from `directory` when given, else the built-in one."""
    if directory:
        path = Path(directory) / f"{name}.yaml"
        try:
            text = path.read_text()
        except OSError as exc:
            raise ModelError(f"cannot read prompt template {path}: {exc.strerror}") from None
        return _parse(text, str(path), name)
    ref = resources.files("safetypairs.judge").joinpath("prompts", f"{name}.yaml")
    return _parse(ref.read_text(), f"{name}.yaml", name)


def check_prompt_size(prompt: str, limit: int) -> None:
    """Refuse a prompt (rendered with the caller's policy) over the size limit."""
    if len(prompt) > limit:
        raise InvalidInput(
            f"the prompt with this policy is {len(prompt)} characters, over the limit of "
            f"{limit} (setting judge_max_prompt_chars); shorten the policy text"
        )
