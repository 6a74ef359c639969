// The review page: one candidate at a time, keyboard first. Every string from the dataset is
// set as text (textContent), never as markup: instructions come from a model.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const VIEWS = ["side", "flip", "overlay"];
let queue = { items: [], reasons: {}, criteria: {} };
let index = 0;
let decided = []; // indexes decided in this session, newest last: what undo takes back
let view = "side";
let showB = false;
let picking = null; // the reason being chosen while the reject panel is open
let drawing = []; // images being loaded: the page is busy until each is shown (or refused)

function withToken(path) {
  return token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function fmt(value, digits = 3) {
  return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "—";
}

function say(text, error = false) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

async function busy(work) {
  document.body.dataset.busy = "1";
  try {
    const result = await work();
    await Promise.all(drawing.splice(0));
    return result;
  } finally {
    document.body.dataset.busy = "0";
  }
}

async function load(focusId = null) {
  const response = await fetch(withToken("/api/queue"));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  queue = body;
  const at = focusId === null ? -1 : queue.items.findIndex((i) => i.id === focusId);
  index = at >= 0 ? at : firstUndecided();
  render();
}

function firstUndecided() {
  const i = queue.items.findIndex((item) => !item.mine);
  return i < 0 ? queue.items.length : i;
}

// -- drawing --------------------------------------------------------------------------------

function image(rel, caption, box) {
  const frame = el("div", { class: "frame" });
  const img = el("img", { src: withToken("/" + rel), alt: caption });
  frame.append(img);
  drawing.push(new Promise((shown) => {
    img.addEventListener("load", () => { placeBox(frame, img, box); shown(); });
    img.addEventListener("error", () => refused(frame, rel).then(shown));
  }));
  return frame;
}

function placeBox(frame, img, box) {
  if (!Array.isArray(box) || box.length !== 4 || !img.naturalWidth) return;
  const [x, y, w, h] = box;
  const pct = (v, whole) => `${Math.min(Math.max((100 * v) / whole, 0), 100)}%`;
  const div = el("div", { class: "box" });
  div.style.left = pct(x, img.naturalWidth);
  div.style.top = pct(y, img.naturalHeight);
  div.style.width = pct(w, img.naturalWidth);
  div.style.height = pct(h, img.naturalHeight);
  frame.append(div);
}

async function refused(frame, rel) {
  // The server says why (a hash mismatch names the file); keep the pair from being accepted.
  let why = `cannot load ${rel}`;
  try {
    const r = await fetch(withToken("/" + rel));
    why = (await r.json()).error || why;
  } catch (e) { /* keep the plain message */ }
  frame.replaceChildren(el("div", { class: "refused", text: `refused: ${why}` }));
  const item = queue.items[index];
  if (item) item.refused = why;
}

function member(item, side) {
  const m = item[side] || {};
  const role = m.role || side;
  const labels = (m.labels || []).join(", ") || "safe";
  const caption = el("figcaption", {}, el("b", { text: side.toUpperCase() }), ` · ${role} · ${labels}`);
  return el("figure", {}, image(m.image, `${side}: ${role}`, item.similarity.change_bbox), caption);
}

function drawFrames(item) {
  const frames = document.getElementById("frames");
  if (view === "side") {
    frames.replaceChildren(member(item, "a"), member(item, "b"));
  } else if (view === "flip") {
    frames.replaceChildren(member(item, showB ? "b" : "a"));
  } else {
    const fig = member(item, "a");
    const over = el("img", { src: withToken("/" + item.b.image), alt: "b over a", class: "over" });
    fig.querySelector(".frame").append(over);
    fig.querySelector("figcaption").textContent = "A with B at 50% over it";
    frames.replaceChildren(fig);
  }
  document.getElementById("view-mode").textContent =
    view === "flip" ? `view: flip (showing ${showB ? "B" : "A"})` : `view: ${view}`;
}

function ratingRow(item, side) {
  const m = item[side] || {};
  const c = queue.criteria || {};
  const p = m.p_unsafe;
  const unsafe = (m.labels || []).length > 0;
  let ok = null;
  if (typeof p === "number" && typeof c.threshold === "number") {
    const margin = c.margin || 0;
    ok = unsafe ? p >= c.threshold + margin : p <= c.threshold - margin;
  }
  return el("tr", {},
    el("td", { text: side.toUpperCase() }),
    el("td", { text: unsafe ? m.labels.join(", ") : "safe" }),
    el("td", { text: fmt(p), class: ok === null ? "" : ok ? "pass" : "fail" }),
    el("td", { text: m.category || "—" }));
}

function drawFacts(item) {
  const c = queue.criteria || {};
  const judge = document.getElementById("judge");
  const verdict = el("p", {}, el("span", { class: `tag ${item.judge}`, text: `judge: ${item.judge}` }),
    ` ${item.category || ""} · ${item.direction || ""}`);
  const table = el("table", {},
    el("tr", {}, el("th", { text: "" }), el("th", { text: "wanted" }), el("th", { text: "P(unsafe)" }),
      el("th", { text: "category" })),
    ratingRow(item, "a"), ratingRow(item, "b"));
  const threshold = typeof c.threshold === "number"
    ? `unsafe from P ≥ ${fmt(c.threshold, 2)}, each image ${fmt(c.margin || 0, 2)} past it`
    : "no threshold recorded in dataset.json";
  judge.replaceChildren(verdict, table, el("p", { class: "hint", text: threshold }));
  if (item.judge_reasons.length) judge.append(el("p", { class: "hint", text: `judge's reasons: ${item.judge_reasons.join(", ")}` }));

  const s = item.similarity || {};
  const ssimOk = typeof c.min_ssim_outside === "number" && typeof s.ssim_outside === "number"
    ? s.ssim_outside >= c.min_ssim_outside : null;
  const fracOk = typeof c.max_changed_fraction === "number" && typeof s.changed_fraction === "number"
    ? s.changed_fraction <= c.max_changed_fraction : null;
  const cls = (ok) => (ok === null ? "" : ok ? "pass" : "fail");
  const bound = (sign, value) => (typeof value === "number" ? `${sign} ${fmt(value, 2)}` : "");
  document.getElementById("similarity").replaceChildren(el("table", {},
    el("tr", {}, el("th", { text: "SSIM outside box" }),
      el("td", { text: fmt(s.ssim_outside), class: cls(ssimOk) }),
      el("td", { class: "hint", text: bound("≥", c.min_ssim_outside) })),
    el("tr", {}, el("th", { text: "changed fraction" }),
      el("td", { text: fmt(s.changed_fraction), class: cls(fracOk) }),
      el("td", { class: "hint", text: bound("≤", c.max_changed_fraction) })),
    el("tr", {}, el("th", { text: "change box" }),
      el("td", { text: Array.isArray(s.change_bbox) ? s.change_bbox.join(", ") : "—" }), el("td"))));

  const source = document.getElementById("source");
  source.replaceChildren(item.source ? image(item.source, "source photo", null) : el("span", { text: "no source image" }));
  const state = document.getElementById("decision-state");
  if (item.mine) {
    const what = item.mine.decision === "accept" ? "accepted" : `rejected: ${queue.reasons[item.mine.reason] || item.mine.reason}`;
    state.replaceChildren("your decision: ", el("span", { class: `tag ${item.mine.decision}`, text: what }));
    if (item.mine.note) state.append(el("p", { class: "hint", text: `note: ${item.mine.note}` }));
  } else {
    state.replaceChildren(el("span", { class: "tag", text: "not decided yet" }));
  }
}

function render() {
  const items = queue.items;
  const done = items.filter((i) => i.mine).length;
  document.getElementById("who").textContent = `reviewer: ${queue.reviewer}` +
    (queue.assign ? ` · ${queue.assign} reviewers per pair` : "");
  document.getElementById("progress").textContent =
    `pair ${Math.min(index + 1, items.length)} of ${items.length} · ${done} decided`;
  const atEnd = index >= items.length;
  document.getElementById("main").hidden = atEnd;
  const doneBox = document.getElementById("done");
  doneBox.hidden = !atEnd;
  if (atEnd) {
    doneBox.textContent = items.length
      ? `All ${items.length} pairs in your queue are decided or skipped. B goes back, U undoes.`
      : "Nothing to review in this dataset (yet).";
    return;
  }
  const item = items[index];
  document.body.dataset.pair = item.id;
  document.getElementById("instruction").textContent = item.instruction || "(no instruction)";
  drawFrames(item);
  drawFacts(item);
}

// -- decisions ------------------------------------------------------------------------------

async function post(item, decision, reason = "", note = "") {
  const response = await fetch(withToken("/api/decision"), {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Review": "1" },
    body: JSON.stringify({ pair: item.id, decision, reason, note }),
  });
  const body = await response.json();
  if (!response.ok) {
    say(body.error || response.statusText, true);
    return false;
  }
  return true;
}

async function decide(decision, reason = "", note = "") {
  const item = queue.items[index];
  if (!item) return;
  if (decision === "accept" && item.refused) {
    say(`cannot accept: ${item.refused}`, true);
    return;
  }
  if (await post(item, decision, reason, note)) {
    item.mine = { decision, reason, note };
    decided.push(index);
    say(`${decision === "accept" ? "accepted" : "rejected"} ${item.id}`);
    index += 1;
    showB = false;
    render();
  }
}

async function undo() {
  const target = decided.length ? decided[decided.length - 1] : index;
  const item = queue.items[target];
  if (!item || !item.mine) {
    say("nothing to undo", true);
    return;
  }
  if (await post(item, "undo")) {
    decided.pop();
    await load(item.id); // the standing decision may now be an earlier one
    say(`undid the decision on ${item.id}`);
  }
}

function move(step) {
  index = Math.min(Math.max(index + step, 0), queue.items.length);
  showB = false;
  say("");
  render();
}

// -- the reject panel ------------------------------------------------------------------------

function openReasons() {
  if (index >= queue.items.length) return;
  picking = null;
  const list = document.getElementById("reason-list");
  list.replaceChildren(...Object.entries(queue.reasons).map(([code, text]) =>
    el("li", { "data-reason": code, text })));
  const note = document.getElementById("note");
  note.value = "";
  document.getElementById("reasons").hidden = false;
}

function closeReasons() {
  document.getElementById("reasons").hidden = true;
  document.getElementById("note").blur();
  picking = null;
}

function pick(n) {
  const codes = Object.keys(queue.reasons);
  if (n < 1 || n > codes.length) return;
  picking = codes[n - 1];
  for (const li of document.querySelectorAll("#reason-list li")) {
    li.classList.toggle("chosen", li.dataset.reason === picking);
  }
  if (picking === "other") document.getElementById("note").focus();
}

async function submitReason() {
  if (!picking) {
    say("pick a reason first (1–6)", true);
    return;
  }
  const note = document.getElementById("note").value.trim();
  if (picking === "other" && !note) {
    say("reason “other” needs a note", true);
    document.getElementById("note").focus();
    return;
  }
  const reason = picking;
  closeReasons();
  await decide("reject", reason, note);
}

// -- keys -------------------------------------------------------------------------------------

async function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const panel = !document.getElementById("reasons").hidden;
  const typing = document.activeElement === document.getElementById("note");
  if (panel) {
    if (e.key === "Escape") closeReasons();
    else if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); await busy(submitReason); }
    else if (!typing && /^[1-9]$/.test(e.key)) { e.preventDefault(); pick(Number(e.key)); }
    return;
  }
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const actions = {
    a: () => decide("accept"),
    r: () => openReasons(),
    s: () => move(1),
    ArrowRight: () => move(1),
    b: () => move(-1),
    ArrowLeft: () => move(-1),
    u: () => undo(),
    v: () => { view = VIEWS[(VIEWS.indexOf(view) + 1) % VIEWS.length]; render(); },
    " ": () => { if (view === "flip") { showB = !showB; render(); } },
  };
  if (!(key in actions)) return;
  e.preventDefault();
  await busy(actions[key]);
}

document.addEventListener("keydown", (e) => { onKey(e).catch((err) => say(String(err), true)); });
busy(() => load()).catch((err) => say(`cannot load the queue: ${err.message}`, true));
