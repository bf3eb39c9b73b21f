// The search page: filters → /v1/logs (cursor pages, infinite scroll) and /v1/stats/histogram.
// The URL holds the whole search (filters, range, order, exclusions, the open context), so
// back/forward and a pasted link give the same view.
"use strict";

const COLORS = { DEBUG: "#7f8c99", INFO: "#4aa3ff", WARNING: "#f0b429", ERROR: "#ef5350", CRITICAL: "#d81b60" };
const FORM_FIELDS = ["service", "level", "since", "until", "q", "host", "env", "trace_id", "order"];
const META_KEY = /^[A-Za-z0-9_-]{1,64}$/;
const CONTEXT_SIZE = 10;
const DAY_MS = 86400000;
const state = {
  config: null, params: [], cursor: null, loading: false, generation: 0,
  total: 0, hidden: 0, not: [], histogram: null, context: null, empty: false,
};

// -- the URL ↔ the form ------------------------------------------------------------------------

// The form plus exclusions as URL parameters: meta "k=v, k2=v2" → meta.k=v&meta.k2=v2,
// an exclusion → not.<field>=value (not.meta.k=v).
function urlParams() {
  const form = document.getElementById("filters");
  const params = new URLSearchParams();
  for (const name of FORM_FIELDS) {
    const value = String(form.elements[name].value || "").trim();
    if (value && !(name === "order" && value === "desc")) params.append(name, value);
  }
  for (const [key, value] of metaPairs(form.elements.meta.value)) params.append(`meta.${key}`, value);
  for (const [name, value] of state.not) params.append(`not.${name}`, value);
  if (state.context) params.append("context", state.context);
  return params;
}

function metaPairs(text) {
  const pairs = [];
  for (const pair of String(text || "").split(",")) {
    const [key, ...rest] = pair.split("=");
    if (key.trim() && rest.length) pairs.push([key.trim(), rest.join("=").trim()]);
  }
  return pairs;
}

function fillFormFromUrl() {
  const form = document.getElementById("filters");
  const params = new URLSearchParams(window.location.search);
  for (const name of FORM_FIELDS) form.elements[name].value = params.get(name) ?? (name === "since" ? "1h" : name === "order" ? "desc" : "");
  // A level not in the list (e.g. "warn") still filters: add it as an option.
  const level = params.get("level");
  if (level && form.elements.level.value !== level) {
    form.elements.level.append(el("option", { value: level, text: level }));
    form.elements.level.value = level;
  }
  const meta = [];
  state.not = [];
  for (const [name, value] of params) {
    if (name.startsWith("meta.")) meta.push(`${name.slice(5)}=${value}`);
    else if (name.startsWith("not.")) state.not.push([name.slice(4), value]);
  }
  form.elements.meta.value = meta.join(", ");
  state.context = params.get("context");
}

// -- what the API gets -------------------------------------------------------------------------

// The API has no negative filters (filters.py builds equality/$in only), so exclusions become:
// level → the remaining levels; service → every other service seen in the window
// (/v1/stats/services); host, env, metadata → dropped from the rows here, and the chart says so.
async function apiParams(url) {
  const params = [];
  for (const [name, value] of url) {
    if (!name.startsWith("not.") && name !== "context") params.push([name, value]);
  }
  const excluded = (field) => state.not.filter(([name]) => name === field).map(([, value]) => value);
  const notLevels = excluded("level");
  if (notLevels.length) {
    const chosen = url.get("level");
    const levels = chosen ? levelsOf(chosen) : LEVEL_NAMES;
    const keep = levels.filter((level) => !notLevels.includes(level));
    replaceParam(params, "level", keep);
  }
  const notServices = excluded("service");
  if (notServices.length) {
    const chosen = (url.get("service") || "").split(",").map((s) => s.trim()).filter(Boolean);
    let names = chosen;
    if (!names.length) {
      const window = params.filter(([name]) => ["since", "until", "host", "env"].includes(name));
      const summary = await api("/v1/stats/services", window);
      names = summary.services.map((s) => s.service);
    }
    replaceParam(params, "service", [names.filter((name) => !notServices.includes(name)).join(",")].filter(Boolean));
  }
  const emptyLevel = notLevels.length && !params.some(([name]) => name === "level");
  const emptyService = notServices.length && !params.some(([name]) => name === "service");
  return { params, nothing: Boolean(emptyLevel || emptyService) };
}

function levelsOf(text) {
  if (text.startsWith(">=")) {
    const at = LEVEL_NAMES.indexOf(text.slice(2).toUpperCase());
    return at < 0 ? LEVEL_NAMES : LEVEL_NAMES.slice(at);
  }
  return [text.toUpperCase()];
}

function replaceParam(params, name, values) {
  for (let i = params.length - 1; i >= 0; i -= 1) if (params[i][0] === name) params.splice(i, 1);
  for (const value of values) params.push([name, value]);
}

// Exclusions the API cannot apply, checked on each row.
function excludedHere(event) {
  return state.not.some(([name, value]) => {
    if (name === "host" || name === "env") return String(event[name] ?? "") === value;
    if (name.startsWith("meta.")) {
      const v = (event.metadata || {})[name.slice(5)];
      return v !== undefined && v !== null && String(v) === value;
    }
    return false;
  });
}

function clientSideExclusions() {
  return state.not.filter(([name]) => !["level", "service"].includes(name));
}

// -- searching ---------------------------------------------------------------------------------

async function search(push = true) {
  const url = urlParams();
  const query = url.toString();
  if (push && query !== window.location.search.replace(/^\?/, "")) {
    history.pushState(null, "", query ? `?${query}` : window.location.pathname);
  }
  state.generation += 1;
  const generation = state.generation;
  state.cursor = null;
  state.total = 0;
  state.hidden = 0;
  document.querySelector("#results tbody").replaceChildren();
  renderExclusions();
  setStatus("searching…");
  let resolved;
  try {
    resolved = await apiParams(url);
  } catch (err) {
    setStatus(String(err.message || err), true);
    return;
  }
  if (generation !== state.generation) return;
  state.params = resolved.params;
  state.empty = resolved.nothing;
  const tasks = [loadPage(generation, true), drawHistogram(generation)];
  if (state.context) tasks.push(openContext(state.context, false));
  else closeContext(false);
  await Promise.all(tasks);
}

async function loadPage(generation, first = false) {
  if (state.loading || (!first && !state.cursor)) return;
  if (state.empty) {
    setStatus("0 events (end): the exclusions leave nothing");
    return;
  }
  state.loading = true;
  try {
    const params = [...state.params];
    if (state.cursor) params.push(["cursor", state.cursor]);
    const page = await api("/v1/logs", params);
    if (generation !== state.generation) return; // a newer search replaced this one
    const body = document.querySelector("#results tbody");
    for (const event of page.events) {
      if (excludedHere(event)) state.hidden += 1;
      else body.append(...renderEvent(event));
    }
    state.total += page.count;
    state.cursor = page.next_cursor;
    const hidden = state.hidden ? `, ${state.hidden} hidden by exclusions` : "";
    setStatus(`${state.total - state.hidden} events${hidden}${state.cursor ? " — scroll for more" : " (end)"}`);
  } catch (err) {
    if (generation === state.generation) setStatus(String(err.message || err), true);
  } finally {
    state.loading = false;
  }
  // If the page did not fill the screen, the sentinel is still visible: keep going.
  if (state.cursor && generation === state.generation && sentinelVisible()) loadPage(generation);
}

function sentinelVisible() {
  const rect = document.getElementById("sentinel").getBoundingClientRect();
  return rect.top < window.innerHeight + 200;
}

// -- rows, fields and click-to-filter ----------------------------------------------------------

function renderEvent(event) {
  const message = el("td", { class: "message", text: event.message });
  if (event.trace_id) message.append(traceLink(event.trace_id));
  const row = el("tr", { class: "event", "data-id": event.id },
    el("td", { class: "time" }, timeEl(event.timestamp)),
    el("td", {}, levelBadge(event.level)),
    el("td", { text: event.service }),
    message);
  const cell = el("td", { colspan: "4" }, fieldsTable(event));
  const actions = el("div", { class: "actions" });
  const context = el("button", { type: "button", class: "context", text: "Show context" });
  context.addEventListener("click", () => openContext(event.id, true, event));
  actions.append(context);
  if (event.trace_id) {
    actions.append(el("a", { href: traceHref(event.trace_id), class: "trace-page", text: "Trace view" }));
    const jaeger = `${state.config.jaeger_ui_url}/trace/${encodeURIComponent(event.trace_id)}`;
    actions.append(el("a", { href: jaeger, target: "_blank", rel: "noopener", class: "trace-link", text: "Open trace in Jaeger" }));
  }
  cell.append(actions);
  const extra = {};
  for (const name of ["id", "span_id", "received_at"]) if (event[name] !== undefined) extra[name] = event[name];
  cell.append(el("pre", { text: JSON.stringify(extra, null, 2) }));
  const details = el("tr", { class: "details hidden" }, cell);
  row.addEventListener("click", () => details.classList.toggle("hidden"));
  return [row, details];
}

function traceLink(traceId) {
  const link = el("a", { href: traceHref(traceId), class: "trace", text: "trace" });
  link.addEventListener("click", (e) => e.stopPropagation());
  return link;
}

// service, level, host, env, trace id and each scalar metadata value, with filter/exclude buttons.
function fieldsTable(event) {
  const fields = [];
  for (const name of ["service", "level", "host", "env", "trace_id"]) {
    if (event[name] !== undefined && event[name] !== null) fields.push([name, event[name]]);
  }
  for (const [key, value] of Object.entries(event.metadata || {})) fields.push([`meta.${key}`, value]);
  const table = el("table", { class: "fields" });
  for (const [name, value] of fields) {
    const scalar = ["string", "number", "boolean"].includes(typeof value);
    const text = scalar ? String(value) : JSON.stringify(value);
    const buttons = el("td", {});
    const filterable = scalar && (!name.startsWith("meta.") || META_KEY.test(name.slice(5))) && text.length <= 256;
    if (filterable) {
      const plus = el("button", { type: "button", class: "act filter", title: `only ${name} = ${text}`, "data-field": name, text: "+" });
      plus.addEventListener("click", () => addFilter(name, text));
      buttons.append(plus);
      if (name !== "trace_id") {
        const minus = el("button", { type: "button", class: "act exclude", title: `not ${name} = ${text}`, "data-field": name, text: "−" });
        minus.addEventListener("click", () => addExclusion(name, text));
        buttons.append(minus);
      }
    }
    table.append(el("tr", {}, el("th", { text: name }), el("td", { text }), buttons));
  }
  return table;
}

function addFilter(name, value) {
  const form = document.getElementById("filters");
  state.not = state.not.filter(([n, v]) => !(n === name && v === value));
  if (name.startsWith("meta.")) {
    const key = name.slice(5);
    const pairs = metaPairs(form.elements.meta.value).filter(([k]) => k !== key);
    pairs.push([key, value]);
    form.elements.meta.value = pairs.map(([k, v]) => `${k}=${v}`).join(", ");
  } else if (name === "level") {
    if (![...form.elements.level.options].some((o) => o.value === value)) {
      form.elements.level.append(el("option", { value, text: value }));
    }
    form.elements.level.value = value;
  } else {
    form.elements[name].value = value;
  }
  state.context = null;
  search();
}

function addExclusion(name, value) {
  const form = document.getElementById("filters");
  if (!state.not.some(([n, v]) => n === name && v === value)) state.not.push([name, value]);
  // Excluding what is the only filter on that field drops the filter.
  if (name.startsWith("meta.")) {
    const key = name.slice(5);
    form.elements.meta.value = metaPairs(form.elements.meta.value)
      .filter(([k, v]) => !(k === key && v === value)).map(([k, v]) => `${k}=${v}`).join(", ");
  } else if (form.elements[name] && form.elements[name].value === value) {
    form.elements[name].value = "";
  }
  state.context = null;
  search();
}

function renderExclusions() {
  const box = document.getElementById("exclusions");
  box.replaceChildren(...state.not.map(([name, value], i) => {
    const remove = el("button", { type: "button", title: "remove this exclusion", text: "×" });
    remove.addEventListener("click", () => { state.not.splice(i, 1); search(); });
    return el("span", { class: "chip", "data-field": name }, `not ${name} = ${value}`, remove);
  }));
}

// -- context: the events before and after one event, same service and host --------------------

async function openContext(id, push = true, known = null) {
  const panel = document.getElementById("context");
  const rows = document.getElementById("context-rows");
  state.context = id;
  if (push) history.pushState(null, "", `?${urlParams()}`);
  panel.classList.remove("hidden");
  rows.replaceChildren(el("tr", {}, el("td", { text: "loading…" })));
  try {
    const event = known || (await api(`/v1/logs/${encodeURIComponent(id)}`, []));
    const at = Date.parse(event.timestamp);
    const same = [["service", event.service]];
    if (event.host) same.push(["host", event.host]);
    const iso = (ms) => new Date(ms).toISOString();
    const [before, after] = await Promise.all([
      api("/v1/logs", [...same, ["since", iso(at - DAY_MS)], ["until", event.timestamp], ["order", "desc"], ["limit", String(CONTEXT_SIZE)]]),
      api("/v1/logs", [...same, ["since", event.timestamp], ["until", iso(at + DAY_MS)], ["order", "asc"], ["limit", String(CONTEXT_SIZE + 1)]]),
    ]);
    if (state.context !== id) return;
    const events = [...before.events.reverse(), ...after.events];
    document.getElementById("context-title").textContent =
      `Context: ${CONTEXT_SIZE} events before and after, service ${event.service}${event.host ? `, host ${event.host}` : ""}`;
    rows.replaceChildren(...events.map((e) => el("tr", { class: e.id === id ? "anchor" : "", "data-id": e.id },
      el("td", { class: "time" }, timeEl(e.timestamp)), el("td", {}, levelBadge(e.level)),
      el("td", { text: e.service }), el("td", { class: "message", text: e.message }))));
    panel.scrollIntoView({ block: "nearest" });
  } catch (err) {
    rows.replaceChildren(el("tr", {}, el("td", { class: "error", text: String(err.message || err) })));
  }
}

function closeContext(push = true) {
  document.getElementById("context").classList.add("hidden");
  if (state.context && push) {
    state.context = null;
    history.pushState(null, "", `?${urlParams()}`);
  }
  state.context = null;
}

// -- the histogram: every filter, axes, counts, tooltip, local or UTC time ---------------------

async function drawHistogram(generation) {
  const svg = document.getElementById("histogram");
  const note = document.getElementById("hist-note");
  const notes = [];
  if (clientSideExclusions().length) notes.push("The chart counts events before the host, env and metadata exclusions (the API has no negative filters).");
  let params = state.params.filter(([name]) => name !== "order");
  params.push(["group_by", "level"]);
  let data;
  try {
    if (state.empty) data = null;
    else data = await histogram(params, notes);
  } catch (err) {
    if (generation === state.generation) {
      svg.replaceChildren();
      note.textContent = `chart: ${err.message || err}`;
    }
    return;
  }
  if (generation !== state.generation) return;
  note.textContent = notes.join(" ");
  state.histogram = data;
  renderHistogram();
}

// Every filter goes to the stats endpoint; a server that does not take some of them yet
// (unknown_parameter) gets the rest, and the chart says what it ignores.
async function histogram(params, notes) {
  try {
    return await api("/v1/stats/histogram", params);
  } catch (err) {
    if (!(err instanceof ApiError) || !err.body || err.body.error !== "unknown_parameter") throw err;
    const unsupported = ["q", "trace_id"];
    notes.push("This server's histogram ignores the text and trace id filters.");
    return api("/v1/stats/histogram", params.filter(([name]) => !unsupported.includes(name)));
  }
}

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function renderHistogram() {
  const svg = document.getElementById("histogram");
  const data = state.histogram;
  if (!data) {
    svg.replaceChildren();
    svg.dataset.total = "0";
    return;
  }
  const width = svg.clientWidth || 800;
  const height = svg.clientHeight || 150;
  const left = 44, right = 8, top = 14, bottom = 20;
  const plotW = width - left - right, plotH = height - top - bottom;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const max = Math.max(1, ...data.buckets.map((b) => b.total));
  const n = Math.max(1, data.buckets.length);
  const barWidth = plotW / n;
  const nodes = [];
  // y axis: 0, half and max, with grid lines.
  const yAxis = svgEl("g", { class: "axis y-axis" });
  for (const value of [...new Set([0, Math.round(max / 2), max])]) {
    const y = top + plotH - (value / max) * plotH;
    yAxis.append(svgEl("line", { class: "grid", x1: left, x2: width - right, y1: y, y2: y }));
    yAxis.append(svgEl("text", { x: left - 4, y: y + 3, "text-anchor": "end" }, String(value)));
  }
  nodes.push(yAxis);
  const bars = svgEl("g", { class: "bars" });
  data.buckets.forEach((bucket, i) => {
    const x = left + i * barWidth;
    let y = top + plotH;
    for (const level of data.groups) {
      const count = bucket.counts[level] || 0;
      if (!count) continue;
      const h = (count / max) * plotH;
      y -= h;
      const rect = svgEl("rect", {
        class: "bar", x: x + 0.5, y, width: Math.max(1, barWidth - 1), height: h, fill: COLORS[level] || "#4aa3ff",
        "data-bucket": i, "data-level": level, "data-count": count,
      });
      rect.append(svgEl("title", {}, `${fmtTime(bucket.start)}: ${bucket.total} events (${level} ${count})`));
      bars.append(rect);
    }
    // The count on top of each bar, where there is room for it.
    if (bucket.total && barWidth >= 14) {
      bars.append(svgEl("text", { class: "count", x: x + barWidth / 2, y: y - 2, "text-anchor": "middle", "data-bucket": i }, String(bucket.total)));
    }
  });
  nodes.push(bars);
  // x axis: about six ticks, in the chosen time zone.
  const xAxis = svgEl("g", { class: "axis x-axis" });
  xAxis.append(svgEl("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH }));
  const every = Math.max(1, Math.ceil(n / 6));
  for (let i = 0; i < n; i += every) {
    const x = left + i * barWidth;
    xAxis.append(svgEl("line", { x1: x, x2: x, y1: top + plotH, y2: top + plotH + 4 }));
    xAxis.append(svgEl("text", { x, y: height - 4, "text-anchor": i === 0 ? "start" : "middle" }, fmtTime(data.buckets[i].start, true)));
  }
  nodes.push(xAxis);
  const hover = svgEl("rect", { class: "hover hidden", x: 0, y: top, width: Math.max(1, barWidth), height: plotH });
  nodes.unshift(hover);
  svg.replaceChildren(...nodes);
  svg.dataset.total = String(data.total);
  svg.dataset.buckets = String(n);
  svg.onmousemove = (e) => showTip(e, { left, barWidth, hover });
  svg.onmouseleave = () => { document.getElementById("hist-tip").classList.add("hidden"); hover.classList.add("hidden"); };
  svg.onclick = (e) => {
    const i = bucketAt(e, left, barWidth);
    if (i !== null) zoomTo(data.buckets[i].start, data.bucket_seconds);
  };
}

function bucketAt(event, left, barWidth) {
  const svg = document.getElementById("histogram");
  const rect = svg.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * (svg.clientWidth || rect.width);
  const i = Math.floor((x - left) / barWidth);
  return state.histogram && i >= 0 && i < state.histogram.buckets.length ? i : null;
}

function showTip(event, { left, barWidth, hover }) {
  const tip = document.getElementById("hist-tip");
  const i = bucketAt(event, left, barWidth);
  if (i === null) {
    tip.classList.add("hidden");
    return;
  }
  const data = state.histogram;
  const bucket = data.buckets[i];
  const end = new Date(Date.parse(bucket.start) + data.bucket_seconds * 1000).toISOString();
  const lines = [`${fmtTime(bucket.start)}`, `→ ${fmtTime(end)}`, `${bucket.total} events`];
  for (const level of data.groups) if (bucket.counts[level]) lines.push(`${level}: ${bucket.counts[level]}`);
  tip.textContent = lines.join("\n");
  tip.dataset.bucket = String(i);
  tip.classList.remove("hidden");
  const box = tip.parentElement.getBoundingClientRect();
  const x = event.clientX - box.left;
  tip.style.left = `${Math.min(x + 12, box.width - tip.offsetWidth - 4)}px`;
  tip.style.top = `${event.clientY - box.top + 12}px`;
  hover.setAttribute("x", String(left + i * barWidth));
  hover.classList.remove("hidden");
}

function zoomTo(start, seconds) {
  const form = document.getElementById("filters");
  const end = new Date(Date.parse(start) + seconds * 1000).toISOString();
  form.elements.since.value = start;
  form.elements.until.value = end;
  search();
}

async function main() {
  try {
    state.config = await loadConfig();
  } catch (err) {
    setStatus(String(err), true);
    return;
  }
  setupKeyBox(state.config);
  setupTimeZoneSwitch();
  window.addEventListener("logriver:timezone", renderHistogram);
  fillFormFromUrl();
  const form = document.getElementById("filters");
  form.addEventListener("submit", (e) => { e.preventDefault(); state.context = null; search(); });
  document.getElementById("context-close").addEventListener("click", () => closeContext());
  window.addEventListener("popstate", () => { fillFormFromUrl(); search(false); });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage(state.generation);
  }, { rootMargin: "200px" }).observe(document.getElementById("sentinel"));
  search(false);
}

main();
