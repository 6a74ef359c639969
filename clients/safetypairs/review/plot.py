"""The review-stats figure as a PNG, drawn with Pillow (the `pairs` extra): acceptance bars per
category and per reviewer, the agreement figure, and judge-vs-people per category. Pillow
rather than matplotlib: review runs on a client with the pairs extra only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WIDTH, ROW, BAR_X, BAR_W = 760, 26, 230, 380


def plot_stats(stats: dict[str, Any], path: Path) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    rows: list[tuple[str, Any]] = [("heading", "Human acceptance per category")]
    rows += [("bar", (cat, c)) for cat, c in stats["categories"].items()]
    rows += [("heading", "Acceptance per reviewer")]
    rows += [("bar", (f"reviewer {n}", c)) for n, c in stats["reviewers"].items()]
    rows += [("heading", "Agreement"), ("text", _agreement(stats["agreement"]))]
    rows += [("heading", "Judge accepted, people rejected (per category)")]
    rows += [("bar", (cat, _overturned(t))) for cat, t in stats["judge_vs_human"].items()]
    image = Image.new("RGB", (WIDTH, 20 + ROW * (len(rows) + 1)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)
    y = 14
    for kind, value in rows:
        if kind == "heading":
            y += 6
            draw.text((14, y), value, fill="black", font=ImageFont.load_default(size=17))
        elif kind == "text":
            draw.text((24, y), value, fill="#333333", font=font)
        else:
            label, c = value
            draw.text((24, y + 3), str(label)[:28], fill="#333333", font=font)
            draw.rectangle([BAR_X, y + 3, BAR_X + BAR_W, y + ROW - 5], outline="#bbbbbb")
            rate = c["acceptance"]
            if rate is not None:
                draw.rectangle(
                    [BAR_X, y + 3, BAR_X + round(BAR_W * rate), y + ROW - 5], fill="#3b7dd8"
                )
            shown = "n/a" if rate is None else f"{100 * rate:.0f}%"
            draw.text(
                (BAR_X + BAR_W + 10, y + 3),
                f"{shown}  ({c['accepted']}/{c['decisions']})",
                fill="#333333",
                font=font,
            )
        y += ROW
    image.save(path, format="PNG")
    return path


def _agreement(a: dict[str, Any]) -> str:
    if a["method"] is None:
        return a["note"]
    kappa = "undefined" if a["kappa"] is None else f"{a['kappa']:.3f}"
    ci = a["interval"]
    interval = f", {round(100 * a['level'])}% interval [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return f"{a['method'].title()}'s kappa {kappa}{interval} over {a['pairs']} pairs"


def _overturned(t: dict[str, Any]) -> dict[str, Any]:
    judged = t["judge_accepted_human_accepted"] + t["judge_accepted_human_rejected"]
    return {
        "acceptance": t["judge_accepted_human_rejected_rate"],
        "accepted": t["judge_accepted_human_rejected"],
        "decisions": judged,
    }
