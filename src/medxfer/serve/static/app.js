// medxfer page: upload an image, show probabilities and a Grad-CAM overlay. No build step.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("medxfer-token") || "";

function authHeaders() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) {
    $("token-row").hidden = false;
    throw new Error("This server needs an access token: enter it below.");
  }
  if (!response.ok) {
    throw new Error((body && body.detail) ? String(body.detail) : "Request failed (HTTP " + response.status + ")");
  }
  return body;
}

function fmt(value) {
  return typeof value === "number" ? (Math.abs(value) <= 1 ? value.toFixed(3) : value.toPrecision(4)) : String(value);
}

function showModel(m) {
  $("model-name").textContent = m.backbone + " (weights: " + m.weights + ") — classes: " + m.classes.join(", ");
  const table = $("metrics");
  table.replaceChildren();
  const entries = Object.entries(m.metrics || {}).filter(([, v]) => typeof v === "number" || typeof v === "string");
  if (!entries.length) {
    table.insertRow().insertCell().textContent = "no validation metrics recorded";
    return;
  }
  for (const [key, value] of entries) {
    const row = table.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = fmt(value);
  }
}

async function loadModel() {
  try {
    showModel(await api("/api/model"));
  } catch (e) {
    $("model-name").textContent = e.message;
  }
}

function showBars(probabilities, label) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const [name, p] of Object.entries(probabilities)) {
    const row = document.createElement("div");
    row.className = "bar" + (name === label ? " top" : "");
    const title = document.createElement("span");
    title.textContent = name;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = (100 * p).toFixed(1) + "%";
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = (100 * p).toFixed(1) + "%";
    row.append(title, track, value);
    bars.appendChild(row);
  }
}

function showResult(r, file) {
  $("label").textContent = r.label;
  showBars(r.probabilities, r.label);
  $("threshold").textContent = r.threshold === null ? "Highest probability wins."
    : "Decision threshold on P(" + r.model.classes[1] + "): " + r.threshold.toFixed(3);
  $("image").src = "data:image/png;base64," + r.image_png;
  if (r.cam_png) {
    $("cam").src = "data:image/png;base64," + r.cam_png;
    $("cam").dataset.ready = "1";
  }
  $("cam").classList.toggle("hidden", !$("cam-toggle").checked);
  $("caption").textContent = file.name + " — Grad-CAM for class '" + (r.cam_class || r.label) + "'";
  $("result").hidden = false;
  document.body.dataset.state = "done";
}

async function upload(file) {
  if (!file) return;
  document.body.dataset.state = "busy";
  setStatus("Analysing " + file.name + " …");
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const r = await api("/api/predict?cam=true&image=true", { method: "POST", body: form });
    showResult(r, file);
    setStatus("");
  } catch (e) {
    document.body.dataset.state = "error";
    setStatus(e.message, true);
  }
}

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => upload(e.target.files[0]));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (e) => upload(e.dataTransfer.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  $("cam-toggle").addEventListener("change", (e) => $("cam").classList.toggle("hidden", !e.target.checked));
  $("token-save").addEventListener("click", () => {
    token = $("token").value.trim();
    sessionStorage.setItem("medxfer-token", token);
    $("token-row").hidden = true;
    setStatus("");
    loadModel();
  });
}

wire();
loadModel();
