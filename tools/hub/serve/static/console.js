// Vigil store console: plain JS, no build step. Talks only to the JSON API (docs/console.md).
"use strict";
const $ = (sel) => document.querySelector(sel);
let csrf = null, me = null, source = null, lastId = null;
const alertsById = new Map();

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v); else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k ?? ""));
  return e;
}
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");

async function api(path, opts = {}) {
  const headers = { "Content-Type": "application/json" };
  if (csrf && opts.method && opts.method !== "GET") headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, { credentials: "same-origin", ...opts, headers });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401 && path !== "/api/login") { showLogin(); throw new Error(body.error); }
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
const post = (path, data) => api(path, { method: "POST", body: JSON.stringify(data || {}) });

function showLogin() {
  $("#login").hidden = false; $("#tabs").hidden = true; $("#logout").hidden = true;
  document.querySelectorAll(".tab").forEach((s) => (s.hidden = true));
  if (source) { source.close(); source = null; }
}

async function started(who) {
  me = who; csrf = who.csrf;
  $("#who").textContent = `${who.user} (${who.role})`;
  $("#login").hidden = true; $("#tabs").hidden = false; $("#logout").hidden = false;
  show("live");
  await Promise.all([loadAlerts(), loadUnits(), loadEvents()]);
  connect();
}

function show(tab) {
  document.querySelectorAll(".tab").forEach((s) => (s.hidden = s.id !== tab));
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("on", b.dataset.tab === tab));
  ({ units: loadUnits, floor: loadFloor, footfall: loadFootfall, actions: loadActions, users: loadUsers })[tab]?.();
}

// -- live -----------------------------------------------------------------------------------
function connect() {
  source = new EventSource("/api/stream" + (lastId ? `?last_id=${lastId}` : ""));
  source.onopen = () => { $("#link").textContent = "live"; $("#link").className = "badge live"; };
  source.onerror = () => { $("#link").textContent = "reconnecting"; $("#link").className = "badge offline"; };
  source.addEventListener("alert", (m) => { const a = JSON.parse(m.data); alertsById.set(a.id, a); renderAlerts(); });
  source.addEventListener("event", (m) => { const e = JSON.parse(m.data); lastId = e.id; addEvent(e); });
  source.addEventListener("unit", () => loadUnitsSoon());
}
let unitTimer = null;
function loadUnitsSoon() { clearTimeout(unitTimer); unitTimer = setTimeout(loadUnits, 200); }

async function loadAlerts() {
  const rows = await api("/api/alerts?state=active");
  alertsById.clear(); rows.forEach((a) => alertsById.set(a.id, a)); renderAlerts();
}

function renderAlerts() {
  const active = [...alertsById.values()].filter((a) => a.state !== "resolved").sort((a, b) => b.id - a.id);
  $("#alert-count").textContent = `${active.length} active`;
  $("#alerts").replaceChildren(...active.map(alertCard));
}

function alertCard(a) {
  const det = a.deterrents?.length ? el("ul", {}, ...a.deterrents.map((d) =>
    el("li", {}, `deterrent ${d.output || ""} ${d.action} (${d.reason}) at ${when(d.at)}`))) : "";
  const hist = el("ul", {}, ...(a.history || []).filter((h) => h.user).map((h) =>
    el("li", {}, `${h.action} by ${h.user} at ${when(h.at)}${h.note ? ": " + h.note : ""}${h.outcome ? " [" + h.outcome + "]" : ""}`)));
  const buttons = [];
  if (a.state === "open") buttons.push(el("button", { class: "ack", onclick: () => act(a.id, "ack") }, "Acknowledge"));
  buttons.push(el("button", { class: "escalate", onclick: () => act(a.id, "escalate") }, "Escalate"));
  if (me.role !== "guard") buttons.push(el("button", { class: "resolve", onclick: () => resolve(a.id) }, "Resolve"));
  return el("div", { class: `alert-card sev-${a.severity} state-${a.state}`, dataset: { alertId: a.id, state: a.state } },
    el("h3", {}, `#${a.id} ${a.severity.toUpperCase()} ${a.type} — ${a.unit}${a.zone ? " / " + a.zone : ""}`),
    el("div", {}, `${a.explain_text}`),
    el("div", {}, `rule ${a.rule}, opened ${when(a.opened_at)}, `, el("b", { class: "state" }, a.state),
      a.escalated ? ` (escalated ${a.escalated}x)` : ""),
    det, hist, ...buttons);
}

async function act(id, action, extra = {}) {
  const note = action === "resolve" ? extra.note : "";
  try {
    const a = await post(`/api/alerts/${id}/${action}`, { note, ...extra });
    alertsById.set(a.id, a); renderAlerts();
  } catch (e) { alert(e.message); }
}

function resolve(id) {
  const d = $("#resolve-dialog"); $("#resolve-id").textContent = `#${id}`; d.showModal();
  d.onclose = () => { if (d.returnValue === "ok") act(id, "resolve", { outcome: $("#resolve-outcome").value, note: $("#resolve-note").value }); };
}

async function loadEvents() { (await api("/api/events?limit=30")).reverse().forEach(addEvent); }
function addEvent(e) {
  if (e.id && (!lastId || e.id > lastId)) lastId = e.id;
  const li = el("li", {}, `${when(e.received_at)} ${e.unit} ${e.severity_name} ${e.type} ${e.phase}${e.zone ? " zone " + e.zone : ""}`);
  $("#events").prepend(li);
  while ($("#events").children.length > 100) $("#events").lastChild.remove();
}

// -- units ----------------------------------------------------------------------------------
async function loadUnits() {
  const units = await api("/api/units");
  $("#unit-rows").replaceChildren(...units.map((u) => el("tr", { dataset: { unit: u.unit } },
    el("td", {}, `${u.site}/${u.unit}${u.known ? "" : " (not in the store file)"}`),
    el("td", {}, el("span", { class: `badge state ${u.state}` }, u.state), u.reasons.length ? " " + u.reasons.join(", ") : ""),
    el("td", {}, when(u.last_seen)), el("td", {}, u.fps?.toFixed?.(1) ?? "-"),
    el("td", {}, `${u.outbox_depth ?? "-"}`), el("td", {}, u.firmware || "-"),
    el("td", {}, u.models.map((m) => m.name).join(", ")),
    el("td", {}, ...(me.role === "guard" ? [] : unitButtons(u))))));
  api("/api/health").then((h) => {
    $("#health").textContent = `broker ${h.mqtt.connected ? "connected" : "NOT connected"}; ${h.stored} events stored, ` +
      `${h.duplicates} duplicates dropped, ${h.invalid_total} invalid messages, ${h.gaps_total} missing events` +
      (h.db.error ? `; DATABASE: ${h.db.error}` : "");
  }).catch(() => {});
}

function unitButtons(u) {
  const cmd = async (command, args) => {
    try { const r = await post(`/api/units/${encodeURIComponent(u.unit)}/commands`, { command, args, site: u.site });
      alert(`${command}: ${r.ok ? "ok" : JSON.stringify(r.reply.error)}`); } catch (e) { alert(e.message); }
  };
  return [el("button", { onclick: () => cmd("arm", {}) }, "Arm"), el("button", { onclick: () => cmd("disarm", {}) }, "Disarm"),
    el("button", { onclick: () => { const z = prompt("Zone to disarm"); if (z) cmd("disarm", { zone: z }); } }, "Disarm zone"),
    el("button", { onclick: () => cmd("mute", { minutes: 15 }) }, "Mute 15 min"),
    el("button", { onclick: () => cmd("deterrent_test", { seconds: 2 }) }, "Test deterrent")];
}

// -- floor ----------------------------------------------------------------------------------
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) { const e = document.createElementNS(SVGNS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; }
async function loadFloor() {
  const f = await api("/api/floor");
  $("#floor-note").textContent = f.image ? `plan scale ${f.meters_per_pixel ?? "?"} m/px` : "No floor plan yet: one zone sketch per unit (camera view, normalised).";
  const plans = [];
  if (f.image) plans.push(el("img", { src: f.image, alt: "floor plan" }));
  for (const u of f.units) {
    const s = svg("svg", { width: 320, height: 240, viewBox: "0 0 1 1", preserveAspectRatio: "none", "data-unit": u.unit });
    for (const z of u.zones) {
      s.append(svg("polygon", { points: z.polygon.map((p) => p.join(",")).join(" "), fill: "rgba(77,163,255,.25)", stroke: "#1565c0", "stroke-width": 0.005 }));
      const t = svg("text", { x: z.polygon[0][0] + 0.01, y: z.polygon[0][1] + 0.05, "font-size": 0.05 }); t.textContent = z.name; s.append(t);
    }
    for (const l of u.lines) if (l.points) s.append(svg("line", { x1: l.points[0][0], y1: l.points[0][1], x2: l.points[1][0], y2: l.points[1][1], stroke: "#c62828", "stroke-width": 0.01 }));
    plans.push(el("figure", {}, s, el("figcaption", {}, u.name || `${u.site}/${u.unit}`)));
  }
  $("#floor-plan").replaceChildren(...plans);
}

// -- history, footfall, actions, users ------------------------------------------------------
$("#search").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target), q = new URLSearchParams();
  for (const [k, v] of f) if (v && k !== "what") q.set(k, k === "since" || k === "until" ? Date.parse(v) / 1000 : v);
  const what = f.get("what"), rows = await api(`/api/${what}?${q}`);
  $("#results").replaceChildren(...rows.map((r) => what === "alerts"
    ? el("tr", {}, el("td", {}, when(r.opened_at)), el("td", {}, r.unit), el("td", {}, r.zone || ""), el("td", {}, r.rule),
      el("td", {}, r.state), el("td", {}, r.outcome || ""), el("td", {}, r.explain_text))
    : el("tr", {}, el("td", {}, when(r.received_at)), el("td", {}, r.unit), el("td", {}, r.zone || ""), el("td", {}, r.type), el("td", {}, r.phase))));
});

async function loadFootfall() {
  const data = await api(`/api/footfall?since=${Date.now() / 1000 - 86400 * 7}`);
  const byZone = new Map();
  for (const r of data.zones) { const k = `${r.unit} / ${r.zone}`; if (!byZone.has(k)) byZone.set(k, []); byZone.get(k).push(r); }
  const plots = [];
  for (const [name, rows] of byZone) {
    const max = Math.max(1, ...rows.map((r) => r.visits)), w = 24, s = svg("svg", { width: rows.length * w + 40, height: 140 });
    rows.forEach((r, i) => {
      const h = (r.visits / max) * 100;
      const bar = svg("rect", { x: 30 + i * w, y: 110 - h, width: w - 4, height: h, fill: "#4da3ff" });
      const tip = svg("title", {}); tip.textContent = `${new Date(r.hour * 1000).toLocaleString()}: ${r.visits} visits, mean dwell ${r.mean_dwell_s?.toFixed(1) ?? "-"} s`;
      bar.append(tip); s.append(bar);
      const t = svg("text", { x: 30 + i * w, y: 128, "font-size": 10 }); t.textContent = new Date(r.hour * 1000).getHours() + "h"; s.append(t);
    });
    plots.push(el("figure", {}, s, el("figcaption", {}, `${name}: visits per hour (hover: dwell)`)));
  }
  $("#footfall-plots").replaceChildren(...(plots.length ? plots : [el("p", {}, "No footfall summaries yet ([rules.footfall] on the units).")]));
}

async function loadActions() {
  const rows = await api("/api/actions").catch((e) => { $("#action-rows").replaceChildren(el("tr", {}, el("td", {}, e.message))); return null; });
  if (rows) $("#action-rows").replaceChildren(...rows.map((a) => el("tr", {}, el("td", {}, when(a.at)), el("td", {}, a.user),
    el("td", {}, `${a.site}/${a.unit}`), el("td", {}, `${a.command} ${JSON.stringify(a.args)}`), el("td", {}, a.ok ? "ok" : "failed"))));
}

async function loadUsers() {
  const rows = await api("/api/users").catch((e) => { $("#user-rows").replaceChildren(el("tr", {}, el("td", {}, e.message))); return null; });
  if (rows) $("#user-rows").replaceChildren(...rows.map((u) => el("tr", {}, el("td", {}, u.name), el("td", {}, u.role))));
}

// -- start ----------------------------------------------------------------------------------
$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const who = await post("/api/login", { user: $("#login-user").value, password: $("#login-password").value });
    $("#login-password").value = ""; $("#login-error").textContent = ""; await started(who);
  } catch (e) { $("#login-error").textContent = e.message; }
});
$("#logout").addEventListener("click", async () => { await post("/api/logout").catch(() => {}); csrf = null; showLogin(); });
document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.tab)));
api("/api/me").then(started).catch(() => showLogin());
