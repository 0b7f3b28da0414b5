// maskwatch review page: plain JS, no dependencies; every URL is relative, so it works behind a path prefix.
"use strict";

const state = { token: localStorage.getItem("maskwatch.token") || "", cursor: null, selected: null,
                items: new Map(), camera: "", blobs: new Map(), paged: false };
const $ = (sel) => document.querySelector(sel);

function headers(extra = {}) {
  return state.token ? { ...extra, Authorization: `Bearer ${state.token}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (response.status === 401) {
    $("#token-form").hidden = false;
    setStatus("The API needs a token");
    throw new Error("unauthorized");
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// Media: with a token, fetch it with the header and show a blob (an <img>/<video> cannot send headers);
// without one, point at the URL itself, so the browser streams the clip with Range requests and can seek.
async function mediaUrl(path) {
  if (!state.token) return path;
  if (state.blobs.has(path)) return state.blobs.get(path);
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  state.blobs.set(path, url);
  return url;
}

function setStatus(text) { $("#status").textContent = text; }
const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);
const when = (ts) => new Date(ts * 1000).toLocaleString();
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function loadCameras() {
  const data = await api("api/cameras");
  const box = $("#cameras");
  box.replaceChildren();
  if (!data.cameras.length) box.append(el("p", { class: "empty" }, "No camera yet."));
  const filter = $("#camera-filter");
  for (const cam of data.cameras) {
    box.append(el("div", { class: "camera", "data-camera": cam.id },
      el("h3", {}, cam.id, el("span", { class: `state ${cam.state || ""}` }, cam.state || "unknown")),
      el("div", { class: "metrics" },
        el("div", { class: "compliance-now" }, el("b", {}, pct(cam.compliance_now)), "compliant now"),
        el("div", { class: "compliance-hour" }, el("b", {}, pct(cam.compliance_window)),
           `last ${Math.round(data.window_s / 60)} min`),
        el("div", {}, el("b", {}, String(cam.fps)), "frames/s"),
        el("div", {}, el("b", {}, String(cam.violations_window)), "violations"))));
    if (![...filter.options].some((o) => o.value === cam.id)) filter.append(el("option", { value: cam.id }, cam.id));
  }
  $("#basis").textContent = "Compliance: share of faces seen wearing a mask (frame events).";
}

function reviewBadge(v) {
  if (!v.review) return el("span", { class: "badge" }, "not reviewed");
  const text = v.review.status === "reviewed" ? "reviewed" : "false alarm";
  return el("span", { class: `badge ${v.review.status}` }, text);
}

function renderItem(v) {
  const img = el("img", { alt: `snapshot of ${v.camera}` });
  if (v.snapshot) mediaUrl(`api/violations/${v.id}/snapshot.jpg`).then((u) => { img.src = u; }).catch(() => {});
  const mark = (status) => (event) => { event.stopPropagation(); review(v.id, status); };
  const item = el("li", { class: `violation${state.selected === v.id ? " selected" : ""}`, "data-id": v.id,
                          onclick: () => select(v.id) },
    img,
    el("div", { class: "meta" },
      el("span", {}, el("span", { class: `cls ${v.class}` }, v.class.replace("_", " ")),
         ` · ${v.camera} · ${Math.round(v.confidence * 100)}%`),
      el("span", {}, when(v.decided_ts)),
      el("span", {}, `clip: ${v.clip_state.state}`),
      reviewBadge(v),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "mark-reviewed", onclick: mark("reviewed") }, "Reviewed"),
        el("button", { type: "button", class: "mark-false-alarm", onclick: mark("false_alarm") }, "False alarm"))));
  return item;
}

async function loadViolations(append = false) {
  const params = new URLSearchParams();
  if (state.camera) params.set("camera", state.camera);
  if (append && state.cursor) params.set("cursor", state.cursor);
  const data = await api(`api/violations?${params}`);
  const list = $("#violations");
  if (!append) { list.replaceChildren(); state.items.clear(); }
  for (const v of data.items) { state.items.set(v.id, v); list.append(renderItem(v)); }
  if (!state.items.size) list.append(el("li", { class: "empty" }, "No violation yet."));
  state.cursor = data.next_cursor;
  $("#more").hidden = !data.next_cursor;
}

async function select(id) {
  state.selected = id;
  document.querySelectorAll(".violation").forEach((n) => n.classList.toggle("selected", n.dataset.id === id));
  const v = state.items.get(id);
  const details = $("#details");
  details.replaceChildren(el("p", {}, el("b", {}, `${v.camera} · ${v.class.replace("_", " ")}`),
    ` · track ${v.track_id} · ${when(v.decided_ts)}`));
  const video = $("#player");
  if (v.clip_state.state !== "ready") {
    video.removeAttribute("src"); video.load();
    details.append(el("p", { class: "empty" }, `Clip ${v.clip_state.state}.`));
    return;
  }
  video.src = await mediaUrl(`api/violations/${id}/clip.mp4`);
  try { await video.play(); } catch (e) { details.append(el("p", { class: "empty" }, `Cannot play: ${e.message}`)); }
}

async function review(id, status) {
  const result = await api(`api/violations/${id}/review`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ status, note: null }) });
  const v = state.items.get(id);
  v.review = result.review;
  const old = document.querySelector(`.violation[data-id="${id}"]`);
  if (old) old.replaceWith(renderItem(v));
  setStatus(`Marked ${status === "reviewed" ? "reviewed" : "false alarm"}`);
}

async function refresh() {
  try {
    await loadCameras();
    if (!state.paged) await loadViolations(false);  // after "Older…" the list is left as the user paged it
    setStatus(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (e.message !== "unauthorized") setStatus(`Error: ${e.message}`);
  }
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("#token").value.trim();
  localStorage.setItem("maskwatch.token", state.token);
  $("#token-form").hidden = true;
  refresh();
});
$("#camera-filter").addEventListener("change", (event) => { state.camera = event.target.value; state.cursor = null; state.paged = false; refresh(); });
$("#more").addEventListener("click", () => { state.paged = true; loadViolations(true); });
refresh();
setInterval(refresh, 10000);
