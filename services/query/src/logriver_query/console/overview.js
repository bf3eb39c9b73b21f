// The overview: every service's rate, error ratio and trend; the top errors grouped by template.
// Built from /v1/stats/services, /v1/stats/histogram (group_by=service) and /v1/stats/top-messages.
"use strict";

const view = { data: null, generation: 0 };

// A message's template: the variable parts (ids, numbers, hex, quoted values) become placeholders.
const TEMPLATE_RULES = [
  [/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, "<uuid>"],
  [/\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b/gi, "<hex>"],
  [/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?/g, "<time>"],
  [/"[^"]*"|'[^']*'/g, "<str>"],
  [/[-+]?\b\d+(\.\d+)?\b/g, "<n>"],
];

function templateOf(message) {
  let text = String(message ?? "");
  for (const [pattern, placeholder] of TEMPLATE_RULES) text = text.replace(pattern, placeholder);
  return text;
}

function groupByTemplate(messages) {
  const groups = new Map();
  for (const m of messages) {
    const key = templateOf(m.message);
    const g = groups.get(key) || { template: key, count: 0, services: new Set(), last_seen: "", example: m.message, variants: 0 };
    g.count += m.count;
    g.variants += 1;
    for (const s of m.services) g.services.add(s);
    if (m.last_seen > g.last_seen) g.last_seen = m.last_seen;
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.template.localeCompare(b.template));
}

// The longest literal part of a template: a text search that finds its events.
function searchTextOf(template) {
  return template.split(/<(?:uuid|hex|time|str|n)>/).map((s) => s.trim()).sort((a, b) => b.length - a.length)[0] || "";
}

function sparkline(buckets, service, errors) {
  const width = 160, height = 28;
  const counts = buckets.map((b) => b.counts[service] || 0);
  const max = Math.max(1, ...counts);
  const points = (values) => values.map((v, i) =>
    `${((i / Math.max(1, values.length - 1)) * (width - 2) + 1).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("data-service", service);
  svg.setAttribute("data-total", String(counts.reduce((a, b) => a + b, 0)));
  for (const [values, cls] of [[counts, "all"], [errors.map((b) => b.counts[service] || 0), "err"]]) {
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("class", cls);
    line.setAttribute("points", points(values));
    svg.append(line);
  }
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = `${service}: up to ${max} events per ${buckets.length ? "bucket" : "range"}`;
  svg.append(title);
  return svg;
}

function searchLink(params, text) {
  return el("a", { href: `index.html?${new URLSearchParams(params)}`, text });
}

async function refresh(push = true) {
  const form = document.getElementById("filters");
  const since = form.elements.since.value;
  const env = form.elements.env.value.trim();
  const url = new URLSearchParams({ since });
  if (env) url.set("env", env);
  if (push && url.toString() !== window.location.search.replace(/^\?/, "")) history.pushState(null, "", `?${url}`);
  const base = [["since", since], ...(env ? [["env", env]] : [])];
  setStatus("loading…");
  view.generation += 1;
  const generation = view.generation;
  try {
    const [services, trend, errorTrend, top] = await Promise.all([
      api("/v1/stats/services", base),
      api("/v1/stats/histogram", [...base, ["group_by", "service"]]),
      api("/v1/stats/histogram", [...base, ["group_by", "service"], ["level", ">=ERROR"]]),
      api("/v1/stats/top-messages", [...base, ["limit", "100"]]),
    ]);
    if (generation !== view.generation) return; // a newer range replaced this one
    view.data = { services, trend, errorTrend, top, base };
    render();
    const seconds = (Date.parse(services.until) - Date.parse(services.since)) / 1000;
    setStatus(`${services.services.length} services, ${services.services.reduce((a, s) => a + s.count, 0)} events in ${Math.round(seconds / 60)} min`);
  } catch (err) {
    if (generation === view.generation) setStatus(String(err.message || err), true);
  }
}

function render() {
  const { services, trend, errorTrend, top, base } = view.data;
  const minutes = Math.max(1 / 60, (Date.parse(services.until) - Date.parse(services.since)) / 60000);
  const since = base[0][1];
  const rows = services.services.map((s) => el("tr", { class: "service", "data-service": s.service },
    el("td", {}, searchLink({ service: s.service, since }, s.service)),
    el("td", { class: "num", text: String(s.count) }),
    el("td", { class: "num rate", text: (s.count / minutes).toFixed(s.count / minutes >= 10 ? 0 : 2) }),
    el("td", { class: "num" }, s.errors ? searchLink({ service: s.service, since, level: ">=ERROR" }, String(s.errors)) : "0"),
    el("td", { class: `num ratio ${s.error_rate >= 0.05 ? "bad" : "ok"}`, text: `${(s.error_rate * 100).toFixed(1)}%` }),
    el("td", {}, sparkline(trend.buckets, s.service, errorTrend.buckets)),
    el("td", { class: "time" }, timeEl(s.last_seen))));
  document.querySelector("#services tbody").replaceChildren(...rows);
  const groups = groupByTemplate(top.messages).slice(0, 20);
  document.querySelector("#templates tbody").replaceChildren(...groups.map((g) => {
    const q = searchTextOf(g.template);
    const params = { since, level: ">=ERROR", ...(q ? { q: q.slice(0, 200) } : {}) };
    if (g.services.size === 1) params.service = [...g.services][0];
    return el("tr", { class: "template" },
      el("td", { class: "num", text: String(g.count) }),
      el("td", { class: "message", title: `e.g. ${g.example} (${g.variants} distinct messages)` }, searchLink(params, g.template)),
      el("td", { text: [...g.services].sort().join(", ") }),
      el("td", { class: "time" }, timeEl(g.last_seen)));
  }));
  if (!groups.length) document.querySelector("#templates tbody").append(el("tr", {}, el("td", { colspan: "4", text: "no errors in this range" })));
}

async function main() {
  let config;
  try {
    config = await loadConfig();
  } catch (err) {
    setStatus(String(err), true);
    return;
  }
  setupKeyBox(config);
  setupTimeZoneSwitch();
  const form = document.getElementById("filters");
  const fill = () => {
    const params = new URLSearchParams(window.location.search);
    const since = params.get("since") || "1h";
    if (![...form.elements.since.options].some((o) => o.value === since)) form.elements.since.append(el("option", { value: since, text: since }));
    form.elements.since.value = since;
    form.elements.env.value = params.get("env") || "";
  };
  fill();
  form.addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  form.elements.since.addEventListener("change", () => refresh());
  window.addEventListener("popstate", () => { fill(); refresh(false); });
  refresh(false);
}

main();
