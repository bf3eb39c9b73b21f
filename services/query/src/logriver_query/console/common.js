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
