// Eddy's web console: a single page over the node's public REST API (the same JSON every
// client uses). No framework: the pages are tables and charts that refresh themselves.
// Every text from the server goes in with textContent, never as HTML (frame names, log
// lines and file names are anybody's input).
"use strict";

const REFRESH_MS = 1000;

// ---------- small helpers ----------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path, options) {
  const init = Object.assign({ headers: {} }, options || {});
  if (init.json !== undefined) {
    init.method = init.method || "POST";
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(init.json);
  }
  let response;
  try {
    // Relative to the page, so that the console also works behind a proxy that serves it
    // under a path of its own (YARN's web proxy: /proxy/APPLICATION_ID/).
    response = await fetch(path.replace(/^\//, ""), init);
  } catch (e) {
    throw new Error("the node does not answer (" + e.message + ")");
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: text }; }
  if (!response.ok) {
    const why = (body && (body.error || body.msg)) || response.statusText;
    throw new Error(why + " (HTTP " + response.status + ")");
  }
  return body;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
function bytes(n) {
  if (n === undefined || n === null) return "";
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)) + " " + UNITS[i];
}

function count(n) {
  return n === undefined || n === null ? "" : Number(n).toLocaleString();
}

function real(x) {
  if (x === undefined || x === null) return "";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e9)) return x.toExponential(3);
  return Number(x.toPrecision(6)).toLocaleString(undefined, { maximumFractionDigits: 6 });
}

function duration(ms) {
  if (ms === undefined || ms === null) return "";
  const s = ms / 1000;
  if (s < 1) return Math.round(ms) + " ms";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.floor(s % 60) + " s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + " h " + (m % 60) + " min";
  return Math.floor(h / 24) + " d " + (h % 24) + " h";
}

function localTime(epochMs) {
  return epochMs ? new Date(epochMs).toLocaleString() : "";
}

function ago(epochMs) {
  return epochMs ? duration(Math.max(0, Date.now() - epochMs)) + " ago" : "never";
}

function bar(fraction, text) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  return el("span", {},
    el("span", { class: "bar" + (pct > 85 ? " high" : ""), role: "progressbar", "aria-valuenow": pct.toFixed(0) },
      el("span", { style: "width:" + pct.toFixed(1) + "%" })),
    el("span", { class: "bar-text" }, text));
}

function badge(text, kind) {
  return el("span", { class: "badge " + (kind || "") }, text);
}

let bannerTimer = null;
function showBanner(text, isError) {
  const b = document.getElementById("banner");
  clearTimeout(bannerTimer);
  if (!text) { b.hidden = true; return; }
  b.hidden = false;
  b.className = isError ? "error" : "";
  b.textContent = text;
  // News fades; errors stay until the next success or message.
  if (!isError) bannerTimer = setTimeout(() => { b.hidden = true; }, 8000);
}

// ---------- sortable tables ----------

// Sort order per table, kept across refreshes.
const sortState = {};

// columns: [{ label, value: row => sortable, cell: row => Node|string, num: bool }]
function table(id, columns, rows, options) {
  const opts = options || {};
  const state = sortState[id] || opts.sort || null;
  let sorted = rows.slice();
  if (state) {
    const col = columns[state.col];
    if (col) {
      const key = col.value || col.cell;
      sorted.sort((a, b) => {
        const x = key(a), y = key(b);
        const cmp = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
        return state.desc ? -cmp : cmp;
      });
    }
  }
  const head = el("tr", {}, columns.map((c, i) => {
    const cls = [c.num ? "num" : "", state && state.col === i ? (state.desc ? "sorted-desc" : "sorted-asc") : ""].join(" ").trim();
    return el("th", {
      class: cls || null,
      title: "sort",
      onclick: () => {
        const cur = sortState[id];
        sortState[id] = { col: i, desc: cur && cur.col === i ? !cur.desc : false };
        if (opts.onSort) opts.onSort();
      },
    }, c.label);
  }));
  const body = sorted.map(r => {
    const tr = el("tr", { class: opts.rowClass ? opts.rowClass(r) : null, "data-key": opts.rowKey ? opts.rowKey(r) : null },
      columns.map(c => {
        const v = c.cell ? c.cell(r) : c.value(r);
        return el("td", { class: [c.num ? "num" : "", c.wrap ? "wrap" : ""].join(" ").trim() || null }, v);
      }));
    return tr;
  });
  if (body.length === 0) {
    body.push(el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, opts.empty || "nothing here yet")));
  }
  return el("div", { class: "scroll" }, el("table", { id }, el("thead", {}, head), el("tbody", {}, body)));
}

// ---------- charts (uPlot) ----------

function barChart(target, xs, counts, opts) {
  const width = Math.max(260, target.clientWidth - 16 || 300);
  const fmtX = opts.formatX || (v => real(v));
  const series = [
    {},
    {
      label: "count",
      fill: "rgba(47,111,179,0.55)",
      stroke: "#2f6fb3",
      width: 1,
      paths: uPlot.paths.bars({ size: [opts.gap === undefined ? 1 : 1 - opts.gap, Infinity], align: opts.align || 0 }),
      points: { show: false },
    },
  ];
  const config = {
    width,
    height: 170,
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: { x: { time: false, range: opts.range }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.05] } },
    axes: [
      { values: (u, splits) => splits.map(fmtX), size: 36, gap: 4 },
      { values: (u, splits) => splits.map(v => count(v)), size: 56 },
    ],
    series,
  };
  return new uPlot(config, [xs, counts], target);
}

function histogramChart(target, column) {
  const h = column.histogram;
  const xs = h.counts.map((_, i) => h.start + i * h.width);
  const isTime = column.type === "time";
  const fmt = isTime ? (v => new Date(v).toLocaleDateString()) : (v => real(v));
  return barChart(target, xs, h.counts, { align: 1, range: [h.start, h.start + h.width * h.counts.length], formatX: fmt, gap: 0.06 });
}

function levelsChart(target, column) {
  const levels = column.top_levels;
  const xs = levels.map((_, i) => i);
  const names = levels.map(l => l[0]);
  const fmt = v => (Number.isInteger(v) && names[v] !== undefined ? (names[v].length > 10 ? names[v].slice(0, 9) + "…" : names[v]) : "");
  return barChart(target, xs, levels.map(l => l[1]), { range: [-0.5, levels.length - 0.5], formatX: fmt, gap: 0.25 });
}

// ---------- pages ----------

const pages = {};

pages.cloud = {
  title: "Cloud",
  async refresh(main) {
    const c = await api("/3/Cloud");
    const leader = c.leader_idx >= 0 ? c.nodes[c.leader_idx] : null;
    const cards = el("div", { class: "cards" },
      card("Cloud", c.cloud_name),
      card("Size", c.cloud_size + (c.cloud_size === 1 ? " worker" : " workers")),
      card("Health", c.cloud_healthy ? badge("healthy", "ok") : badge(c.bad_nodes + " unhealthy", "bad")),
      card("Leader", leader ? leader.ip_port : c.consensus ? "none yet" : "none: members disagree"),
      card("Lock", c.locked ? "locked" + (c.locked_reason ? ": " + c.locked_reason : "") : "open to newcomers"),
      card("Generation", c.generation ? c.generation + (c.generation === 1 ? " worker lost" : " workers lost") : "as formed"),
      card("Uptime", duration(c.cloud_uptime_millis)),
      card("Version", c.version));
    const nodeColumns = (isClient) => [
      { label: "#", value: n => n._idx, num: true },
      { label: "Node", value: n => n.ip_port, cell: n => el("span", {}, n.ip_port, n.host ? el("div", { class: "muted" }, n.host) : null) },
      { label: "Role", value: n => (isClient ? "observer" : n._idx === c.leader_idx ? "leader" : "worker") },
      {
        label: "Health",
        value: n => (n.healthy ? 1 : 0),
        cell: n => el("span", {}, n.healthy ? badge("healthy", "ok") : badge("unhealthy", "bad"), whyUnhealthy(n)),
      },
      { label: "Last heartbeat", value: n => n.last_ping, cell: n => el("span", { title: localTime(n.last_ping) }, ago(n.last_ping)) },
      { label: "CPUs", value: n => n.cpus_allowed, cell: n => n.cpus_allowed + " of " + n.num_cpus, num: true },
      { label: "Load", value: n => n.sys_load, cell: n => n.sys_load.toFixed(2), num: true },
      {
        label: "Memory used",
        value: n => (n.max_mem ? (n.max_mem - n.free_mem) / n.max_mem : 0),
        cell: n => bar(n.max_mem ? (n.max_mem - n.free_mem) / n.max_mem : 0, bytes(n.max_mem - n.free_mem) + " of " + bytes(n.max_mem)),
      },
      { label: "PID", value: n => n.pid, num: true },
      { label: "Version", value: n => n.node_version },
    ];
    const nodes = c.nodes.map((n, i) => Object.assign({ _idx: i }, n));
    const clients = c.clients.map((n, i) => Object.assign({ _idx: i }, n));
    const rerender = () => this.refresh(main);
    const parts = [
      el("h1", {}, "Cloud"),
      cards,
      el("h2", {}, "Workers"),
      table("nodes", nodeColumns(false), nodes, { rowClass: n => (n.healthy ? null : "bad"), rowKey: n => n.ip_port, onSort: rerender, empty: "no workers" }),
      el("h2", {}, "Observer clients"),
      table("clients", nodeColumns(true), clients, { rowClass: n => (n.healthy ? null : "bad"), rowKey: n => n.ip_port, onSort: rerender, empty: "no observer clients" }),
    ];
    if (c.lost_nodes && c.lost_nodes.length) {
      parts.push(el("h2", {}, "Lost workers"));
      const lostColumns = [
        { label: "Node", value: l => l.ip_port },
        { label: "Why", value: l => l.reason, cell: l => el("span", { class: "why" }, l.reason), wrap: true },
        { label: "Last heartbeat", value: l => l.last_ping, cell: l => el("span", { title: localTime(l.last_ping) }, l.last_ping ? ago(l.last_ping) : "never") },
      ];
      parts.push(table("lost", lostColumns, c.lost_nodes, { rowClass: () => "bad", rowKey: l => l.ip_port, onSort: rerender }));
    }
    if (c.left_out && c.left_out.length) {
      parts.push(el("h2", {}, "Left out of the cloud"));
      parts.push(table("left-out", [{ label: "Node", value: l => l.ip_port }, { label: "Why", value: l => l.reason, wrap: true }], c.left_out, { onSort: rerender }));
    }
    main.replaceChildren(...parts);
  },
};

function card(label, value) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function whyUnhealthy(n) {
  const why = n.refused_us || (!n.healthy ? "no heartbeat for " + duration(Date.now() - n.last_ping) : null);
  return why ? el("div", { class: "why" }, why) : null;
}

pages.frames = {
  title: "Frames",
  async refresh(main) {
    const { frames } = await api("/3/Frames");
    const rerender = () => this.refresh(main);
    const columns = [
      { label: "Frame", value: f => f.frame_id, cell: f => el("a", { href: "#/frame/" + encodeURIComponent(f.frame_id) }, f.frame_id) },
      { label: "Rows", value: f => f.rows, cell: f => count(f.rows), num: true },
      { label: "Columns", value: f => f.columns, num: true },
      { label: "In memory", value: f => f.bytes_in_memory, cell: f => bytes(f.bytes_in_memory), num: true },
      { label: "Source", value: f => f.source_bytes, cell: f => (f.source_bytes ? bytes(f.source_bytes) : "—"), num: true },
      { label: "Nodes", value: f => f.nodes.length, cell: f => el("span", { title: f.nodes.join("\n") }, f.nodes.length + " (" + f.nodes.join(", ") + ")"), wrap: true },
      {
        label: "",
        value: () => "",
        cell: f => el("span", { class: "actions" },
          el("button", { type: "button", onclick: () => exportFrame(f.frame_id) }, "Export"),
          el("button", { type: "button", class: "danger", onclick: () => deleteFrame(f.frame_id, rerender) }, "Delete")),
      },
    ];
    main.replaceChildren(el("h1", {}, "Frames"), table("frames", columns, frames, { rowKey: f => f.frame_id, onSort: rerender, empty: "no frames: import one from the Import page" }));
  },
};

async function deleteFrame(id, after) {
  if (!confirm("Delete frame " + id + " on every node?")) return;
  try {
    await api("/3/Frames/" + encodeURIComponent(id), { method: "DELETE" });
    showBanner("Deleted " + id + ".");
  } catch (e) {
    showBanner("Could not delete " + id + ": " + e.message, true);
  }
  if (after) after();
}

async function exportFrame(id) {
  const path = prompt("Export " + id + " to which URL or path? (a directory: one file per chunk; .parquet for Parquet)", "/tmp/" + id.replace(/\.hex$/, "") + ".csv");
  if (!path) return;
  const format = /\.parquet$/i.test(path) ? "parquet" : "csv";
  try {
    const r = await api("/3/Frames/" + encodeURIComponent(id) + "/export", { json: { path, format, single_file: /\.(csv|parquet)$/i.test(path) } });
    showBanner("Exported " + id + " to " + ((r && r.export && r.export.files) || [path]).join(", "));
  } catch (e) {
    showBanner("Could not export " + id + ": " + e.message, true);
  }
}

pages.frame = {
  title: "Frame",
  live: false,
  async refresh(main, id) {
    const [rowsReply, summary] = await Promise.all([
      api("/3/Frames/" + encodeURIComponent(id) + "?row_count=20"),
      api("/3/Frames/" + encodeURIComponent(id) + "/summary"),
    ]);
    const f = rowsReply.frame;
    // A chunk's node is an address object: compare them as text.
    const nodes = [...new Set(f.chunks.map(c => JSON.stringify(c.node)))];
    const cards = el("div", { class: "cards" },
      card("Rows", count(f.rows)),
      card("Columns", count(f.columns.length)),
      card("In memory", bytes(f.bytes_in_memory)),
      card("Chunks", count(f.chunks.length) + " on " + nodes.length + (nodes.length === 1 ? " node" : " nodes")),
      card("Bad values", count(f.parse_report.bad_rows + f.parse_report.bad_cells)));
    const cols = summary.columns.map((c, i) => Object.assign({ _idx: i }, c));
    const rerender = () => this.refresh(main, id);
    const summaryTable = table("summary", [
      { label: "#", value: c => c._idx, num: true },
      { label: "Column", value: c => c.label },
      { label: "Type", value: c => c.type },
      { label: "Missing", value: c => c.missing, cell: c => count(c.missing), num: true },
      { label: "Min", value: c => c.min ?? -Infinity, cell: c => valueOf(c, c.min), num: true },
      { label: "Max", value: c => c.max ?? -Infinity, cell: c => valueOf(c, c.max), num: true },
      { label: "Mean", value: c => c.mean ?? -Infinity, cell: c => (c.type === "time" ? valueOf(c, c.mean) : real(c.mean)), num: true },
      { label: "SD", value: c => c.sd ?? -Infinity, cell: c => (c.type === "time" ? (c.sd == null ? "" : duration(c.sd)) : real(c.sd)), num: true },
      { label: "Zeros", value: c => c.zeros, cell: c => count(c.zeros), num: true },
      { label: "Levels", value: c => c.cardinality ?? -1, cell: c => (c.cardinality == null ? "" : count(c.cardinality)), num: true },
    ], cols, { onSort: rerender });
    const charts = el("div", { class: "charts", id: "charts" });
    const preview = table("rows", f.columns.map((c, i) => ({ label: c.name, value: r => r[i] ?? "", cell: r => (r[i] === null ? el("span", { class: "muted" }, "NA") : r[i]) })), rowsReply.rows, { empty: "no rows" });
    main.replaceChildren(
      el("h1", {}, "Frame ", f.frame_id),
      el("div", { class: "muted" }, "from ", f.sources.join(", ") || "Arrow Flight"),
      cards,
      el("h2", {}, "Columns"),
      summaryTable,
      el("h2", {}, "Distributions"),
      charts,
      el("h2", {}, "First rows"),
      preview);
    for (const c of cols) {
      const box = el("div", { class: "chart", "data-column": c.label });
      const stats = c.histogram ? "min " + valueOf(c, c.min) + " · max " + valueOf(c, c.max) : c.top_levels.length ? count(c.cardinality) + " levels, top " + c.top_levels.length + " shown" : "no chart for " + c.type + " columns";
      box.append(el("h3", {}, c.label, " ", el("span", { class: "muted" }, c.type)), el("div", { class: "stats" }, stats));
      const plot = el("div", {});
      box.append(plot);
      charts.append(box);
      if (c.histogram) histogramChart(plot, c);
      else if (c.top_levels.length) levelsChart(plot, c);
    }
  },
};

function valueOf(column, v) {
  if (v === undefined || v === null) return "";
  return column.type === "time" ? new Date(v).toLocaleString() : real(v);
}

pages.jobs = {
  title: "Jobs",
  async refresh(main) {
    const { jobs } = await api("/3/Jobs");
    const rerender = () => this.refresh(main);
    const all = jobs.map((j, i) => Object.assign({ _idx: i }, j));
    const columns = [
      { label: "Job", value: j => j._idx, cell: j => j.key, num: false },
      { label: "What", value: j => j.description, wrap: true },
      {
        label: "Status",
        value: j => j.status,
        cell: j => badge(j.status.toLowerCase(), j.status === "DONE" ? "ok" : j.status === "FAILED" ? "bad" : "run"),
      },
      {
        label: "Progress",
        value: j => j.progress,
        cell: j => bar(j.progress, (j.progress * 100).toFixed(0) + " %" + (j.bytes_total ? " of " + bytes(j.bytes_total) : "")),
      },
      { label: "Rows", value: j => j.rows, cell: j => count(j.rows), num: true },
      { label: "Rate", value: j => (j.msec ? j.bytes_read / j.msec : 0), cell: j => (j.msec && j.bytes_read ? bytes((j.bytes_read * 1000) / j.msec) + "/s" : ""), num: true },
      { label: "Elapsed", value: j => j.msec, cell: j => duration(j.msec), num: true },
      {
        label: "Result",
        value: j => j.dest || j.error || "",
        wrap: true,
        cell: j => el("span", {},
          j.dest && j.status === "DONE" ? el("a", { href: "#/frame/" + encodeURIComponent(j.dest) }, j.dest) : j.dest || "",
          j.error ? el("div", { class: "why" }, j.error) : null,
          badValues(j.parse_report)),
      },
    ];
    main.replaceChildren(el("h1", {}, "Jobs"), el("div", { class: "muted" }, "Jobs started through this node, newest last."),
      table("jobs", columns, all, { rowKey: j => j.key, rowClass: j => (j.status === "FAILED" ? "bad" : null), onSort: rerender, empty: "no jobs yet" }));
  },
};

function badValues(report) {
  if (!report || (!report.bad_rows && !report.bad_cells)) return null;
  const summary = count(report.bad_rows) + " bad rows, " + count(report.bad_cells) + " bad cells (stored as missing)";
  return el("details", {}, el("summary", {}, summary),
    el("ul", {}, report.examples.map(x => el("li", {}, x.url + " at byte " + x.offset + (x.column ? ", column " + x.column : "") + ": " + x.reason))));
}

pages.logs = {
  title: "Logs",
  async refresh(main) {
    const { nodes } = await api("/3/Logs?lines=200");
    const select = main.querySelector("#log-node");
    const chosen = select ? select.value : "";
    const picker = el("select", { id: "log-node", onchange: () => this.refresh(main) },
      el("option", { value: "" }, "every node"),
      nodes.map(n => el("option", { value: n.node, selected: n.node === chosen }, n.node + " (" + n.role + ")")));
    const shown = nodes.filter(n => !chosen || n.node === chosen);
    const sections = shown.map(n => {
      const old = main.querySelector('pre[data-node="' + CSS.escape(n.node) + '"]');
      const atBottom = !old || old.scrollTop + old.clientHeight >= old.scrollHeight - 4;
      const pre = el("pre", { class: "log", "data-node": n.node }, n.lines.join("\n") || "(no lines yet)");
      if (atBottom) requestAnimationFrame(() => { pre.scrollTop = pre.scrollHeight; });
      else { const top = old.scrollTop; requestAnimationFrame(() => { pre.scrollTop = top; }); }
      return el("section", {}, el("h2", {}, n.node, " ", el("span", { class: "muted" }, n.role)), n.error ? el("div", { class: "why" }, "could not read: " + n.error) : null, pre);
    });
    main.replaceChildren(el("h1", {}, "Logs"), el("div", { class: "row" }, el("label", { for: "log-node" }, "Node"), picker), ...sections);
  },
};

const COLUMN_TYPES = ["int", "real", "bool", "time", "enum", "string"];

pages["import"] = {
  title: "Import",
  live: false,
  async refresh(main) {
    const path = el("input", { type: "text", id: "import-path", placeholder: "file:///data/x.csv, s3://bucket/dir/, hdfs://nn:8020/path/*.csv", autocomplete: "off" });
    const dest = el("input", { type: "text", id: "import-dest", placeholder: "from the file name" });
    const setupBox = el("div", { id: "setup" });
    const guess = el("button", { type: "button", id: "guess-setup", class: "primary", onclick: () => showSetup(path.value.trim(), dest, setupBox) }, "Show parse setup");
    path.addEventListener("keydown", e => { if (e.key === "Enter") guess.click(); });
    main.replaceChildren(
      el("h1", {}, "Import"),
      el("div", { class: "muted" }, "A file, directory or glob the workers can read: a local path, file://, s3://, hdfs:// or http(s)://. CSV, Parquet and Arrow."),
      el("div", { class: "row" }, el("label", { for: "import-path" }, "URL or path"), path),
      el("div", { class: "row" }, el("label", { for: "import-dest" }, "Frame id"), dest),
      el("div", { class: "row" }, el("label", {}, ""), guess),
      setupBox);
  },
};

async function showSetup(path, dest, box) {
  if (!path) { showBanner("Give a URL or path to import.", true); return; }
  box.replaceChildren(el("div", { class: "muted" }, "Reading the first lines…"));
  let reply;
  try {
    reply = await api("/3/ParseSetup", { json: { path } });
  } catch (e) {
    box.replaceChildren(el("div", { class: "why" }, "Cannot read " + path + ": " + e.message));
    return;
  }
  const s = reply.setup;
  const files = table("setup-files", [
    { label: "File", value: f => f.url, wrap: true },
    { label: "Size", value: f => f.size, cell: f => bytes(f.size), num: true },
  ], reply.files);
  const sep = el("input", { type: "text", id: "setup-separator", value: s.separator === "\t" ? "\\t" : s.separator, style: "width:60px" });
  const header = el("input", { type: "checkbox", id: "setup-header", checked: s.header });
  const typeSelects = s.column_names.map((name, i) =>
    el("select", { "data-column": name }, COLUMN_TYPES.map(t => el("option", { value: t, selected: t === s.column_types[i] }, t))));
  const columns = el("div", { class: "scroll" }, el("table", { id: "setup-columns" },
    el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "Column"), el("th", {}, "Type"))),
    el("tbody", {}, s.column_names.map((name, i) => el("tr", {}, el("td", { class: "num" }, i), el("td", {}, name), el("td", {}, typeSelects[i]))))));
  const start = el("button", {
    type: "button", id: "start-import", class: "primary",
    onclick: async () => {
      const separator = sep.value === "\\t" ? "\t" : sep.value;
      const request = {
        path,
        parse_setup: { separator: separator || undefined, header: header.checked, column_types: typeSelects.map(x => x.value) },
      };
      if (dest.value.trim()) request.destination_frame = dest.value.trim();
      try {
        const r = await api("/3/ImportFiles", { json: request });
        showBanner("Import started: " + r.job.key + ".");
        location.hash = "#/jobs";
      } catch (e) {
        showBanner("Import refused: " + e.message, true);
      }
    },
  }, "Import");
  box.replaceChildren(
    el("h2", {}, "Files"), files,
    el("h2", {}, "Parse setup"),
    el("div", { class: "row" }, el("label", { for: "setup-separator" }, "Separator"), sep),
    el("div", { class: "row" }, el("label", { for: "setup-header" }, "First line is a header"), header),
    columns,
    el("div", { class: "row" }, start));
}

// ---------- the frame around the pages ----------

let generation = 0;
let timer = null;
// The banner shows a failed refresh until one succeeds again.
let refreshFailed = false;

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("/");
  const page = pages[name] ? name : "cloud";
  return { page, arg: rest.length ? decodeURIComponent(rest.join("/")) : undefined };
}

async function show() {
  const { page, arg } = route();
  const mine = ++generation;
  clearTimeout(timer);
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.page === page || (page === "frame" && a.dataset.page === "frames")));
  document.title = "Eddy · " + pages[page].title + (arg ? " " + arg : "");
  const main = document.getElementById("main");
  main.replaceChildren(el("div", { class: "muted" }, "Loading…"));
  const tick = async () => {
    if (mine !== generation) return;
    try {
      await pages[page].refresh(main, arg);
      if (refreshFailed) { refreshFailed = false; showBanner(""); }
    } catch (e) {
      if (mine !== generation) return;
      refreshFailed = true;
      showBanner(pages[page].title + ": " + e.message, true);
    }
    if (pages[page].live !== false && mine === generation) timer = setTimeout(tick, REFRESH_MS);
  };
  await tick();
}

async function refreshBadge() {
  const b = document.getElementById("cloud-badge");
  try {
    const c = await api("/3/Cloud");
    b.textContent = c.cloud_name + " · " + c.cloud_size + " · " + (c.cloud_healthy ? "healthy" : "unhealthy");
    b.className = "badge " + (c.cloud_healthy ? "ok" : "bad");
  } catch (e) {
    b.textContent = "unreachable";
    b.className = "badge bad";
  }
}

document.getElementById("stop-cloud").addEventListener("click", async () => {
  if (!confirm("Stop every node of this cloud? Its frames are lost.")) return;
  try {
    await api("/3/Shutdown", { method: "POST" });
    showBanner("The cloud is stopping. This page stops updating once its node is gone.");
  } catch (e) {
    showBanner("Could not stop the cloud: " + e.message, true);
  }
});

window.addEventListener("hashchange", show);
show();
refreshBadge();
setInterval(refreshBadge, 2000);
