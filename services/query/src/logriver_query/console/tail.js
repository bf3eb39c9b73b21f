// The live tail: an EventSource on the stream service (another origin, so it needs CORS there).
//
// Wire contract: GET <stream>/v1/stream?service=..&level=..&q=..&token=..; events
// `log` (id: resume cursor, data: event JSON), `dropped` ({"dropped": n}) and
// `error` ({"error": code, "detail": ...}). EventSource resends the last id as
// Last-Event-ID when it reconnects by itself, so a network blip loses nothing.
"use strict";

const MAX_LINES = 5000;       // lines kept in the page
const MAX_BUFFERED = 5000;    // lines held while paused
const tail = {
  config: null, source: null, paused: false, buffer: [], autoScroll: true,
  retry: 0, timer: null, received: 0, missedWhilePaused: 0,
};
const box = () => document.getElementById("tail");

function streamUrl(token) {
  const form = new FormData(document.getElementById("filters"));
  const url = new URL("/v1/stream", tail.config.stream_base_url);
  for (const service of String(form.get("service") || "").split(",")) {
    if (service.trim()) url.searchParams.append("service", service.trim());
  }
  for (const name of ["level", "q"]) {
    const value = String(form.get(name) || "").trim();
    if (value) url.searchParams.set(name, value);
  }
  url.searchParams.set("token", token);
  return url;
}

async function start() {
  stop();
  setStatus("connecting…");
  let token;
  try {
    token = (await api("/v1/stream-tokens", [], { method: "POST" })).token;
  } catch (err) {
    setStatus(`cannot get a stream token: ${err.message || err}`, true);
    return;
  }
  const source = new EventSource(streamUrl(token));
  tail.source = source;
  source.addEventListener("open", () => {
    tail.retry = 0;
    setStatus(`live — ${tail.received} events`);
  });
  source.addEventListener("log", (e) => {
    let event;
    try { event = JSON.parse(e.data); } catch { return; }
    tail.received += 1;
    show(renderLine(event));
  });
  source.addEventListener("dropped", (e) => {
    const n = JSON.parse(e.data).dropped;
    show(notice(`${n} events were dropped: this tail could not keep up (narrow the filters)`));
  });
  source.addEventListener("error", (e) => {
    if (e.data !== undefined) {
      // The server's own `event: error` (bad filter, expired token, ...): it closes the stream.
      let body = {};
      try { body = JSON.parse(e.data); } catch { /* keep {} */ }
      show(notice(`stream error: ${body.error || "unknown"} ${body.detail ? JSON.stringify(body.detail) : ""}`));
      // The stream ended on purpose: reconnecting with the same Last-Event-ID would
      // fail the same way, so start a fresh EventSource (live from now, new token).
      reconnectLater();
      return;
    }
    if (source.readyState === EventSource.CLOSED) reconnectLater();
    else setStatus("reconnecting…");
  });
  document.getElementById("pause").disabled = false;
}

// EventSource gives up on HTTP errors (e.g. an expired token): fetch a new token, with backoff.
function reconnectLater() {
  if (tail.source) tail.source.close();
  tail.source = null;
  const delay = Math.min(15000, 1000 * 2 ** tail.retry);
  tail.retry += 1;
  setStatus(`disconnected; retrying in ${Math.round(delay / 1000)} s`, true);
  tail.timer = setTimeout(start, delay);
}

function stop() {
  clearTimeout(tail.timer);
  if (tail.source) tail.source.close();
  tail.source = null;
}

function renderLine(event) {
  const line = el("div", { class: "line", "data-id": event.id || "" },
    el("span", { class: "time" }, event.timestamp ? timeEl(event.timestamp) : ""), " ",
    levelBadge(event.level || "INFO"),
    el("span", { class: "svc", text: event.service || "" }),
    el("span", { class: "msg", text: event.message || "" }));
  line.dataset.text = `${event.service} ${event.level} ${event.message}`.toLowerCase();
  if (event.trace_id) {
    line.append(" ", el("a", { href: traceHref(event.trace_id), class: "trace", text: "trace" }), " ", el("a", {
      href: `${tail.config.jaeger_ui_url}/trace/${encodeURIComponent(event.trace_id)}`,
      target: "_blank", rel: "noopener", class: "trace-link", text: "Jaeger",
    }));
  }
  applyFilter(line);
  return line;
}

function notice(text) {
  const line = el("div", { class: "line notice", text });
  line.dataset.text = text.toLowerCase();
  return line;
}

function show(line) {
  if (tail.paused) {
    // Paused: hold lines (bounded) and count what does not fit.
    if (tail.buffer.length < MAX_BUFFERED) tail.buffer.push(line);
    else tail.missedWhilePaused += 1;
    setStatus(`paused — ${tail.buffer.length} new lines held`);
    return;
  }
  append([line]);
}

function append(lines) {
  const container = box();
  container.append(...lines);
  while (container.childElementCount > MAX_LINES) container.firstElementChild.remove();
  if (tail.autoScroll) container.scrollTop = container.scrollHeight;
  if (tail.source) setStatus(`live — ${tail.received} events${tail.autoScroll ? "" : " (auto-scroll paused: scroll to the bottom to resume)"}`);
}

function togglePause() {
  tail.paused = !tail.paused;
  document.getElementById("pause").textContent = tail.paused ? "Resume" : "Pause";
  if (!tail.paused) {
    const held = tail.buffer;
    tail.buffer = [];
    if (tail.missedWhilePaused) held.push(notice(`${tail.missedWhilePaused} lines not kept while paused`));
    tail.missedWhilePaused = 0;
    append(held);
  } else {
    setStatus("paused");
  }
}

function applyFilter(line) {
  const wanted = document.getElementById("filter-box").value.trim().toLowerCase();
  line.classList.toggle("hidden", Boolean(wanted) && !line.dataset.text.includes(wanted));
}

function main() {
  loadConfig().then((config) => {
    tail.config = config;
    setupKeyBox(config);
    setupTimeZoneSwitch();
    const form = document.getElementById("filters");
    form.addEventListener("submit", (e) => { e.preventDefault(); start(); });
    document.getElementById("pause").addEventListener("click", togglePause);
    document.getElementById("clear").addEventListener("click", () => box().replaceChildren());
    document.getElementById("filter-box").addEventListener("input", () => {
      for (const line of box().children) applyFilter(line);
    });
    // Scrolling up pauses auto-scroll; scrolling back to the bottom resumes it.
    box().addEventListener("scroll", () => {
      const container = box();
      tail.autoScroll = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    });
    start();
  }).catch((err) => setStatus(String(err), true));
}

main();
