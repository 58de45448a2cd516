"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const AXES = { budget: "budget (r_q x r_c, in cost order)", bytes: "index bytes per candidate",
  flops: "scoring FLOPs per pair", latency: "scoring ms per query", params: "backbone parameters" };
const state = { benchmark: "", task: "", family: "", kind: "", sort: "score", desc: true, axis: "bytes",
  open: "" };
// The state is also the page's address (#task=...&sort=...&desc=0): a view can be shared.
for (const [k, v] of new URLSearchParams(location.hash.slice(1))) {
  if (k in state) state[k] = k === "desc" ? v !== "0" : v;
}
const fmt = (v, d = 2) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
const big = (v) => (v === null || v === undefined ? "-" : Number(v).toPrecision(3));
const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function options(key) { return [...new Set(DATA.rows.map((r) => r[key]).filter((v) => v))].sort(); }

function filtered() {
  return DATA.rows.filter((r) => ["benchmark", "task", "family", "kind"].every(
    (k) => !state[k] || r[k] === state[k]));
}

// One entry per (model, budget): a task's score, or the mean over the tasks shown.
function entries() {
  const rows = filtered();
  const tasks = new Set(rows.map((r) => r.task));
  const groups = new Map();
  for (const r of rows) {
    const key = r.model + " @ " + r.budget;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  return [...groups.entries()].map(([key, rs]) => {
    const counted = rs.filter((r) => !r.partial);
    const use = counted.length ? counted : rs;
    const mean = (f) => { const v = use.map((r) => r[f]).filter((x) => x !== null);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null; };
    return { key, model: rs[0].model, budget: rs[0].budget, family: rs[0].family, kind: rs[0].kind,
      order: rs[0].order, score: mean("score"), low: rs.length === 1 ? rs[0].low : null,
      high: rs.length === 1 ? rs[0].high : null, covered: use.length, expected: tasks.size,
      sd: rs.length === 1 && rs[0].sd !== undefined ? rs[0].sd : null,
      bytes: mean("bytes"), flops: mean("flops"), latency: mean("latency"), params: rs[0].params,
      partial: rs.some((r) => r.partial), reported: rs.some((r) => r.reported),
      detail: rs.map((r) => r.task + ": " + fmt(r.score)).join("\n"),
      timing: use.map((r) => (rs.length > 1 ? r.task + ": " : "") + timing(r)).join("\n"), rows: rs };
  });
}

// How a row's ms / query was measured: the median of its timed runs after a warm-up, and their
// range (the spread the machine's load gave); shown on hover over the latency cells.
function timing(r) {
  const runs = r.latency_runs;
  if (r.latency === null || r.latency === undefined) return "no timing";
  if (!runs || !runs.length) return fmt(r.latency, 3) + " ms (no runs kept)";
  if (runs.length === 1) return fmt(r.latency, 3) + " ms, one run (no warm-up)";
  return "median " + fmt(r.latency, 3) + " ms of " + runs.length + " runs after a warm-up, range " +
    fmt(Math.min(...runs), 3) + "\u2013" + fmt(Math.max(...runs), 3) + " ms";
}

function select(name, values, label) {
  const box = document.createElement("label");
  box.textContent = label + " ";
  const s = document.createElement("select");
  s.id = "filter-" + name;
  for (const v of ["", ...values]) {
    const o = document.createElement("option");
    o.value = v; o.textContent = v || "all";
    s.appendChild(o);
  }
  s.value = state[name];
  s.onchange = () => { state[name] = s.value; draw(); };
  box.appendChild(s);
  return box;
}

const COLUMNS = [["key", "model @ budget"], ["family", "family"], ["kind", "budget kind"],
  ["score", "score"], ["bytes", "bytes / cand"], ["flops", "FLOPs / pair"],
  ["latency", "ms / query"], ["params", "params"]];

function drawTable(list) {
  const table = document.getElementById("board");
  table.innerHTML = "";
  const head = table.insertRow();
  for (const [key, label] of COLUMNS) {
    const th = document.createElement("th");
    th.textContent = label; th.dataset.key = key;
    if (state.sort === key) th.className = state.desc ? "sorted-desc" : "sorted-asc";
    th.onclick = () => { state.desc = state.sort === key ? !state.desc : key !== "key";
      state.sort = key; draw(); };
    head.appendChild(th);
  }
  const dir = state.desc ? -1 : 1;
  list.sort((a, b) => {
    const x = a[state.sort], y = b[state.sort];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * dir;
  });
  for (const e of list) {
    const tr = table.insertRow();
    tr.className = "entry" + (e.partial ? " partial" : "");
    tr.title = e.detail;
    const label = e.key + (e.reported ? " (reported)" : "") + (e.partial ? " \u2020" : "");
    let score = fmt(e.score);
    if (e.sd !== null) score += " <span class=ci>\u00b1 " + fmt(e.sd, 1) + " sd</span>";
    if (e.low !== null) score += " <span class=ci>[" + fmt(e.low, 1) + ", " + fmt(e.high, 1) + "]</span>";
    if (e.covered < e.expected) score += " <span class=mark>(" + e.covered + "/" + e.expected + ")</span>";
    const cells = [label, e.family || "-", e.kind, score, big(e.bytes), big(e.flops),
      fmt(e.latency, 3), e.params ? unit(e.params, "params") : "-"];
    cells.forEach((c, i) => { const td = tr.insertCell(); if (i === 3) td.innerHTML = c; else td.textContent = c;
      if (COLUMNS[i][0] === "latency") { td.title = e.timing; td.className = "timed"; } });
    // Click a row for its per-task drill-down (kept in the address as #open=KEY).
    tr.onclick = () => { state.open = state.open === e.key ? "" : e.key; draw(); };
    if (state.open === e.key) drillDown(table, e);
  }
}

function drillDown(table, e) {
  const tr = table.insertRow();
  tr.className = "drill";
  const td = tr.insertCell();
  td.colSpan = COLUMNS.length;
  const rows = [...e.rows].sort((a, b) => (a.task < b.task ? -1 : 1));
  td.innerHTML = "<table class=tasks><tr><th>task</th><th>metric</th><th>score</th><th>95% CI</th>" +
    "<th>bytes / cand</th><th>ms / query</th></tr>" + rows.map((r) => "<tr><td>" + esc(r.task) +
    (r.partial ? " \u2020" : "") + "</td><td>" + esc(r.metric || "-") + "</td><td>" + fmt(r.score) +
    (r.seeds ? " <span class=ci>(seeds " + r.seeds.map((x) => fmt(x, 1)).join(", ") + ")</span>" : "") +
    "</td><td>" + (r.low === null ? "-" : "[" + fmt(r.low, 1) + ", " + fmt(r.high, 1) + "]") +
    "</td><td>" + big(r.bytes) + "</td><td class=timed title=\"" + esc(timing(r)) + "\">" + fmt(r.latency, 3) +
    "</td></tr>").join("") + "</table>";
}

function pareto(points) {
  const sorted = [...points].sort((a, b) => a.x - b.x || b.y - a.y);
  const front = [];
  let best = -Infinity;
  for (const p of sorted) if (p.y > best) { front.push(p); best = p.y; }
  return front;
}

// Tick values on a log axis from 10^lo to 10^hi: the decades, and 2x and 5x between them when
// the axis spans fewer than three decades.
function ticks(lo, hi) {
  const steps = hi - lo < 3 ? [1, 2, 5] : [1];
  const out = [];
  for (let d = Math.floor(lo); d <= Math.ceil(hi); d++)
    for (const m of steps) { const v = m * 10 ** d; if (Math.log10(v) >= lo && Math.log10(v) <= hi) out.push(v); }
  return out;
}

// 2e8 -> "200M", 1e9 -> "1B" (parameters) or "1G" (bytes, FLOPs); ms as they are.
function unit(v, axis) {
  const marks = axis === "params" ? [[1e9, "B"], [1e6, "M"], [1e3, "k"]] : [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [size, mark] of marks) if (v >= size) return +(v / size).toPrecision(3) + mark;
  return String(+v.toPrecision(3));
}

function drawChart(list) {
  const W = 720, H = 420, L = 60, R = 20, T = 20, B = 50;
  // The budget axis is categorical: each budget shown gets a place, in cost order (drawn on
  // the same log machinery as 10^place).
  const less = (a, b) => { for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i]; return 0; };
  const budgets = [...new Map(list.filter((e) => e.kind !== "reported").map((e) => [e.budget, e.order]))]
    .sort((a, b) => less(a[1], b[1])).map(([b]) => b);
  const place = (e) => (state.axis === "budget" ? (budgets.includes(e.budget) ? 10 ** budgets.indexOf(e.budget) : null) : e[state.axis]);
  const pts = list.filter((e) => place(e) > 0 && e.score !== null)
    .map((e) => ({ x: place(e), y: e.score, e }));
  const chart = document.getElementById("chart");
  if (!pts.length) { chart.innerHTML = "<p>No point has this cost.</p>"; return; }
  const lx = pts.map((p) => Math.log10(p.x));
  let [x0, x1] = [Math.min(...lx), Math.max(...lx)];
  if (x1 - x0 < 1e-9) { x0 -= 0.5; x1 += 0.5; }
  [x0, x1] = [x0 - 0.04 * (x1 - x0), x1 + 0.04 * (x1 - x0)];  // no point on the axis
  let [y0, y1] = [Math.min(...pts.map((p) => p.y)), Math.max(...pts.map((p) => p.y))];
  if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
  [y0, y1] = [y0 - 0.04 * (y1 - y0), y1 + 0.04 * (y1 - y0)];
  const X = (v) => L + ((Math.log10(v) - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v) => H - B - ((v - y0) / (y1 - y0)) * (H - T - B);
  const models = [...new Set(pts.map((p) => p.e.model))].sort();
  const colour = (m) => "hsl(" + Math.round((360 * models.indexOf(m)) / models.length) + ",65%,45%)";
  let svg = `<svg id="plot" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">`;
  svg += `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#444"/>`;
  svg += `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#444"/>`;
  const marks = state.axis === "budget" ? budgets.map((b, i) => [10 ** i, b])
    : ticks(x0, x1).map((v) => [v, unit(v, state.axis)]);
  for (const [v, text] of marks)
    svg += `<line x1="${X(v)}" y1="${H - B}" x2="${X(v)}" y2="${H - B + 4}" stroke="#444"/>` +
      `<text class="tick" x="${X(v)}" y="${H - B + 16}" text-anchor="middle">${text}</text>`;
  for (const v of [y0, (y0 + y1) / 2, y1])
    svg += `<text x="${L - 5}" y="${Y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`;
  svg += `<text x="${(W + L) / 2}" y="${H - 10}" text-anchor="middle">${AXES[state.axis]}${state.axis === "budget" ? "" : " (log)"}</text>`;
  for (const m of models) {
    const own = pts.filter((p) => p.e.model === m).sort((a, b) => a.x - b.x);
    if (own.length > 1)
      svg += `<polyline class="line" fill="none" stroke="${colour(m)}" points="${own.map((p) => X(p.x) + "," + Y(p.y)).join(" ")}"/>`;
  }
  // The frontier compares only means over every task shown; a mean over fewer is drawn hollow.
  const front = pareto(pts.filter((p) => p.e.covered === p.e.expected));
  svg += `<polyline class="frontier" fill="none" stroke="#000" stroke-dasharray="3,3" points="${front.map((p) => X(p.x) + "," + Y(p.y)).join(" ")}"/>`;
  for (const p of pts) {
    const e = p.e, ci = e.low !== null ? ` [${fmt(e.low, 1)}, ${fmt(e.high, 1)}]` : "";
    const whole = e.covered === e.expected;
    const part = whole ? "" : ` (${e.covered}/${e.expected} tasks)`;
    svg += `<circle class="point${whole ? "" : " incomplete"}" cx="${X(p.x)}" cy="${Y(p.y)}" r="5" ` +
      `fill="${whole ? colour(e.model) : "#fff"}" stroke="${colour(e.model)}" stroke-width="2">` +
      `<title>${esc(e.key)}${e.reported ? " (reported)" : ""}\nscore ${fmt(e.score)}${ci}${part}\n${state.axis === "budget" ? "index bytes per candidate: " + big(e.bytes) : AXES[state.axis] + ": " + big(p.x)}${state.axis === "latency" ? "\n" + esc(e.timing) : ""}</title></circle>`;
  }
  svg += "</svg>";
  chart.innerHTML = svg + "<p>" + models.map((m) => `<span style="color:${colour(m)}">\u25CF ${esc(m)}</span>`).join(" &nbsp; ") +
    " &nbsp; <span>\u2504 Pareto frontier</span>" +
    (pts.some((p) => p.e.covered < p.e.expected) ? " &nbsp; <span>\u25CB mean over fewer tasks than shown (off the frontier)</span>" : "") + "</p>";
}

function draw() {
  const shown = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v !== "") shown.set(k, k === "desc" ? (v ? "1" : "0") : v);
  history.replaceState(null, "", "#" + shown.toString());
  const filters = document.getElementById("filters");
  filters.innerHTML = "";
  filters.appendChild(select("benchmark", options("benchmark"), "benchmark"));
  filters.appendChild(select("task", options("task"), "task"));
  filters.appendChild(select("family", options("family"), "model family"));
  filters.appendChild(select("kind", options("kind"), "budget kind"));
  const axes = document.getElementById("axes");
  axes.innerHTML = "";
  for (const a of Object.keys(AXES)) {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio"; radio.name = "axis"; radio.value = a; radio.id = "axis-" + a;
    radio.checked = state.axis === a;
    radio.onchange = () => { state.axis = a; draw(); };
    label.appendChild(radio); label.append(" " + AXES[a]);
    axes.appendChild(label);
  }
  const list = entries();
  const notes = document.getElementById("notes");
  notes.textContent = list.some((e) => e.partial)
    ? "\u2020 partial result (--limit run or a dataset of another size): not comparable with full runs." : "";
  drawTable(list);
  drawChart(list);
  document.body.dataset.rows = String(list.length);
}

draw();
