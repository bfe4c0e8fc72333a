// kapos browser simulator: keypad, card and fault buttons post to the terminal; the screen,
// the receipt roll and the host's view follow server-sent events.
"use strict";
const csrf = document.querySelector('meta[name="csrf"]').content;
const money = (n) => n == null ? "-" : (n / 100).toFixed(2);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

// One request at a time, in order: concurrent fetches travel on several connections and
// may arrive out of order, and a PIN typed fast would reach the terminal as other digits.
let outbox = Promise.resolve();
function post(action, body) {
  outbox = outbox.then(() => send(action, body)).catch(() => {});
  return outbox;
}

async function send(action, body) {
  const reply = await fetch("/api/" + action, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
  const data = await reply.json().catch(() => ({}));
  document.getElementById("message").textContent = reply.ok ? (data.message || "") : (data.error || reply.status);
}

let cardsDrawn = false;
let lastFrame = -1;
async function refresh() {
  const reply = await fetch("/api/status", {credentials: "same-origin"});
  if (reply.status === 401) { location.href = "/login"; return; }
  const s = await reply.json();
  document.getElementById("state").textContent = s.state;
  if (s.frame !== lastFrame) { lastFrame = s.frame; document.getElementById("oled").src = "/frame.png?f=" + s.frame; }
  document.getElementById("oled").alt = s.screen_text;
  if (!cardsDrawn) {
    document.getElementById("cards").replaceChildren(...s.cards.map((c) => el("div", {class: "card"},
      el("span", {class: "name"}, c.id), el("span", {class: "pin"}, c.pin ? "PIN " + c.pin : "no PIN"),
      el("button", {"data-card": c.id, class: "present", onclick: () => post("card", {id: c.id})},
         c.present === "tap" ? "tap" : "swipe"),
      // a board with a chip slot (sim-nfc): chip cards can be inserted too
      ...(s.chip.slot && c.chip ? [el("button", {"data-insert": c.id, class: "insert",
                                          onclick: () => post("insert", {id: c.id})}, "insert")] : []))));
    document.getElementById("chip-box").hidden = !s.chip.slot;
    cardsDrawn = true;
  }
  if (s.chip.slot) {
    document.getElementById("chip-slot").textContent = s.chip.inserted ? "in the slot: " + s.chip.inserted : "slot empty";
    document.getElementById("chip-mute").classList.toggle("on", s.chip.mute);
  }
  for (const [id, on] of [["fault-paper", s.faults.paper_out], ["fault-host", !s.faults.host_online],
                          ["fault-tamper", s.faults.tampered]]) {
    document.getElementById(id).classList.toggle("on", on);
  }
  document.getElementById("receipt").textContent = s.receipts.length ? s.receipts.slice().reverse().join("\n- - - - - - - - -\n") : "(nothing printed yet)";
  const h = s.host;
  const host = document.getElementById("host");
  if (!h.available) host.replaceChildren(el("p", {class: "hint"}, "not connected: " + h.why));
  else host.replaceChildren(
    el("p", {}, "terminal " + h.terminal + (h.balance != null ? ", card balance " + money(h.balance) : "")),
    el("table", {}, el("tr", {}, ...["stan", "type", "total", "code", "lifecycle", "rrn", "card"].map((t) => el("th", {}, t))),
      ...h.rows.map((r) => el("tr", {}, el("td", {}, r.stan), el("td", {}, r.type), el("td", {}, money(r.total)),
        el("td", {}, r.code), el("td", {}, r.lifecycle), el("td", {}, r.rrn), el("td", {}, r.card)))));
}

let pending = null, again = false;
function schedule() {
  if (pending) { again = true; return; }
  pending = refresh().finally(() => { pending = null; if (again) { again = false; schedule(); } });
}

document.querySelectorAll("#keypad button").forEach((b) => b.addEventListener("click", () => post("key", {key: b.dataset.key})));
document.getElementById("chip-remove").addEventListener("click", () => post("remove", {}));
document.getElementById("chip-mute").addEventListener("click", () => post("fault", {fault: "chip-mute"}));
document.querySelectorAll("#faults button").forEach((b) => b.addEventListener("click", () => post("fault", {fault: b.dataset.fault})));
const KEYS = {Enter: "enter", Backspace: "clear", Escape: "cancel", Tab: "menu"};
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return;
  const key = /^[0-9]$/.test(e.key) ? e.key : KEYS[e.key];
  if (key) { e.preventDefault(); post("key", {key}); }
});
const source = new EventSource("/api/events");
const badge = document.getElementById("live");
source.addEventListener("hello", () => { badge.textContent = "live"; badge.classList.remove("off"); schedule(); });
for (const kind of ["screen", "receipt", "state", "record", "result", "input"]) source.addEventListener(kind, schedule);
source.onerror = () => { badge.textContent = "reconnecting"; badge.classList.add("off"); };
schedule();
