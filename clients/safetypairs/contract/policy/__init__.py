"""Safety policies as data: the built-in LlavaGuard-style taxonomy and custom YAML policies."""

from safetypairs.contract.policy.taxonomy import (
    Category,
    Policy,
    default_policy,
    load_policy,
    parse_policy,
    policy_from_dict,
)

__all__ = [
    "Category",
    "Policy",
    "default_policy",
    "load_policy",
    "parse_policy",
    "policy_from_dict",
]
