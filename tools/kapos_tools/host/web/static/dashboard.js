// kapos host operations dashboard: renders /api/state, refreshes on server-sent events.
"use strict";
const csrf = document.querySelector('meta[name="csrf"]').content;
const role = document.querySelector('meta[name="role"]').content;
const seenAlarms = new Set();
let firstLoad = true;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}
const when = (t) => t ? new Date(t * 1000).toLocaleString() : "-";
const money = (n) => n == null ? "-" : (n / 100).toFixed(2);
function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows);
}
function status(text) {
  const s = document.getElementById("status");
  s.textContent = text;
  setTimeout(() => { if (s.textContent === text) s.textContent = ""; }, 4000);
}

async function act(action, body) {
  const reply = await fetch("/api/" + action, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
  const data = await reply.json().catch(() => ({}));
  status(reply.ok ? action + ": done" : action + ": " + (data.error || reply.status));
  await refresh();
  return reply.ok;
}

async function reissue(ref) {
  if (!confirm("Re-issue this token? Every older copy of it is refused from now on.")) return;
  const reply = await fetch("/api/reissue", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify({card: ref})});
  const data = await reply.json().catch(() => ({}));
  status(reply.ok ? "write this block to the new tag: " + data.token_block : "re-issue: " + (data.error || reply.status));
  await refresh();
}

function bars(svg, labels, values, width, height) {
  const max = Math.max(1, ...values);
  const w = width / Math.max(1, values.length);
  const parts = [];
  values.forEach((v, i) => {
    const h = Math.round((height - 20) * v / max);
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    r.setAttribute("x", i * w + 1); r.setAttribute("y", height - 12 - h);
    r.setAttribute("width", Math.max(1, w - 2)); r.setAttribute("height", h);
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = labels[i] + ": " + v; r.append(title);
    const t = document.createElementNS("http://www.w3.org/2000/svg", "text");
    t.setAttribute("x", i * w + 1); t.setAttribute("y", height - 2); t.textContent = labels[i];
    parts.push(r, t);
  });
  svg.replaceChildren(...parts);
}

function render(s) {
  const newOnes = [];
  fill("alarms", s.alarms.map((a) => {
    const fresh = !firstLoad && !seenAlarms.has(a.id);
    if (fresh) newOnes.push(a);
    seenAlarms.add(a.id);
    const ack = a.acked_by ? "acknowledged by " + a.acked_by
      : (role === "operator" ? el("button", {class: "ack", onclick: () => act("ack", {alarm: a.id})}, "acknowledge") : "open");
    return el("tr", {class: a.acked_by ? "acked" : "alarm-new", "data-kind": a.kind},
      el("td", {}, when(a.at)), el("td", {}, a.kind), el("td", {}, a.terminal), el("td", {}, a.detail), el("td", {}, ack));
  }));
  const open = s.alarms.filter((a) => !a.acked_by).length;
  document.getElementById("alarm-count").textContent = open ? open : "";
  if (newOnes.length) status("new alarm: " + newOnes[0].kind + " " + newOnes[0].detail);
  fill("transactions", s.transactions.map((t) => el("tr", {},
    el("td", {}, when(t.at)), el("td", {}, t.terminal), el("td", {}, t.stan), el("td", {}, t.type),
    el("td", {class: "num"}, money(t.total)), el("td", {}, t.code), el("td", {}, t.status), el("td", {}, t.card))));
  fill("terminals", s.terminals.map((t) => el("tr", {"data-terminal": t.terminal},
    el("td", {}, t.terminal), el("td", {}, t.merchant), el("td", {}, t.status), el("td", {}, when(t.last_seen)),
    el("td", {class: "version"}, t.version),
    el("td", {class: "selftest " + (t.selftest_ok === false ? "bad" : t.selftest_ok ? "good" : "")}, t.selftest),
    el("td", {class: "num pending" + (t.pending_reversals ? " bad" : "")}, t.pending_reversals))));
  fill("batches", s.batches.map((b) => el("tr", {},
    el("td", {}, b.terminal), el("td", {}, b.number), el("td", {}, b.code), el("td", {}, when(b.at)))));
  fill("accounts", s.accounts.map((a) => {
    const amount = el("input", {class: "amount", type: "number", min: "1", placeholder: "minor units"});
    const cell = el("td", {class: "op"}, amount,
      el("button", {class: "topup", onclick: () => act("topup", {account: a.ref, amount: amount.value})}, "top up"));
    return el("tr", {"data-name": a.name}, el("td", {}, a.account), el("td", {}, a.name),
      el("td", {class: "num balance"}, money(a.balance)), cell);
  }));
  fill("cards", s.cards.map((c) => el("tr", {"data-id": c.id},
    el("td", {}, c.card), el("td", {}, c.id), el("td", {}, c.kind), el("td", {}, c.account),
    el("td", {class: "num"}, money(c.balance)), el("td", {class: "num"}, c.pin_failures),
    el("td", {}, c.blocked ? "blocked" : "active"),
    el("td", {class: "op"},
      el("button", {onclick: () => act(c.blocked ? "unblock" : "block", {card: c.ref})}, c.blocked ? "unblock" : "block"),
      c.pin_failures ? el("button", {onclick: () => act("reset-pin", {card: c.ref})}, "reset PIN tries") : "",
      c.kind === "token" ? el("button", {class: "reissue", onclick: () => reissue(c.ref)}, "re-issue") : ""))));
  fill("audit", s.audit.map((a) => el("tr", {},
    el("td", {}, when(a.at)), el("td", {}, a.user), el("td", {}, a.action), el("td", {}, a.target), el("td", {}, a.detail))));
  const ch = s.charts;
  bars(document.getElementById("chart-volume"), ch.volume.labels, ch.volume.values.map((v) => v / 100), 480, 120);
  document.getElementById("chart-rate").textContent = ch.approval_rate == null ? "-"
    : ch.approval_rate + " % (" + ch.approved + " of " + (ch.approved + ch.declined) + ")";
  bars(document.getElementById("chart-declines"), ch.declines.map((d) => d[0]), ch.declines.map((d) => d[1]), 360, 120);
  firstLoad = false;
}

let inFlight = null;
async function refresh() {
  if (inFlight) return inFlight;
  inFlight = (async () => {
    try {
      const reply = await fetch("/api/state", {credentials: "same-origin"});
      if (reply.status === 401) { location.href = "/login"; return; }
      render(await reply.json());
    } finally { inFlight = null; }
  })();
  return inFlight;
}

function live() {
  const badge = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("hello", () => { badge.textContent = "live"; badge.classList.remove("off"); refresh(); });
  source.addEventListener("alarm", refresh);
  source.addEventListener("change", refresh);
  source.onerror = () => { badge.textContent = "reconnecting"; badge.classList.add("off"); };
}
refresh();
live();
