"""The EditRequest message from plain fields: one builder for the SDK and the edit service's
HTTP form, so both name the output formats alike and refuse the same impossible requests.

Only what the message itself cannot hold is checked here (an unknown format, a seed outside
uint64, an int32 option far out of range, a mask and a region together); whether a value is
acceptable (steps, scales, thresholds) is the service's to say, with its limits.
"""

from __future__ import annotations

from safetypairs.contract.errors import InvalidInput
from safetypairs.v1 import common_pb2, edit_pb2

FORMATS = {"png": edit_pb2.OUTPUT_FORMAT_PNG, "webp": edit_pb2.OUTPUT_FORMAT_WEBP}
_UINT64 = 2**64
_INT32 = 2**31


def edit_request(
    *,
    image: common_pb2.Image,
    instruction: str,
    seed: int | None = None,
    mask: bytes | None = None,
    region: tuple[int, int, int, int] | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    image_guidance_scale: float | None = None,
    negative_prompt: str = "",
    format: str = "png",
    change_threshold: int | None = None,
) -> edit_pb2.EditRequest:
    """The request; None leaves an option unset (the server's default). `region` is x, y,
    width, height in source pixels."""
    if format.lower() not in FORMATS:
        raise InvalidInput(f"format {format!r} must be one of {', '.join(FORMATS)}")
    if seed is not None and not 0 <= seed < _UINT64:
        raise InvalidInput(f"seed {seed} must lie in 0..2**64-1")
    if mask is not None and region is not None:
        raise InvalidInput("send either a mask or a region, not both")
    options = edit_pb2.EditOptions(negative_prompt=negative_prompt, format=FORMATS[format.lower()])
    for name, value in (("steps", steps), ("change_threshold", change_threshold)):
        if value is not None:
            if not -_INT32 <= value < _INT32:
                raise InvalidInput(f"{name} is {value}; far out of range")
            setattr(options, name, value)
    for name, scale in (
        ("guidance_scale", guidance_scale),
        ("image_guidance_scale", image_guidance_scale),
    ):
        if scale is not None:
            setattr(options, name, scale)
    request = edit_pb2.EditRequest(image=image, instruction=instruction, options=options)
    if seed is not None:
        request.seed = seed
    if mask is not None:
        request.mask.data = mask
    elif region is not None:
        x, y, width, height = region
        request.region.CopyFrom(edit_pb2.Region(x=x, y=y, width=width, height=height))
    return request
