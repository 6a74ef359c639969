"""A static HTML report of a pair dataset: `report.html` in the dataset folder.

One self-contained page (inline CSS and JS, no network) that shows every accepted pair and
rejected candidate side by side with its change region outlined and people's review state
(from the review log; a filter shows one state), and a summary at the top:
acceptance per category, rejections per reason, time per stage, failed units. Images are
referenced by relative path, so the folder can be copied or served as it is.

Every string from the manifest is escaped: instructions come from a model and are treated as
hostile. As a second line of defence the page's Content-Security-Policy allows only its own
script (by hash), so markup that slipped through escaping still could not run.

Images are read as every dataset reader reads them (no symbolic links, checked against the
SHA-256 in their name): one that fails is not linked from the page (the browser would follow
the link) but shown as a named warning in its place, so the rest of the dataset can still be
looked at and the bad file is seen where it is used.

Standard library only: the SDK stays light.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput, SafetyPairsError
from safetypairs.contract.pair_record import (
    ACCEPTED,
    REJECTED,
    FailedUnit,
    Member,
    PairRecord,
    to_json,
)
from safetypairs.contract.review_record import (
    STATES,
    ReviewRecord,
    pair_state,
    standing,
)
from safetypairs.pairs.criteria import Criteria
from safetypairs.pairs.dataset import Dataset, is_image_path
from safetypairs.pairs.report_summary import UNCATEGORIZED, Summary, finite, summarize
from safetypairs.pairs.store import local_path, read_dataset

REPORT_NAME = "report.html"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- rendering -----------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    number = finite(value)
    if number is None:
        return "—" if value is None else _e(value)
    return f"{number:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, without decoding (standard library only)."""
    head = data[:24]
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _box_style(bbox: tuple[int, ...] | None, size: tuple[int, int] | None) -> str | None:
    """The change box as percentages of the image, so it scales with the displayed size."""
    if size is None or bbox is None or len(bbox) != 4 or 0 in size:
        return None
    x, y, w, h = bbox
    width, height = size

    def pct(v: float, whole: int) -> str:
        return f"{min(max(100 * v / whole, 0.0), 100.0):.3f}%"

    return (
        f"left:{pct(x, width)};top:{pct(y, height)};width:{pct(w, width)};height:{pct(h, height)}"
    )


def _frame(ds: Dataset, path: str | None, alt: str, bbox: tuple[int, ...] | None) -> str:
    """An image of the dataset with the change box over it, or a named warning in its place."""
    if not is_image_path(path):
        return f'<div class="missing">no image ({_e(path)})</div>'
    try:
        size = _png_size(ds.read_image(str(path)))
    except FileNotFoundError:
        return f'<div class="missing">missing file {_e(path)}</div>'
    except SafetyPairsError as exc:
        return f'<div class="missing refused">refused image {_e(path)}: {_e(exc.message)}</div>'
    style = _box_style(bbox, size)
    box = f'<div class="box" style="{style}"></div>' if style else ""
    # The size up front: the frame has its final shape (and the box its place) before a lazy
    # image has loaded.
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return (
        f'<div class="frame"><img src="{_e(path)}" alt="{_e(alt)}"{dims} loading="lazy">{box}</div>'
    )


def _side(p_unsafe: float | None, criteria: Criteria | None) -> str:
    """Where the judge's P(unsafe) puts an image under the run's criteria."""
    if criteria is None or finite(p_unsafe) is None:
        return ""
    assert p_unsafe is not None
    if criteria.safe(p_unsafe):
        return f"safe (≤ {criteria.threshold - criteria.margin:.2f})"
    if criteria.unsafe(p_unsafe):
        return f"unsafe (≥ {criteria.threshold + criteria.margin:.2f})"
    return (
        f"within the margin ({criteria.threshold - criteria.margin:.2f} to "
        f"{criteria.threshold + criteria.margin:.2f})"
    )


def _figure(
    ds: Dataset,
    side: str,
    member: Member | None,
    bbox: tuple[int, ...] | None,
    criteria: Criteria | None,
) -> str:
    member = member or Member()
    role = ROLE_NAMES.get(member.role or "", member.role or side)
    labels_text = ", ".join(member.labels or ())
    verdict = _side(member.p_unsafe, criteria)
    caption = (
        f"<figcaption><b>{_e(side.upper())}</b> · {_e(role)}<br>"
        f"labels: {_e(labels_text or 'safe')} · category {_e(member.category or '—')}<br>"
        f'judge P(unsafe) <b>{_fmt(member.p_unsafe)}</b> <span class="side">{_e(verdict)}'
        "</span></figcaption>"
    )
    alt = f"{side}: {role}"
    return f'<figure class="member">{_frame(ds, member.image, alt, bbox)}{caption}</figure>'


def _source_figure(ds: Dataset, r: PairRecord) -> str:
    """The photo the pair was made from, when neither member is it (with artifact matching the
    kept member is the null edit's output, not the photo)."""
    image = r.source.image if r.source else None
    if not image or image in {m.image for m in (r.a, r.b) if m}:
        return ""
    name = Path(r.source.path).name if r.source and r.source.path else "source"
    caption = f"<figcaption><b>SOURCE</b> · the photo as given<br>{_e(name)}</figcaption>"
    return f'<figure class="source">{_frame(ds, image, "source photo", None)}{caption}</figure>'


def _facts(pairs: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _review_tag(decisions: dict[str, ReviewRecord] | None) -> str:
    """People's review of the pair: its state and who decided what."""
    state = pair_state(decisions)
    who = ", ".join(
        f"{d.reviewer} {d.decision}" + (f" ({d.reason})" if d.reason else "")
        for d in sorted((decisions or {}).values(), key=lambda d: d.reviewer)
    )
    return f'<span class="review {_e(state)}" title="{_e(who)}">review: {_e(state)}</span>'


def _models_text(r: PairRecord) -> str:
    """ "judge tiny-llava (untrained) · editor tiny-ip2p"."""
    m = r.models
    if m is None:
        return "—"
    shown = [
        f"{role} {name}" + (" (untrained)" if flag else "")
        for role, name, flag in (
            ("judge", m.judge, m.judge_untrained),
            ("editor", m.edit, m.edit_untrained),
        )
        if name
    ]
    return " · ".join(shown) or "—"


def _limit(value: str, rule: str | None) -> str:
    return f'{value} <span class="rule">({_e(rule)})</span>' if rule else value


def _card(
    ds: Dataset,
    r: PairRecord,
    decisions: dict[str, ReviewRecord] | None = None,
    criteria: Criteria | None = None,
) -> str:
    status = str(r.status)
    category = r.category or UNCATEGORIZED
    direction = r.direction or ""
    similarity = r.similarity
    bbox = similarity.change_bbox if similarity else None
    seeds = to_json(r.seeds) if r.seeds else {}
    facts = [
        (
            "SSIM outside the change",
            _limit(
                _fmt(similarity.ssim_outside if similarity else None),
                f"at least {criteria.min_ssim_outside:.2f}" if criteria else None,
            ),
        ),
        (
            "area changed",
            _limit(
                _percent(finite(similarity.changed_fraction if similarity else None)),
                f"at most {100 * criteria.max_changed_fraction:.0f}%" if criteria else None,
            ),
        ),
        ("change box (x y w h)", _e(" ".join(map(str, bbox)) if bbox else "—")),
        ("seeds", _e(", ".join(f"{human(k)} {'—' if v is None else v}" for k, v in seeds.items()))),
        ("artifact matching", _e(r.artifact_matched if r.artifact_matched is not None else "—")),
        ("source photo", _e(r.source.path if r.source else None)),
        ("unit", f"{_e(r.unit)} · attempt {_e(r.attempt)} · candidate {_e(r.candidate)}"),
        ("models", _e(_models_text(r))),
        ("time", _e(", ".join(f"{human(k)} {_fmt(v, 2)} s" for k, v in _stages(r).items()))),
    ]
    reason_html = "".join(
        f'<span class="reason" data-reason="{_e(x)}" title="{_e(x)}">{_e(human(x))}</span>'
        for x in r.reasons or ()
    )
    action = " ".join(x for x in (r.action, r.element) if x)
    return (
        f'<article class="card {_e(status)}" data-status="{_e(status)}" '
        f'data-category="{_e(category)}" data-direction="{_e(direction)}" '
        f'data-review="{_e(pair_state(decisions))}">'
        f'<header><span class="status">{_e(status)}</span> <span class="cat">{_e(category)}</span>'
        f" {_e(human(direction))} {reason_html}{_review_tag(decisions)}<code>{_e(r.id)}</code>"
        "</header>"
        f'<p class="instruction">{_e(r.instruction)}</p>'
        f'<p class="action">{_e(action)}</p>'
        f'<div class="pair">{_source_figure(ds, r)}{_figure(ds, "a", r.a, bbox, criteria)}'
        f"{_figure(ds, 'b', r.b, bbox, criteria)}</div>"
        f"{_facts(facts)}</article>"
    )


# How the report names the record's raw keys (timings, seeds, reasons, roles, directions).
HUMAN_NAMES = {
    "rate_s": "rating",
    "propose_s": "proposing",
    "edit_s": "editing",
    "total_s": "total",
    "propose": "proposal",
    "null_edit": "null edit",
    "to_safe": "to safe",
    "to_unsafe": "to unsafe",
    "no_flip": "label did not flip",
    "wrong_category": "wrong category",
    "not_preserved": "rest of the image not preserved",
    "changed_too_much": "changed too much",
}
ROLE_NAMES = {"kept": "kept (null edit)", "source": "the source photo", "edit": "edited"}


def human(key: str) -> str:
    return HUMAN_NAMES.get(key, key.replace("_", " "))


def criteria_of(header: dict[str, Any]) -> Criteria | None:
    """The run's acceptance criteria from the dataset header (None when it has none)."""
    given = (header.get("run") or {}).get("criteria")
    if not isinstance(given, dict):
        return None
    try:
        return Criteria(**given)
    except (TypeError, InvalidInput):  # a header from another version: show no rules
        return None


def _criteria_html(criteria: Criteria | None) -> str:
    if criteria is None:
        return '<p id="criteria" class="empty">the run recorded no acceptance criteria</p>'
    t, m = criteria.threshold, criteria.margin
    return (
        '<p id="criteria"><b>Kept when</b> the judge\'s P(unsafe) is at most '
        f"<b>{t - m:.2f}</b> for the safe image and at least <b>{t + m:.2f}</b> for the unsafe "
        f"one (threshold {t:.2f}, margin {m:.2f}), the SSIM outside the change is at least "
        f"<b>{criteria.min_ssim_outside:.2f}</b> and at most "
        f"<b>{100 * criteria.max_changed_fraction:.0f}%</b> of the image changed.</p>"
    )


def _stages(r: PairRecord) -> dict[str, float]:
    return r.timings.stages() if r.timings else {}


def _table(head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{empty}</p>'
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _summary_html(s: Summary, failed: Sequence[FailedUnit], criteria: Criteria | None) -> str:
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
        [[_e(human(k)), str(n), _percent(n / s.rejected)] for k, n in s.reasons.most_common()],
        "no rejections",
    )
    per_stage = _table(
        ["stage", "n", "mean s", "median s", "total s"],
        [
            [_e(human(k)), str(t.n), _fmt(t.mean), _fmt(t.median), _fmt(t.total, 1)]
            for k, t in s.stages.items()
        ],
        "no timings",
    )
    failures = _table(
        ["unit", "source", "error", "message"],
        [
            [
                _e(f.unit),
                _e(f.source.path if f.source else None),
                _e(f.error.kind if f.error else None),
                _e(f.error.message if f.error else None),
            ]
            for f in failed
        ],
        "no failed units",
    )
    return (
        f'<section id="summary"><p class="totals"><b>{s.accepted}</b> accepted pairs · '
        f"<b>{s.rejected}</b> rejected candidates · <b>{s.failed}</b> failed units</p>"
        f"{_criteria_html(criteria)}"
        f'<div class="grid"><div><h2>Acceptance per category</h2>{per_category}</div>'
        f"<div><h2>Rejections per reason</h2>{per_reason}</div>"
        f"<div><h2>Time per stage (per candidate)</h2>{per_stage}</div></div>"
        f"<h2>Failed units</h2>{failures}</section>"
    )


def _select(name: str, label: str, values: list[str]) -> str:
    options = "".join(f'<option value="{_e(v)}">{_e(human(v))}</option>' for v in values)
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
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,400px),1fr));
 gap:1em;margin-top:1em;align-items:start}
.card{background:#fff;border:1px solid #bbb;border-left:6px solid #2e7d32;padding:.6em;
 box-sizing:border-box;overflow-wrap:anywhere;max-width:720px}
.card.rejected{border-left-color:#c62828}.card[hidden]{display:none!important}
.card header{display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
.card code{margin-left:auto;color:#666;font-size:.85em}
.status{font-weight:bold;text-transform:uppercase}.cat{background:#eee;padding:0 .3em}
.reason{background:#ffebee;color:#b71c1c;padding:0 .3em;border-radius:3px}
.review{background:#eee;color:#555;padding:0 .3em;border-radius:3px}
.review.accepted{background:#e8f5e9;color:#1b5e20}.review.rejected{background:#ffebee;color:#b71c1c}
.review.disputed{background:#fff8e1;color:#8d6e00}
.instruction{font-size:1.1em;margin:.4em 0 .1em;white-space:pre-wrap}
.action{color:#555;margin:0 0 .4em}
.pair{display:flex;gap:.6em}figure{margin:0;flex:1;min-width:0}
figure.source{opacity:.85}.side{color:#555;white-space:nowrap}.rule{color:#888}
#criteria{background:#fff;border:1px solid #ccc;padding:.4em .6em;display:inline-block}
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
  ['category', 'status', 'direction', 'reason', 'review'].forEach(function (k) {
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
        (!f.reason.value || hasReason(c, f.reason.value)) &&
        (!f.review.value || c.dataset.review === f.review.value);
      c.hidden = !ok;
      if (ok) shown++;
    });
    document.getElementById('shown').textContent = shown + ' of ' + cards.length + ' shown';
  }
  apply();
})();
"""


def render(
    ds: Dataset,
    records: Sequence[PairRecord],
    failed: Sequence[FailedUnit],
    reviews: dict[str, dict[str, ReviewRecord]] | None = None,
) -> str:
    """The report page for these records (accepted and rejected) and failed units; `reviews`:
    pair id -> reviewer -> standing decision (safetypairs.contract.review_record)."""
    reviews = reviews or {}
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
        "category": sorted({r.category or UNCATEGORIZED for r in records}),
        "status": [s for s in (ACCEPTED, REJECTED) if any(r.status == s for r in records)],
        "direction": sorted({r.direction for r in records if r.direction}),
        "reason": sorted(summary.reasons),
        "review": [
            s for s in STATES if any(pair_state(reviews.get(str(r.id))) == s for r in records)
        ],
    }
    filters = "".join(_select(k, k, v) for k, v in values.items())
    criteria = criteria_of(ds.header)
    cards = "".join(_card(ds, r, reviews.get(str(r.id)), criteria) for r in records)
    name = ds.location.rstrip("/").rsplit("/", 1)[-1]
    about = json.dumps(ds.header, indent=2, sort_keys=True, default=str)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        f"<title>Pair dataset report: {_e(name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Pair dataset {_e(name)}</h1>{banner}"
        f"<details><summary>dataset.json</summary><pre>{_e(about)}</pre></details>"
        f"{_summary_html(summary, failed, criteria)}"
        f'<div id="filters">{filters}<span id="shown"></span></div>'
        f'<main id="cards">{cards}</main><script>{_JS}</script></body></html>\n'
    )


def write_report(location: str | Path) -> Path | str:
    """Write `report.html` into the dataset (a folder or an object store URL) and return
    where it is: a Path for a folder."""
    ds = read_dataset(location)
    records, failed = list(ds.pairs()), list(ds.failures())
    page = render(ds, records, failed, standing(ds.reviews())).encode()
    where = ds.put_file(REPORT_NAME, page)
    return where if local_path(location) is None else Path(where)
