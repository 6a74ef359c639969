"""A static HTML report of a pair dataset: `report.html` in the dataset folder.

One self-contained page (inline CSS and JS, no network) that shows every accepted pair and
rejected candidate side by side with its change region outlined, and a summary at the top:
acceptance per category, rejections per reason, time per stage, failed units. Images are
referenced by relative path, so the folder can be copied or served as it is.

Every string from the manifest is escaped: instructions come from a model and are treated as
hostile. As a second line of defence the page's Content-Security-Policy allows only its own
script (by hash), so markup that slipped through escaping still could not run.

Standard library only: the SDK stays light.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import statistics
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput
from safetypairs.pairs.dataset import ACCEPTED, FAILED, REJECTED, PairDataset, is_image_path

REPORT_NAME = "report.html"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNCATEGORIZED = "(none)"


@dataclass
class CategoryStats:
    units: set[str] = field(default_factory=set)
    units_with_pair: set[str] = field(default_factory=set)
    accepted: int = 0
    rejected: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        total = self.accepted + self.rejected
        return self.accepted / total if total else None


@dataclass
class StageTime:
    n: int
    mean: float
    median: float
    total: float


@dataclass
class Summary:
    """The figures at the top of the report (also useful on their own)."""

    accepted: int
    rejected: int
    failed: int
    categories: dict[str, CategoryStats]
    reasons: Counter[str]
    stages: dict[str, StageTime]
    untrained: list[str]


def _get(record: dict[str, Any], *keys: str) -> Any:
    """A nested field, or None where any level is missing or not an object."""
    value: Any = record
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _dict(value: Any) -> dict[str, Any]:
    """A manifest object, or empty where the field is missing or of another type."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def summarize(records: list[dict[str, Any]], failed: list[dict[str, Any]]) -> Summary:
    """Acceptance per category (candidates and units), rejections per reason, time per stage
    over every candidate's timings, and the models flagged untrained."""
    categories: dict[str, CategoryStats] = {}
    reasons: Counter[str] = Counter()
    timings: dict[str, list[float]] = {}
    untrained: set[str] = set()
    for r in records:
        stats = categories.setdefault(str(r.get("category") or UNCATEGORIZED), CategoryStats())
        unit = str(r.get("unit"))
        stats.units.add(unit)
        if r.get("status") == ACCEPTED:
            stats.accepted += 1
            stats.units_with_pair.add(unit)
        else:
            stats.rejected += 1
            reasons.update(str(reason) for reason in _list(r.get("reasons")))
        for stage, seconds in _dict(r.get("timings")).items():
            if (value := _number(seconds)) is not None:
                timings.setdefault(str(stage), []).append(value)
        models = _dict(r.get("models"))
        for key, flag in models.items():
            if key.endswith("_untrained") and flag is True:
                role = key.removesuffix("_untrained")
                untrained.add(f"{role}: {models.get(role) or 'unnamed model'}")
    stages = {
        stage: StageTime(len(v), statistics.fmean(v), statistics.median(v), math.fsum(v))
        for stage, v in timings.items()
    }
    return Summary(
        accepted=sum(s.accepted for s in categories.values()),
        rejected=sum(s.rejected for s in categories.values()),
        failed=len(failed),
        categories=dict(sorted(categories.items())),
        reasons=reasons,
        stages=stages,
        untrained=sorted(untrained),
    )


# -- rendering -----------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    number = _number(value)
    if number is None:
        return "—" if value is None else _e(value)
    return f"{number:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _png_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, without decoding (standard library only)."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _box_style(bbox: Any, size: tuple[int, int] | None) -> str | None:
    """The change box as percentages of the image, so it scales with the displayed size."""
    if size is None or not isinstance(bbox, list) or len(bbox) != 4:
        return None
    numbers = [_number(v) for v in bbox]
    if any(v is None for v in numbers) or 0 in size:
        return None
    x, y, w, h = numbers  # type: ignore[misc]
    width, height = size

    def pct(v: float, whole: int) -> str:
        return f"{min(max(100 * v / whole, 0.0), 100.0):.3f}%"

    return (
        f"left:{pct(x, width)};top:{pct(y, height)};width:{pct(w, width)};height:{pct(h, height)}"
    )


def _figure(root: Path, side: str, member: Any, bbox: Any) -> str:
    member = _dict(member)
    path = member.get("image")
    role = member.get("role") or side
    labels_text = ", ".join(str(label) for label in _list(member.get("labels")))
    caption = (
        f"<figcaption><b>{_e(side.upper())}</b> · {_e(role)}<br>"
        f"labels: {_e(labels_text or 'safe')} · p_unsafe {_fmt(member.get('p_unsafe'))}"
        f" · category {_e(member.get('category') or '—')}</figcaption>"
    )
    if not is_image_path(path):
        return f'<figure><div class="missing">no image ({_e(path)})</div>{caption}</figure>'
    if not (root / path).is_file():
        return f'<figure><div class="missing">missing file {_e(path)}</div>{caption}</figure>'
    size = _png_size(root / path)
    style = _box_style(bbox, size)
    box = f'<div class="box" style="{style}"></div>' if style else ""
    # The size up front: the frame has its final shape (and the box its place) before a lazy
    # image has loaded.
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return (
        f'<figure><div class="frame"><img src="{_e(path)}" alt="{_e(side)}: {_e(role)}"{dims} '
        f'loading="lazy">{box}</div>{caption}</figure>'
    )


def _facts(pairs: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _card(root: Path, r: dict[str, Any]) -> str:
    status = str(r.get("status"))
    category = str(r.get("category") or UNCATEGORIZED)
    direction = str(r.get("direction") or "")
    bbox = _get(r, "similarity", "change_bbox")
    reasons = [str(x) for x in _list(r.get("reasons"))]
    seeds = _dict(r.get("seeds"))
    models = _dict(r.get("models"))
    facts = [
        ("ssim outside", _fmt(_get(r, "similarity", "ssim_outside"))),
        ("changed", _percent(_number(_get(r, "similarity", "changed_fraction")))),
        ("change box", _e(" ".join(str(v) for v in bbox) if isinstance(bbox, list) else "—")),
        ("seeds", _e(", ".join(f"{k} {'—' if v is None else v}" for k, v in seeds.items()))),
        ("artifact match", _e(r.get("artifact_matched") or "—")),
        ("source", _e(_get(r, "source", "path"))),
        (
            "unit",
            f"{_e(r.get('unit'))} · attempt {_e(r.get('attempt'))} · "
            f"candidate {_e(r.get('candidate'))}",
        ),
        (
            "models",
            _e(", ".join(f"{k} {v}" for k, v in models.items() if not k.endswith("_untrained"))),
        ),
        ("time", _e(", ".join(f"{k} {_fmt(v, 2)}" for k, v in _dict(r.get("timings")).items()))),
    ]
    reason_html = "".join(
        f'<span class="reason" data-reason="{_e(x)}">{_e(x)}</span>' for x in reasons
    )
    action = " ".join(str(x) for x in (r.get("action"), r.get("element")) if x)
    return (
        f'<article class="card {_e(status)}" data-status="{_e(status)}" '
        f'data-category="{_e(category)}" data-direction="{_e(direction)}">'
        f'<header><span class="status">{_e(status)}</span> <span class="cat">{_e(category)}</span>'
        f" {_e(direction)} {reason_html}<code>{_e(r.get('id'))}</code></header>"
        f'<p class="instruction">{_e(r.get("instruction"))}</p>'
        f'<p class="action">{_e(action)}</p>'
        f'<div class="pair">{_figure(root, "a", r.get("a"), bbox)}'
        f"{_figure(root, 'b', r.get('b'), bbox)}</div>"
        f"{_facts(facts)}</article>"
    )


def _table(head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{empty}</p>'
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _summary_html(s: Summary, failed: list[dict[str, Any]]) -> str:
    per_category = _table(
        ["category", "units", "units with a pair", "accepted", "rejected", "acceptance"],
        [
            [
                _e(c),
                str(len(v.units)),
                str(len(v.units_with_pair)),
                str(v.accepted),
                str(v.rejected),
                _percent(v.acceptance_rate),
            ]
            for c, v in s.categories.items()
        ],
        "no candidates",
    )
    per_reason = _table(
        ["reason", "rejected candidates", "share"],
        [[_e(k), str(n), _percent(n / s.rejected)] for k, n in s.reasons.most_common()],
        "no rejections",
    )
    per_stage = _table(
        ["stage", "n", "mean s", "median s", "total s"],
        [
            [_e(k), str(t.n), _fmt(t.mean), _fmt(t.median), _fmt(t.total, 1)]
            for k, t in s.stages.items()
        ],
        "no timings",
    )
    failures = _table(
        ["unit", "source", "error", "message"],
        [
            [
                _e(f.get("unit")),
                _e(_get(f, "source", "path")),
                _e(_get(f, "error", "kind")),
                _e(_get(f, "error", "message")),
            ]
            for f in failed
        ],
        "no failed units",
    )
    return (
        f'<section id="summary"><p class="totals"><b>{s.accepted}</b> accepted pairs · '
        f"<b>{s.rejected}</b> rejected candidates · <b>{s.failed}</b> failed units</p>"
        f'<div class="grid"><div><h2>Acceptance per category</h2>{per_category}</div>'
        f"<div><h2>Rejections per reason</h2>{per_reason}</div>"
        f"<div><h2>Time per stage (per candidate)</h2>{per_stage}</div></div>"
        f"<h2>Failed units</h2>{failures}</section>"
    )


def _select(name: str, label: str, values: list[str]) -> str:
    options = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
    return (
        f'<label>{label} <select id="f-{name}"><option value="">all</option>'
        f"{options}</select></label>"
    )


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{margin:0 0 .3em}h2{font-size:1.05em;margin:1em 0 .3em}
.banner{background:#b00020;color:#fff;padding:.7em 1em;font-weight:bold;margin:.5em 0}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #ccc;padding:.2em .5em}
td{text-align:right}td:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:2em}.empty{color:#777}
#filters{position:sticky;top:0;background:#fafafa;padding:.5em 0;border-bottom:1px solid #ccc}
#filters label{margin-right:1em}
#cards{display:flex;flex-wrap:wrap;gap:1em;margin-top:1em}
.card{background:#fff;border:1px solid #bbb;border-left:6px solid #2e7d32;padding:.6em;
 width:560px;box-sizing:border-box;overflow-wrap:anywhere}
.card.rejected{border-left-color:#c62828}.card[hidden]{display:none!important}
.card header{display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
.card code{margin-left:auto;color:#666;font-size:.85em}
.status{font-weight:bold;text-transform:uppercase}.cat{background:#eee;padding:0 .3em}
.reason{background:#ffebee;color:#b71c1c;padding:0 .3em;border-radius:3px}
.instruction{font-size:1.1em;margin:.4em 0 .1em;white-space:pre-wrap}
.action{color:#555;margin:0 0 .4em}
.pair{display:flex;gap:.6em}figure{margin:0;flex:1}
.frame{position:relative;line-height:0}.frame img{width:100%;height:auto;display:block}
.box{position:absolute;outline:2px solid #ff1744;box-shadow:0 0 0 1px #fff;pointer-events:none}
.missing{background:#eee;color:#900;padding:2em .5em;text-align:center}
figcaption{font-size:.85em;margin-top:.2em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:0 .8em;font-size:.85em;margin:.5em 0 0}
dt{color:#666}dd{margin:0}
"""

# Filters show a card when it matches every chosen value; the page's only script.
_JS = """
(function () {
  var cards = Array.prototype.slice.call(document.querySelectorAll('.card'));
  var f = {};
  ['category', 'status', 'direction', 'reason'].forEach(function (k) {
    f[k] = document.getElementById('f-' + k);
    f[k].addEventListener('change', apply);
  });
  function hasReason(card, reason) {
    return Array.prototype.some.call(card.querySelectorAll('.reason'), function (e) {
      return e.dataset.reason === reason;
    });
  }
  function apply() {
    var shown = 0;
    cards.forEach(function (c) {
      var ok = (!f.category.value || c.dataset.category === f.category.value) &&
        (!f.status.value || c.dataset.status === f.status.value) &&
        (!f.direction.value || c.dataset.direction === f.direction.value) &&
        (!f.reason.value || hasReason(c, f.reason.value));
      c.hidden = !ok;
      if (ok) shown++;
    });
    document.getElementById('shown').textContent = shown + ' of ' + cards.length + ' shown';
  }
  apply();
})();
"""


def render(
    root: Path, header: dict[str, Any], records: list[dict[str, Any]], failed: list[dict[str, Any]]
) -> str:
    """The report page for these records (accepted and rejected) and failed units."""
    summary = summarize(records, failed)
    script_hash = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    csp = (
        f"default-src 'none'; img-src 'self' file:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'"
    )
    banner = (
        '<div class="banner" id="untrained">Untrained models made this dataset: '
        f"{_e('; '.join(summary.untrained))}. Its labels and edits carry no meaning.</div>"
        if summary.untrained
        else ""
    )
    values = {
        "category": sorted({str(r.get("category") or UNCATEGORIZED) for r in records}),
        "status": [s for s in (ACCEPTED, REJECTED) if any(r.get("status") == s for r in records)],
        "direction": sorted({str(r.get("direction")) for r in records if r.get("direction")}),
        "reason": sorted(summary.reasons),
    }
    filters = "".join(_select(k, k, v) for k, v in values.items())
    cards = "".join(_card(root, r) for r in records)
    about = json.dumps(header, indent=2, sort_keys=True, default=str)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        f"<title>Pair dataset report: {_e(root.name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Pair dataset {_e(root.name)}</h1>{banner}"
        f"<details><summary>dataset.json</summary><pre>{_e(about)}</pre></details>"
        f"{_summary_html(summary, failed)}"
        f'<div id="filters">{filters}<span id="shown"></span></div>'
        f'<main id="cards">{cards}</main><script>{_JS}</script></body></html>\n'
    )


def write_report(root: str | Path) -> Path:
    """Write `report.html` into the dataset folder and return its path."""
    root = Path(root)
    ds = PairDataset.read(root)
    records = [*ds.records(ACCEPTED), *ds.records(REJECTED)]
    failed = list(ds.records(FAILED))
    if not all(isinstance(r, dict) for r in records + failed):
        raise InvalidInput(f"{root} has a manifest line that is not a JSON object")
    path = root / REPORT_NAME
    tmp = path.with_name(f".tmp-{REPORT_NAME}")
    tmp.write_text(render(root, ds.header, records, failed), encoding="utf-8")
    tmp.replace(path)
    return path
