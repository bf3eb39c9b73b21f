// The alerts page: current incidents, history and each delivery attempt, read from the
// alerter through the query service (/v1/console/alerter/..., the caller's key forwarded;
// the alerter wants the `admin` scope).
"use strict";

const ALERTER = "/v1/console/alerter";
const SEVERITY_LEVEL = { critical: "CRITICAL", error: "ERROR", warning: "WARNING", info: "INFO" };
const page = { before: null, open: null, generation: 0 };

function explain(err) {
  if (err instanceof ApiError && err.status === 403) return "this key cannot read alerts: the alerts page needs a key with the admin scope";
  if (err instanceof ApiError && err.status === 401) return "no valid API key: enter one at the top right";
  return String(err.message || err);
}

function filterParams() {
  const form = document.getElementById("filters");
  const params = [];
  for (const name of ["service", "state"]) {
    const value = form.elements[name].value.trim();
    if (value) params.push([name, value]);
  }
  return params;
}

function syncUrl(push) {
  const url = new URLSearchParams(filterParams());
  if (page.open) url.set("alert", String(page.open));
  if (push && url.toString() !== window.location.search.replace(/^\?/, "")) history.pushState(null, "", `?${url}`);
}

function severityBadge(severity) {
  const badge = levelBadge(SEVERITY_LEVEL[severity] || "INFO");
  badge.textContent = severity;
  return badge;
}

// The search that shows an incident's events: its service over its window.
function eventsLink(alert) {
  const start = Date.parse(alert.pending_since) - alert.window_seconds * 1000;
  const params = new URLSearchParams({ service: alert.service, since: new Date(start).toISOString() });
  if (alert.resolved_at) params.set("until", alert.resolved_at);
  return el("a", { href: `index.html?${params}`, class: "events", text: "events" });
}

function detailsButton(alert) {
  const button = el("button", { type: "button", class: "act show-deliveries", text: "deliveries" });
  button.addEventListener("click", () => openDeliveries(alert.id, true));
  return el("td", {}, button, " ", eventsLink(alert));
}

const fmtNum = (v) => (v === null || v === undefined ? "" : Number(v).toPrecision(3).replace(/\.?0+$/, ""));

async function loadCurrent(generation) {
  const params = filterParams().filter(([name]) => name === "service");
  const body = await api(`${ALERTER}/alerts/current`, params);
  if (generation !== page.generation) return 0; // a newer refresh replaced this one
  const rows = body.alerts.map((a) => el("tr", { class: `alert state-${a.state}`, "data-id": String(a.id) },
    el("td", {}, severityBadge(a.severity)),
    el("td", { text: a.rule_name }),
    el("td", { text: a.service }),
    el("td", { text: a.silenced ? `${a.state} (silenced)` : a.state }),
    el("td", { class: "time" }, timeEl(a.fired_at || a.pending_since)),
    el("td", { class: "num", text: `${fmtNum(a.value)} / ${fmtNum(a.threshold)}` }),
    el("td", { class: "num", text: `${a.matched} / ${a.total}` }),
    detailsButton(a)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "8", text: "no open incidents" })));
  document.querySelector("#current tbody").replaceChildren(...rows);
  return body.alerts.length;
}

async function loadHistory(more = false, generation = page.generation) {
  const params = filterParams();
  params.push(["limit", "50"]);
  if (more && page.before) params.push(["before_id", String(page.before)]);
  const body = await api(`${ALERTER}/alerts`, params);
  if (generation !== page.generation) return 0;
  const rows = body.alerts.map((a) => el("tr", { class: `alert state-${a.state}`, "data-id": String(a.id) },
    el("td", {}, severityBadge(a.severity)),
    el("td", { text: a.rule_name }),
    el("td", { text: a.service }),
    el("td", { text: a.resolved_reason ? `${a.state} (${a.resolved_reason})` : a.state }),
    el("td", { class: "time" }, timeEl(a.pending_since)),
    el("td", { class: "time" }, a.fired_at ? timeEl(a.fired_at) : "—"),
    el("td", { class: "time" }, a.resolved_at ? timeEl(a.resolved_at) : "—"),
    el("td", { class: "num", text: fmtNum(a.peak_value) }),
    detailsButton(a)));
  const tbody = document.querySelector("#history tbody");
  if (more) tbody.append(...rows);
  else tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "9", text: "no incidents" }))]));
  page.before = body.next_before_id;
  document.getElementById("older").classList.toggle("hidden", !page.before);
  return body.alerts.length;
}

async function openDeliveries(id, push) {
  page.open = id;
  syncUrl(push);
  const panel = document.getElementById("deliveries");
  const rows = document.getElementById("delivery-rows");
  panel.classList.remove("hidden");
  rows.replaceChildren(el("tr", {}, el("td", { colspan: "8", text: "loading…" })));
  try {
    const alert = await api(`${ALERTER}/alerts/${encodeURIComponent(id)}`, []);
    if (page.open !== id) return;
    document.getElementById("deliveries-title").textContent =
      `Delivery attempts of incident ${alert.id}: ${alert.rule_name} on ${alert.service} (${alert.state})`;
    const attempts = alert.deliveries.map((d) => el("tr", { class: `delivery outcome-${d.outcome}` },
      el("td", { class: "time" }, timeEl(d.attempted_at)),
      el("td", { text: d.channel }),
      el("td", { text: d.kind }),
      el("td", { class: "num", text: String(d.attempt) }),
      el("td", { class: d.outcome === "delivered" ? "ok" : "bad", text: d.outcome }),
      el("td", { class: "num", text: d.status_code === null || d.status_code === undefined ? "—" : String(d.status_code) }),
      el("td", { class: "num", text: Number(d.duration_ms).toFixed(0) }),
      el("td", { text: d.error || "" })));
    rows.replaceChildren(...(attempts.length ? attempts : [el("tr", {}, el("td", { colspan: "8", text: "no delivery attempts yet" }))]));
  } catch (err) {
    rows.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "bad", text: explain(err) })));
  }
}

function closeDeliveries() {
  page.open = null;
  document.getElementById("deliveries").classList.add("hidden");
  syncUrl(true);
}

async function refresh(push = true) {
  syncUrl(push);
  setStatus("loading…");
  page.generation += 1;
  const generation = page.generation;
  try {
    const [current, past] = await Promise.all([loadCurrent(generation), loadHistory(false, generation)]);
    if (generation !== page.generation) return;
    setStatus(`${current} open, ${past} in history${page.before ? " (more: Older)" : ""}`);
  } catch (err) {
    if (generation === page.generation) setStatus(explain(err), true);
  }
  if (page.open) openDeliveries(page.open, false);
  else document.getElementById("deliveries").classList.add("hidden");
}

function fillFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const form = document.getElementById("filters");
  form.elements.service.value = params.get("service") || "";
  form.elements.state.value = ["pending", "firing", "resolved"].includes(params.get("state")) ? params.get("state") : "";
  const open = params.get("alert");
  page.open = open && /^[1-9][0-9]{0,18}$/.test(open) ? open : null;
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
  fillFromUrl();
  const form = document.getElementById("filters");
  form.addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  document.getElementById("older").addEventListener("click", () => loadHistory(true).catch((err) => setStatus(explain(err), true)));
  document.getElementById("deliveries-close").addEventListener("click", closeDeliveries);
  window.addEventListener("popstate", () => { fillFromUrl(); refresh(false); });
  refresh(false);
}

main();
