// The ledger explorer: one page, three views (#/ overview, #/account/<id>, #/task/<id>),
// filled from the node's read API and kept live over the WebSocket /ws (task_updates,
// events, network_update). No framework, no build step: the DOM is built with `h()`,
// and every string from the ledger goes in as text, never as HTML.

import { balanceChart } from "./chart.js";

const API = "/api/v1";
const RECENT_EVENTS = 30; // rows in the overview's event table
const MAX_RECONNECTS = 60; // WebSocket reconnect attempts before giving up (backoff capped at 10 s)
const REFRESH_DELAY = 800; // ms: coalesce bursts of events into one summary refresh

const state = {
  decimals: 6,
  names: new Map(), // node id -> display name
  view: null, // {kind: "overview"|"account"|"task", id}
  lastOffset: 0, // newest event offset shown (the WebSocket events cursor)
  ws: null,
  reconnects: 0,
  refreshTimer: null,
};

// ------------------------------------------------------------------ helpers
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error?.message || `${response.status} ${response.statusText}`);
  return body;
}

const credits = (n) => Number(n).toLocaleString("en-US", { maximumFractionDigits: state.decimals });
const short = (id) => (id && id.length > 14 ? `${id.slice(0, 10)}…` : id || "—");
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "—");
const nameOf = (id) => state.names.get(id) || short(id);

function accountLink(id) {
  if (!id) return "—";
  const name = state.names.get(id);
  return h("a", { href: `#/account/${id}`, class: "mono", title: id }, name && name !== id ? name : short(id));
}
const taskLink = (id) => (id ? h("a", { href: `#/task/${encodeURIComponent(id)}`, class: "mono", title: id }, short(id)) : "—");
const badge = (text, cls = text) => h("span", { class: `badge ${cls}` }, text);

function eventLink(hash, text) {
  return hash ? h("a", { href: `#/event/${hash}`, class: "mono" }, text || short(hash)) : text || "—";
}

// A proof as a light client takes it: the checkpoint's note, its signer and every witness that
// cosigned it, the leaf and its sibling hashes. `ledger-net verify-proof` checks the same JSON.
async function fetchProof(path) {
  try {
    return { proof: await getJSON(path) };
  } catch (err) {
    return { error: String(err.message || err) };
  }
}

// Proofs travel in version 2: hashes, keys and signatures as unpadded base64url, each path one
// base64url string (docs/proofs.md). Shown as hex, like everywhere else on these pages.
function b64hex(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Array.from(bin, (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

function proofPanel(kind, id, found) {
  const title = h("h2", {}, kind === "balance" ? "Proof of this balance" : "Proof of this event");
  if (!found.proof) {
    return h("section", { class: "panel", id: "proof" }, title,
      h("p", { class: "muted", id: "proof-missing" }, `no checkpoint proves it yet (${found.error})`));
  }
  const p = found.proof;
  const note = p.checkpoint.note;
  const cosigs = p.checkpoint.cosignatures || [];
  const shape = p.type === "absence" ? "no entry: the account held nothing there (its two neighbours in key order are adjacent leaves)"
    : `${b64hex(p.proof).length / 64} sibling hashes`;
  return h("section", { class: "panel", id: "proof" }, title,
    h("p", {}, "In the checkpoint signed by ", accountLink(b64hex(note.signer)), ` over ${note.events} events of ${note.authors} authors;`,
      " state root ", h("span", { class: "mono", id: "proof-state-root" }, short(b64hex(note.state_root))),
      `; ${shape}, ${JSON.stringify(p).length} bytes as JSON.`),
    table("proof-cosigners", [["witness"], ["cosignature"]],
      cosigs.map(([w, sig]) => h("tr", {}, h("td", {}, accountLink(b64hex(w))), h("td", { class: "mono muted" }, short(b64hex(sig))))),
      "no witness has cosigned this checkpoint yet"),
    h("p", { class: "muted" }, "Check it with nothing but the genesis: ",
      h("span", { class: "mono" }, `ledger-net prove ${kind} ${short(id)} -o proof.json; ledger-net verify-proof proof.json --genesis NET --witness KEY --threshold K`)));
}

function progressBar(progress, status) {
  const pct = Math.round(Math.max(0, Math.min(1, progress || 0)) * 100);
  return h("span", { class: "progress" },
    h("span", { class: status === "completed" ? "bar done" : "bar" }, h("span", { style: `width:${pct}%` })),
    h("span", { class: "pct" }, `${pct}%`));
}

function card(label, value, sub = null, id = null) {
  return h("div", { class: "card", id }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
}

function table(id, headers, rows, empty = "nothing yet") {
  const body = h("tbody", {}, rows);
  const t = h("table", { id }, h("thead", {}, h("tr", {}, headers.map(([text, cls]) => h("th", { class: cls }, text)))), body);
  return h("div", {}, t, rows.length ? null : h("div", { class: "empty" }, empty));
}

function verdict(item) {
  return item.valid
    ? h("span", { class: "verdict", "data-valid": "true" }, badge("valid"))
    : h("span", { class: "verdict", "data-valid": "false" }, badge("invalid"), h("span", { class: "reason" }, item.reason || ""));
}

function parsed(item) {
  if (item.type && item.author) return { ...item, body: item.body || JSON.parse(item.raw).body };
  const e = JSON.parse(item.raw);
  return { ...item, type: e.type, author: e.author, seq: e.seq, ts: e.ts, body: e.body };
}

function eventRow(item, fresh = false) {
  const e = parsed(item);
  const task = e.body && typeof e.body.task_id === "string" ? e.body.task_id : null;
  return h("tr", { class: fresh ? "fresh" : null, "data-offset": e.offset },
    h("td", { class: "num mono" }, e.offset),
    h("td", { class: "mono" }, eventLink(e.hash, e.type)),
    h("td", {}, accountLink(e.author)),
    h("td", { class: "num" }, e.seq),
    h("td", {}, taskLink(task)),
    h("td", {}, verdict(e)),
    h("td", { class: "muted" }, when(e.ts)));
}
const EVENT_HEADERS = [["offset", "num"], ["type"], ["author"], ["seq", "num"], ["task"], ["verification"], ["time"]];

function taskRow(t) {
  return h("tr", { "data-task-id": t.task_id },
    h("td", {}, taskLink(t.task_id)),
    h("td", {}, t.task_type),
    h("td", {}, accountLink(t.owner)),
    h("td", { class: "status" }, badge(t.status)),
    h("td", { class: "progress-cell" }, progressBar(t.progress, t.status)),
    h("td", { class: "num chunks" }, `${t.chunks_done}/${t.chunks_total}`),
    h("td", { class: "num" }, credits(t.paid)),
    h("td", { class: "muted" }, when(t.submitted_ts)));
}
const TASK_HEADERS = [["task"], ["type"], ["owner"], ["status"], ["progress"], ["chunks", "num"], ["paid", "num"], ["submitted"]];

function nodeRow(n) {
  const load = n.load || {};
  const cpu = typeof load.cpu_percent === "number" ? `${Math.round(load.cpu_percent)}% cpu` : "—";
  const slots = typeof load.max_concurrent_tasks === "number" ? `${load.active_tasks ?? 0}/${load.max_concurrent_tasks} slots` : "";
  return h("tr", { "data-node-id": n.node_id },
    h("td", {}, accountLink(n.node_id), n.is_self ? h("span", { class: "muted" }, " (this node)") : null),
    h("td", {}, badge(n.status)),
    h("td", {}, h("span", { class: "bar", title: n.level }, h("span", { style: `width:${Math.round(n.reputation * 100)}%` })),
      h("span", { class: "pct" }, `${n.reputation.toFixed(2)} ${n.level}`)),
    h("td", {}, `${cpu} ${slots}`),
    h("td", { class: "num node-balance" }, credits(n.balance)),
    h("td", { class: "num" }, credits(n.escrow)),
    h("td", { class: "muted" }, n.url || "—"));
}

function rememberNames(nodes) {
  for (const n of nodes) if (n.name) state.names.set(n.node_id, n.name);
}

// ------------------------------------------------------------------ views
async function overview(view) {
  const summary = await getJSON(`${API}/explorer/summary`);
  state.decimals = summary.decimals;
  rememberNames(summary.nodes);
  const last = summary.node.last_offset;
  const feed = await getJSON(`${API}/feed?after=${Math.max(0, last - RECENT_EVENTS)}&limit=${RECENT_EVENTS}`);
  state.lastOffset = Math.max(last, feed.next);
  document.getElementById("network-name").textContent = `${summary.node.network_name || ""} · ${short(summary.node.net)}`;
  const me = summary.nodes.find((n) => n.is_self);
  view.replaceChildren(
    h("h1", {}, "Network"),
    h("div", { class: "cards", id: "status" }, statusCards(summary, me)),
    h("section", { class: "panel" }, h("h2", {}, `Nodes (${summary.nodes.length})`),
      table("nodes", [["node"], ["status"], ["reputation"], ["load"], ["balance", "num"], ["escrow", "num"], ["url"]],
        summary.nodes.map(nodeRow), "no node has joined")),
    h("section", { class: "panel" }, h("h2", {}, "Tasks (", h("span", { id: "tasks-total" }, summary.tasks_total), ")"),
      table("tasks", TASK_HEADERS, summary.tasks.map(taskRow), "no task yet")),
    h("section", { class: "panel" }, h("h2", {}, "Recent events"),
      table("events", EVENT_HEADERS, feed.events.slice().reverse().map((e) => eventRow(e)), "the log is empty")));
}

function statusCards(summary, me) {
  const s = summary.supply;
  return [
    card("This node", me ? accountLink(me.node_id) : short(summary.node.node_id), summary.node.url),
    card("Balance", h("span", { id: "self-balance" }, me ? credits(me.balance) : "—"), "credits spendable"),
    card("Events", h("span", { id: "last-offset" }, summary.node.last_offset),
      `${summary.node.pending} pending · ${Object.keys(summary.node.forks).length} forks`),
    card("Peers", h("span", { id: "peers" }, summary.node.peers), `${summary.nodes.length} nodes in the ledger`),
    card("Supply", credits(s.minted), `${credits(s.balance)} spendable · ${credits(s.escrow)} escrow · ${credits(s.in_transit)} in transit`),
    card("Conservation", summary.conserved ? badge("holds", "valid") : badge("violated", "invalid"),
      "minted = balances + escrow + transit + vouchers + burnt"),
  ];
}

async function refreshOverview() {
  const summary = await getJSON(`${API}/explorer/summary`);
  rememberNames(summary.nodes);
  const me = summary.nodes.find((n) => n.is_self);
  document.getElementById("status")?.replaceChildren(...statusCards(summary, me));
  const nodes = document.querySelector("#nodes tbody");
  if (nodes) nodes.replaceChildren(...summary.nodes.map(nodeRow));
  const tasks = document.querySelector("#tasks tbody");
  if (tasks) for (const t of summary.tasks.slice().reverse()) upsertTask(t, tasks);
  const total = document.getElementById("tasks-total");
  if (total) total.textContent = String(summary.tasks_total);
}

function upsertTask(t, tbody) {
  const existing = tbody.querySelector(`tr[data-task-id="${CSS.escape(t.task_id)}"]`);
  const row = taskRow(t);
  if (existing) existing.replaceWith(row);
  else tbody.prepend(row);
  tbody.closest("table")?.parentElement?.querySelector(".empty")?.remove();
}

async function accountView(view, id) {
  const [hist, evs, proof] = await Promise.all([
    getJSON(`${API}/accounts/${id}/history?limit=1000`),
    getJSON(`${API}/accounts/${id}/events?limit=50`),
    fetchProof(`${API}/proofs/balance/${id}`),
  ]);
  state.decimals = hist.decimals;
  const st = hist.state;
  if (st.node?.name) state.names.set(id, st.node.name);
  view.replaceChildren(
    h("a", { class: "back", href: "#/" }, "← network"),
    h("h1", {}, "Account ", h("span", { class: "mono" }, st.node?.name && st.node.name !== id ? `${st.node.name} · ` : "", id)),
    h("div", { class: "cards", id: "account-cards" },
      card("Balance", h("span", { id: "account-balance" }, credits(st.balance)), "spendable"),
      card("Escrow", credits(st.escrow), "locked in open tasks"),
      card("Incoming", credits(st.incoming), "sent, not yet received"),
      card("Earned / spent", `${credits(st.earned)} / ${credits(st.spent)}`, "task payments"),
      card("Reputation", st.reputation.toFixed(3), st.level + (st.forked_at ? ` · forked at seq ${st.forked_at}` : ""))),
    h("section", { class: "panel", id: "account-chart" }, h("h2", {}, "Balance history"),
      balanceChart(hist.history, credits)),
    h("div", { class: "grid2" },
      h("section", { class: "panel" }, h("h2", {}, "Credit history"),
        table("history", [["offset", "num"], ["kind"], ["change", "num"], ["balance", "num"], ["task / counterparty"]],
          hist.history.slice().reverse().map((r) => h("tr", {},
            h("td", { class: "num mono" }, r.offset),
            h("td", {}, r.kind),
            h("td", { class: "num" }, r.delta ? `${r.delta > 0 ? "+" : ""}${credits(r.delta)}` : h("span", { class: "muted" }, credits(r.amount))),
            h("td", { class: "num" }, credits(r.balance_after)),
            h("td", {}, r.task_id ? taskLink(r.task_id) : (r.counterparty && r.counterparty !== id ? accountLink(r.counterparty) : "—")))),
          "no credit movement")),
      h("section", { class: "panel" }, h("h2", {}, "Events signed by this account"),
        table("account-events", [["offset", "num"], ["type"], ["seq", "num"], ["task"], ["verification"]],
          evs.events.map((e) => h("tr", { "data-offset": e.offset },
            h("td", { class: "num mono" }, e.offset), h("td", { class: "mono" }, eventLink(e.hash, e.type)),
            h("td", { class: "num" }, e.seq),
            h("td", {}, taskLink(parsed(e).body?.task_id)), h("td", {}, verdict(e)))),
          "this account signed no event"))),
    proofPanel("balance", id, proof));
}

async function eventView(view, hash) {
  const [item, proof] = await Promise.all([getJSON(`${API}/events/${hash}`), fetchProof(`${API}/proofs/event/${hash}`)]);
  const e = parsed({ ...item.event, offset: item.offset, valid: item.valid, reason: item.reason });
  view.replaceChildren(
    h("a", { class: "back", href: "#/" }, "← network"),
    h("h1", {}, "Event ", h("span", { class: "mono" }, hash)),
    h("div", { class: "cards" },
      card("Type", h("span", { class: "mono", id: "event-type" }, e.type), h("span", {}, verdict(e))),
      card("Author", accountLink(e.author), `seq ${e.seq}`),
      card("Time", when(e.ts), "the author's clock: informative only")),
    h("section", { class: "panel" }, h("h2", {}, "Body"), h("pre", { class: "mono" }, JSON.stringify(e.body, null, 2))),
    proofPanel("event", hash, proof));
}

async function taskView(view, id) {
  const data = await getJSON(`${API}/tasks/${encodeURIComponent(id)}/events`);
  const t = data.task;
  view.replaceChildren(
    h("a", { class: "back", href: "#/" }, "← network"),
    h("h1", {}, "Task ", h("span", { class: "mono" }, t.task_id)),
    h("div", { class: "cards" },
      card("Status", h("span", { id: "task-status" }, badge(t.status)), t.reason),
      card("Progress", h("span", { id: "task-progress" }, progressBar(t.progress, t.status)), `${t.chunks_done}/${t.chunks_total} chunks`),
      card("Type", t.task_type, h("span", {}, "owner ", accountLink(t.owner))),
      card("Escrow / paid / refund", `${credits(t.escrow)} / ${credits(t.paid)} / ${credits(t.refund)}`),
      card("Submitted", when(t.submitted_ts), t.finished_ts ? `finished ${when(t.finished_ts)}` : "not finished")),
    h("section", { class: "panel" }, h("h2", {}, "Chunks"),
      table("chunks", [["chunk", "num"], ["status"], ["worker"], ["price", "num"], ["attempts", "num"], ["payment", "num"], ["error"]],
        data.chunks.map((c) => h("tr", {}, h("td", { class: "num" }, c.chunk), h("td", {}, badge(c.status)),
          h("td", {}, accountLink(c.worker)), h("td", { class: "num" }, c.price === null ? "—" : credits(c.price)),
          h("td", { class: "num" }, c.attempts), h("td", { class: "num" }, credits(c.payment)),
          h("td", { class: "reason" }, c.error || ""))))),
    h("section", { class: "panel" }, h("h2", {}, "History"),
      table("task-events", [["offset", "num"], ["type"], ["author"], ["details"], ["verification"], ["time"]],
        data.events.map((e) => h("tr", { "data-offset": e.offset },
          h("td", { class: "num mono" }, e.offset), h("td", { class: "mono" }, eventLink(e.hash, e.type)),
          h("td", {}, accountLink(e.author)),
          h("td", { class: "mono muted" }, details(e.body)), h("td", {}, verdict(e)), h("td", { class: "muted" }, when(e.ts)))),
        "no event names this task")));
}

function details(body) {
  // the event body without the task id, short: what this step of the task said
  const { task_id, spec, ...rest } = body || {};
  const text = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  return text.length > 90 ? `${text.slice(0, 89)}…` : text;
}

// ------------------------------------------------------------------ routing
function route() {
  const hash = location.hash || "#/";
  const m = hash.match(/^#\/(account|task|event)\/(.+)$/);
  return m ? { kind: m[1], id: decodeURIComponent(m[2]) } : { kind: "overview", id: null };
}

async function render() {
  const view = document.getElementById("view");
  state.view = route();
  try {
    if (state.view.kind === "account") await accountView(view, state.view.id);
    else if (state.view.kind === "task") await taskView(view, state.view.id);
    else if (state.view.kind === "event") await eventView(view, state.view.id);
    else await overview(view);
    document.body.dataset.view = state.view.kind;
  } catch (err) {
    view.replaceChildren(h("a", { class: "back", href: "#/" }, "← network"), h("p", { class: "reason" }, String(err.message || err)));
  }
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    try {
      if (state.view?.kind === "overview") await refreshOverview();
      else await render();
    } catch (err) {
      console.warn("refresh failed", err);
    }
  }, REFRESH_DELAY);
}

// ------------------------------------------------------------------ live updates
function onTaskUpdate(msg) {
  if (state.view?.kind === "overview") {
    const row = document.querySelector(`#tasks tr[data-task-id="${CSS.escape(msg.task_id)}"]`);
    if (!row) { scheduleRefresh(); return; }
    row.querySelector(".status").replaceChildren(badge(msg.status));
    row.querySelector(".progress-cell").replaceChildren(progressBar(msg.progress, msg.status));
  } else if (state.view?.kind === "task" && state.view.id === msg.task_id) {
    document.getElementById("task-status")?.replaceChildren(badge(msg.status));
    document.getElementById("task-progress")?.replaceChildren(progressBar(msg.progress, msg.status));
    scheduleRefresh();
  }
}

function onEvent(msg) {
  const item = { offset: msg.offset, raw: msg.event.raw, sig: msg.event.sig, valid: msg.valid, reason: msg.reason };
  state.lastOffset = Math.max(state.lastOffset, msg.offset);
  const e = parsed(item);
  if (state.view?.kind === "overview") {
    const tbody = document.querySelector("#events tbody");
    if (tbody && !tbody.querySelector(`tr[data-offset="${msg.offset}"]`)) {
      tbody.prepend(eventRow(item, true));
      tbody.closest("table")?.parentElement?.querySelector(".empty")?.remove();
      while (tbody.rows.length > RECENT_EVENTS) tbody.deleteRow(-1);
    }
    const offset = document.getElementById("last-offset");
    if (offset) offset.textContent = String(state.lastOffset);
    scheduleRefresh();
  } else if (state.view?.kind === "task" && e.body?.task_id === state.view.id) {
    scheduleRefresh();
  } else if (state.view?.kind === "account") {
    const b = e.body || {};
    if ([e.author, b.to, b.worker].includes(state.view.id)) scheduleRefresh();
  }
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  state.ws = ws;
  const live = document.getElementById("live");
  ws.addEventListener("open", () => {
    state.reconnects = 0;
    live.className = "live on";
    live.textContent = "live";
    ws.send(JSON.stringify({ type: "subscribe", event: "task_updates" }));
    ws.send(JSON.stringify({ type: "subscribe", event: "network_update" }));
    ws.send(JSON.stringify({ type: "subscribe", event: "events", after: state.lastOffset }));
  });
  ws.addEventListener("message", (m) => {
    let msg;
    try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.type === "task_update") onTaskUpdate(msg);
    else if (msg.type === "event") onEvent(msg);
    else if (msg.type === "network_update") {
      const peers = document.getElementById("peers");
      if (peers && typeof msg.metrics.connected_peers === "number") peers.textContent = String(msg.metrics.connected_peers);
    }
  });
  ws.addEventListener("close", () => {
    live.className = "live off";
    live.textContent = "offline";
    if (state.reconnects++ < MAX_RECONNECTS) {
      setTimeout(connect, Math.min(10000, 500 * 2 ** Math.min(state.reconnects, 5)));
    } else {
      live.textContent = "offline (reload to retry)";
    }
  });
}

window.addEventListener("hashchange", render);
render().then(connect);
