// The page of `molfm serve`: draw, paste or upload molecules, then see what the loaded models
// say about them, and generate new ones. It only calls the /v1 API of the server that serves it
// (relative URLs, so it also works under a path prefix); nothing comes from the internet.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { limits: {}, models: {} };
const TASKS = ["predict", "name", "retrieve", "generate", "decorate"];
const DEFAULT_MAX_ITEMS = { predict: 1000, name: 64, retrieve: 64, depict: 1000 };
const DEFAULT_MAX_SMILES = 500;
const GRID_MAX = 200; // depictions shown for a generation run; the CSV holds every molecule

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/** GET (no body) or POST JSON to the server; whole-request errors become an ApiError. */
async function api(path, body) {
  const headers = {};
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const key = sessionStorage.getItem("molfm-api-key");
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    let message = error.message || `HTTP ${response.status}`;
    if (response.status === 429) {
      message += ` (retry in ${response.headers.get("Retry-After") || "a few"} s)`;
    }
    throw new ApiError(response.status, error.type || "http_error", message);
  }
  return data;
}

/** Items per request for `task`: the limits GET /v1/models publishes (per model or shared). */
function maxItems(task) {
  const pick = (limits) => {
    const value = limits && limits.max_items;
    return typeof value === "number" ? value : value && value[task];
  };
  const model = state.models[task];
  return pick(model && model.limits) || pick(state.limits) || DEFAULT_MAX_ITEMS[task] || 64;
}

function maxSmilesLength() {
  const model = state.models.predict;
  return (model && model.limits && model.limits.max_smiles_length)
    || state.limits.max_smiles_length || DEFAULT_MAX_SMILES;
}

function showAlert(message) {
  const box = $("alert");
  box.textContent = message;
  box.hidden = !message;
}

// ---------------------------------------------------------------- small DOM helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function spinner(label) {
  return el("span", { class: "spinner", role: "status", "aria-label": label });
}

/** The server's RDKit SVG as an image (an <img> never runs what an SVG may contain). */
function depiction(svg, smiles) {
  const img = el("img", { alt: `2D depiction of ${smiles}` });
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  return img;
}

function formatNumber(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  const size = Math.abs(value);
  return size !== 0 && (size >= 1e4 || size < 1e-3) ? value.toExponential(3) : value.toFixed(3);
}

function percent(value) {
  return `${(100 * value).toFixed(1)} %`;
}

// ---------------------------------------------------------------- models

async function loadModels() {
  let data;
  try {
    data = await api("v1/models");
  } catch (error) {
    if (error.status === 401) {
      const key = window.prompt("This server needs its API key (MOLFM_API_KEY):");
      if (key) {
        sessionStorage.setItem("molfm-api-key", key.trim());
        return loadModels();
      }
    }
    $("status").textContent = `The models could not be listed: ${error.message}`;
    return;
  }
  state.limits = data.limits || {};
  const usable = data.models.filter((m) => m.status !== "failed");
  for (const task of TASKS) {
    state.models[task] = usable.find((m) => (m.tasks || []).includes(task)) || null;
  }
  const names = data.models.map((m) => {
    const what = [...(m.tasks || [])];
    if (m.status && m.status !== "ready") what.push(m.message ? `${m.status}: ${m.message}` : m.status);
    return `${m.id} (${what.join(", ")})`;
  });
  $("status").textContent = names.length ? `Models: ${names.join("; ")}` : "No model is loaded.";
  $("decorate").disabled = !state.models.decorate;
  $("generate").disabled = !state.models.generate;
  const numMax = state.limits.max_num_molecules;
  if (numMax) $("num-molecules").max = String(numMax);
  // Models load in the background: look again until none is loading.
  if (data.models.some((m) => m.status === "loading")) setTimeout(loadModels, 2000);
}

// ---------------------------------------------------------------- one card per molecule

function makeCard(smiles) {
  const card = el("li", { class: "card" });
  card.dataset.smiles = smiles;
  card.append(
    el("figure", { class: "depiction" }, spinner("drawing")),
    el("div", { class: "details" },
      el("h3", { class: "smiles" }, el("code", { text: smiles || "(empty)" })),
      el("p", { class: "error", hidden: "" }),
      el("div", { class: "predictions" }),
      el("p", { class: "name", hidden: "" }),
      el("div", { class: "retrieval", hidden: "" }),
    ),
  );
  return card;
}

function part(card, name) {
  return card.querySelector(`.${name}`);
}

/** A per-molecule error, in place; the first one wins (depict and predict say the same). */
function showItemError(card, error) {
  const box = part(card, "error");
  if (!box.hidden) return;
  box.textContent = `${error.type || "error"}: ${error.message || "unknown error"}`;
  box.hidden = false;
  card.classList.add("failed");
  for (const name of ["predictions", "name", "retrieval"]) part(card, name).hidden = true;
  const figure = part(card, "depiction");
  if (figure.querySelector(".spinner")) {
    figure.replaceChildren(el("span", { class: "no-depiction", text: "×" }));
  }
}

function renderDepiction(card, result) {
  if (!result.ok) return showItemError(card, result.error);
  part(card, "depiction").replaceChildren(depiction(result.svg, result.smiles));
}

function renderPrediction(card, result, model) {
  if (!result.ok) return showItemError(card, result.error);
  const box = part(card, "predictions");
  const units = result.units || {};
  const rows = Object.entries(result.predictions || {}).map(([target, value]) =>
    el("tr", {},
      el("th", { scope: "row", text: target }),
      el("td", { class: "value", text: formatNumber(value) }),
      el("td", { class: "unit", text: units[target] || "" })));
  const table = el("table", { class: "props" },
    el("caption", { text: `Predicted by ${model.id}` }),
    el("tbody", {}, ...rows));
  const reason = result.domain_reason ? `: ${result.domain_reason}` : "";
  const domain = result.out_of_domain
    ? el("p", { class: "badge ood", text: `out of domain${reason}` })
    : el("p", { class: "badge in-domain", text: "in the training domain" });
  box.replaceChildren(table, domain);
}

function renderName(card, result) {
  const box = part(card, "name");
  if (!result.ok) {
    box.replaceChildren(el("span", { class: "label", text: "IUPAC name " }),
      el("span", { class: "muted", text: result.error ? result.error.message : "not named" }));
    return;
  }
  const verified = result.verified === true ? ["verified", "OPSIN parses it back to this molecule"]
    : result.verified === false ? ["unverified", "OPSIN does not give this molecule back"]
      : ["unchecked", "not checked with OPSIN"];
  box.replaceChildren(
    el("span", { class: "label", text: "IUPAC name " }),
    el("span", { class: "iupac", text: result.name }), " ",
    el("span", { class: `badge ${verified[0]}`, text: verified[1] }));
}

function renderRetrieval(card, result) {
  const box = part(card, "retrieval");
  if (!result.ok) {
    box.replaceChildren(el("p", { class: "muted", text: `retrieval: ${result.error.message}` }));
    return;
  }
  const hits = (result.hits || []).map((hit) =>
    el("li", {}, el("span", { text: hit.text ?? hit.smiles }), " ",
      el("span", { class: "score", text: formatNumber(hit.score) })));
  box.replaceChildren(el("details", {},
    el("summary", { text: `Nearest texts (${hits.length})` }), el("ol", {}, ...hits)));
}

/**
 * Run one API task over `items` ({smiles, card}) in requests of at most `size`, rendering each
 * result in its card as its request answers. A whole-request error (a limit, a full queue, a
 * model still loading) goes on top and to `onFailure` for each card it concerns, never further.
 */
async function runTask(items, size, request, render, onFailure) {
  for (let i = 0; i < items.length; i += size) {
    const chunk = items.slice(i, i + size);
    try {
      const results = await request(chunk.map((it) => it.smiles));
      results.forEach((result, j) => render(chunk[j].card, result));
    } catch (error) {
      showAlert(error.message);
      for (const it of chunk) onFailure(it.card, error);
    }
  }
}

/** What a card shows where a whole request failed: the molecule itself may be fine. */
function notAnswered(box, what, error) {
  box.replaceChildren(el("span", { class: "muted", text: `${what}: ${error.message}` }));
}

async function analyze(smilesList) {
  showAlert("");
  const list = smilesList.map((s) => s.trim()).filter((s) => s);
  if (!list.length) {
    showAlert("Give at least one SMILES.");
    return;
  }
  const items = list.map((smiles) => ({ smiles, card: makeCard(smiles) }));
  $("results").prepend(...items.map((it) => it.card));
  $("results-empty").hidden = true;

  const limit = maxSmilesLength();
  const sendable = items.filter((it) => {
    if (it.smiles.length <= limit) return true;
    showItemError(it.card, { type: "too_long", message: `longer than ${limit} characters` });
    return false;
  });
  const jobs = [
    runTask(sendable, maxItems("depict"),
      async (smiles) => (await api("v1/depict", { smiles, width: 260, height: 180 })).results,
      renderDepiction, (card, error) => notAnswered(part(card, "depiction"), "not drawn", error)),
  ];

  const predictor = state.models.predict;
  if (predictor) {
    for (const it of sendable) {
      part(it.card, "predictions").replaceChildren(spinner("predicting"), " predicting…");
    }
    const conformers = $("conformers").checked;
    jobs.push(runTask(sendable, maxItems("predict"),
      async (smiles) => (await api("v1/predict", { model: predictor.id, smiles, conformers })).results,
      (card, result) => renderPrediction(card, result, predictor),
      (card, error) => notAnswered(part(card, "predictions"), "not predicted", error)));
  }
  // Naming is slow on a CPU: it runs on its own, each card shows a spinner until its name comes.
  const namer = state.models.name;
  if (namer) {
    for (const it of sendable) {
      const box = part(it.card, "name");
      box.hidden = false;
      box.replaceChildren(el("span", { class: "label", text: "IUPAC name " }), spinner("naming"),
        " naming…");
    }
    runTask(sendable, maxItems("name"),
      async (smiles) => (await api("v1/name", { model: namer.id, smiles, verify: true })).results,
      renderName, (card, error) => renderName(card, { ok: false, error }));
  }
  const retriever = state.models.retrieve;
  if (retriever) {
    for (const it of sendable) part(it.card, "retrieval").hidden = false;
    runTask(sendable, maxItems("retrieve"),
      async (smiles) => (await api("v1/retrieve", { model: retriever.id, smiles, top_k: 3 })).results,
      renderRetrieval, (card, error) => renderRetrieval(card, { ok: false, error }));
  }
  await Promise.all(jobs);
}

// ---------------------------------------------------------------- CSV in and out

/** Rows of a CSV text (RFC 4180 quoting). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function smilesFromCsv(text) {
  const rows = parseCsv(text.replace(/^\uFEFF/, ""));
  const header = (rows[0] || []).map((h) => h.trim().toLowerCase());
  const column = header.indexOf("smiles");
  if (column < 0) {
    throw new Error(`the CSV has no "smiles" column (columns: ${header.join(", ") || "none"})`);
  }
  return rows.slice(1).map((r) => (r[column] || "").trim()).filter((s) => s);
}

function toCsv(rows, columns) {
  const cell = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
}

// ---------------------------------------------------------------- generation

/** JSME writes an R group as [R] or [R1]; the decorator wants [*]. */
function scaffoldSmiles(smiles) {
  return smiles.trim().replace(/\[R\d*\]/g, "[*]");
}

function showSummary(data, task) {
  const s = data.summary || {};
  const parts = [`${data.results.length} molecules from ${data.model}`];
  const fractions = { validity: "valid", uniqueness: "unique", keeps_scaffold: "keep the scaffold" };
  for (const [key, label] of Object.entries(fractions)) {
    if (typeof s[key] === "number") parts.push(`${percent(s[key])} ${label}`);
  }
  $("generate-summary").textContent = `${task === "decorate" ? "Decorated" : "Sampled"}: ${parts.join(" · ")}`;
}

async function renderGrid(results) {
  const grid = $("generated");
  const shown = results.slice(0, GRID_MAX);
  const cells = shown.map((r) => {
    const cell = el("li", { class: r.valid ? "cell" : "cell invalid" });
    cell.dataset.smiles = r.smiles;
    const picture = r.valid ? spinner("drawing") : el("span", { class: "no-depiction", text: "invalid" });
    cell.append(el("div", { class: "depiction" }, picture), el("code", { text: r.smiles || "(empty)" }));
    return cell;
  });
  grid.replaceChildren(...cells);
  if (results.length > shown.length) {
    const more = `… ${results.length - shown.length} more in the CSV`;
    grid.append(el("li", { class: "cell more", text: more }));
  }
  const valid = shown.map((r, i) => ({ smiles: r.smiles, card: cells[i] })).filter((_, i) => shown[i].valid);
  await runTask(valid, maxItems("depict"),
    async (smiles) => (await api("v1/depict", { smiles, width: 180, height: 130 })).results,
    (cell, result) => {
      const box = cell.querySelector(".depiction");
      box.replaceChildren(result.ok ? depiction(result.svg, result.smiles)
        : el("span", { class: "no-depiction", text: "×" }));
    },
    (cell, error) => notAnswered(cell.querySelector(".depiction"), "not drawn", error));
}

async function generate(task) {
  showAlert("");
  const model = state.models[task];
  if (!model) {
    showAlert(`No loaded model can ${task}.`);
    return;
  }
  const body = {
    model: model.id,
    num_molecules: Number($("num-molecules").value),
    seed: Number($("seed").value),
    temperature: Number($("temperature").value),
  };
  if (task === "decorate") {
    body.scaffold = scaffoldSmiles($("scaffold").value);
    if (!body.scaffold) {
      showAlert("Give a scaffold with a * attachment point (or draw one and press From editor).");
      return;
    }
  }
  const link = $("generate-download");
  link.hidden = true;
  $("generate-summary").replaceChildren(spinner("generating"), " generating…");
  for (const id of ["decorate", "generate"]) $(id).disabled = true;
  try {
    const data = await api(`v1/${task}`, body);
    showSummary(data, task);
    const keys = data.results.flatMap((r) => Object.keys(r));
    const columns = [...new Set(["smiles", "valid", ...keys])].filter((c) => c !== "ok");
    URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([toCsv(data.results, columns)], { type: "text/csv" }));
    link.download = `${task === "decorate" ? "decorated" : "generated"}.csv`;
    link.hidden = false;
    await renderGrid(data.results);
  } catch (error) {
    $("generate-summary").textContent = "";
    showAlert(`${task}: ${error.message}`);
  } finally {
    $("decorate").disabled = !state.models.decorate;
    $("generate").disabled = !state.models.generate;
  }
}

// ---------------------------------------------------------------- the editor (JSME)

function drawnSmiles() {
  return window.jsmeApplet ? window.jsmeApplet.smiles() : "";
}

// JSME calls this global once its code has loaded (jsme/jsme.nocache.js).
window.jsmeOnLoad = function jsmeOnLoad() {
  window.jsmeApplet = new JSApplet.JSME("jsme", "420px", "340px", {
    options: "rbutton,nosearchinchiKey", // the R button draws attachment points
  });
  $("jsme").classList.add("ready");
};

// ---------------------------------------------------------------- wiring

function wire() {
  $("smiles-form").addEventListener("submit", (event) => {
    event.preventDefault();
    analyze($("smiles-input").value.split(/\r?\n/));
  });
  $("csv-input").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      const smiles = smilesFromCsv(await file.text());
      $("smiles-input").value = smiles.join("\n");
      await analyze(smiles);
    } catch (error) {
      showAlert(`${file.name}: ${error.message}`);
    }
  });
  $("analyze-drawn").addEventListener("click", () => {
    const smiles = drawnSmiles();
    if (!smiles) showAlert("Draw a molecule first (or paste SMILES).");
    else analyze([smiles]);
  });
  $("clear-drawn").addEventListener("click", () => window.jsmeApplet && window.jsmeApplet.reset());
  $("clear-results").addEventListener("click", () => {
    $("results").replaceChildren();
    $("results-empty").hidden = false;
    showAlert("");
  });
  $("scaffold-from-editor").addEventListener("click", () => {
    const smiles = drawnSmiles();
    if (smiles) $("scaffold").value = scaffoldSmiles(smiles);
    else showAlert("Draw a scaffold with an R atom first.");
  });
  $("generate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const task = event.submitter ? event.submitter.value : "generate";
    generate(task);
  });
  // Without the editor (no script, an old browser) the rest of the page still works.
  setTimeout(() => {
    if (!window.jsmeApplet) {
      $("jsme").textContent = "The molecule editor did not load; paste SMILES instead.";
    }
  }, 20000);
}

wire();
loadModels();
