"""Human review: the page driven in headless Chromium with key presses against a real review
server (killed mid-review and restarted), two reviewers at once, the review log's rules, the
agreement figures against values worked out by hand, and the review state flowing into the
report, export, training and evaluation readers.

(Over 400 lines on purpose: the page, the log and the figures share one Chromium, one review
server helper and one fixture dataset.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cdp import Chromium
from conftest import run_cli
from sample_pairs import build_sample_dataset

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.jsonl import BadData
from safetypairs.contract.policy import default_policy
from safetypairs.contract.review_record import (
    REVIEW_LOG,
    append_review,
    read_reviews,
    review,
    standing,
)
from safetypairs.contract.training_data import read_pairs
from safetypairs.evaluation.datasets_in import ReadOptions, load_eval_set
from safetypairs.pairs.export import export_dataset
from safetypairs.pairs.report import write_report
from safetypairs.review.stats import cohen_kappa, fleiss_kappa, write_stats

SHOTS = Path("/tmp/review-shots")
CRITERIA = {"threshold": 0.5, "margin": 0.1, "min_ssim_outside": 0.85, "max_changed_fraction": 0.35}
WAIT_IDLE = """new Promise(done => { const t = () => document.body.dataset.busy === '0'
  ? done(true) : setTimeout(t, 20); t(); })"""
STATE = """({pair: document.body.dataset.pair || null,
  progress: document.getElementById('progress').textContent,
  decision: document.getElementById('decision-state').textContent,
  message: document.getElementById('message').textContent})"""


def review_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=120)


class ReviewServer:
    """`safetypairs review` in a child process on a free port."""

    def __init__(self, dataset: Path, reviewer: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "safetypairs.cli", "review", str(dataset)),
                *("--reviewer", reviewer, "--port", "0", *extra),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "open http" not in line:
            self.proc.kill()
            raise RuntimeError(f"review did not start: {line}{self.proc.stderr.read()}")
        self.url = line.rsplit("open ", 1)[1].strip()
        self.base = self.url.split("?")[0].rstrip("/")

    def decide(self, pair: str, decision: str, reason: str = "", note: str = "") -> int:
        body = json.dumps({"pair": pair, "decision": decision, "reason": reason, "note": note})
        request = urllib.request.Request(
            self.base + "/api/decision",
            data=body.encode(),
            headers={"Content-Type": "application/json", "X-Review": "1"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def queue(self) -> dict[str, Any]:
        return json.loads(self.get("/api/queue")[1])

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as when the machine or the process dies."""
        self.proc.send_signal(signal.SIGKILL)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "dataset"
    build_sample_dataset(root)
    return root


@pytest.fixture
def server_factory() -> Iterator[Any]:
    started: list[ReviewServer] = []

    def start(dataset: Path, reviewer: str, *extra: str) -> ReviewServer:
        started.append(ReviewServer(dataset, reviewer, *extra))
        return started[-1]

    yield start
    for s in started:
        s.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"), height=1000)
    yield chromium
    chromium.close()


def ids(dataset: Path) -> list[str]:
    """The queue order: judge-accepted pairs first, then rejected candidates."""
    out = []
    for name in ("pairs.jsonl", "rejected.jsonl"):
        out += [json.loads(x)["id"] for x in (dataset / name).read_text().splitlines()]
    return out


def keys(page: Chromium, *pressed: str) -> dict[str, Any]:
    for key in pressed:
        page.press(key)
        page.evaluate(WAIT_IDLE)
    return page.evaluate(STATE)


def shot(page: Chromium, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))")
    (SHOTS / f"{name}.png").write_bytes(page.screenshot())


def log(dataset: Path) -> list[tuple[str, str, str, str, str]]:
    return [(r.pair, r.reviewer, r.decision, r.reason, r.note) for r in read_reviews(dataset)]


def test_page_keyboard_review_survives_a_killed_server(
    browser: Chromium, dataset: Path, server_factory
) -> None:
    pairs = ids(dataset)
    header = json.loads((dataset / "dataset.json").read_text())
    header["run"]["criteria"] = CRITERIA  # as generation records them
    (dataset / "dataset.json").write_text(json.dumps(header))
    server = server_factory(dataset, "ana")
    browser.navigate(server.url)
    state = browser.evaluate(WAIT_IDLE) and browser.evaluate(STATE)
    assert state["pair"] == pairs[0] and state["progress"] == "pair 1 of 5 · 0 decided"
    # The judge's figures against the recorded thresholds: B at 0.85 passes 0.5 + 0.1.
    assert browser.evaluate("document.querySelector('#judge tr:nth-child(3) .pass') !== null")
    # The change box sits on both images, at the recorded place scaled to the shown size.
    box = browser.evaluate(
        """(() => { const f = document.querySelectorAll('#frames .frame')[1];
        const i = f.querySelector('img').getBoundingClientRect();
        const b = f.querySelector('.box').getBoundingClientRect();
        return [(b.left - i.left) / i.width * 160, (b.top - i.top) / i.height * 112,
                b.width / i.width * 160, b.height / i.height * 112]; })()"""
    )
    assert box == pytest.approx([64, 32, 40, 48], abs=1.5)
    shot(browser, "1-first-pair")

    state = keys(browser, "a")
    assert state["pair"] == pairs[1] and "accepted " + pairs[0] in state["message"]
    browser.press("r")
    browser.press("2")
    shot(browser, "2-reject-reasons")
    state = keys(browser, "Enter")
    assert state["pair"] == pairs[2], state
    state = keys(browser, "u")  # takes back the rejection, and shows that pair again
    assert state["pair"] == pairs[1] and state["decision"] == "not decided yet"
    keys(browser, "r", "6")
    for ch in "blurry":
        browser.press(ch)
    state = keys(browser, "Enter")
    assert state["pair"] == pairs[2]
    state = keys(browser, "b")
    assert state["pair"] == pairs[1]
    assert state["decision"] == "your decision: rejected: other (note)note: blurry"
    shot(browser, "3-back-to-a-decided-pair")
    state = keys(browser, "ArrowRight", "v")  # overlay comes after flip
    shot(browser, "4-flip-view")
    keys(browser, " ")
    assert "showing B" in browser.evaluate("document.getElementById('view-mode').textContent")
    assert browser.evaluate("document.querySelector('#frames img').alt") == "b: edit"
    keys(browser, "v")
    shot(browser, "5-overlay-view")
    keys(browser, "v")
    assert browser.errors() == [] and browser.dialogs() == []

    expected = [
        (pairs[0], "ana", "accept", "", ""),
        (pairs[1], "ana", "reject", "changed_too_much", ""),
        (pairs[1], "ana", "undo", "", ""),
        (pairs[1], "ana", "reject", "other", "blurry"),
    ]
    assert log(dataset) == expected
    server.kill()
    assert log(dataset) == expected

    again = server_factory(dataset, "ana")
    browser.navigate(again.url)
    state = browser.evaluate(WAIT_IDLE) and browser.evaluate(STATE)
    assert state["pair"] == pairs[2]  # resumes at the first pair not decided
    assert state["progress"] == "pair 3 of 5 · 2 decided"
    state = keys(browser, "a", "a", "a")
    assert "All 5 pairs" in browser.evaluate("document.getElementById('done').textContent")
    assert browser.evaluate("document.getElementById('main').offsetParent") is None
    shot(browser, "6-done")
    decisions = standing(read_reviews(dataset))
    assert {p: d["ana"].decision for p, d in decisions.items()} == {
        pairs[0]: "accept",
        pairs[1]: "reject",
        pairs[2]: "accept",
        pairs[3]: "accept",
        pairs[4]: "accept",
    }
    assert browser.errors() == []


def test_tampered_image_is_refused_and_named(
    browser: Chromium, dataset: Path, server_factory
) -> None:
    record = json.loads((dataset / "pairs.jsonl").read_text().splitlines()[0])
    rel = record["b"]["image"]
    (dataset / rel).write_bytes((dataset / record["a"]["image"]).read_bytes())
    server = server_factory(dataset, "ana")
    status, body = server.get("/" + rel)
    assert status == 409
    error = json.loads(body)["error"]
    assert error.startswith(f"{dataset / rel}: its bytes do not match the SHA-256 in its name")
    browser.navigate(server.url)
    browser.evaluate(WAIT_IDLE)
    browser.evaluate(
        "new Promise(d => { const t = () => document.querySelector('.refused') ? d(1)"
        " : setTimeout(t, 20); t(); })"
    )
    assert f"refused: {dataset / rel}: its bytes do not match" in browser.evaluate(
        "document.body.innerText"
    )
    state = keys(browser, "a")
    assert state["pair"] == record["id"] and state["message"].startswith("cannot accept")
    shot(browser, "7-tampered-image")
    assert read_reviews(dataset) == []
    assert server.get("/images/../dataset.json")[0] == 404


def test_two_reviewers_at_once_lose_nothing(dataset: Path, server_factory) -> None:
    pairs = ids(dataset)
    servers = [server_factory(dataset, name) for name in ("ana", "bob")]
    statuses: list[int] = []

    def work(server: ReviewServer, k: int) -> None:
        for n in range(20):
            statuses.append(server.decide(pairs[(k + n) % 5], "accept" if n % 3 else "undo"))

    threads = [threading.Thread(target=work, args=(s, k)) for s in servers for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 160
    records = read_reviews(dataset)
    assert len(records) == 160
    assert {r.reviewer for r in records} == {"ana", "bob"}
    assert (dataset / REVIEW_LOG).read_text().count("\n") == 160


def test_assign_gives_each_pair_to_k_reviewers(dataset: Path, server_factory) -> None:
    pairs = ids(dataset)
    ana = server_factory(dataset, "ana", "--assign", "1")
    bob = server_factory(dataset, "bob", "--assign", "1")
    assert ana.decide(pairs[0], "accept") == 200
    assert [i["id"] for i in bob.queue()["items"]] == pairs[1:]
    assert [i["id"] for i in ana.queue()["items"]] == pairs  # ana keeps what she decided
    assert bob.decide(pairs[1], "reject", "artifacts") == 200
    assert [i["id"] for i in ana.queue()["items"]] == [pairs[0], *pairs[2:]]
    assert "must be at least 1" in review_cli("review", str(dataset), "--assign", "0").stderr
    port = ana.base.rsplit(":", 1)[1]
    assert (
        "cannot listen on 127.0.0.1:" + port
        in review_cli("review", str(dataset), "--port", port).stderr
    )


def test_bad_decisions_are_refused(dataset: Path, server_factory) -> None:
    pairs = ids(dataset)
    server = server_factory(dataset, "ana")
    assert server.decide("no-such-pair", "accept") == 400
    assert server.decide(pairs[0], "reject") == 400  # no reason
    assert server.decide(pairs[0], "reject", "other") == 400  # other without a note
    assert server.decide(pairs[0], "maybe") == 400
    request = urllib.request.Request(server.base + "/api/decision", data=b"{}")  # form post
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert read_reviews(dataset) == []
    with pytest.raises(BadData, match="reason 'other' needs a note"):
        review("p", "ana", "reject", "other")


def test_a_dataset_being_generated_into(dataset: Path, server_factory) -> None:
    """Committed lines only; the manifests are never written; the log's partial last line
    (a killed writer) is skipped by readers and cut by the next writer."""
    pairs = ids(dataset)
    with open(dataset / "pairs.jsonl", "a") as f:
        f.write('{"status": "accepted", "id": "half')
    manifests = {n: (dataset / n).read_bytes() for n in ("pairs.jsonl", "rejected.jsonl")}
    server = server_factory(dataset, "ana")
    assert [i["id"] for i in server.queue()["items"]] == pairs
    assert server.decide(pairs[0], "accept") == 200
    with open(dataset / REVIEW_LOG, "a") as f:
        f.write('{"pair": "' + pairs[1])
    assert log(dataset) == [(pairs[0], "ana", "accept", "", "")]
    assert server.decide(pairs[2], "accept") == 200
    assert [r.pair for r in read_reviews(dataset)] == [pairs[0], pairs[2]]
    assert {n: (dataset / n).read_bytes() for n in manifests} == manifests
    assert not (dataset / "report.html").exists()


def test_a_token_when_bound_beyond_loopback(dataset: Path, server_factory) -> None:
    server = server_factory(dataset, "ana", "--host", "0.0.0.0")
    assert "?token=" in server.url
    token = server.url.split("token=")[1]
    base = server.base.replace("0.0.0.0", "127.0.0.1")
    server.base = base
    assert server.get("/api/queue")[0] == 403
    assert server.get(f"/api/queue?token={token}")[0] == 200
    assert server.get("/api/queue?token=wrong")[0] == 403


# -- figures ------------------------------------------------------------------------------

# Four pairs, three reviewers (accept/reject), worked out by hand in the test below.
HAND = {"ana": "AARR", "bob": "ARRR", "cy": "AARA"}


def test_kappa_by_hand() -> None:
    items = [
        {name: "accept" if row[i] == "A" else "reject" for name, row in HAND.items()}
        for i in range(4)
    ]
    # ana vs bob: agree on 3 of 4 (p_o 0.75); ana accepts 1/2, bob 1/4:
    # p_e = 0.5 * 0.25 + 0.5 * 0.75 = 0.5, kappa = (0.75 - 0.5) / 0.5 = 0.5.
    assert cohen_kappa(items, "ana", "bob") == pytest.approx(0.5)
    # Fleiss, three raters: per pair P_i = 1, 1/3, 1, 1/3 -> mean 2/3; 6 accepts of 12:
    # P_e = 0.5, kappa = (2/3 - 0.5) / 0.5 = 1/3.
    assert fleiss_kappa(items) == pytest.approx(1 / 3)
    assert cohen_kappa([{"ana": "accept", "bob": "accept"}], "ana", "bob") is None


def _write_hand_reviews(dataset: Path, reviewers: dict[str, str]) -> list[str]:
    pairs = ids(dataset)[1:]  # the coffee pair (accepted by the judge) and three rejected
    for name, row in reviewers.items():
        for pair, verdict in zip(pairs, row, strict=True):
            if name == "bob":  # bob changes his mind once: the standing decision counts
                append_review(dataset, review(pair, name, "accept"))
                append_review(dataset, review(pair, name, "undo"))
            reason = "" if verdict == "A" else ("artifacts" if name == "ana" else "no_flip")
            append_review(dataset, review(pair, name, "accept" if verdict == "A" else "reject",
                                          reason))  # fmt: skip
    return pairs


def test_review_stats_against_hand_figures(dataset: Path) -> None:
    _write_hand_reviews(dataset, {"ana": HAND["ana"], "bob": HAND["bob"]})
    result = review_cli("review-stats", str(dataset))
    assert result.returncode == 0, result.stderr
    assert "cohen kappa 0.500" in result.stdout
    stats = json.loads((dataset / "review-stats.json").read_text())
    a = stats["agreement"]
    assert a["method"] == "cohen" and a["pairs"] == 4 and a["kappa"] == pytest.approx(0.5)
    assert a["interval"][0] <= 0.5 <= a["interval"][1] and a["interval"][1] <= 1.0
    assert stats["reviewers"]["ana"] == {
        "decisions": 4, "accepted": 2, "rejected": 2, "acceptance": 0.5,
    }  # fmt: skip
    assert stats["reviewers"]["bob"]["acceptance"] == 0.25
    # Categories of the four pairs: O1 (coffee, judge accepted), O6, O1, O6 (judge rejected).
    assert stats["categories"]["O1"] == {
        "decisions": 4, "accepted": 2, "rejected": 2, "acceptance": 0.5,
        "reasons": {"artifacts": 1, "no_flip": 1},
    }  # fmt: skip
    assert stats["categories"]["O6"]["acceptance"] == 0.25
    assert stats["reasons"] == {"artifacts": 2, "no_flip": 3}
    # Pair verdicts: coffee A/A -> accepted (judge accepted it); O6 A/R disputed; O1 R/R and
    # O6 R/R rejected (judge rejected both).
    assert stats["judge_vs_human"]["O1"] == {
        "judge_accepted_human_accepted": 1, "judge_accepted_human_rejected": 0,
        "judge_rejected_human_accepted": 0, "judge_rejected_human_rejected": 1,
        "disputed": 0, "judge_accepted_human_rejected_rate": 0.0,
    }  # fmt: skip
    assert stats["judge_vs_human"]["O6"]["disputed"] == 1
    assert stats["states"] == {"accepted": 1, "disputed": 1, "rejected": 2}
    plot = (dataset / "review-stats.png").read_bytes()
    assert plot.startswith(b"\x89PNG")
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(dataset / "review-stats.png", SHOTS / "8-review-stats.png")


def test_fleiss_for_three_reviewers(dataset: Path) -> None:
    _write_hand_reviews(dataset, HAND)
    stats, _, plot = write_stats(dataset)
    assert stats["agreement"]["method"] == "fleiss"
    assert stats["agreement"]["kappa"] == pytest.approx(1 / 3)
    assert plot.is_file()


# -- the review state downstream ----------------------------------------------------------


def test_export_reviewed_accepted_has_exactly_the_accepted_pairs(
    dataset: Path, tmp_path: Path
) -> None:
    pairs = _write_hand_reviews(dataset, {"ana": HAND["ana"], "bob": HAND["bob"]})
    out = tmp_path / "accepted.parquet"
    summary = export_dataset(dataset, out, "parquet", include_rejected=True, reviewed="accepted")
    rows = pq.read_table(out).to_pylist()
    assert summary["rows"] == 1 and [r["id"] for r in rows] == [pairs[0]]
    assert rows[0]["review_state"] == "accepted" and rows[0]["reviewers"] == ["ana", "bob"]
    assert (rows[0]["review_accepts"], rows[0]["review_rejects"]) == (2, 0)
    anyway = tmp_path / "any.parquet"
    export_dataset(dataset, anyway, "parquet", include_rejected=True, reviewed="any")
    table = {r["id"]: r for r in pq.read_table(anyway).to_pylist()}
    assert sorted(table) == sorted(pairs)
    assert table[pairs[1]]["review_state"] == "disputed"
    assert table[pairs[1]]["review_reasons"] == ["no_flip"]
    everything = tmp_path / "all.parquet"
    export_dataset(dataset, everything, "parquet", include_rejected=True)
    states = [r["review_state"] for r in pq.read_table(everything).to_pylist()]
    assert states.count("unreviewed") == 1 and len(states) == 5
    with pytest.raises(InvalidInput, match="unknown review filter 'yes'"):
        export_dataset(dataset, tmp_path / "x.parquet", "parquet", reviewed="yes")


def test_report_shows_and_filters_review_state(browser: Chromium, dataset: Path) -> None:
    pairs = _write_hand_reviews(dataset, {"ana": HAND["ana"], "bob": HAND["bob"]})
    browser.open(write_report(dataset))
    visible = """Array.from(document.querySelectorAll('.card'))
      .filter(c => c.offsetParent !== null).map(c => c.querySelector('code').textContent)"""
    browser.evaluate(
        "(() => { const s = document.getElementById('f-review'); s.value = 'rejected';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    assert browser.evaluate(visible) == [pairs[2], pairs[3]]
    tags = browser.evaluate(
        "Array.from(document.querySelectorAll('.review')).map(e => e.textContent)"
    )
    assert tags == [
        "review: unreviewed", "review: accepted", "review: disputed", "review: rejected",
        "review: rejected",
    ]  # fmt: skip
    assert browser.errors() == []


def test_training_and_evaluation_read_only_human_accepted_pairs(dataset: Path) -> None:
    pairs = _write_hand_reviews(dataset, {"ana": HAND["ana"], "bob": HAND["bob"]})
    policy = default_policy()
    every = read_pairs(dataset / "pairs.jsonl", policy)
    assert [p.id for p in every] == ids(dataset)[:2]
    only = read_pairs(dataset / "pairs.jsonl", policy, human_accepted_only=True)
    assert [p.id for p in only] == [pairs[0]]
    evalset = load_eval_set([dataset], policy, ReadOptions(human_accepted_only=True))
    assert [p.id for p in evalset.pairs] == [pairs[0]]
    os.remove(dataset / REVIEW_LOG)
    with pytest.raises(BadData, match=r"has no reviews\.jsonl"):
        read_pairs(dataset / "pairs.jsonl", policy, human_accepted_only=True)
