"""A small, real pair dataset on disk for the report and export tests: scikit-image photos as
sources, an edited copy with a drawn rectangle (the change box the manifest records), accepted
and rejected candidates over two categories, one failed unit and one hostile instruction. The
records are written as JSON objects (the on-disk format the tests compare against) read
through the record reader."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageEnhance
from skimage import data as photos

from safetypairs.contract.pair_record import from_json
from safetypairs.pairs.dataset import PairDataset

HOSTILE = '<script>alert(1)</script> & "<img src=x onerror=alert(2)>"'
HEADER = {
    "policy": "safetypairs-default",
    "run": {
        "categories": ["O1", "O6"],
        "seed": 7,
        "criteria": {
            "threshold": 0.5,
            "margin": 0.1,
            "min_ssim_outside": 0.85,
            "max_changed_fraction": 0.35,
        },
    },
}


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _edited(source: Image.Image, box: list[int], color: str) -> bytes:
    x, y, w, h = box
    edited = source.copy()
    ImageDraw.Draw(edited).rectangle([x, y, x + w - 1, y + h - 1], fill=color)
    return _png(edited)


def _record(ds: PairDataset, name: str, source: Image.Image, **fields: Any) -> dict[str, Any]:
    box = fields.pop("box")
    src = ds.put_image(_png(source))
    # The null edit: the editor's output for "change nothing", a little darker than the photo.
    kept = ds.put_image(_png(ImageEnhance.Brightness(source).enhance(0.9)))
    edit = ds.put_image(_edited(source, box, fields.pop("color", "red")))
    unsafe_b = fields["direction"] == "to_unsafe"
    record: dict[str, Any] = {
        "id": f"{name}-{fields['attempt']}-{fields['candidate']}",
        "unit": name,
        "final": True,
        "source": {"path": f"/photos/{name}.png", "sha256": src[7:71], "image": src},
        "action": "add" if unsafe_b else "remove",
        "element": "a knife",
        "seeds": {"propose": 11, "edit": 12, "null_edit": None},
        "a": {
            "image": kept,
            "labels": [] if unsafe_b else [fields["category"]],
            "p_unsafe": 0.1 if unsafe_b else 0.9,
            "category": fields["category"],
            "role": "kept",
        },
        "b": {
            "image": edit,
            "labels": [fields["category"]] if unsafe_b else [],
            "p_unsafe": 0.85 if unsafe_b else 0.2,
            "category": fields["category"],
            "role": "edit",
        },
        "edited": "b",
        "artifact_matched": "null-edit",
        "models": {
            "judge": "tiny-llava",
            "edit": "tiny-ip2p",
            "judge_untrained": True,
            "edit_untrained": False,
        },
        "prompt_versions": {"rate": "rate@1", "propose": "propose@1"},
        "similarity": {"ssim_outside": 0.97, "changed_fraction": 0.08, "change_bbox": box},
        "timings": {"rate_s": 0.5, "propose_s": 1.0, "edit_s": 2.0, "total_s": 3.5},
        **fields,
    }
    return record


def build_sample_dataset(root: Path) -> list[dict[str, Any]]:
    """Write the dataset; the accepted and rejected records, in manifest order."""
    ds = PairDataset.open(root, header=HEADER)
    astronaut = Image.fromarray(photos.astronaut()).resize((160, 112))
    coffee = Image.fromarray(photos.coffee()).resize((160, 120))
    cat = Image.fromarray(photos.chelsea()).resize((150, 100))
    records = [
        _record(
            ds,
            "astronaut",
            astronaut,
            status="accepted",
            direction="to_unsafe",
            category="O6",
            attempt=0,
            candidate=0,
            instruction="add a knife to the hand",
            box=[64, 32, 40, 48],
        ),
        _record(
            ds,
            "astronaut",
            astronaut,
            status="rejected",
            direction="to_unsafe",
            category="O6",
            attempt=0,
            candidate=1,
            instruction=HOSTILE,
            final=False,
            reasons=["no_flip"],
            box=[10, 10, 20, 20],
            color="blue",
        ),
        _record(
            ds,
            "coffee",
            coffee,
            status="accepted",
            direction="to_safe",
            category="O1",
            attempt=1,
            candidate=0,
            instruction="remove the stain",
            box=[0, 60, 80, 60],
        ),
        _record(
            ds,
            "coffee",
            coffee,
            status="rejected",
            direction="to_safe",
            category="O1",
            attempt=0,
            candidate=0,
            instruction="remove everything",
            final=False,
            reasons=["not_preserved", "changed_too_much"],
            box=[0, 0, 160, 120],
        ),
        _record(
            ds,
            "cat",
            cat,
            status="rejected",
            direction="to_unsafe",
            category="O6",
            attempt=2,
            candidate=0,
            instruction="add a gun",
            reasons=["wrong_category"],
            box=[100, 50, 30, 30],
            color="black",
        ),
    ]
    # Records may lack optional fields and carry fields readers do not know: both must survive.
    del records[4]["element"], records[4]["prompt_versions"]
    records[4]["notes"] = {"reviewer": "ok", "tags": ["odd", 1]}
    ds.commit([from_json(r, f"sample record {r['id']}") for r in records])
    failed = {
        "status": "failed",
        "unit": "broken",
        "source": {"path": "/photos/broken.jpg"},
        "error": {"kind": "InvalidInput", "message": "not an image <b>bold</b>"},
    }
    ds.commit([from_json(failed, "sample failed unit")])
    ds.close()
    return [r for r in records if r["status"] == "accepted"] + [
        r for r in records if r["status"] == "rejected"
    ]
