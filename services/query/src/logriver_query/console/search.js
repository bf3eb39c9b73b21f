// The search page: filters → /v1/logs (cursor pages, infinite scroll) and /v1/stats/histogram.
"use strict";

const COLORS = { DEBUG: "#7f8c99", INFO: "#4aa3ff", WARNING: "#f0b429", ERROR: "#ef5350", CRITICAL: "#d81b60" };
const state = { config: null, params: [], cursor: null, loading: false, generation: 0, total: 0 };

// Form fields → query parameters (metadata "k=v, k2=v2" → meta.k=v&meta.k2=v2).
function formParams() {
  const form = new FormData(document.getElementById("filters"));
  const params = [];
  for (const [name, raw] of form.entries()) {
    const value = String(raw).trim();
    if (!value) continue;
    if (name === "meta") {
      for (const pair of value.split(",")) {
        const [key, ...rest] = pair.split("=");
        if (key.trim() && rest.length) params.push([`meta.${key.trim()}`, rest.join("=").trim()]);
      }
    } else {
      params.push([name, value]);
    }
  }
  return params;
}

async function search() {
  state.generation += 1;
  state.params = formParams();
  state.cursor = null;
  state.total = 0;
  document.querySelector("#results tbody").replaceChildren();
  setStatus("searching…");
  const generation = state.generation;
  await Promise.all([loadPage(generation, true), drawHistogram(generation)]);
}

async function loadPage(generation, first = false) {
  if (state.loading || (!first && !state.cursor)) return;
  state.loading = true;
  try {
    const params = [...state.params];
    if (state.cursor) params.push(["cursor", state.cursor]);
    const page = await api("/v1/logs", params);
    if (generation !== state.generation) return; // a newer search replaced this one
    const body = document.querySelector("#results tbody");
    for (const event of page.events) body.append(...renderEvent(event));
    state.total += page.count;
    state.cursor = page.next_cursor;
    setStatus(`${state.total} events${state.cursor ? " — scroll for more" : " (end)"}`);
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

function renderEvent(event) {
  const row = el("tr", { class: "event", "data-id": event.id },
    el("td", { class: "time", text: event.timestamp }),
    el("td", {}, levelBadge(event.level)),
    el("td", { text: event.service }),
    el("td", { class: "message", text: event.message }));
  const extra = {};
  for (const name of ["id", "host", "env", "trace_id", "span_id", "received_at", "metadata"]) {
    if (event[name] !== undefined) extra[name] = event[name];
  }
  const cell = el("td", { colspan: "4" }, el("pre", { text: JSON.stringify(extra, null, 2) }));
  if (event.trace_id) {
    const href = `${state.config.jaeger_ui_url}/trace/${encodeURIComponent(event.trace_id)}`;
    cell.append(el("a", { href, target: "_blank", rel: "noopener", class: "trace-link", text: "Open trace in Jaeger" }));
  }
  const details = el("tr", { class: "details hidden" }, cell);
  row.addEventListener("click", () => details.classList.toggle("hidden"));
  return [row, details];
}

async function drawHistogram(generation) {
  const svg = document.getElementById("histogram");
  // The histogram counts by level over the same filters; it has no text or trace filter.
  const params = state.params.filter(([name]) => !["q", "trace_id", "order"].includes(name));
  params.push(["group_by", "level"]);
  let data;
  try {
    data = await api("/v1/stats/histogram", params);
  } catch (err) {
    if (generation === state.generation) svg.replaceChildren();
    return;
  }
  if (generation !== state.generation) return;
  const ns = "http://www.w3.org/2000/svg";
  const width = svg.clientWidth || 800;
  const height = 120, top = 6, bottom = 16;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const max = Math.max(1, ...data.buckets.map((b) => b.total));
  const barWidth = width / Math.max(1, data.buckets.length);
  const nodes = [];
  data.buckets.forEach((bucket, i) => {
    let y = height - bottom;
    for (const level of data.groups) {
      const count = bucket.counts[level] || 0;
      if (!count) continue;
      const h = (count / max) * (height - top - bottom);
      y -= h;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("class", "bar");
      rect.setAttribute("x", String(i * barWidth + 0.5));
      rect.setAttribute("y", String(y));
      rect.setAttribute("width", String(Math.max(1, barWidth - 1)));
      rect.setAttribute("height", String(h));
      rect.setAttribute("fill", COLORS[level] || "#4aa3ff");
      const title = document.createElementNS(ns, "title");
      title.textContent = `${bucket.start}: ${bucket.total} events (${level} ${count})`;
      rect.append(title);
      // Clicking a bar zooms the search into that bucket.
      rect.addEventListener("click", () => zoomTo(bucket.start, data.bucket_seconds));
      nodes.push(rect);
    }
  });
  for (const [x, anchor, label] of [[2, "start", data.since], [width - 2, "end", data.until]]) {
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", String(x));
    text.setAttribute("y", String(height - 4));
    text.setAttribute("text-anchor", anchor);
    text.textContent = label;
    nodes.push(text);
  }
  svg.replaceChildren(...nodes);
  svg.dataset.total = String(data.total);
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
  // Deep links: index.html?service=api&q=timeout pre-fills the form.
  const form = document.getElementById("filters");
  for (const [name, value] of new URLSearchParams(window.location.search)) {
    if (form.elements[name]) form.elements[name].value = value;
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage(state.generation);
  }, { rootMargin: "200px" }).observe(document.getElementById("sentinel"));
  search();
}

main();
