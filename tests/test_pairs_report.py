"""The HTML report of a pair dataset, rendered by real headless Chromium over the DevTools
Protocol: no console errors, one card per record, the change box on the image, working
filters, hostile manifest text shown as text; and the summary figures it is built from."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cdp import Chromium
from PIL import Image, ImageStat
from sample_pairs import HOSTILE, build_sample_dataset

from safetypairs.cli import main
from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.pair_record import from_json
from safetypairs.pairs.dataset import PairDataset
from safetypairs.pairs.report import summarize, write_report

VISIBLE_IDS = """Array.from(document.querySelectorAll('.card'))
  .filter(c => c.offsetParent !== null).map(c => c.querySelector('code').textContent)"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("pairs") / "dataset"
    return root, build_sample_dataset(root)


@pytest.fixture(scope="module")
def report(dataset: tuple[Path, list[dict[str, Any]]]) -> Path:
    return write_report(dataset[0])


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Chromium, report: Path) -> Chromium:
    browser.open(report)
    return browser


def set_filter(page: Chromium, name: str, value: str) -> None:
    page.evaluate(
        f"(() => {{ const s = document.getElementById('f-{name}'); s.value = {json.dumps(value)};"
        " s.dispatchEvent(new Event('change')); })()"
    )


def test_report_renders_every_record_without_errors(page: Chromium, dataset) -> None:
    _, records = dataset
    assert page.evaluate(VISIBLE_IDS) == [r["id"] for r in records]
    # Every image (lazy ones too) loads and decodes: relative paths from the report are right.
    decoded = page.evaluate(
        "Promise.all(Array.from(document.images).map(i => { i.loading = 'eager';"
        " return i.decode().then(() => i.naturalWidth); }))"
    )
    # Both members, and the source photo where it is neither (the kept one is a null edit).
    with_source = sum(
        r["source"]["image"] not in (r["a"]["image"], r["b"]["image"]) for r in records
    )
    assert with_source == len(records)
    assert len(decoded) == 3 * len(records) and all(w > 0 for w in decoded)
    assert page.evaluate("document.querySelectorAll('figure.source').length") == len(records)
    assert "judge: tiny-llava" in page.evaluate("document.getElementById('untrained').innerText")
    failed = page.evaluate("document.querySelector('#summary').innerText")
    assert "not an image <b>bold</b>" in failed  # the failed unit's error, escaped
    shot = Image.open(io.BytesIO(page.screenshot()))
    assert shot.format == "PNG" and shot.width == 1280 and shot.height >= 800
    assert max(ImageStat.Stat(shot.convert("L")).stddev) > 20  # not a blank page
    assert len(shot.convert("RGB").getcolors(1 << 24)) > 1000  # the photos are on it
    assert page.errors() == [] and page.dialogs() == []


def test_cards_show_the_rules_beside_the_figures_in_words(page: Chromium) -> None:
    """The run's thresholds and margin beside each P(unsafe), limits beside SSIM and area,
    field names a person reads (no `edit_s`), and cards sized for the window."""
    rules = page.evaluate("document.getElementById('criteria').innerText")
    assert "at most 0.40 for the safe image and at least 0.60" in rules
    assert "threshold 0.50, margin 0.10" in rules
    first = page.evaluate("document.querySelector('.card').innerText")
    assert "0.100 safe (≤ 0.40)" in first and "0.850 unsafe (≥ 0.60)" in first
    assert "0.970 (at least 0.85)" in first and "8.0% (at most 35%)" in first
    assert "SOURCE" in first and "astronaut.png" in first
    assert "editing 2.00 s" in first and "null edit" in first
    text = page.evaluate("document.body.innerText")
    for raw in ("edit_s", "rate_s", "null_edit", "no_flip", "p_unsafe", "to_unsafe"):
        assert raw not in text, raw
    # Three cards a row in a 1280 px window, none stretched across it.
    boxes = page.evaluate(
        "Array.from(document.querySelectorAll('.card')).slice(0, 3)"
        ".map(c => { const r = c.getBoundingClientRect(); return [r.top, r.width]; })"
    )
    assert len({top for top, _ in boxes}) == 1 and all(w < 0.4 * 1280 for _, w in boxes)


def test_change_box_is_drawn_over_the_displayed_image(page: Chromium, dataset) -> None:
    _, records = dataset
    x, y, w, h = records[0]["similarity"]["change_bbox"]
    # Measured straight after the load event, when the lazy image may not have arrived yet:
    # the box must already sit where it belongs.
    got = page.evaluate(
        """(() => { const f = document.querySelector('.card').querySelectorAll('.member .frame')[1];
        const i = f.querySelector('img').getBoundingClientRect();
        const b = f.querySelector('.box').getBoundingClientRect();
        return {width_shown: i.width, height_shown: i.height, left: b.left - i.left,
                top: b.top - i.top, width: b.width, height: b.height}; })()"""
    )
    got["scale"] = got["width_shown"] / 160  # the astronaut's pixel width in the sample
    assert abs(got["scale"] - 1) > 0.1  # not shown at its pixel size, so scaling is tested
    assert got["height_shown"] == pytest.approx(112 * got["scale"], abs=1.0)
    for key, value in (("left", x), ("top", y), ("width", w), ("height", h)):
        assert got[key] == pytest.approx(value * got["scale"], abs=1.0), key


def test_filters_hide_the_right_cards(page: Chromium, dataset) -> None:
    _, records = dataset

    def ids(**want: str) -> list[str]:
        return [r["id"] for r in records if all(r[k] == v for k, v in want.items())]

    set_filter(page, "category", "O6")
    assert page.evaluate(VISIBLE_IDS) == ids(category="O6")
    set_filter(page, "status", "rejected")
    assert page.evaluate(VISIBLE_IDS) == ids(category="O6", status="rejected")
    assert page.evaluate("document.getElementById('shown').textContent") == (
        f"2 of {len(records)} shown"
    )
    set_filter(page, "category", "")
    set_filter(page, "reason", "changed_too_much")
    assert page.evaluate(VISIBLE_IDS) == [
        r["id"] for r in records if "changed_too_much" in r.get("reasons", [])
    ]
    set_filter(page, "reason", "")
    set_filter(page, "status", "accepted")
    set_filter(page, "direction", "to_safe")
    assert page.evaluate(VISIBLE_IDS) == ids(status="accepted", direction="to_safe")
    assert page.errors() == []


def test_hostile_instruction_is_shown_as_text(page: Chromium) -> None:
    shown = page.evaluate(
        "Array.from(document.querySelectorAll('.instruction')).map(p => p.textContent)"
    )
    assert HOSTILE in shown
    assert page.evaluate("document.scripts.length") == 1  # the page's own script only
    assert page.evaluate("document.querySelectorAll('img[src=x], img[onerror]').length") == 0
    assert page.dialogs() == [] and page.errors() == []


def test_report_of_an_empty_dataset_renders(browser: Chromium, tmp_path: Path) -> None:
    PairDataset.open(tmp_path / "empty", header={"run": {}})
    browser.open(write_report(tmp_path / "empty"))
    assert browser.evaluate("document.getElementById('shown').textContent") == "0 of 0 shown"
    assert browser.evaluate("document.getElementById('untrained')") is None
    assert browser.errors() == []


def test_report_of_sparse_records_and_a_path_outside_images(
    browser: Chromium, tmp_path: Path
) -> None:
    """Absent fields, a missing member, and an image path outside images/ still render; the
    path is never linked."""
    ds = PairDataset.open(tmp_path / "odd", header={"run": {}})
    record = {
        "status": "rejected",
        "id": "odd",
        "b": {"image": "../../etc/passwd", "labels": ["O1"]},
        "similarity": {"change_bbox": [0, 1, 2, 3], "ssim_outside": float("nan")},
    }
    ds.commit([from_json(record, "test record")])
    browser.open(write_report(tmp_path / "odd"))
    assert browser.evaluate("document.querySelectorAll('.card').length") == 1
    assert browser.evaluate("document.images.length") == 0
    assert "no image (../../etc/passwd)" in browser.evaluate("document.body.innerText")
    assert browser.errors() == []


def test_report_names_a_record_of_the_wrong_shape(tmp_path: Path) -> None:
    root = tmp_path / "odd"
    PairDataset.open(root, header={"run": {}}).close()
    (root / "commits.jsonl").unlink()  # written by hand below: read whole, without a journal
    good = {"status": "rejected", "id": "fine", "unit": "u", "reasons": ["no_flip"]}
    bad = {"status": "rejected", "id": "odd", "unit": "u", "a": {"labels": "O1"}}
    (root / "rejected.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    message = r"rejected\.jsonl line 2 \(pair odd\): 'a\.labels' must be a list of strings"
    with pytest.raises(InvalidInput, match=message):
        write_report(root)
    assert not (root / "report.html").exists()


def test_summary_figures(dataset) -> None:
    root, _ = dataset
    ds = PairDataset.open(root)
    s = summarize(list(ds.pairs()), list(ds.failures()))
    assert (s.accepted, s.rejected, s.failed) == (2, 3, 1)
    assert s.categories["O6"].acceptance_rate == pytest.approx(1 / 3)
    assert (len(s.categories["O6"].units), len(s.categories["O6"].units_with_pair)) == (2, 1)
    assert s.categories["O1"].acceptance_rate == pytest.approx(1 / 2)
    assert dict(s.reasons) == {
        "no_flip": 1,
        "not_preserved": 1,
        "changed_too_much": 1,
        "wrong_category": 1,
    }
    assert s.stages["edit_s"].n == 5 and s.stages["edit_s"].median == pytest.approx(2.0)
    assert s.untrained == ["judge: tiny-llava"]


def test_summary_of_mixed_timings_and_trained_models() -> None:
    records = [
        {
            "status": "accepted",
            "unit": "u",
            "category": "O2",
            "timings": {"edit_s": 1.0},
            "models": {"judge": "j", "judge_untrained": False},
        },
        {
            "status": "rejected",
            "unit": "u",
            "category": "O2",
            "reasons": ["no_flip"],
            "timings": {"edit_s": 5.0, "rate_s": float("nan")},
        },
        {"status": "rejected", "unit": "v", "category": "O2", "timings": {"edit_s": 6.0}},
    ]
    s = summarize([from_json(r, "test record") for r in records], [])
    assert s.stages["edit_s"].mean == pytest.approx(4.0)
    assert s.stages["edit_s"].median == pytest.approx(5.0)
    assert "rate_s" not in s.stages and s.untrained == []


def test_report_of_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a pair dataset"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2


def test_report_leaves_a_dataset_being_written_alone(dataset, tmp_path: Path) -> None:
    """A generator may be mid-append: the report shows the committed units and changes
    nothing."""
    copy = tmp_path / "copy"
    shutil.copytree(dataset[0], copy)
    committed = len(list(PairDataset.read(copy).pairs()))
    with open(copy / "rejected.jsonl", "a") as f:
        f.write('{"status": "rejected", "id": "half')
    before = (copy / "rejected.jsonl").read_bytes()
    page = write_report(copy).read_text()
    assert page.count('class="card') == committed and '"half' not in page
    assert (copy / "rejected.jsonl").read_bytes() == before


def test_cli_report_prints_the_path(dataset, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = dataset
    assert main(["report", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(root / "report.html")
