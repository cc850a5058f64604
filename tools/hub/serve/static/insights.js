// Vigil insights page: peak times, floor heat map, weekly summary. Plain JS, no build step;
// talks only to /api/me and /api/insights/* (docs/forecast.md). Log in on the console (/).
"use strict";
const $ = (sel) => document.querySelector(sel);
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) { const t = document.createElementNS(SVGNS, "title"); t.textContent = text; e.append(t); }
  return e;
}
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text ?? ""; tr.append(td); }
const heat = (v, hue) => (hue === "blue" ? `rgb(${255 - 200 * v},${255 - 120 * v},255)` : `rgb(255,${255 - 210 * v},${255 - 210 * v})`);
let peak = null;

async function get(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) { location.href = "/"; throw new Error("not logged in"); }
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function fail(e) { $("#insight-error").textContent = e.message; }

function show(view) {
  $("#insight-error").textContent = "";
  document.querySelectorAll(".view").forEach((s) => (s.hidden = s.id !== view));
  document.querySelectorAll("#insight-tabs button").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
  ({ peak: loadPeak, floorheat: loadHeat, weekly: loadWeekly })[view]().catch(fail);
}

// -- peak times -----------------------------------------------------------------------------
async function loadPeak() {
  peak = await get("/api/insights/peak-times");
  $("#peak-made").textContent = `forecast made ${peak.made_at}, from ${peak.start}`;
  const sel = $("#peak-zone"), keep = sel.value;
  sel.replaceChildren(...peak.zones.map((z) => new Option(z, z)));
  if (peak.zones.includes(keep)) sel.value = keep;
  drawPeak();
}

function drawPeak() {
  const zone = $("#peak-zone").value, kind = $("#peak-kind").value;
  const g = peak.grid.zones[zone], grid = g[kind] || g.expected;
  const w = 32, h = 22, s = svg("svg", { width: 40 + 24 * w, height: 20 + 7 * h, "data-zone": zone, id: "peak-heat" });
  const max = Math.max(1e-9, ...grid.flat());
  peak.grid.days.forEach((day, d) => {
    const t = svg("text", { x: 2, y: 20 + d * h + 15, "font-size": 12 }); t.textContent = day; s.append(t);
    grid[d].forEach((v, hr) => s.append(svg("rect", {
      x: 40 + hr * w, y: 20 + d * h, width: w - 1, height: h - 1, fill: heat(v / max),
      "data-how": d * 24 + hr, "data-value": v }, `${day} ${hr}:00 ${kind} ${v.toFixed(3)} incidents/h`)));
  });
  for (let hr = 0; hr < 24; hr += 2) { const t = svg("text", { x: 40 + hr * w, y: 14, "font-size": 11 }); t.textContent = `${hr}h`; s.append(t); }
  $("#peak-grid").replaceChildren(s);
  drawChart(peak.hours.filter((r) => r.zone === zone));
}

function drawChart(rows) {
  const W = 3, H = 160, top = Math.max(1, ...rows.map((r) => r.high));
  const y = (v) => 10 + H - (H * v) / top;
  const s = svg("svg", { width: 40 + rows.length * W, height: H + 40, id: "peak-interval" });
  const band = rows.map((r, i) => `${40 + i * W},${y(r.high)}`).concat(rows.map((r, i) => `${40 + i * W},${y(r.low)}`).reverse());
  if (rows.length) s.append(svg("polygon", { points: band.join(" "), fill: "rgba(77,163,255,.25)", stroke: "none" }, "80 % interval"));
  s.append(svg("polyline", { points: rows.map((r, i) => `${40 + i * W},${y(r.expected)}`).join(" "), fill: "none", stroke: "#c62828", "stroke-width": 1.5 }, "expected"));
  for (let v = 0; v <= top; v += Math.max(1, Math.ceil(top / 4))) { const t = svg("text", { x: 2, y: y(v) + 4, "font-size": 11 }); t.textContent = v; s.append(t); }
  const days = new Map();
  rows.forEach((r, i) => {
    const day = r.time.slice(0, 10);
    if (!days.has(day)) { days.set(day, { total: 0, best: r }); const t = svg("text", { x: 40 + i * W, y: H + 30, "font-size": 10 }); t.textContent = day.slice(5); s.append(t); }
    const d = days.get(day); d.total += r.expected; if (r.expected > d.best.expected) d.best = r;
  });
  $("#peak-chart").replaceChildren(s);
  $("#peak-days").replaceChildren(...[...days].map(([day, d]) => {
    const tr = document.createElement("tr");
    cell(tr, day); cell(tr, d.total.toFixed(2)); cell(tr, d.best.time.slice(11)); cell(tr, `${d.best.low}-${d.best.high}`);
    return tr;
  }));
}

// -- floor heat map -------------------------------------------------------------------------
async function loadHeat() {
  const kind = $("#heat-kind").value, data = await get(`/api/insights/floor-heat?days=${$("#heat-days").value}`);
  const panels = data.units.map((u) => {
    const s = svg("svg", { width: 320, height: 240, viewBox: "0 0 1 1", preserveAspectRatio: "none", "data-unit": u.unit });
    for (const z of u.zones) {
      if (!z.polygon) continue;
      const v = kind === "dwell" ? z.dwell_heat : z.incident_heat;
      s.append(svg("polygon", { points: z.polygon.map((p) => p.join(",")).join(" "), fill: heat(v, kind === "dwell" ? "blue" : "red"),
        stroke: "#555", "stroke-width": 0.004, "data-zone": z.name },
        `${z.name}: ${z.visits} visits, ${z.dwell_s} person-s dwell, ${z.incidents} incidents`));
      const t = svg("text", { x: z.polygon[0][0] + 0.01, y: z.polygon[0][1] + 0.05, "font-size": 0.045 });
      t.textContent = `${z.name} ${kind === "dwell" ? Math.round(z.dwell_s) + " s" : z.incidents}`; s.append(t);
    }
    const box = document.createElement("div"); box.className = "unit-heat";
    const h = document.createElement("h3"); h.textContent = u.name || u.unit; box.append(h, s);
    return box;
  });
  $("#heat-units").replaceChildren(...panels);
  $("#heat-other").textContent = data.unsketched_incidents.length
    ? "Incidents outside sketched zones: " + data.unsketched_incidents.map((o) => `${o.unit}/${o.zone}: ${o.incidents}`).join(", ") : "";
}

// -- weekly summary -------------------------------------------------------------------------
async function loadWeekly() {
  const data = await get("/api/insights/weekly-summary");
  $("#weekly-made").textContent = `week from ${data.start} (forecast made ${data.made_at})`;
  $("#weekly-rows").replaceChildren(...data.rows.map((r) => {
    const tr = document.createElement("tr"); tr.dataset.zone = r.zone;
    for (const v of [r.zone, r.last_week, r.next_week_expected, `${r.next_week_low}-${r.next_week_high}`, r.level_vs_long_run,
      r.visits_last_week, r.mean_dwell_s_last_week, r.peak_hours]) cell(tr, v);
    return tr;
  }));
}

document.addEventListener("DOMContentLoaded", async () => {
  document.querySelectorAll("#insight-tabs button").forEach((b) => b.addEventListener("click", () => { location.hash = b.dataset.view; }));
  $("#peak-zone").addEventListener("change", drawPeak);
  $("#peak-kind").addEventListener("change", drawPeak);
  $("#heat-kind").addEventListener("change", () => loadHeat().catch(fail));
  $("#heat-days").addEventListener("change", () => loadHeat().catch(fail));
  $("#weekly-print").addEventListener("click", () => window.print());
  window.addEventListener("hashchange", () => show(location.hash.slice(1) || "peak"));
  try {
    const who = await get("/api/me");
    $("#who").textContent = `${who.user} (${who.role})`;
    show(["peak", "floorheat", "weekly"].includes(location.hash.slice(1)) ? location.hash.slice(1) : "peak");
  } catch (e) { fail(e); }
});
