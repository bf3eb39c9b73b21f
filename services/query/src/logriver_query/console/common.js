// Shared by both pages: config, the API key, authenticated fetches, safe rendering.
"use strict";

const KEY_STORAGE = "logriver.apiKey";
const LEVEL_NAMES = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

async function loadConfig() {
  const resp = await fetch("/v1/console/config");
  if (!resp.ok) throw new Error(`config: HTTP ${resp.status}`);
  return resp.json();
}

// The key lives in localStorage; in local mode the dev key is pre-filled.
function setupKeyBox(config) {
  const box = document.getElementById("api-key");
  box.value = localStorage.getItem(KEY_STORAGE) || config.dev_key || "";
  box.addEventListener("change", () => localStorage.setItem(KEY_STORAGE, box.value.trim()));
  if (box.value) localStorage.setItem(KEY_STORAGE, box.value.trim());
}

function apiKey() {
  return (localStorage.getItem(KEY_STORAGE) || "").trim();
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? `${body.error}: ${JSON.stringify(body.detail)}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, params, options = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of params || []) url.searchParams.append(name, value);
  const resp = await fetch(url, {
    ...options,
    headers: { "X-API-Key": apiKey(), ...(options.headers || {}) },
  });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

// Build DOM with textContent only: log lines are untrusted input.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function levelBadge(level) {
  return el("span", { class: `level level-${LEVEL_NAMES.includes(level) ? level : "INFO"}`, text: level });
}

function setStatus(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// -- time zone: one switch (in every page's header) for every time shown ----------------------
const TZ_STORAGE = "logriver.tz";

function timeZone() {
  return localStorage.getItem(TZ_STORAGE) === "utc" ? "utc" : "local";
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

// "2026-11-26 01:41:57.956 +01:00" (local) or "2026-11-26 00:41:57.956 UTC".
function fmtTime(iso, short = false) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso ?? "");
  const utc = timeZone() === "utc";
  const parts = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
  const [y, mo, day, h, mi, s, ms] = parts;
  if (short) return `${pad(mo)}-${pad(day)} ${pad(h)}:${pad(mi)}${s ? ":" + pad(s) : ""}`;
  return `${y}-${pad(mo)}-${pad(day)} ${pad(h)}:${pad(mi)}:${pad(s)}.${pad(ms, 3)} ${utc ? "UTC" : zoneLabel(d)}`;
}

function zoneLabel(d) {
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return `${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
}

// A <time> whose text follows the switch.
function timeEl(iso, short = false) {
  const node = el("time", { datetime: String(iso ?? ""), "data-ts": String(iso ?? ""), text: fmtTime(iso, short) });
  if (short) node.dataset.short = "1";
  return node;
}

function setupTimeZoneSwitch() {
  const header = document.querySelector("header");
  const select = el("select", { id: "tz", title: "how times are shown" },
    el("option", { value: "local", text: `local (${zoneLabel(new Date())})` }),
    el("option", { value: "utc", text: "UTC" }));
  select.value = timeZone();
  select.addEventListener("change", () => {
    localStorage.setItem(TZ_STORAGE, select.value);
    for (const node of document.querySelectorAll("[data-ts]")) node.textContent = fmtTime(node.dataset.ts, !!node.dataset.short);
    window.dispatchEvent(new Event("logriver:timezone"));
  });
  header.insertBefore(el("label", { class: "tz" }, "Times ", select), header.querySelector(".key"));
}

// /trace.html shows one trace's logs and spans.
function traceHref(traceId) {
  return `trace.html?trace_id=${encodeURIComponent(traceId)}`;
}
