// The trace page: GET /v1/traces/{id}/view (spans from Jaeger, fetched by the query
// service, merged with the trace's logs) drawn as one waterfall, logs interleaved
// at their time. Everything is rendered with textContent (el): spans and logs are
// untrusted input.
"use strict";

const TRACE_ID = /^[0-9a-fA-F]{32}$/;

function fmtDuration(us) {
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

function bounds(view) {
  let start = Infinity, end = -Infinity;
  for (const span of view.spans) {
    start = Math.min(start, span.start_us);
    end = Math.max(end, span.start_us + span.duration_us);
  }
  for (const item of view.timeline) {
    if (item.type !== "log") continue;
    start = Math.min(start, item.at_us);
    end = Math.max(end, item.at_us);
  }
  if (!Number.isFinite(start)) return { start: 0, width: 1 };
  return { start, width: Math.max(1, end - start) };
}

function pct(value, axis) {
  return `${Math.min(100, Math.max(0, ((value - axis.start) / axis.width) * 100)).toFixed(3)}%`;
}

function detailsRow(content) {
  return el("div", { class: "wf-details hidden" }, el("pre", { text: JSON.stringify(content, null, 2) }));
}

function spanRow(span, axis) {
  const label = el("div", { class: "wf-label", title: `${span.service} ${span.name}` },
    el("span", { text: "\u00a0\u00a0".repeat(Math.min(span.depth || 0, 12)) }),
    el("span", { class: "svc", text: span.service }),
    el("span", { text: span.name }),
    el("span", { class: "dur", text: fmtDuration(span.duration_us) }));
  const kind = ["SERVER", "CLIENT", "PRODUCER", "CONSUMER"].includes(String(span.kind || "").toUpperCase())
    ? ` kind-${String(span.kind).toUpperCase()}` : "";
  const bar = el("div", { class: `wf-bar${kind}${span.error ? " error" : ""}` });
  bar.style.left = pct(span.start_us, axis);
  bar.style.width = `${Math.max(0.2, (span.duration_us / axis.width) * 100).toFixed(3)}%`;
  const row = el("div", { class: "wf-row span", "data-span-id": span.span_id },
    label, el("div", { class: "wf-track" }, bar));
  const details = detailsRow({
    span_id: span.span_id, parent_span_id: span.parent_span_id, kind: span.kind,
    start: span.start, duration: fmtDuration(span.duration_us), attributes: span.attributes,
  });
  row.addEventListener("click", () => details.classList.toggle("hidden"));
  return [row, details];
}

function logRow(event, at, axis) {
  const level = LEVEL_NAMES.includes(event.level) ? event.level : "INFO";
  const label = el("div", { class: "wf-label", title: event.message },
    levelBadge(event.level), el("span", { class: "svc", text: ` ${event.service}` }),
    el("span", { text: event.message }));
  const dot = el("div", { class: `wf-dot level-${level}` });
  dot.style.left = pct(at, axis);
  const row = el("div", { class: "wf-row log", "data-event-id": event.id },
    label, el("div", { class: "wf-track" }, dot));
  const details = detailsRow(event);
  row.addEventListener("click", () => details.classList.toggle("hidden"));
  return [row, details];
}

function axisRow(axis) {
  const ticks = el("div", { class: "wf-ticks" });
  for (let i = 0; i <= 4; i += 1) ticks.append(el("span", { text: fmtDuration(Math.round((axis.width * i) / 4)) }));
  return el("div", { class: "wf-row axis" }, el("div", { class: "wf-label", text: "span / log" }), ticks);
}

function render(view) {
  const axis = bounds(view);
  const spans = new Map(view.spans.map((span) => [span.span_id, span]));
  const events = new Map(view.events.map((event) => [event.id, event]));
  const box = document.getElementById("waterfall");
  const rows = [axisRow(axis)];
  for (const item of view.timeline) {
    if (item.type === "span" && spans.has(item.span_id)) rows.push(...spanRow(spans.get(item.span_id), axis));
    else if (item.type === "log" && events.has(item.id)) rows.push(...logRow(events.get(item.id), item.at_us, axis));
  }
  box.replaceChildren(...rows);
  box.classList.toggle("hidden", view.timeline.length === 0);

  const services = [...new Set(view.spans.map((span) => span.service).filter(Boolean))];
  const summary = document.getElementById("summary");
  summary.replaceChildren(
    el("span", {}, "trace ", el("b", { text: view.trace_id })),
    el("span", {}, el("b", { text: String(view.spans.length) }), view.spans_truncated ? " spans (cut)" : " spans"),
    el("span", {}, el("b", { text: String(view.events.length) }), view.events_truncated ? " logs (cut)" : " logs"),
    el("span", {}, "duration ", el("b", { text: fmtDuration(axis.width) })),
    services.length ? el("span", { text: `services: ${services.join(", ")}` }) : null,
    view.jaeger_url
      ? el("a", { href: view.jaeger_url, target: "_blank", rel: "noopener", id: "jaeger-link", text: "Open in Jaeger UI" })
      : null,
  );
  if (!view.spans.length && !view.events.length) {
    setStatus("Nothing recorded for this trace: no spans in Jaeger (not sampled, or expired) and no logs.");
  } else if (!view.spans.length) {
    setStatus("No spans in Jaeger for this trace (not sampled, or expired): showing its logs.");
  } else {
    setStatus("");
  }
}

async function show(traceId) {
  document.getElementById("summary").replaceChildren();
  document.getElementById("waterfall").classList.add("hidden");
  if (!TRACE_ID.test(traceId)) {
    setStatus("A trace id is 32 hexadecimal digits.", Boolean(traceId));
    return;
  }
  setStatus("Loading…");
  try {
    render(await api(`/v1/traces/${traceId.toLowerCase()}/view`));
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function main() {
  let config = { dev_key: null };
  try {
    config = await loadConfig();
  } catch (err) {
    setStatus(err.message, true);
  }
  setupKeyBox(config);
  const input = document.getElementById("trace-id");
  const traceId = new URLSearchParams(window.location.search).get("trace_id") || "";
  input.value = traceId;
  document.getElementById("trace-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = input.value.trim();
    history.replaceState(null, "", `?trace_id=${encodeURIComponent(id)}`);
    show(id);
  });
  show(traceId);
}

main();
