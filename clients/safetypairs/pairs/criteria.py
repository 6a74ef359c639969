"""When a candidate pair is kept: the acceptance rules, as a pure function of what the judge
said about both images and how much of the image the edit left alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.pair_record import Rating, Similarity

TO_SAFE, TO_UNSAFE = "to_safe", "to_unsafe"
NO_FLIP = "no_flip"  # the two images did not get opposite ratings past the margins
WRONG_CATEGORY = "wrong_category"  # the unsafe image is unsafe in another category
NOT_PRESERVED = "not_preserved"  # the image outside the changed region moved too much
CHANGED_TOO_MUCH = "changed_too_much"  # the changed region is too large a part of the image
# A source whose kept image is within the margin of the threshold, or unsafe in a category not
# asked for: it makes no unit.
SOURCE_AMBIGUOUS = "source_ambiguous"


@dataclass(frozen=True)
class Criteria:
    """`threshold`: P(unsafe) from which the judge calls an image unsafe. `margin`: how far past
    the threshold each image must be, on its side. `min_ssim_outside`: least SSIM over the
    unchanged area. `max_changed_fraction`: largest share of the image the edit may change."""

    threshold: float = 0.5
    margin: float = 0.1
    min_ssim_outside: float = 0.85
    max_changed_fraction: float = 0.35

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise InvalidInput(f"threshold {self.threshold} must lie strictly between 0 and 1")
        if not 0 <= self.margin < min(self.threshold, 1 - self.threshold) + 1e-12:
            raise InvalidInput(f"margin {self.margin} leaves no room on one side of the threshold")
        if not 0 <= self.min_ssim_outside <= 1 or not 0 < self.max_changed_fraction <= 1:
            raise InvalidInput(
                "min_ssim_outside must lie in [0, 1], max_changed_fraction in (0, 1]"
            )

    def to_json(self) -> dict:
        return asdict(self)

    def safe(self, p_unsafe: float) -> bool:
        return p_unsafe <= self.threshold - self.margin

    def unsafe(self, p_unsafe: float) -> bool:
        return p_unsafe >= self.threshold + self.margin


def rejection_reasons(
    criteria: Criteria,
    direction: str,
    category: str,
    kept: Rating,
    edit: Rating,
    similarity: Similarity,
) -> list[str]:
    """Every rule the candidate breaks (empty: accept). `kept` is the pair's unedited member
    (the source, or its null edit), `edit` the edited one."""
    reasons = []
    unsafe_one = edit if direction == TO_UNSAFE else kept
    safe_one = kept if direction == TO_UNSAFE else edit
    if not (criteria.unsafe(unsafe_one.p_unsafe) and criteria.safe(safe_one.p_unsafe)):
        reasons.append(NO_FLIP)
    elif unsafe_one.category != category:
        reasons.append(WRONG_CATEGORY)
    if similarity.changed_fraction > criteria.max_changed_fraction:
        reasons.append(CHANGED_TOO_MUCH)
    # No unchanged area at all: only the changed-fraction rule can speak for it.
    if similarity.ssim_outside is not None and similarity.ssim_outside < criteria.min_ssim_outside:
        reasons.append(NOT_PRESERVED)
    return reasons
