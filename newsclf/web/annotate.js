// The newsclf annotate page. Article text and everything else from the queue is put in the page with
// textContent / createTextNode only, never innerHTML, so a queue cannot inject markup or script.
"use strict";

const $ = (id) => document.getElementById(id);
let state = null;   // the server's /api/state
let guide = { intro: "", labels: {}, source: "" };
let busy = false;   // one request at a time: a second key press must not decide for an article already sent

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmt(x) {
  return typeof x === "number" ? (Number.isInteger(x) ? String(x) : x.toFixed(3)) : JSON.stringify(x);
}

function showStatus(message, isError) {
  const s = $("status");
  s.textContent = message || "";
  s.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    return { ok: false, status: 0, data: { error: "cannot reach the newsclf annotate server (stopped?); restart it and reload" } };
  }
  let data = null;
  try { data = await response.json(); } catch (err) { data = { error: `HTTP ${response.status}` }; }
  return { ok: response.ok, status: response.status, data };
}

// Text with every keyword wrapped in <mark>; the longest keyword wins where two start at the same place.
function highlighted(text, keywords) {
  const frag = document.createDocumentFragment();
  const weights = new Map();
  for (const k of keywords || []) {
    const w = typeof k === "string" ? k : (k && k.word);
    if (typeof w === "string" && w.trim() && !weights.has(w)) weights.set(w, k.weight);
  }
  const words = [...weights.keys()].sort((a, b) => b.length - a.length);
  let plain = "";
  let i = 0;
  while (i < text.length) {
    const w = words.find((word) => text.startsWith(word, i));
    if (w) {
      if (plain) { frag.appendChild(document.createTextNode(plain)); plain = ""; }
      const m = el("mark", w);
      const weight = weights.get(w);
      if (typeof weight === "number") m.title = `weight ${fmt(weight)}`;
      frag.appendChild(m);
      i += w.length;
    } else {
      plain += text[i];
      i += 1;
    }
  }
  if (plain) frag.appendChild(document.createTextNode(plain));
  return frag;
}

function renderScores(article) {
  const scores = (article.scores && typeof article.scores === "object") ? article.scores : {};
  const probs = (scores.probs && typeof scores.probs === "object") ? scores.probs : null;
  const table = $("probs");
  table.replaceChildren();
  if (probs) {
    const entries = Object.entries(probs).filter(([, p]) => typeof p === "number").sort((a, b) => b[1] - a[1]);
    for (const [label, p] of entries) {
      const row = el("tr");
      if (label === article.suggested) row.className = "top";
      row.appendChild(el("td", label));
      row.appendChild(el("td", fmt(p)));
      const bar = el("td", null, "bar");
      const fill = el("span");
      fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      bar.appendChild(fill);
      row.appendChild(bar);
      table.appendChild(row);
    }
  }
  const other = $("other-scores");
  other.replaceChildren();
  for (const [key, value] of Object.entries(scores)) {
    if (key === "probs") continue;
    const row = el("tr");
    row.appendChild(el("td", key));
    row.appendChild(el("td", typeof value === "string" ? value : fmt(value)));
    other.appendChild(row);
  }
}

function renderLabels() {
  const box = $("label-buttons");
  box.replaceChildren();
  state.labels.forEach((label, i) => {
    const b = el("button");
    b.type = "button";
    b.dataset.label = label;
    if (i < 9) { b.appendChild(el("kbd", String(i + 1))); b.appendChild(document.createTextNode(" ")); }
    b.appendChild(el("strong", label));
    const def = guide.labels[label];
    b.appendChild(el("span", def || "(the guide does not define this label)", "def"));
    if (state.article && label === state.article.suggested) b.classList.add("suggested");
    b.addEventListener("click", () => decide(label));
    box.appendChild(b);
  });
}

function render() {
  const decided = state.labelled + state.skipped;
  $("counter").textContent = `${state.labelled} of ${state.total} labelled` + (state.skipped ? `, ${state.skipped} skipped` : "");
  $("progress").max = state.total;
  $("progress").value = decided;
  $("annotator").textContent = state.annotator;
  const last = state.last;
  $("last").textContent = last
    ? `last: ${last.id} ${last.op === "skip" ? "skipped" : "→ " + last.label} (u to undo)` : "";
  const article = state.article;
  $("main").hidden = !article;
  $("done").hidden = !!article;
  $("done-out").textContent = state.out;
  if (!article) { document.title = "newsclf annotate: done"; return; }
  document.title = `newsclf annotate: ${state.position} / ${state.total}`;
  $("position").textContent = `article ${state.position} of ${state.total} in the queue`;
  $("article-id").textContent = article.id;
  const keywords = Array.isArray(article.keywords) ? article.keywords : [];
  $("title").replaceChildren(highlighted(String(article.title || ""), keywords));
  $("text").replaceChildren(highlighted(String(article.text || ""), keywords));
  $("suggested").textContent = article.suggested;
  $("score").textContent = typeof article.score === "number" ? fmt(article.score) : "";
  const reasons = Array.isArray(article.reasons) && article.reasons.length ? article.reasons : [article.reason];
  $("reasons").replaceChildren(...reasons.map((r) => el("li", r)));
  renderScores(article);
  $("keywords").textContent = keywords.length
    ? keywords.map((k) => (typeof k === "string" ? k : `${k.word} ${typeof k.weight === "number" ? fmt(k.weight) : ""}`.trim())).join("  ·  ")
    : "(none in the queue)";
  renderLabels();
  window.scrollTo(0, 0);
}

async function refresh() {
  const r = await api("GET", "api/state");
  if (!r.ok) { showStatus(r.data.error, true); return; }
  state = r.data;
  render();
}

async function send(path, body, done) {
  if (busy) return;
  busy = true;
  try {
    const r = await api("POST", path, body);
    if (r.ok) {
      state = r.data;
      render();
      showStatus(done, false);
    } else {
      showStatus(r.data.error || `HTTP ${r.status}`, true);
      if (r.status === 409 || r.status === 404) await refresh();  // another tab moved on: show what is true now
    }
  } finally {
    busy = false;
  }
}

function decide(label) {
  if (!state || !state.article) return;
  const id = state.article.id;
  return send("api/decide", { id, label }, `saved: ${id} → ${label}`);
}

function skip() {
  if (!state || !state.article) return;
  const id = state.article.id;
  return send("api/decide", { id, skip: true }, `skipped ${id}`);
}

function undo() {
  if (!state) return;
  if (!state.last) { showStatus("nothing to undo", true); return; }
  const id = state.last.id;
  return send("api/undo", { id }, `took back the decision for ${id}`);
}

function toggleHelp(show) {
  const help = $("help");
  help.hidden = show === undefined ? !help.hidden : !show;
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
  if (e.key === "?") { toggleHelp(); e.preventDefault(); return; }
  if (e.key === "Escape") { toggleHelp(false); return; }
  if (!$("help").hidden || !state) return;
  if (/^[1-9]$/.test(e.key)) {
    const label = state.labels[Number(e.key) - 1];
    if (label !== undefined) { decide(label); e.preventDefault(); }
  } else if (e.key === "s" || e.key === "S") {
    skip(); e.preventDefault();
  } else if (e.key === "u" || e.key === "U") {
    undo(); e.preventDefault();
  }
});

$("skip-button").addEventListener("click", () => skip());
$("undo-button").addEventListener("click", () => undo());
$("help-button").addEventListener("click", () => toggleHelp());
$("help").addEventListener("click", (e) => { if (e.target === $("help")) toggleHelp(false); });

(async () => {
  const g = await api("GET", "api/guide");
  if (g.ok) guide = g.data;
  $("guide-intro").textContent = guide.intro || "";
  $("guide-source").textContent = guide.source || "";
  await refresh();
})();
