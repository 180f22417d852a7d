/* linecolor studio: the browser front end. Plain JavaScript, no build step, no external assets.
 *
 * Document model: a line layer (opaque, white paper, black ink) and a hint layer (RGBA, alpha > 0 = hint) of the same
 * size, shown as two stacked canvases; the result canvas on the right has the same size. Every edit goes through
 * `commit()`, which records an undo step, bumps `editVersion` and schedules a debounced colorize request. At most one
 * request to /api/colorize is in flight; edits made meanwhile are coalesced into one follow-up request, and a response
 * is shown only if it belongs to the current document (`docVersion`) and is newer than the result on screen.
 *
 * Test hooks (read-only, for the browser tests): body[data-ready], body[data-started] (start-up example loaded),
 * body[data-edit-version],
 * body[data-inflight], #result-canvas[data-edit-version] (edit version of the shown result), #seed value.
 *
 * Variations: "Variations" asks /api/variations for a few stochastic colourings as previews (#variations, one button per
 * seed, data-seed); a click colours the drawing at full size with that seed. After another edit, or a change of
 * latent shift, suggestion strength, shading, gap or palette, the strip is marked out of date (class "stale") until
 * asked for again; a new picture clears it.
 *
 * Regions: the server analyses the line layer once (its gap-closed regions) and answers X-Linecolor-Analysis; while the
 * line layer is unchanged the studio sends that id instead of the line (`analysis`), fetches the region map
 * (/api/regions/<id>) for the paint bucket and the region highlight under the pointer, and sends the line again when
 * the server no longer holds it (404 unknown_analysis). The gap setting (#gap) comes from /api/limits.
 *
 * Fill-guide controls: a model trained with the fill guide (/api/ready model.fill_guide) takes `suggestion_strength`
 * (0–1: how strongly its own colours show in unhinted regions) and `composite` (regions | network); they are sent
 * only for such a model and disabled otherwise.
 */
(function () {
  "use strict";

  const DEFAULT_SIZE = 512;
  const MIN_LONG_SIDE = 512;   // small pictures are scaled up to this long side
  const MAX_LONG_SIDE = 1024;  // large pictures are scaled down to this long side
  const DEBOUNCE_MS = 300;
  const REQUEST_TIMEOUT_MS = 120000;
  const MAX_HISTORY = 60;
  const MAX_HISTORY_BYTES = 256 * 1024 * 1024;
  const MAX_RECENT = 12;
  const MAX_BUSY_RETRIES = 5;
  const READY_POLL_MS = 10000;
  const COMPOSITE_LABELS = { regions: "flat regions", network: "network shading" };
  const STARTER_COLOURS = ["#e0483c", "#f4a261", "#f6d365", "#7bc67b", "#4d96e8", "#9b6fd6",
    "#f6d7c3", "#8b5a3c", "#2f3640", "#ffffff", "#ff8fab", "#56c2c6"];

  const $ = (id) => document.getElementById(id);
  const el = {};
  [
    "status", "busy", "busy-label", "not-ready", "not-ready-reason", "line-canvas", "hint-canvas", "result-canvas",
    "reference-canvas", "brush-cursor", "region-canvas", "gap", "stack", "drop-zone", "colorize", "undo", "redo", "mode", "seed",
    "latent-shift", "latent-shift-value", "suggestion-strength", "suggestion-strength-value", "composite",
    "color", "color-hex", "recent-colors", "brush-size", "brush-size-value",
    "suggestions", "suggestions-row",
    "palette-name", "palette-colors", "palette-add", "palette-load", "palette-save", "palette-input", "palette-snap",
    "examples", "file-input", "load-file", "cleanup", "thickness", "download", "download-psd", "download-ora",
    "download-hints", "download-line",
    "load-hints", "hints-input", "load-reference", "reference-input", "clear-reference", "clear-hints", "clear-all",
    "new-variation", "show-variations", "variations", "auto", "show-hints", "result-placeholder", "result-meta", "doc-size", "attributions",
  ].forEach((id) => { el[id] = $(id); });

  const lineCtx = el["line-canvas"].getContext("2d", { willReadFrequently: true });
  const hintCtx = el["hint-canvas"].getContext("2d", { willReadFrequently: true });
  const resultCtx = el["result-canvas"].getContext("2d", { willReadFrequently: true });
  const refCtx = el["reference-canvas"].getContext("2d", { willReadFrequently: true });

  const state = {
    tool: "hint",
    color: "#e0483c",
    size: 8,
    recent: STARTER_COLOURS.slice(),
    palette: loadStoredPalette(),  // {name, colors: [{hex, name}]}: the user's swatches, kept in localStorage
    ready: false,
    readyKnown: false,
    mode: "deterministic",
    seed: null,           // null: let the server choose (deterministic mode / first stochastic request)
    latentShift: 0,
    suggestionStrength: null,  // set at start: the model's default (/api/ready), else /api/limits'
    limits: null,         // GET /api/limits: modes, composites, seed / latent-shift / strength ranges and defaults
    gap: "auto",          // close gaps in the lines up to this many pixels ("auto": a few stroke widths)
    lineVersion: 0,       // bumped whenever the line layer changes (the server's analysis is of one version)
    analysis: null,       // { id, lineVersion, gap }: what the server analysed last
    regions: null,        // { id, w, h, labels: Uint32Array }: the region map of state.analysis, once fetched
    hoverRegion: 0,
    composite: "regions",
    fillGuide: null,      // whether the loaded model uses the fill guide (null: not known yet)
    hasReference: false,
    hasResult: false,
    docVersion: 0,        // bumped when the picture is replaced (new size or new line art)
    editVersion: 0,       // bumped on every edit of either layer
    shownEdit: -1,        // editVersion of the result on screen
    undo: [],
    redo: [],
    inflight: null,       // {controller, editVersion, docVersion}
    pending: false,       // a colorize was requested while one was in flight
    debounce: 0,
    busyCount: 0,
    examples: [],
    errors: 0,            // errors shown so far: a request only clears an error that was shown before it started
    stochasticSeed: null, // the last stochastic seed, shown again when stochastic mode comes back
    variations: null,     // {docVersion, editVersion}: what the strip of variations shows (null: nothing)
  };

  // ------------------------------------------------------------------------------------------ status & busy
  let statusTimer = 0;
  function setStatus(text, kind) {
    clearTimeout(statusTimer);
    el.status.textContent = text;
    el.status.className = "status" + (kind ? " " + kind : "");
    if (kind === "ok") statusTimer = setTimeout(() => { el.status.className = "status"; }, 4000);
  }
  function showError(message, requestId) {
    state.errors++;
    setStatus(message + (requestId ? "  (request " + requestId + ")" : ""), "error");
  }
  function busy(delta, label) {
    state.busyCount = Math.max(0, state.busyCount + delta);
    if (label && delta > 0) el["busy-label"].textContent = label;
    el.busy.hidden = state.busyCount === 0;
    el.busy.setAttribute("aria-hidden", state.busyCount === 0 ? "true" : "false");
    document.getElementById("result-panel").setAttribute("aria-busy", state.inflight ? "true" : "false");
  }
  function syncTestHooks() {
    document.body.dataset.editVersion = String(state.editVersion);
    document.body.dataset.inflight = state.inflight || state.pending || state.debounce ? "1" : "0";
    el["result-canvas"].dataset.editVersion = String(state.shownEdit);
    syncVariations();
  }

  // ------------------------------------------------------------------------------------------ HTTP helpers
  class ApiError extends Error {
    constructor(message, status, code, requestId, retryAfter) {
      super(message);
      this.status = status; this.code = code; this.requestId = requestId; this.retryAfter = retryAfter;
    }
  }
  async function apiError(resp) {
    let message = "The server answered " + resp.status + (resp.statusText ? " " + resp.statusText : "") + ".";
    let code = "http_" + resp.status;
    let requestId = resp.headers.get("X-Request-Id") || "";
    try {
      const body = await resp.json();
      if (body && body.error) {
        message = body.error.message || message;
        code = body.error.code || code;
        requestId = body.error.request_id || requestId;
      }
    } catch (e) { /* not JSON: keep the generic message */ }
    const retry = parseFloat(resp.headers.get("Retry-After") || "");
    return new ApiError(message, resp.status, code, requestId, Number.isFinite(retry) ? retry : null);
  }
  function withTimeout(controller, ms) {
    const t = setTimeout(() => controller.abort(new DOMException("timed out", "TimeoutError")), ms);
    return () => clearTimeout(t);
  }
  function canvasBlob(canvas) {
    return new Promise((resolve, reject) => {
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode the canvas as PNG"))), "image/png");
    });
  }
  function networkMessage(err) {
    if (err && err.name === "TimeoutError") return "The server took too long to answer.";
    return "Cannot reach the server (" + (err && err.message ? err.message : "network error") + ").";
  }

  // ------------------------------------------------------------------------------------------ document & layers
  function docWidth() { return el["line-canvas"].width; }
  function docHeight() { return el["line-canvas"].height; }

  function setDocSize(w, h) {
    for (const c of [el["line-canvas"], el["hint-canvas"], el["result-canvas"]]) {
      if (c.width !== w) c.width = w;
      if (c.height !== h) c.height = h;
    }
    el["doc-size"].textContent = w + " × " + h;
    document.documentElement.style.setProperty("--ar", String(w / h));
  }
  function fillWhite(ctx) {
    ctx.save();
    ctx.globalCompositeOperation = "source-over";
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    ctx.restore();
  }
  function clearResult() {
    resultCtx.clearRect(0, 0, el["result-canvas"].width, el["result-canvas"].height);
    state.hasResult = false;
    state.shownEdit = -1;
    el["result-placeholder"].hidden = false;
    el.download.disabled = true;
    el["download-psd"].disabled = true;
    el["download-ora"].disabled = true;
    syncTestHooks();
  }
  function snapshot(withLine, withHint) {
    const w = docWidth(), h = docHeight();
    return {
      w, h,
      line: withLine ? lineCtx.getImageData(0, 0, w, h) : null,
      hint: withHint ? hintCtx.getImageData(0, 0, w, h) : null,
    };
  }
  function snapshotBytes(s) { return (s.line ? s.line.data.length : 0) + (s.hint ? s.hint.data.length : 0); }
  function restore(s) {
    if (s.w !== docWidth() || s.h !== docHeight()) {
      setDocSize(s.w, s.h);
      state.docVersion++;
      clearResult();
    }
    if (s.line) { lineCtx.putImageData(s.line, 0, 0); lineChanged(); }
    if (s.hint) hintCtx.putImageData(s.hint, 0, 0);
  }
  /** The line layer changed: the server's analysis of it (and the region map) no longer applies. */
  function lineChanged() {
    state.lineVersion++;
    state.regions = null;
    clearRegionHighlight();
  }

  /** Record an undo step: `before` is a snapshot taken before the change (only the layers that changed). */
  function commit(before, label) {
    if (before.line) lineChanged();
    state.undo.push({ before, label });
    state.redo.length = 0;
    let bytes = state.undo.reduce((n, e) => n + snapshotBytes(e.before), 0);
    while (state.undo.length > MAX_HISTORY || (bytes > MAX_HISTORY_BYTES && state.undo.length > 1)) {
      bytes -= snapshotBytes(state.undo.shift().before);
    }
    edited();
  }
  function edited() {
    state.editVersion++;
    updateHistoryButtons();
    scheduleColorize();
    syncTestHooks();
  }
  function updateHistoryButtons() {
    el.undo.disabled = state.undo.length === 0;
    el.redo.disabled = state.redo.length === 0;
  }
  function stepHistory(from, to, verb) {
    const entry = from.pop();
    if (!entry) return;
    const b = entry.before;
    const sizeChange = b.w !== docWidth() || b.h !== docHeight();
    const current = snapshot(!!b.line || sizeChange, !!b.hint || sizeChange);
    restore(b);
    to.push({ before: current, label: entry.label });
    setStatus(verb + " " + entry.label + ".");
    edited();
  }
  function undo() { if (!strokeActive()) stepHistory(state.undo, state.redo, "Undid"); }
  function redo() { if (!strokeActive()) stepHistory(state.redo, state.undo, "Redid"); }

  /** Hints are hard-edged: anti-aliased edge pixels become fully opaque or fully transparent. */
  function hardenHints(x0, y0, x1, y1) {
    const w = docWidth(), h = docHeight();
    x0 = Math.max(0, Math.floor(x0)); y0 = Math.max(0, Math.floor(y0));
    x1 = Math.min(w, Math.ceil(x1)); y1 = Math.min(h, Math.ceil(y1));
    if (x1 <= x0 || y1 <= y0) return;
    const img = hintCtx.getImageData(x0, y0, x1 - x0, y1 - y0);
    const d = img.data;
    for (let i = 0; i < d.length; i += 4) {
      const a = d[i + 3];
      if (a === 0 || a === 255) continue;
      if (a < 128) { d[i] = d[i + 1] = d[i + 2] = d[i + 3] = 0; } else { d[i + 3] = 255; }
    }
    hintCtx.putImageData(img, x0, y0);
  }

  function hexToRgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  function rgbToHex(r, g, b) {
    return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
  }

  // ------------------------------------------------------------------------------------------ drawing
  let stroke = null; // {pointerId, tool, before, last, box}
  function strokeActive() { return stroke !== null; }

  function toCanvasXY(canvas, evt) {
    const r = canvas.getBoundingClientRect();
    return {
      x: (evt.clientX - r.left) * (canvas.width / r.width),
      y: (evt.clientY - r.top) * (canvas.height / r.height),
    };
  }
  function strokeStyle(tool) {
    if (tool === "hint") return { ctx: hintCtx, op: "source-over", color: state.color };
    if (tool === "eraser") return { ctx: hintCtx, op: "destination-out", color: "#000000" };
    if (tool === "pen") return { ctx: lineCtx, op: "source-over", color: "#000000" };
    return { ctx: lineCtx, op: "source-over", color: "#ffffff" }; // line-eraser
  }
  function widen(box, p, r) {
    box[0] = Math.min(box[0], p.x - r); box[1] = Math.min(box[1], p.y - r);
    box[2] = Math.max(box[2], p.x + r); box[3] = Math.max(box[3], p.y + r);
  }
  function drawSegment(a, b) {
    const s = strokeStyle(stroke.tool);
    const ctx = s.ctx;
    const size = stroke.size;
    ctx.save();
    ctx.globalCompositeOperation = s.op;
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = size;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    if (a.x === b.x && a.y === b.y) {
      ctx.beginPath();
      ctx.arc(a.x, a.y, size / 2, 0, Math.PI * 2);
      ctx.fill();
    } else {
      ctx.beginPath();
      ctx.moveTo(a.x, a.y);
      ctx.lineTo(b.x, b.y);
      ctx.stroke();
    }
    ctx.restore();
    widen(stroke.box, a, size / 2 + 2);
    widen(stroke.box, b, size / 2 + 2);
  }

  function onPointerDown(evt) {
    if (evt.button !== 0 && evt.pointerType === "mouse") return;
    if (stroke) return;
    // preventDefault below keeps the focus where it was; a text field that kept it would take Ctrl+Z as its own
    // text undo instead of undoing this stroke.
    if (isTextTarget(document.activeElement)) document.activeElement.blur();
    const p = toCanvasXY(el["hint-canvas"], evt);
    if (state.tool === "eyedropper" || evt.altKey) {
      pickFromDocument(p);
      evt.preventDefault();
      return;
    }
    if (state.tool === "bucket") {
      evt.preventDefault();
      bucketFill(p);
      return;
    }
    evt.preventDefault();
    el["hint-canvas"].setPointerCapture(evt.pointerId);
    const onLine = state.tool === "pen" || state.tool === "line-eraser";
    stroke = {
      pointerId: evt.pointerId, tool: state.tool, size: state.size, last: p,
      before: snapshot(onLine, !onLine), box: [Infinity, Infinity, -Infinity, -Infinity],
    };
    drawSegment(p, p);
  }
  function onPointerMove(evt) {
    moveCursor(evt);
    if (!stroke) highlightRegionAt(toCanvasXY(el["hint-canvas"], evt));
    if (!stroke || evt.pointerId !== stroke.pointerId) return;
    const events = typeof evt.getCoalescedEvents === "function" ? evt.getCoalescedEvents() : [];
    const list = events.length ? events : [evt];
    for (const e of list) {
      const p = toCanvasXY(el["hint-canvas"], e);
      drawSegment(stroke.last, p);
      stroke.last = p;
    }
  }
  function onPointerUp(evt) {
    if (!stroke || evt.pointerId !== stroke.pointerId) return;
    const s = stroke;
    stroke = null;
    if (el["hint-canvas"].hasPointerCapture(evt.pointerId)) el["hint-canvas"].releasePointerCapture(evt.pointerId);
    if (s.tool === "hint" || s.tool === "eraser") hardenHints(s.box[0], s.box[1], s.box[2], s.box[3]);
    if (s.tool === "hint") rememberColour(state.color);
    const labels = { hint: "hint stroke", eraser: "hint erase", pen: "pen stroke", "line-eraser": "line erase" };
    commit(s.before, labels[s.tool] || "stroke");
  }
  function onPointerCancel(evt) {
    if (!stroke || evt.pointerId !== stroke.pointerId) return;
    restore(stroke.before); // a cancelled touch (e.g. a scroll gesture) leaves no trace
    stroke = null;
  }

  function moveCursor(evt) {
    const cur = el["brush-cursor"];
    if (state.tool === "eyedropper" || state.tool === "bucket" || evt.pointerType === "touch") {
      cur.hidden = true;
      return;
    }
    const c = el["hint-canvas"];
    const r = c.getBoundingClientRect();
    const scale = r.width / c.width;
    const d = Math.max(4, state.size * scale);
    cur.style.width = d + "px";
    cur.style.height = d + "px";
    cur.style.left = (evt.clientX - r.left) + "px";
    cur.style.top = (evt.clientY - r.top) + "px";
    cur.hidden = false;
  }

  // ------------------------------------------------------------------------------------------ tools & colours
  function setTool(tool) {
    state.tool = tool;
    document.body.dataset.tool = tool;
    document.querySelectorAll(".tool").forEach((b) => {
      const on = b.dataset.tool === tool;
      b.classList.toggle("active", on);
      b.setAttribute("aria-checked", on ? "true" : "false");
    });
  }
  function setColour(hex, fromPicker) {
    hex = hex.toLowerCase();
    if (!/^#[0-9a-f]{6}$/.test(hex)) return false;
    state.color = hex;
    if (el.color.value.toLowerCase() !== hex) el.color.value = hex;
    if (el["color-hex"].value.toLowerCase() !== hex) el["color-hex"].value = hex;
    renderSwatches();
    if (fromPicker) setStatus("Picked " + hex + ".", "ok");
    return true;
  }
  // ------------------------------------------------------------------------------------------ palette
  // A function, not a const: state's initialiser calls loadStoredPalette before this section has run.
  function paletteKey() { return "linecolor.palette"; }
  function loadStoredPalette() {
    try {
      const p = JSON.parse(localStorage.getItem(paletteKey()) || "null");
      if (p && Array.isArray(p.colors) && p.colors.every((c) => /^#[0-9a-f]{6}$/.test(c.hex))) {
        return { name: String(p.name || "linecolor"), colors: p.colors.map((c) => ({ hex: c.hex, name: String(c.name || "") })) };
      }
    } catch (err) { /* storage unavailable or damaged: start empty */ }
    return { name: "linecolor", colors: [] };
  }
  function storePalette() {
    try { localStorage.setItem(paletteKey(), JSON.stringify(state.palette)); } catch (err) { /* private mode */ }
  }
  function maxPaletteColours() {
    return state.limits && state.limits.palette ? state.limits.palette.max_colours : 256;
  }
  function renderPalette() {
    const box = el["palette-colors"];
    box.textContent = "";
    el["palette-name"].textContent = state.palette.colors.length ? state.palette.name : "(empty)";
    for (const entry of state.palette.colors) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch" + (entry.hex === state.color ? " current" : "");
      b.style.background = entry.hex;
      b.title = (entry.name ? entry.name + " " : "") + entry.hex;
      b.setAttribute("aria-label", "Use palette colour " + (entry.name || entry.hex));
      b.dataset.color = entry.hex;
      b.addEventListener("click", (evt) => {
        if (evt.shiftKey) {
          state.palette.colors = state.palette.colors.filter((c) => c !== entry);
          paletteChanged();
          return;
        }
        setColour(entry.hex);
        if (state.tool !== "hint") setTool("hint");
      });
      b.addEventListener("dblclick", () => {
        const name = window.prompt("Name for " + entry.hex, entry.name);
        if (name === null) return;
        entry.name = name.replace(/[\r\n\t]/g, " ").trim().slice(0, 80);
        paletteChanged();
      });
      box.appendChild(b);
    }
    el["palette-save"].disabled = state.palette.colors.length === 0;
  }
  function paletteChanged() {
    storePalette();
    renderPalette();
    if (el["palette-snap"].checked) scheduleColorize();
  }
  /** The palette's colours for /api/colorize, when the user asked for suggestions from it; else null. */
  function paletteForRequest() {
    if (!el["palette-snap"].checked || state.palette.colors.length === 0) return null;
    return JSON.stringify(state.palette.colors.map((c) => c.hex));
  }
  /** A GIMP palette (.gpl): "GIMP Palette", optional "Name:" / "Columns:", "#" comments, "R G B [name]" lines. */
  function parseGpl(text, fileName) {
    const lines = text.replace(/^\ufeff/, "").split(/\r?\n/);
    if (lines[0].trim() !== "GIMP Palette") throw new Error(fileName + " is not a GIMP palette (.gpl).");
    const palette = { name: fileName.replace(/\.gpl$/i, ""), colors: [] };
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i].trim();
      if (!line || line.startsWith("#") || line.startsWith("Columns:")) continue;
      if (line.startsWith("Name:")) { palette.name = line.slice(5).trim() || palette.name; continue; }
      const m = /^(\d{1,3})\s+(\d{1,3})\s+(\d{1,3})(?:\s+(.*))?$/.exec(line);
      if (!m || [m[1], m[2], m[3]].some((v) => Number(v) > 255)) {
        throw new Error(fileName + ", line " + (i + 1) + ": expected 'R G B [name]' with 0–255.");
      }
      palette.colors.push({ hex: rgbToHex(Number(m[1]), Number(m[2]), Number(m[3])), name: (m[4] || "").trim() });
      if (palette.colors.length > maxPaletteColours()) {
        throw new Error(fileName + " has more than " + maxPaletteColours() + " colours.");
      }
    }
    if (!palette.colors.length) throw new Error(fileName + " has no colours.");
    return palette;
  }
  function gplText(palette) {
    const rows = ["GIMP Palette", "Name: " + palette.name, "Columns: 8", "#"];
    for (const c of palette.colors) {
      const rgb = [1, 3, 5].map((i) => String(parseInt(c.hex.slice(i, i + 2), 16)).padStart(3, " "));
      rows.push(rgb.join(" ") + (c.name ? "\t" + c.name : ""));
    }
    return rows.join("\n") + "\n";
  }

  function rememberColour(hex) {
    state.recent = [hex].concat(state.recent.filter((c) => c !== hex)).slice(0, MAX_RECENT);
    renderSwatches();
  }
  function renderSwatches() {
    renderPalette();
    const box = el["recent-colors"];
    box.textContent = "";
    for (const c of state.recent) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch" + (c === state.color ? " current" : "");
      b.style.background = c;
      b.title = c;
      b.setAttribute("aria-label", "Use colour " + c);
      b.dataset.color = c;
      b.addEventListener("click", () => { setColour(c); if (state.tool !== "hint") setTool("hint"); });
      box.appendChild(b);
    }
  }
  function pickAt(ctx, x, y) {
    x = Math.floor(x); y = Math.floor(y);
    if (x < 0 || y < 0 || x >= ctx.canvas.width || y >= ctx.canvas.height) return null;
    const d = ctx.getImageData(x, y, 1, 1).data;
    if (d[3] === 0) return null;
    return rgbToHex(d[0], d[1], d[2]);
  }
  function finishPick(hex) {
    if (!hex) { setStatus("Nothing to pick there."); return; }
    setColour(hex, true);
    if (state.tool === "eyedropper") setTool("hint"); // a picked colour is for painting hints
  }
  /** On the drawing: the result's colour at that point if there is a result, else the hint under the pointer. */
  function pickFromDocument(p) {
    const fromResult = state.hasResult ? pickAt(resultCtx, p.x, p.y) : null;
    finishPick(fromResult || pickAt(hintCtx, p.x, p.y));
  }

  // ------------------------------------------------------------------------------------------ colorize
  function scheduleColorize() {
    clearTimeout(state.debounce);
    state.debounce = 0;
    if (!el.auto.checked || !state.ready) { syncTestHooks(); return; }
    state.debounce = setTimeout(() => { state.debounce = 0; colorize(false); }, DEBOUNCE_MS);
    syncTestHooks();
  }

  /** The fields every colouring request shares: the line (or the server's analysis of it), the hints, the latent
   *  shift and the fill-guide controls. */
  async function drawingForm(reuse) {
    const form = new FormData();
    if (reuse) form.append("analysis", reuse.id);
    else {
      form.append("line", await canvasBlob(el["line-canvas"]), "line.png");
      form.append("gap", state.gap);
    }
    form.append("hints", await canvasBlob(el["hint-canvas"]), "hints.png");
    form.append("latent_shift", state.latentShift.toFixed(1));
    if (state.fillGuide !== false) {
      form.append("suggestion_strength", formatStrength(state.suggestionStrength));
      form.append("composite", state.composite);
    }
    const palette = paletteForRequest();
    if (palette !== null && state.fillGuide !== false) form.append("palette", palette);
    return form;
  }
  /** The /api/colorize form for what the studio shows now: the drawing's fields, the mode and its seed or
   *  reference. */
  async function colorizeForm(reuse) {
    const form = await drawingForm(reuse);
    form.append("mode", state.mode);
    if (state.seed !== null) form.append("seed", String(state.seed));
    if (state.mode === "reference" && state.hasReference) {
      form.append("reference", await canvasBlob(el["reference-canvas"]), "reference.png");
    }
    return form;
  }

  // ------------------------------------------------------------------------------------------ variations
  /** Ask for the server's default number of stochastic colourings of the drawing as it is now (the mode's latent
   *  shift and fill-guide controls apply) and show them as a strip of previews to choose from. */
  async function showVariations() {
    if (!state.ready || state.hasStyle === false) return;
    const job = { docVersion: state.docVersion, editVersion: state.editVersion, controls: variationControls() };
    busy(+1, "Colouring variations…");
    el["show-variations"].disabled = true;
    try {
      const { resp, sentLine } = await postDrawing("api/variations", async (reuse) => {
        const form = await drawingForm(reuse);
        if (state.limits && state.limits.variations) form.append("count", String(state.limits.variations.count));
        return form;
      });
      const body = await resp.json();
      if (body.analysis) rememberAnalysis(body.analysis, sentLine);
      if (job.docVersion !== state.docVersion) return;  // another picture by now
      renderVariations(body.variations, job);
      setStatus("Click a variation to use its seed.", "ok");
    } catch (err) {
      if (err instanceof ApiError) showError(err.message, err.requestId);
      else showError(networkMessage(err));
    } finally {
      busy(-1);
      el["show-variations"].disabled = !state.ready || state.hasStyle === false;
    }
  }
  function renderVariations(variations, job) {
    const strip = el.variations;
    strip.replaceChildren();
    for (const v of variations) {
      const seed = String(v.seed);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "variation";
      button.dataset.seed = seed;
      button.title = "Use this variation (seed " + seed + ")";
      button.setAttribute("aria-label", "Variation with seed " + seed);
      const img = document.createElement("img");
      img.src = v.image;
      img.alt = "";
      const caption = document.createElement("span");
      caption.textContent = seed;
      button.append(img, caption);
      button.addEventListener("click", () => chooseVariation(v.seed));
      strip.appendChild(button);
    }
    state.variations = { docVersion: job.docVersion, editVersion: job.editVersion, controls: job.controls };
    strip.hidden = false;
    syncVariations();
  }
  function chooseVariation(seed) {
    if (state.mode !== "stochastic") setMode("stochastic");
    state.seed = seed;
    el.seed.value = String(seed);
    colorize(true);
  }
  /** The controls a preview was coloured with besides the seed: another value means another picture. */
  function variationControls() {
    return JSON.stringify([state.latentShift, state.suggestionStrength, state.composite, state.gap,
      paletteForRequest()]);
  }
  /** Keep the strip honest: gone with its picture, marked out of date after an edit or a change of the controls it
   *  was coloured with, the shown seed pressed. */
  function syncVariations() {
    const shown = state.variations;
    if (!shown) return;
    if (shown.docVersion !== state.docVersion) {
      state.variations = null;
      el.variations.replaceChildren();
      el.variations.hidden = true;
      return;
    }
    el.variations.classList.toggle("stale", shown.editVersion !== state.editVersion ||
      shown.controls !== variationControls());
    for (const b of el.variations.children) {
      const on = state.mode === "stochastic" && String(state.seed) === b.dataset.seed;
      b.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  /** POST the form `makeForm(reuse)` builds (`reuse`: the server's analysis of the line, or null: send the line
   *  itself) to `path`; when the server no longer holds the analysis (404) the line is sent once more. Resolves to
   *  the ok response and the line version it was for; rejects with an ApiError for any other refusal. */
  async function postDrawing(path, makeForm) {
    let reuse = currentAnalysis();
    for (;;) {
      const sentLine = state.lineVersion;
      const form = await makeForm(reuse);
      const controller = new AbortController();
      const stopTimer = withTimeout(controller, REQUEST_TIMEOUT_MS);
      let resp;
      try {
        resp = await fetch(path, { method: "POST", body: form, signal: controller.signal });
      } finally { stopTimer(); }
      if (resp.status === 404 && reuse) { state.analysis = null; reuse = null; continue; }
      if (!resp.ok) throw await apiError(resp);
      return { resp, sentLine };
    }
  }

  /** Download the shown result as layers (format "psd" or "ora"): the same request as the picture, so the same
   *  seed gives the same colours; flats, shading, lines and hidden hints on their own layers. */
  async function downloadLayered(format) {
    if (!state.hasResult || !state.ready) return;
    busy(+1, "Preparing the " + format.toUpperCase() + " file…");
    try {
      const { resp } = await postDrawing("api/colorize", async (reuse) => {
        const form = await colorizeForm(reuse);
        form.append("format", format);
        return form;
      });
      const url = URL.createObjectURL(await resp.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = "linecolor-result" + (state.seed !== null ? "-seed" + state.seed : "") + "." + format;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      setStatus("Saved the layers as " + format.toUpperCase() + ".", "ok");
    } catch (err) {
      if (err instanceof ApiError) showError(err.message, err.requestId);
      else showError(networkMessage(err));
    } finally {
      busy(-1);
    }
  }

  async function colorize(explicit) {
    clearTimeout(state.debounce);
    state.debounce = 0;
    if (!state.ready) {
      if (explicit) showError("No model is loaded on the server, so colorizing is disabled.");
      syncTestHooks();
      return;
    }
    if (state.mode === "reference" && !state.hasReference) {
      const msg = "Reference mode needs a reference image: load one below the result, or switch the mode.";
      if (explicit) showError(msg); else setStatus(msg);
      syncTestHooks();
      return;
    }
    if (state.inflight) { state.pending = true; syncTestHooks(); return; }
    const job = { controller: new AbortController(), editVersion: state.editVersion, docVersion: state.docVersion,
                  errors: state.errors };
    state.inflight = job;
    state.pending = false;
    syncTestHooks();
    busy(+1, "Colorizing…");
    const t0 = performance.now();
    let retries = 0;
    try {
      for (;;) {
        const reuse = currentAnalysis();
        const sentLine = state.lineVersion;
        const form = await colorizeForm(reuse);
        const stopTimer = withTimeout(job.controller, REQUEST_TIMEOUT_MS);
        let resp;
        try {
          resp = await fetch("api/colorize", { method: "POST", body: form, signal: job.controller.signal });
        } finally { stopTimer(); }
        if (resp.status === 503 && retries < MAX_BUSY_RETRIES && resp.headers.get("Retry-After")) {
          const err = await apiError(resp);
          retries++;
          const wait = Math.min(10, Math.max(0.5, err.retryAfter || 1));
          setStatus("Server busy, retrying in " + wait.toFixed(0) + " s…");
          await new Promise((r) => setTimeout(r, wait * 1000));
          if (job.docVersion !== state.docVersion) return;
          continue;
        }
        if (resp.status === 404 && reuse) {  // the server dropped the analysis: send the line itself
          state.analysis = null;
          continue;
        }
        if (!resp.ok) throw await apiError(resp);
        const analysisId = resp.headers.get("X-Linecolor-Analysis");
        if (analysisId) rememberAnalysis(analysisId, sentLine);
        const seed = resp.headers.get("X-Linecolor-Seed");
        const requestId = resp.headers.get("X-Request-Id") || "";
        const blob = await resp.blob();
        if (job.docVersion !== state.docVersion || job.editVersion < state.shownEdit) return; // stale
        const bitmap = await createImageBitmap(blob);
        try {
          if (job.docVersion !== state.docVersion) return;
          const rc = el["result-canvas"];
          resultCtx.clearRect(0, 0, rc.width, rc.height);
          resultCtx.drawImage(bitmap, 0, 0, rc.width, rc.height);
        } finally { bitmap.close(); }
        state.hasResult = true;
        state.shownEdit = job.editVersion;
        el["result-placeholder"].hidden = true;
        el.download.disabled = false;
        el["download-psd"].disabled = false;
        el["download-ora"].disabled = false;
        if (seed !== null && /^-?\d+$/.test(seed)) {
          state.seed = parseInt(seed, 10);
          el.seed.value = seed;
        }
        const ms = Math.round(performance.now() - t0);
        el["result-meta"].textContent = "mode " + state.mode + (state.mode === "stochastic" ? " · seed " + (seed ?? "–") : "") + " · latent shift " +
          state.latentShift.toFixed(1) +
          (state.fillGuide !== false ? " · suggestions " + formatStrength(state.suggestionStrength) + " · " +
            (COMPOSITE_LABELS[state.composite] || state.composite) : "") +
          " · " + ms + " ms" + (requestId ? " · request " + requestId : "");
        // An error shown while this request ran (a refused file, say) is news about something else: keep it.
        if (state.errors === job.errors && (explicit || el.status.classList.contains("error"))) {
          setStatus("Colorized in " + ms + " ms.", "ok");
        }
        return;
      }
    } catch (err) {
      if (job.controller.signal.aborted && !(err && err.name === "TimeoutError") &&
          !(job.controller.signal.reason && job.controller.signal.reason.name === "TimeoutError")) {
        return; // replaced by a new picture: nothing to report
      }
      if (err instanceof ApiError) {
        showError(err.message, err.requestId);
        if (err.status === 503 && !err.retryAfter) checkReady();
      } else {
        showError(networkMessage(err));
      }
    } finally {
      if (state.inflight === job) state.inflight = null;
      busy(-1);
      const again = state.pending;
      state.pending = false;
      if (again && state.ready) colorize(false); else syncTestHooks();
    }
  }
  // ------------------------------------------------------------------------------------------ regions
  function currentAnalysis() {
    const a = state.analysis;
    return a && a.lineVersion === state.lineVersion && a.gap === state.gap ? a : null;
  }
  function rememberAnalysis(id, lineVersion) {
    if (lineVersion !== state.lineVersion) return;  // the line changed while the server was working
    if (!state.analysis || state.analysis.id !== id) state.regions = null;
    state.analysis = { id, lineVersion, gap: state.gap };
  }
  /** The region map of the current line layer: analysed (if need be) and fetched once per line version. */
  async function regionMap() {
    if (state.regions && currentAnalysis() && state.regions.id === state.analysis.id) return state.regions;
    const lineVersion = state.lineVersion;
    let analysis = currentAnalysis();
    if (!analysis) {
      const form = new FormData();
      form.append("line", await canvasBlob(el["line-canvas"]), "line.png");
      form.append("gap", state.gap);
      const resp = await fetch("api/analyse", { method: "POST", body: form });
      if (!resp.ok) throw await apiError(resp);
      rememberAnalysis((await resp.json()).id, lineVersion);
      analysis = currentAnalysis();
      if (!analysis) return null;
    }
    const resp = await fetch("api/regions/" + analysis.id, { cache: "no-store" });
    if (resp.status === 404) { state.analysis = null; return null; }
    if (!resp.ok) throw await apiError(resp);
    const bmp = await createImageBitmap(await resp.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    try {
      const c = document.createElement("canvas");
      c.width = bmp.width;
      c.height = bmp.height;
      const ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(bmp, 0, 0);
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      const labels = new Uint32Array(c.width * c.height);
      for (let i = 0, j = 0; i < labels.length; i++, j += 4) labels[i] = (px[j] << 16) | (px[j + 1] << 8) | px[j + 2];
      if (lineVersion !== state.lineVersion || c.width !== docWidth() || c.height !== docHeight()) return null;
      state.regions = { id: analysis.id, w: c.width, h: c.height, labels };
      return state.regions;
    } finally { bmp.close(); }
  }
  function regionAt(map, p) {
    const x = Math.floor(p.x), y = Math.floor(p.y);
    if (x < 0 || y < 0 || x >= map.w || y >= map.h) return 0;
    return map.labels[y * map.w + x];
  }
  // ------------------------------------------------------------------------------------------ suggested here
  const SUGGEST_DELAY_MS = 350;
  let suggestTimer = 0;
  /** After the pointer rests on a region: ask the server for the model's colours there (cached per region and
   *  edit), shown as swatches below the drawing; a click fills the region with one (as the paint bucket). */
  function scheduleSuggestions(region, p) {
    clearTimeout(suggestTimer);
    if (!region || !state.ready || !currentAnalysis()) return;
    suggestTimer = setTimeout(() => showSuggestions(region, { x: p.x, y: p.y }), SUGGEST_DELAY_MS);
  }
  async function showSuggestions(region, p) {
    const palette = paletteForRequest();
    const key = region + ":" + state.editVersion + ":" + (palette || "");
    if (state.suggestKey === key) return;
    const reuse = currentAnalysis();
    if (!reuse) return;
    const form = new FormData();
    form.append("analysis", reuse.id);
    form.append("hints", await canvasBlob(el["hint-canvas"]), "hints.png");
    form.append("x", String(Math.floor(p.x)));
    form.append("y", String(Math.floor(p.y)));
    if (palette !== null) form.append("palette", palette);
    let colours;
    try {
      const resp = await fetch("api/suggest", { method: "POST", body: form });
      if (!resp.ok) return;  // a dropped analysis or a busy server: the next rest asks again
      colours = (await resp.json()).colours;
    } catch (err) { return; }
    if (state.hoverRegion !== region) return;  // the pointer moved on meanwhile
    state.suggestKey = key;
    const box = el.suggestions;
    box.textContent = "";
    for (const hex of colours) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch";
      b.style.background = hex;
      b.title = hex + ": fill this region";
      b.setAttribute("aria-label", "Fill the region with the suggested colour " + hex);
      b.dataset.color = hex;
      b.addEventListener("click", () => { setColour(hex); bucketFill(p); });
      box.appendChild(b);
    }
    el["suggestions-row"].hidden = colours.length === 0;
  }

  /** Paint bucket: every pixel of the region under the click becomes a hint of the current colour (undoable). */
  async function bucketFill(p) {
    if (!state.ready) { showError("No model is loaded on the server, so regions cannot be found."); return; }
    let map;
    try {
      busy(+1, "Finding regions…");
      map = await regionMap();
    } catch (err) {
      showError(err instanceof ApiError ? err.message : networkMessage(err));
      return;
    } finally { busy(-1); }
    if (!map) { setStatus("The drawing changed meanwhile: click again."); return; }
    const region = regionAt(map, p);
    if (!region) return;
    const before = snapshot(false, true);
    const img = hintCtx.getImageData(0, 0, map.w, map.h);
    const [r, g, b] = hexToRgb(state.color);
    for (let i = 0; i < map.labels.length; i++) {
      if (map.labels[i] !== region) continue;
      const j = 4 * i;
      img.data[j] = r; img.data[j + 1] = g; img.data[j + 2] = b; img.data[j + 3] = 255;
    }
    hintCtx.putImageData(img, 0, 0);
    rememberColour(state.color);
    commit(before, "paint bucket");
  }
  /** Outline the region under the pointer (once its map is known), so a user sees what a click or a hint fills. */
  function highlightRegionAt(p) {
    const map = state.regions;
    state.lastPointer = p;
    if (!map && currentAnalysis() && !state.fetchingRegions) {  // the server knows the regions: fetch them once
      state.fetchingRegions = true;
      regionMap().catch(() => null).finally(() => {
        state.fetchingRegions = false;
        if (state.regions && state.lastPointer) highlightRegionAt(state.lastPointer);  // where the pointer is now
      });
    }
    if (!map || state.tool === "pen" || state.tool === "line-eraser") { clearRegionHighlight(); return; }
    const region = regionAt(map, p);
    if (region === state.hoverRegion) return;
    state.hoverRegion = region;
    scheduleSuggestions(region, p);
    const c = el["region-canvas"];
    const ctx = c.getContext("2d");
    if (c.width !== map.w || c.height !== map.h) { c.width = map.w; c.height = map.h; }
    const img = ctx.createImageData(map.w, map.h);
    if (region) {
      for (let i = 0; i < map.labels.length; i++) {
        if (map.labels[i] === region) { img.data[4 * i] = 40; img.data[4 * i + 1] = 110; img.data[4 * i + 2] = 230; img.data[4 * i + 3] = 56; }
      }
    }
    ctx.putImageData(img, 0, 0);
    document.body.dataset.hoverRegion = String(region);
  }
  function clearRegionHighlight() {
    state.hoverRegion = 0;
    const c = el["region-canvas"];
    if (c) c.getContext("2d").clearRect(0, 0, c.width, c.height);
    document.body.dataset.hoverRegion = "0";
  }

  function abortInflight() {
    if (state.inflight) state.inflight.controller.abort();
    state.pending = false;
  }

  // ------------------------------------------------------------------------------------------ loading pictures
  function fitSize(w, h) {
    const long = Math.max(w, h);
    let scale = 1;
    if (long > MAX_LONG_SIDE) scale = MAX_LONG_SIDE / long;
    else if (long < MIN_LONG_SIDE) scale = MIN_LONG_SIDE / long;
    return [Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale))];
  }
  async function decodeImage(source) {
    try {
      return await createImageBitmap(source);
    } catch (e) {
      throw new Error("This file is not an image the browser can read (use PNG, JPEG or WebP).");
    }
  }
  /** Replace the picture: the line layer gets `bitmap` on white, the hint layer is cleared (one undo step). */
  function setLineArt(bitmap, label) {
    const [w, h] = fitSize(bitmap.width, bitmap.height);
    const before = snapshot(true, true);
    abortInflight();
    setDocSize(w, h);
    fillWhite(lineCtx);
    lineCtx.imageSmoothingEnabled = true;
    lineCtx.imageSmoothingQuality = "high";
    lineCtx.drawImage(bitmap, 0, 0, w, h);
    hintCtx.clearRect(0, 0, w, h);
    state.docVersion++;
    clearResult();
    commit(before, label);
  }
  async function loadLineFile(file) {
    if (!file) return;
    if (file.type && !/^image\/(png|jpeg|webp)$/.test(file.type)) {
      showError("Unsupported file type " + file.type + ": use a PNG, JPEG or WebP image.");
      return;
    }
    try {
      const bmp = await decodeImage(file);
      try { setLineArt(bmp, "load " + (file.name || "image")); } finally { bmp.close(); }
      setStatus("Loaded " + (file.name || "image") + " (" + docWidth() + " × " + docHeight() + ").", "ok");
    } catch (err) { showError(err.message); }
  }
  async function loadExample(id) {
    const ex = state.examples.find((e) => e.id === id);
    if (!ex) return;
    busy(+1, "Loading example…");
    try {
      const resp = await fetch(ex.url);
      if (!resp.ok) throw new Error("Could not load the example " + ex.name + " (HTTP " + resp.status + ").");
      const bmp = await decodeImage(await resp.blob());
      try { setLineArt(bmp, "example " + ex.name); } finally { bmp.close(); }
      setStatus(ex.kind === "sketch"
        ? "Loaded the sketch " + ex.name + ". Press “Clean up sketch” to turn it into line art."
        : "Loaded " + ex.name + ". Paint hints on it.", "ok");
    } catch (err) {
      showError(err.message);
    } finally { busy(-1); }
  }
  async function cleanupSketch() {
    const w = docWidth(), h = docHeight();
    const doc = state.docVersion;
    el.cleanup.disabled = true;
    busy(+1, "Cleaning up…");
    const controller = new AbortController();
    const stopTimer = withTimeout(controller, REQUEST_TIMEOUT_MS);
    try {
      const form = new FormData();
      form.append("image", await canvasBlob(el["line-canvas"]), "sketch.png");
      if (el.thickness.value) form.append("thickness", el.thickness.value);
      const resp = await fetch("api/lineart", { method: "POST", body: form, signal: controller.signal });
      if (!resp.ok) throw await apiError(resp);
      const bmp = await decodeImage(await resp.blob());
      try {
        if (doc !== state.docVersion || w !== docWidth() || h !== docHeight()) {
          setStatus("The picture changed while cleaning up; the clean-up result was dropped.");
          return;
        }
        const before = snapshot(true, false);
        fillWhite(lineCtx);
        lineCtx.drawImage(bmp, 0, 0, w, h);
        commit(before, "clean-up");
      } finally { bmp.close(); }
      setStatus("Cleaned up the sketch (undo brings it back).", "ok");
    } catch (err) {
      if (err instanceof ApiError) showError(err.message, err.requestId);
      else if (err && (err.name === "AbortError" || err.name === "TimeoutError" || err instanceof TypeError)) showError(networkMessage(err));
      else showError(err.message || String(err));
    } finally {
      stopTimer();
      el.cleanup.disabled = false;
      busy(-1);
    }
  }
  async function loadHintsFile(file) {
    if (!file) return;
    try {
      const bmp = await decodeImage(file);
      try {
        const w = docWidth(), h = docHeight();
        const before = snapshot(false, true);
        hintCtx.clearRect(0, 0, w, h);
        hintCtx.imageSmoothingEnabled = false; // keep hint colours exact when the sizes differ
        hintCtx.drawImage(bmp, 0, 0, w, h);
        hintCtx.imageSmoothingEnabled = true;
        hardenHints(0, 0, w, h);
        commit(before, "load hints");
        const note = bmp.width !== w || bmp.height !== h ? " (scaled from " + bmp.width + " × " + bmp.height + ")" : "";
        setStatus("Loaded the hint layer" + note + ".", "ok");
      } finally { bmp.close(); }
    } catch (err) { showError(err.message); }
  }
  async function loadReferenceFile(file) {
    if (!file) return;
    try {
      const bmp = await decodeImage(file);
      try {
        const long = Math.max(bmp.width, bmp.height);
        const scale = Math.min(1, MIN_LONG_SIDE / long);
        const c = el["reference-canvas"];
        c.width = Math.max(1, Math.round(bmp.width * scale));
        c.height = Math.max(1, Math.round(bmp.height * scale));
        fillWhite(refCtx);
        refCtx.drawImage(bmp, 0, 0, c.width, c.height);
      } finally { bmp.close(); }
      state.hasReference = true;
      el["reference-canvas"].hidden = false;
      el["clear-reference"].hidden = false;
      setStatus("Loaded the reference " + (file.name || "image") + ".", "ok");
      if (state.mode === "reference") scheduleColorize();
    } catch (err) { showError(err.message); }
  }
  function download(canvas, name) {
    canvas.toBlob((blob) => {
      if (!blob) { showError("Could not encode the PNG."); return; }
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }, "image/png");
  }

  // ------------------------------------------------------------------------------------------ readiness & examples
  let readyTimer = 0;
  async function checkReady() {
    clearTimeout(readyTimer);
    let ready = false, reason = "";
    try {
      const resp = await fetch("api/ready", { cache: "no-store" });
      let body = null;
      try { body = await resp.json(); } catch (e) { body = null; }
      ready = resp.ok && !!(body && body.ready);
      if (!ready) reason = (body && (body.reason || (body.error && body.error.message))) || ("HTTP " + resp.status);
      if (ready && body.model) {
        const m = body.model;
        setStyleControls(m.style_latent !== false);
        setFillControls(m.fill_guide === true, m);
        el["result-meta"].textContent = el["result-meta"].textContent ||
          "model: " + [m.variant, m.working_size ? m.working_size + " px" : "", m.base_channels ? m.base_channels + " channels" : ""]
            .filter(Boolean).join(", ");
      }
    } catch (err) {
      reason = networkMessage(err);
    }
    const wasReady = state.ready;
    state.ready = ready;
    state.readyKnown = true;
    document.body.dataset.ready = ready ? "true" : "false";
    el["not-ready"].hidden = ready;
    el["not-ready-reason"].textContent = ready ? "" : "Reason: " + reason + ".";
    el.colorize.disabled = !ready;
    el["new-variation"].disabled = !ready || state.hasStyle === false;
    el["show-variations"].disabled = !ready || state.hasStyle === false;
    if (!ready) readyTimer = setTimeout(checkReady, READY_POLL_MS);
    if (ready && !wasReady && state.editVersion > 0) scheduleColorize();
    syncTestHooks();
    return ready;
  }
  /** A model without a style latent can only colorize deterministically, without latent shift. */
  function setStyleControls(hasStyle) {
    for (const o of el.mode.options) o.disabled = !hasStyle && o.value !== "deterministic";
    el["latent-shift"].disabled = !hasStyle;
    el["new-variation"].disabled = !hasStyle || !state.ready;
    el["show-variations"].disabled = !hasStyle || !state.ready;
    el.seed.disabled = !hasStyle;
    const why = hasStyle ? "" : "This model has no style latent: only deterministic mode without latent shift.";
    for (const c of [el["latent-shift"], el["new-variation"], el.seed]) c.title = why;
    el["show-variations"].title = why || el["show-variations"].dataset.title;
    if (!hasStyle && el.mode.value !== "deterministic") setMode("deterministic");
    if (!hasStyle) { el["latent-shift"].value = "0"; state.latentShift = 0; el["latent-shift-value"].textContent = "0.0"; }
    state.hasStyle = hasStyle;
  }

  /** Suggestion strength and shading only exist for a fill-guide model; the slider starts at the model's default. */
  function setFillControls(hasFill, model) {
    const fresh = state.fillGuide === null;
    state.fillGuide = hasFill;
    if (fresh && state.limits) {
      // The model's own default (a region head's picks show at full strength), else the library's.
      const own = model && Number.isFinite(model.suggestion_strength) ? model.suggestion_strength : null;
      setSuggestionStrength(own !== null ? own : state.limits.suggestion_strength.default);
      el["suggestion-strength"].value = String(state.suggestionStrength);
    }
    const why = hasFill ? "" : "This model has no fill guide: suggestion strength and shading do not apply to it.";
    for (const c of [el["suggestion-strength"], el.composite]) {
      c.disabled = !hasFill;
      c.title = hasFill ? (c.dataset.help || "") : why;
    }
  }
  function formatStrength(v) {
    return Math.abs(v * 100 - Math.round(v * 100)) < 1e-6 ? v.toFixed(2) : String(Math.round(v * 1000) / 1000);
  }
  function setSuggestionStrength(v) {
    const range = state.limits ? state.limits.suggestion_strength : { min: 0, max: 1, default: null };
    state.suggestionStrength = Number.isFinite(v) ? Math.max(range.min, Math.min(range.max, v)) : range.default;
    el["suggestion-strength-value"].textContent =
      state.suggestionStrength === null ? "–" : formatStrength(state.suggestionStrength);
  }

  /** Modes, composites, ranges and defaults come from the library (GET /api/limits), never typed in here. */
  async function loadLimits() {
    try {
      const resp = await fetch("api/limits", { cache: "no-store" });
      if (!resp.ok) throw await apiError(resp);
      const limits = await resp.json();
      state.limits = limits;
      for (const o of el.mode.options) o.hidden = !limits.modes.includes(o.value);
      for (const o of el.composite.options) o.disabled = !limits.composites.includes(o.value);
      Object.assign(el.seed, { min: String(limits.seed.min), max: String(limits.seed.max) });
      const shift = limits.latent_shift;
      Object.assign(el["latent-shift"], { min: String(shift.min), max: String(shift.max), step: String(shift.step) });
      el["latent-shift"].value = String(shift.default);
      state.latentShift = shift.default;
      el["latent-shift-value"].textContent = state.latentShift.toFixed(1);
      el.gap.innerHTML = "";
      for (const value of ["auto"].concat(limits.gap.choices.map(String))) {
        const o = document.createElement("option");
        o.value = value;
        o.textContent = value === "auto" ? "auto (a few line widths)" : value === "0" ? "off (0 px)" : value + " px";
        el.gap.appendChild(o);
      }
      el.gap.value = String(limits.gap.default);
      state.gap = el.gap.value;
      const strength = limits.suggestion_strength;
      Object.assign(el["suggestion-strength"], { min: String(strength.min), max: String(strength.max) });
      setSuggestionStrength(strength.default);
      el["suggestion-strength"].value = String(state.suggestionStrength);
    } catch (err) {
      showError("Could not load the studio's limits from the server: " + (err.message || err));
    }
  }

  async function loadExamples() {
    try {
      const resp = await fetch("api/examples");
      if (!resp.ok) throw await apiError(resp);
      const body = await resp.json();
      state.examples = Array.isArray(body.examples) ? body.examples : [];
    } catch (err) {
      state.examples = [];
      setStatus("Could not load the example list: " + (err.message || err), "error");
    }
    const sel = el.examples;
    for (const ex of state.examples) {
      const o = document.createElement("option");
      o.value = ex.id;
      o.textContent = ex.name + (ex.kind === "sketch" ? " (rough sketch)" : "");
      sel.appendChild(o);
    }
    // About: one line per distinct attribution, as plain text (no links).
    const seen = new Map();
    for (const ex of state.examples) {
      const key = ex.attribution || "";
      if (!seen.has(key)) seen.set(key, { license: ex.license, names: [] });
      seen.get(key).names.push(ex.name);
    }
    el.attributions.textContent = "";
    for (const [attribution, info] of seen) {
      const li = document.createElement("li");
      li.textContent = info.names.join(", ") + ": " + attribution + (attribution.includes(info.license) ? "" : " (" + info.license + ")");
      el.attributions.appendChild(li);
    }
  }

  // ------------------------------------------------------------------------------------------ wiring
  function isTextTarget(t) {
    if (!t || !t.tagName) return false;
    if (t.tagName === "TEXTAREA" || t.isContentEditable) return true;
    return t.tagName === "INPUT" && /^(text|number|search|email|url|tel|password)$/.test(t.type);
  }
  function onKeyDown(evt) {
    const mod = evt.ctrlKey || evt.metaKey;
    const key = (evt.key || "").toLowerCase();
    if (mod && key === "enter") { evt.preventDefault(); colorize(true); return; }
    // The hex field shows the applied colour unless it is being edited: then Ctrl+Z is the drawing's undo.
    const appliedHex = evt.target === el["color-hex"] && el["color-hex"].value.toLowerCase() === state.color;
    if (isTextTarget(evt.target) && !(appliedHex && mod && (key === "z" || key === "y"))) return;
    if (mod && key === "z") { evt.preventDefault(); if (evt.shiftKey) redo(); else undo(); return; }
    if (mod && key === "y") { evt.preventDefault(); redo(); return; }
    if (mod || evt.altKey) return;
    const tools = { b: "hint", e: "eraser", p: "pen", l: "line-eraser", i: "eyedropper", f: "bucket" };
    if (tools[key] && evt.target.tagName !== "SELECT") { selectTool(tools[key]); return; }
    if (key === "[" || key === "]") {
      const v = Math.max(1, Math.min(64, state.size + (key === "]" ? 1 : -1) * Math.max(1, Math.round(state.size / 8))));
      el["brush-size"].value = String(v);
      setBrushSize(v);
    }
  }
  function selectTool(tool) { setTool(tool); }
  /** Switch the mode. The seed field shows a seed only in stochastic mode (the only mode it affects); the last
   *  stochastic seed comes back when stochastic mode does. */
  function setMode(mode) {
    if (state.mode === "stochastic" && mode !== "stochastic") state.stochasticSeed = state.seed;
    if (mode === "stochastic" && state.mode !== "stochastic") state.seed = state.stochasticSeed ?? null;
    if (mode !== "stochastic") state.seed = null;
    state.mode = mode;
    el.mode.value = mode;
    document.body.classList.toggle("mode-reference", mode === "reference");
    el.seed.value = state.seed === null ? "" : String(state.seed);
    el.seed.placeholder = mode === "stochastic" ? "auto" : "stochastic only";
  }
  function setBrushSize(v) {
    state.size = v;
    el["brush-size-value"].textContent = String(v);
  }

  function wire() {
    const hc = el["hint-canvas"];
    hc.addEventListener("pointerdown", onPointerDown);
    hc.addEventListener("pointermove", onPointerMove);
    hc.addEventListener("pointerup", onPointerUp);
    hc.addEventListener("pointercancel", onPointerCancel);
    hc.addEventListener("lostpointercapture", (e) => { if (stroke && e.pointerId === stroke.pointerId) onPointerUp(e); });
    hc.addEventListener("pointerleave", () => { el["brush-cursor"].hidden = true; });
    hc.addEventListener("contextmenu", (e) => e.preventDefault());

    for (const c of [el["result-canvas"], el["reference-canvas"]]) {
      c.addEventListener("pointerdown", (evt) => {
        if (state.tool !== "eyedropper" && !evt.altKey) return;
        if (c === el["result-canvas"] && !state.hasResult) { setStatus("There is no result to pick from yet."); return; }
        const p = toCanvasXY(c, evt);
        finishPick(pickAt(c.getContext("2d"), p.x, p.y));
      });
    }

    document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => selectTool(b.dataset.tool)));
    el["brush-size"].addEventListener("input", () => setBrushSize(parseInt(el["brush-size"].value, 10) || 1));
    el.color.addEventListener("input", () => setColour(el.color.value));
    el.color.addEventListener("change", () => { setColour(el.color.value); if (state.tool !== "hint") setTool("hint"); });
    el["color-hex"].addEventListener("input", () => {
      let v = el["color-hex"].value.trim();
      if (v && v[0] !== "#") v = "#" + v;
      if (/^#[0-9a-fA-F]{6}$/.test(v)) setColour(v);
    });
    el["color-hex"].addEventListener("change", () => { el["color-hex"].value = state.color; });

    el.undo.addEventListener("click", undo);
    el.redo.addEventListener("click", redo);
    el["clear-hints"].addEventListener("click", () => {
      const before = snapshot(false, true);
      hintCtx.clearRect(0, 0, docWidth(), docHeight());
      commit(before, "clear hints");
      setStatus("Cleared the hints (undo brings them back).");
    });
    el["clear-all"].addEventListener("click", () => {
      const before = snapshot(true, true);
      abortInflight();
      setDocSize(DEFAULT_SIZE, DEFAULT_SIZE);  // a new blank sheet, not the last picture's size (undo restores it)
      hintCtx.clearRect(0, 0, docWidth(), docHeight());
      fillWhite(lineCtx);
      state.docVersion++;
      clearResult();
      el.examples.value = "";
      commit(before, "clear all");
      setStatus("Cleared lines and hints: draw with the pen, or load a picture (undo brings it back).");
    });

    el["load-file"].addEventListener("click", () => el["file-input"].click());
    el["file-input"].addEventListener("change", () => {
      const f = el["file-input"].files[0];
      el["file-input"].value = "";
      el.examples.value = "";
      loadLineFile(f);
    });
    el.examples.addEventListener("change", () => { if (el.examples.value) loadExample(el.examples.value); });
    el.cleanup.addEventListener("click", cleanupSketch);

    const dz = el["drop-zone"];
    let dragDepth = 0;
    dz.addEventListener("dragenter", (e) => { e.preventDefault(); dragDepth++; dz.classList.add("dragging"); });
    dz.addEventListener("dragover", (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = "copy"; });
    dz.addEventListener("dragleave", () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) dz.classList.remove("dragging"); });
    dz.addEventListener("drop", (e) => {
      e.preventDefault();
      dragDepth = 0;
      dz.classList.remove("dragging");
      const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (f) { el.examples.value = ""; loadLineFile(f); }
    });
    // A file dropped elsewhere on the page must not navigate away from the user's work.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());

    el["download-hints"].addEventListener("click", () => download(el["hint-canvas"], "linecolor-hints.png"));
    el["download-line"].addEventListener("click", () => download(el["line-canvas"], "linecolor-lines.png"));
    el.download.addEventListener("click", () => {
      if (!state.hasResult) return;
      download(el["result-canvas"], "linecolor-result" + (state.seed !== null ? "-seed" + state.seed : "") + ".png");
    });
    el["palette-add"].addEventListener("click", () => {
      if (state.palette.colors.some((c) => c.hex === state.color)) { setStatus(state.color + " is in the palette already."); return; }
      if (state.palette.colors.length >= maxPaletteColours()) { showError("The palette is full."); return; }
      state.palette.colors.push({ hex: state.color, name: "" });
      paletteChanged();
    });
    el["palette-load"].addEventListener("click", () => el["palette-input"].click());
    el["palette-input"].addEventListener("change", async () => {
      const file = el["palette-input"].files[0];
      el["palette-input"].value = "";
      if (!file) return;
      try {
        if (file.size > 1 << 20) throw new Error(file.name + " is too large for a palette.");
        state.palette = parseGpl(await file.text(), file.name);
        paletteChanged();
        setStatus("Loaded the palette " + state.palette.name + " (" + state.palette.colors.length + " colours).", "ok");
      } catch (err) { showError(err.message); }
    });
    el["palette-save"].addEventListener("click", () => {
      const url = URL.createObjectURL(new Blob([gplText(state.palette)], { type: "text/plain" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = (state.palette.name || "linecolor").replace(/[^\w.-]+/g, "_") + ".gpl";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
    el["palette-snap"].addEventListener("change", () => scheduleColorize());
    el["download-psd"].addEventListener("click", () => downloadLayered("psd"));
    el["download-ora"].addEventListener("click", () => downloadLayered("ora"));
    el["load-hints"].addEventListener("click", () => el["hints-input"].click());
    el["hints-input"].addEventListener("change", () => {
      const f = el["hints-input"].files[0];
      el["hints-input"].value = "";
      loadHintsFile(f);
    });
    el["load-reference"].addEventListener("click", () => el["reference-input"].click());
    el["reference-input"].addEventListener("change", () => {
      const f = el["reference-input"].files[0];
      el["reference-input"].value = "";
      loadReferenceFile(f);
    });
    el["clear-reference"].addEventListener("click", () => {
      state.hasReference = false;
      el["reference-canvas"].hidden = true;
      el["clear-reference"].hidden = true;
      if (state.mode === "reference") setStatus("Reference removed: load another one or switch the mode.");
    });

    el.mode.addEventListener("change", () => {
      setMode(el.mode.value);
      if (state.mode === "reference" && !state.hasReference) {
        setStatus("Reference mode: load a reference image below the result.");
        return;
      }
      scheduleColorize();
    });
    el["new-variation"].addEventListener("click", () => {
      if (state.mode === "deterministic") setMode("stochastic");
      const buf = new Uint32Array(1);
      crypto.getRandomValues(buf);
      state.seed = buf[0] % (state.limits.seed.max + 1);
      el.seed.value = String(state.seed);
      colorize(true);
    });
    el["show-variations"].addEventListener("click", () => showVariations());
    el.seed.addEventListener("change", () => {
      const v = el.seed.value.trim();
      if (v === "") { state.seed = null; scheduleColorize(); return; }
      const n = Number(v);
      const { min, max } = state.limits.seed;
      if (!Number.isInteger(n) || n < min || n > max) {
        showError("The seed must be a whole number from " + min + " to " + max + ".");
        el.seed.value = state.seed === null ? "" : String(state.seed);
        return;
      }
      if (state.mode !== "stochastic") setMode("stochastic");  // a seed is a stochastic variation
      state.seed = n;
      scheduleColorize();
    });
    el["latent-shift"].addEventListener("input", () => {
      el["latent-shift-value"].textContent = parseFloat(el["latent-shift"].value).toFixed(1);
    });
    el.gap.addEventListener("change", () => {
      state.gap = el.gap.value;
      state.regions = null;  // another gap setting, other regions
      clearRegionHighlight();
      scheduleColorize();
    });
    el["hint-canvas"].addEventListener("pointerleave", () => { state.lastPointer = null; clearRegionHighlight(); });
    el["latent-shift"].addEventListener("change", () => {
      const v = parseFloat(el["latent-shift"].value);
      const shift = state.limits.latent_shift;
      state.latentShift = Number.isFinite(v) ? Math.max(shift.min, Math.min(shift.max, v)) : shift.default;
      el["latent-shift-value"].textContent = state.latentShift.toFixed(1);
      scheduleColorize();
    });
    el["suggestion-strength"].addEventListener("input", () => {
      el["suggestion-strength-value"].textContent = formatStrength(parseFloat(el["suggestion-strength"].value) || 0);
    });
    el["suggestion-strength"].addEventListener("change", () => {
      setSuggestionStrength(parseFloat(el["suggestion-strength"].value));
      scheduleColorize();
    });
    el.composite.addEventListener("change", () => {
      const v = el.composite.value;
      state.composite = Object.prototype.hasOwnProperty.call(COMPOSITE_LABELS, v) ? v : "regions";
      scheduleColorize();
    });
    el.colorize.addEventListener("click", () => colorize(true));
    el.auto.addEventListener("change", () => { if (el.auto.checked) scheduleColorize(); });
    el["show-hints"].addEventListener("change", () => document.body.classList.toggle("hide-hints", !el["show-hints"].checked));

    document.addEventListener("keydown", onKeyDown);
    window.addEventListener("beforeunload", (e) => {
      if (state.undo.length > 1) { e.preventDefault(); e.returnValue = ""; }
    });
  }

  async function start() {
    setDocSize(DEFAULT_SIZE, DEFAULT_SIZE);
    fillWhite(lineCtx);
    setTool("hint");
    setColour(state.color);
    setBrushSize(parseInt(el["brush-size"].value, 10) || 8);
    state.mode = el.mode.value;
    state.composite = el.composite.value;
    await loadLimits();
    for (const c of [el["suggestion-strength"], el.composite]) c.dataset.help = c.title;
    wire();
    updateHistoryButtons();
    syncTestHooks();
    const [ready] = await Promise.all([checkReady(), loadExamples()]);
    // Start with the first bundled example, as the original demo did with its default sketch.
    if (state.examples.length && state.editVersion === 0) {
      el.examples.value = state.examples[0].id;
      await loadExample(state.examples[0].id);
      state.undo.length = 0; // the starting picture is not an undoable step
      updateHistoryButtons();
    }
    document.body.dataset.started = "1";
    if (!ready) setStatus("Ready to draw, but the server has no model loaded: colorizing is disabled.", "error");
    else if (!el.status.classList.contains("error")) setStatus("Ready: paint colour hints on the drawing; the result updates after each stroke.");
  }

  start();
})();
