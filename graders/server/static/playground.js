/* The graders playground: edit a grader, run it on a sample, explore many rows and batch outputs.
 *
 * Plain JavaScript, no library, nothing fetched from elsewhere. Every request is a POST with a JSON body to this
 * server (the same guard as /run); the key `graders ui` made arrives in the URL's #fragment, is kept in this tab's
 * sessionStorage and sent as a Bearer token. The grader is sent as the editor's text, so key order, duplicate keys
 * and large integers reach the server exactly as written.
 */
"use strict";
(() => {
  const PAGE = 50;
  const BINS = 20;
  const $ = (id) => document.getElementById(id);

  /* ---------- DOM helpers ---------- */

  function h(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid != null && kid !== false) node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }

  function svg(tag, attrs, ...kids) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "class") node.setAttribute("class", v);
      else node.setAttribute(k, String(v));
    }
    for (const kid of kids) if (kid != null) node.append(kid instanceof Node ? kid : String(kid));
    return node;
  }

  const fmt = (x, digits = 4) => {
    if (x == null || Number.isNaN(x)) return "—";
    if (Number.isInteger(x)) return String(x);
    const text = x.toPrecision(digits);
    return text.includes("e") ? text : String(Number(text));
  };
  const plural = (n, word) => `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;
  const debounce = (fn, ms) => {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  };
  const isTyping = (node) => node && (node.tagName === "TEXTAREA" || node.tagName === "SELECT" ||
    (node.tagName === "INPUT" && !["checkbox", "radio", "button", "file"].includes(node.type)));

  /* ---------- state ---------- */

  const state = {
    key: null,
    info: null,
    flags: [],
    detailsKey: {},
    options: [],
    validateSeq: 0,
    runSeq: 0,
    hasResult: false,
    parsedGrader: null,
    pinned: null,
    source: null,
    query: { start: 0, flag: null, bin: null, sort: "row", changed: false },
    summary: null,
    pageSeq: 0,
  };

  /* ---------- the server ---------- */

  class ApiError extends Error {
    constructor(status, body, text) {
      const message = body && body.error && body.error.message ? body.error.message : `HTTP ${status}: ${(text || "").slice(0, 200)}`;
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (state.key) headers.Authorization = `Bearer ${state.key}`;
    const response = await fetch(path, {
      method: "POST", headers, credentials: "omit", cache: "no-store",
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try { data = JSON.parse(text); } catch (_) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data, text);
    return data;
  }

  /* `api` for answers that must not be an error envelope (playground routes answer an invalid request that way). */
  async function apiChecked(path, body) {
    const answer = await api(path, body);
    if (answer && answer.error) throw new ApiError(400, answer, "");
    return answer;
  }

  /* A body whose `grader` is the editor's text verbatim (already checked to be one JSON value). */
  function withGrader(graderText, rest) {
    const tail = JSON.stringify(rest);
    return tail === "{}" ? `{"grader":${graderText}}` : `{"grader":${graderText},${tail.slice(1)}`;
  }

  function takeKey() {
    const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem("graders-key", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("graders-key");
  }

  function askKey() {
    return new Promise((resolve) => {
      const dialog = $("key-dialog");
      const form = $("key-form");
      const done = (event) => {
        event.preventDefault();
        state.key = $("key-input").value.trim();
        sessionStorage.setItem("graders-key", state.key);
        form.removeEventListener("submit", done);
        dialog.close();
        resolve();
      };
      form.addEventListener("submit", done);
      dialog.showModal();
      $("key-input").focus();
    });
  }

  /* ---------- JSON with positions ---------- */

  class JsonSyntaxError extends Error {
    constructor(message, pos) { super(message); this.pos = pos; }
  }

  const joinPath = (prefix, key) => typeof key === "number" ? `${prefix}[${key}]` : (prefix ? `${prefix}.${key}` : key);

  /* parseJson(text) → {value, spans}: spans maps a `param`-style path ("graders.a.input", "input[0].content") to
   * the offsets of its value and key, so an error's param can be marked in the text. */
  function parseJson(text) {
    let i = 0;
    const spans = new Map();
    const ws = () => { while (i < text.length && " \t\n\r".includes(text[i])) i++; };
    const fail = (message, at = i) => { throw new JsonSyntaxError(message, at); };
    const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

    function string() {
      const start = i;
      i++;
      while (i < text.length) {
        const c = text[i];
        if (c === '"') {
          i++;
          try { return JSON.parse(text.slice(start, i)); } catch (_) { fail("a bad escape in this string", start); }
        }
        if (c === "\\") i += 2;
        else if (c < " ") fail("a raw line break or control character inside a string (write \\n)", i);
        else i++;
      }
      return fail("a string that never ends (a missing \")", start);
    }

    function value(path) {
      ws();
      const start = i;
      const c = text[i];
      let v;
      if (c === "{") {
        i++;
        v = {};
        ws();
        if (text[i] === "}") i++;
        else {
          for (;;) {
            ws();
            if (text[i] !== '"') fail(text[i] === "}" ? "a trailing comma before '}'" : "expected a key in double quotes");
            const keyStart = i;
            const key = string();
            const keyEnd = i;
            ws();
            if (text[i] !== ":") fail("expected ':' after the key");
            i++;
            const path2 = joinPath(path, key);
            const member = value(path2);
            Object.assign(spans.get(path2), { keyStart, keyEnd });
            Object.defineProperty(v, key, { value: member, enumerable: true, writable: true, configurable: true });
            ws();
            if (text[i] === ",") { i++; continue; }
            if (text[i] === "}") { i++; break; }
            fail("expected ',' or '}' (a missing comma?)");
          }
        }
      } else if (c === "[") {
        i++;
        v = [];
        ws();
        if (text[i] === "]") i++;
        else {
          for (;;) {
            v.push(value(joinPath(path, v.length)));
            ws();
            if (text[i] === ",") { i++; ws(); if (text[i] === "]") fail("a trailing comma before ']'"); continue; }
            if (text[i] === "]") { i++; break; }
            fail("expected ',' or ']' (a missing comma?)");
          }
        }
      } else if (c === '"') {
        v = string();
      } else if (text.startsWith("true", i)) { v = true; i += 4; }
      else if (text.startsWith("false", i)) { v = false; i += 5; }
      else if (text.startsWith("null", i)) { v = null; i += 4; }
      else {
        NUMBER.lastIndex = i;
        const m = NUMBER.exec(text);
        if (!m) fail(c === undefined ? "the text ends where a value should be" : `unexpected ${JSON.stringify(c)}`);
        v = Number(m[0]);
        i += m[0].length;
      }
      spans.set(path, { start, end: i, keyStart: null, keyEnd: null });
      return v;
    }

    const v = value("");
    ws();
    if (i < text.length) fail("more text after the JSON value");
    return { value: v, spans, text };
  }

  function lineCol(text, pos) {
    const before = text.slice(0, pos);
    const line = before.split("\n").length;
    return { line, col: pos - before.lastIndexOf("\n") };
  }

  const parentPath = (path) => {
    const m = /^(.*?)(\.[^.[\]]*|\[\d+\])$/.exec(path);
    return m ? m[1] : "";
  };

  /* The text range an error's `param` names: the value itself, a character of it ("at position N" in a
   * string), or for a missing field the key (or opening brace) of the object that lacks it. */
  function rangeForParam(parsed, param, message) {
    let path = param || "";
    let missing = false;
    while (!parsed.spans.has(path) && path) { missing = true; path = parentPath(path); }
    const span = parsed.spans.get(path);
    if (!span) return null;
    if (missing || /^Missing required parameter/.test(message || "")) {
      if (span.keyStart != null) return { start: span.keyStart, end: span.keyEnd };
      return { start: span.start, end: span.start + 1 };
    }
    const at = /at position (\d+)/.exec(message || "");
    if (at && parsed.text[span.start] === '"') {
      let j = span.start + 1;
      for (let n = Number(at[1]); n > 0 && j < span.end - 1; n--) j += parsed.text[j] === "\\" ? (parsed.text[j + 1] === "u" ? 6 : 2) : 1;
      return { start: j, end: Math.min(j + 1, span.end - 1) };
    }
    return { start: span.start, end: span.end };
  }

  /* ---------- editors ---------- */

  class Editor {
    constructor(boxId) {
      this.box = $(boxId);
      this.area = this.box.querySelector("textarea");
      this.back = this.box.querySelector(".backdrop");
      this.marks = [];
      this.area.addEventListener("input", () => { this.marks = []; this.paint(); });
      this.area.addEventListener("scroll", () => this.sync());
      this.paint();
    }
    get text() { return this.area.value; }
    set text(value) { this.area.value = value; this.marks = []; this.paint(); }
    mark(ranges) {
      this.marks = ranges.filter(Boolean).sort((a, b) => a.start - b.start);
      this.box.classList.toggle("invalid", this.marks.length > 0);
      this.area.setAttribute("aria-invalid", this.marks.length > 0 ? "true" : "false");
      this.paint();
    }
    paint() {
      const text = this.area.value;
      const parts = [];
      let at = 0;
      for (const { start, end } of this.marks) {
        const s = Math.max(at, Math.min(start, text.length));
        const e = Math.max(s + 1, Math.min(end, text.length));
        parts.push(text.slice(at, s));
        const covered = text.slice(s, e);
        parts.push(h("mark", { text: covered && covered !== "\n" ? covered : " " }));
        at = e;
      }
      parts.push(text.slice(at) + "\n\n");
      this.back.replaceChildren(...parts);
      this.sync();
    }
    sync() {
      this.back.scrollTop = this.area.scrollTop;
      this.back.scrollLeft = this.area.scrollLeft;
    }
    reveal(start, end) {
      this.area.focus();
      this.area.setSelectionRange(start, end);
      const { line } = lineCol(this.area.value, start);
      const height = parseFloat(getComputedStyle(this.area).lineHeight) || 19;
      this.area.scrollTop = Math.max(0, (line - 3) * height);
      this.sync();
    }
  }

  let graderEditor, sampleEditor, itemEditor;

  function setStatus(node, text, kind) {
    node.textContent = text;
    node.className = node.className.replace(/\b(ok|error)\b/g, "").trim() + (kind ? ` ${kind}` : "");
  }

  /* Check one JSON editor's text; marks and reports a syntax error. `optional` accepts an empty text. */
  function checkJson(editor, statusNode, what, optional) {
    const text = editor.text;
    if (optional && !text.trim()) {
      editor.mark([]);
      setStatus(statusNode, "", "");
      return { value: undefined };
    }
    try {
      const parsed = parseJson(text);
      editor.mark([]);
      return parsed;
    } catch (err) {
      if (!(err instanceof JsonSyntaxError)) throw err;
      const { line, col } = lineCol(text, err.pos);
      editor.mark([{ start: err.pos, end: err.pos + 1 }]);
      setStatus(statusNode, `${what} is not valid JSON: ${err.message} (line ${line}, column ${col}).`, "error");
      return null;
    }
  }

  /* ---------- scoring options ---------- */

  function optionId(name) { return `opt-${name.replace(/\./g, "-")}`; }

  function buildOptions() {
    const box = $("options");
    box.replaceChildren();
    for (const option of state.options) {
      const id = optionId(option.name);
      let control;
      if (option.kind === "enum") {
        control = h("select", { id },
          option.choices.map((choice, index) => h("option", { value: String(index), text: choice + (JSON.stringify(choice) === JSON.stringify(option.value) ? " (server)" : "") })));
        control.value = String(option.choices.findIndex((c) => JSON.stringify(c) === JSON.stringify(option.value)));
      } else if (option.kind === "bool") {
        control = h("input", { id, type: "checkbox" });
        control.checked = option.value === true;
      } else if ((option.kind === "number" || option.kind === "integer") && !option.nullable) {
        control = h("input", { id, type: "number", step: option.kind === "integer" ? "1" : "any", value: String(option.value) });
      } else {
        control = h("input", { id, type: "text", value: option.kind === "string" && typeof option.value === "string" ? option.value : JSON.stringify(option.value), spellcheck: "false" });
      }
      control.addEventListener("change", () => optionChanged(option));
      const row = h("div", { class: "option", dataset: { name: option.name } },
        h("label", { for: id, text: option.name }), control,
        option.description ? h("p", { class: "desc", text: option.description }) : null);
      option.row = row;
      option.control = control;
      box.append(row);
    }
  }

  function optionValue(option) {
    const c = option.control;
    if (option.kind === "enum") return { ok: true, value: option.choices[Number(c.value)] };
    if (option.kind === "bool") return { ok: true, value: c.checked };
    if ((option.kind === "number" || option.kind === "integer") && !option.nullable) {
      return c.value === "" ? { ok: false } : { ok: true, value: Number(c.value) };
    }
    if (option.kind === "string") return { ok: true, value: c.value };
    if (c.value.trim() === "" && option.nullable) return { ok: true, value: null };
    try { return { ok: true, value: JSON.parse(c.value) }; } catch (_) { return { ok: false }; }
  }

  /* The options that differ from the server's: the only ones a request carries. */
  function changedOptions() {
    const out = {};
    for (const option of state.options) {
      const { ok, value } = optionValue(option);
      if (ok && JSON.stringify(value) !== JSON.stringify(option.value)) out[option.name] = value;
    }
    return out;
  }

  function optionChanged(option) {
    const { ok, value } = optionValue(option);
    option.control.setAttribute("aria-invalid", ok ? "false" : "true");
    option.row.classList.toggle("changed", ok && JSON.stringify(value) !== JSON.stringify(option.value));
    validateSoon();
    if (state.hasResult) run();
  }

  function relevantPrefixes(grader) {
    const out = new Set();
    const visit = (g) => {
      if (!g || typeof g !== "object") return;
      const type = g.type;
      if (type === "string_check") out.add("string_check.");
      if (type === "text_similarity") {
        out.add("text_similarity.pass_threshold_outside_evals");
        const metric = typeof g.evaluation_metric === "string" ? g.evaluation_metric : "";
        if (metric) out.add(`text_similarity.${metric.startsWith("rouge") ? "rouge" : metric}.`);
      }
      if (type === "python") out.add("python.");
      if (type === "score_model") out.add("score_model.");
      if (type === "label_model") out.add("label_model.");
      if (type === "multi") {
        out.add("multi.");
        out.add("formula.");
        if (g.graders && typeof g.graders === "object") Object.values(g.graders).forEach(visit);
      }
    };
    visit(grader);
    return out;
  }

  function showRelevantOptions(grader) {
    const all = $("all-options").checked;
    const prefixes = relevantPrefixes(grader);
    let shown = 0;
    for (const option of state.options) {
      const relevant = [...prefixes].some((p) => option.name === p || (p.endsWith(".") && option.name.startsWith(p)));
      const visible = all || relevant || option.row.classList.contains("changed");
      option.row.hidden = !visible;
      if (visible) shown++;
    }
    $("options-empty").hidden = shown > 0;
  }

  /* ---------- validation as you type ---------- */

  function clearFieldMarks() {
    sampleEditor.mark([]);
    itemEditor.mark([]);
    $("sample-text").removeAttribute("aria-invalid");
    for (const option of state.options) option.control.removeAttribute("aria-invalid");
  }

  /* Show a /validate or /run error envelope where its `param` points. */
  function showEnvelope(envelope) {
    const error = envelope.error || {};
    const param = error.param || "";
    const message = error.message || "invalid request";
    const field = /^(item|sample|model_sample|options|reference_answer)(?=$|[.[])/.exec(param);
    $("goto-error").hidden = true;
    if (field && field[1] === "options") {
      const option = state.options.find((o) => param === `options.${o.name}`);
      if (option) { option.control.setAttribute("aria-invalid", "true"); option.row.hidden = false; }
      setStatus($("grader-status"), `✗ ${message}`, "error");
      return;
    }
    if (field && (field[1] === "item" || field[1] === "sample")) {
      const editor = field[1] === "item" ? itemEditor : sampleEditor;
      const status = field[1] === "item" ? $("item-status") : $("sample-status");
      const relative = param.slice(field[1].length).replace(/^\./, "");
      const parsed = (() => { try { return parseJson(editor.text); } catch (_) { return null; } })();
      if (parsed) editor.mark([rangeForParam(parsed, relative, message)]);
      setStatus(status, `✗ ${message}`, "error");
      return;
    }
    if (field && field[1] === "model_sample") {
      $("sample-text").setAttribute("aria-invalid", "true");
      setStatus($("grader-status"), `✗ ${message}`, "error");
      return;
    }
    const parsed = state.parsedGrader;
    const range = parsed ? rangeForParam(parsed, param, message) : null;
    graderEditor.mark(range ? [range] : []);
    const where = range ? (() => { const { line, col } = lineCol(graderEditor.text, range.start); return ` (line ${line}, column ${col})`; })() : "";
    setStatus($("grader-status"), `✗ ${message}${param ? ` [param: ${param}]` : ""}${where}`, "error");
    if (range) {
      const button = $("goto-error");
      button.hidden = false;
      button.onclick = () => graderEditor.reveal(range.start, range.end);
    }
  }

  async function validateNow() {
    const seq = ++state.validateSeq;
    const text = graderEditor.text;
    $("goto-error").hidden = true;
    const parsed = checkJson(graderEditor, $("grader-status"), "The grader");
    state.parsedGrader = parsed;
    if (!parsed) return;
    showRelevantOptions(parsed.value);
    refreshSource(parsed.value);
    setStatus($("grader-status"), "Checking…", "");
    try {
      const answer = await api("/playground/validate", withGrader(text, { options: changedOptions() }));
      if (seq !== state.validateSeq) return;
      if (answer.error) showEnvelope(answer);
      else {
        graderEditor.mark([]);
        const g = answer.grader || {};
        setStatus($("grader-status"), `✓ Valid ${g.type || "grader"}${g.name ? ` "${g.name}"` : ""}.`, "ok");
      }
    } catch (err) {
      if (seq === state.validateSeq) setStatus($("grader-status"), `Could not check: ${err.message}`, "error");
    }
  }
  const validateSoon = debounce(validateNow, 300);

  /* ---------- a python grader's source as code ---------- */

  function sourcePaths(grader) {
    const out = [];
    if (grader && typeof grader === "object" && typeof grader.source === "string") out.push(["source"]);
    if (grader && grader.graders && typeof grader.graders === "object" && !Array.isArray(grader.graders)) {
      for (const [key, sub] of Object.entries(grader.graders)) if (sub && typeof sub.source === "string") out.push(["graders", key, "source"]);
    }
    return out;
  }

  function valueAtPath(value, path) { return path.reduce((node, key) => (node == null ? undefined : node[key]), value); }

  /* Show the source of the chosen python grader; the box is left alone while someone is typing in it. */
  function refreshSource(grader) {
    const paths = sourcePaths(grader);
    $("source-box").hidden = paths.length === 0;
    if (!paths.length) return;
    const select = $("source-choice");
    const names = paths.map((p) => p.join("."));
    if ([...select.options].map((o) => o.value).join() !== names.join()) {
      const keep = select.value;
      select.replaceChildren(...names.map((n) => h("option", { value: n, text: n })));
      select.value = names.includes(keep) ? keep : names[0];
    }
    $("source-choice-label").hidden = paths.length < 2;
    if (document.activeElement !== $("source-text")) {
      $("source-text").value = valueAtPath(grader, select.value.split(".")) || "";
    }
  }

  function sourceEdited() {
    let grader;
    try { grader = JSON.parse(graderEditor.text); } catch (_) {
      setStatus($("grader-status"), "Fix the grader's JSON first: the source is written back into it.", "error");
      return;
    }
    const path = $("source-choice").value.split(".");
    const owner = valueAtPath(grader, path.slice(0, -1));
    if (!owner || typeof owner !== "object") return;
    owner[path[path.length - 1]] = $("source-text").value;
    graderEditor.text = JSON.stringify(grader, null, 2);
    validateSoon();
  }

  /* ---------- the sample and the item ---------- */

  const sampleKind = () => ($("sample-kind-structured").checked ? "structured" : "text");

  function setSampleKind(kind) {
    $("sample-kind-text").checked = kind === "text";
    $("sample-kind-structured").checked = kind === "structured";
    $("sample-text-box").hidden = kind !== "text";
    $("sample-structured-box").hidden = kind !== "structured";
  }

  function switchSampleKind(kind) {
    if (kind === "structured" && !sampleEditor.text.trim()) {
      sampleEditor.text = JSON.stringify({ output_text: $("sample-text").value, output_tools: [] }, null, 2);
    } else if (kind === "text") {
      try {
        const value = JSON.parse(sampleEditor.text);
        if (value && typeof value.output_text === "string" && !$("sample-text").value) $("sample-text").value = value.output_text;
      } catch (_) { /* keep the text box as it is */ }
    }
    setSampleKind(kind);
  }

  function addToolCall() {
    const parsed = checkJson(sampleEditor, $("sample-status"), "The sample", true);
    if (!parsed) return;
    const sample = parsed.value && typeof parsed.value === "object" && !Array.isArray(parsed.value) ? parsed.value : { output_text: "" };
    if (!Array.isArray(sample.output_tools)) sample.output_tools = [];
    sample.output_tools.push({ type: "function", function: { name: "tool_name", arguments: "{}" } });
    sampleEditor.text = JSON.stringify(sample, null, 2);
    const at = sampleEditor.text.lastIndexOf('"tool_name"');
    sampleEditor.reveal(at + 1, at + 10);
    setStatus($("sample-status"), "", "");
  }

  /* The sample and item fields of a request, or null when one of them is not JSON. */
  function sampleFields() {
    const fields = {};
    if (sampleKind() === "text") fields.model_sample = $("sample-text").value;
    else {
      const parsed = checkJson(sampleEditor, $("sample-status"), "The sample");
      if (!parsed) return null;
      setStatus($("sample-status"), "", "");
      fields.sample = parsed.value;
    }
    const item = checkJson(itemEditor, $("item-status"), "The item", true);
    if (!item) return null;
    setStatus($("item-status"), "", "");
    if (item.value !== undefined) fields.item = item.value;
    return fields;
  }

  function loadSample(fields) {
    if (fields.sample !== undefined && fields.sample !== null && typeof fields.sample === "object") {
      sampleEditor.text = JSON.stringify(fields.sample, null, 2);
      setSampleKind("structured");
    } else {
      $("sample-text").value = typeof fields.model_sample === "string" ? fields.model_sample : "";
      sampleEditor.text = "";
      setSampleKind("text");
    }
    itemEditor.text = fields.item === undefined ? "" : JSON.stringify(fields.item, null, 2);
    setStatus($("sample-status"), "", "");
    setStatus($("item-status"), "", "");
  }

  function loadGrader(name, text, fields) {
    graderEditor.text = text;
    state.graderName = name;
    if (fields) loadSample(fields);
    state.hasResult = false;
    $("result").replaceChildren(h("p", { class: "hint", text: `Loaded ${name}. Run it (Ctrl+Enter) to see the reward and how it was reached.` }));
    validateNow();
  }

  /* ---------- run ---------- */

  async function run() {
    const seq = ++state.runSeq;
    const text = graderEditor.text;
    const parsed = checkJson(graderEditor, $("grader-status"), "The grader");
    state.parsedGrader = parsed;
    if (!parsed) return;
    const fields = sampleFields();
    if (!fields) return;
    clearFieldMarks();
    const result = $("result");
    result.setAttribute("aria-busy", "true");
    const started = performance.now();
    try {
      const answer = await api("/playground/run", withGrader(text, { ...fields, options: changedOptions() }));
      if (seq !== state.runSeq) return;
      if (answer.error) {
        showEnvelope(answer);
        result.replaceChildren(h("div", { class: "error-box" },
          h("h3", { text: "The server refused this request (HTTP 400 on /run)" }),
          h("pre", { class: "text", text: JSON.stringify(answer, null, 2) })));
        state.hasResult = false;
      } else {
        result.replaceChildren(renderResponse(answer, parsed.value, { roundTrip: performance.now() - started }));
        state.hasResult = true;
      }
    } catch (err) {
      if (seq === state.runSeq) result.replaceChildren(h("p", { class: "validation error", text: `The run failed: ${err.message}` }));
    } finally {
      if (seq === state.runSeq) result.removeAttribute("aria-busy");
    }
  }

  /* ---------- explaining a response ---------- */

  const TEMPLATE_KEYS = ["input", "reference", "operation", "messages", "prompt", "rendered"];
  const PYTHON_KEYS = ["output", "traceback", "sandbox", "sandbox_warning", "interpreter", "environment"];
  const JUDGE_KEYS = ["raw", "raw_reply", "reply", "steps", "response_format", "response_format_fallback", "attempts", "cache"];
  const HANDLED = new Set([...TEMPLATE_KEYS, ...PYTHON_KEYS, ...JUDGE_KEYS, "metric", "sub_graders", "error", "errors", "reward", "warnings"]);

  const flagBadge = (flag) => h("span", { class: "flag", text: flag });

  function valueNode(value, key) {
    if (typeof value === "string") return h("pre", { class: "text", dataset: key ? { key } : undefined, text: value });
    if (value === null || typeof value !== "object") return h("span", { class: "value", text: JSON.stringify(value) });
    return h("pre", { class: "text", text: JSON.stringify(value, null, 2) });
  }

  function messagesNode(messages) {
    if (!Array.isArray(messages)) return valueNode(messages);
    return h("div", { class: "messages" }, messages.map((m) => {
      const content = m && typeof m === "object" ? m.content : m;
      return h("div", { class: "message" },
        h("div", { class: "role", text: m && m.role ? m.role : "message" }),
        h("pre", { class: "text", text: typeof content === "string" ? content : JSON.stringify(content, null, 2) }));
    }));
  }

  function kv(entries) {
    const dl = h("dl", { class: "kv" });
    for (const [key, node] of entries) dl.append(h("dt", { text: key }), h("dd", null, node));
    return dl;
  }

  function section(title, ...kids) {
    return h("section", { class: "section" }, h("h3", { text: title }), ...kids);
  }

  /* The sections of one `details` object: rendered templates, python, judge, metric, warnings, then every other
   * key as it is, so a key this page does not know yet is still shown. */
  function detailSections(details, type) {
    const out = [];
    const has = (k) => Object.prototype.hasOwnProperty.call(details, k);
    const templates = TEMPLATE_KEYS.filter(has);
    if (templates.length) {
      out.push(h("section", { class: "section templates" }, h("h3", { text: "Rendered templates" }),
        kv(templates.map((k) => [k, k === "messages" ? messagesNode(details[k]) :
          h("div", { class: "template", dataset: { key: k } }, valueNode(details[k]))]))));
    }
    const python = PYTHON_KEYS.filter(has);
    if (python.length || type === "python") {
      const entries = [];
      if (has("sandbox")) {
        const full = details.sandbox === "bubblewrap";
        entries.push(["isolation", h("span", { class: `value isolation ${full ? "isolation-full" : "isolation-weak"}`, text: `${details.sandbox}${full ? " (full)" : " (reduced)"}` })]);
      }
      for (const k of python) if (k !== "sandbox") entries.push([k === "output" ? "printed output" : k, h("div", { class: `python-${k}` }, valueNode(details[k]))]);
      if (entries.length) out.push(section("Python", kv(entries)));
    }
    const judge = JUDGE_KEYS.filter(has);
    if (judge.length) out.push(section("Judge", kv(judge.map((k) => [k === "raw" ? "raw reply" : k, h("div", { class: `judge-${k}` }, valueNode(details[k]))]))));
    if (has("metric") && details.metric && typeof details.metric === "object") {
      out.push(h("section", { class: "section metric" }, h("h3", { text: "Metric" }),
        kv(Object.entries(details.metric).map(([k, v]) => [k, h("div", { class: `metric-${k}` }, valueNode(v))]))));
    }
    if (has("warnings")) {
      const list = Array.isArray(details.warnings) ? details.warnings : [details.warnings];
      out.push(section("Warnings", h("ul", { class: "warnings" }, list.map((w) => h("li", { text: typeof w === "string" ? w : JSON.stringify(w) })))));
    }
    const rest = Object.keys(details).filter((k) => !HANDLED.has(k));
    if (rest.length) out.push(section("Other details", kv(rest.map((k) => [k, h("div", { class: `detail-${k}` }, valueNode(details[k]))]))));
    return out;
  }

  /* The formula with each sub-grader's value in place of its name, and the result. */
  function formulaNode(formula, values, reward) {
    const parts = [];
    const re = /[A-Za-z_][A-Za-z0-9_]*/g;
    let at = 0;
    let m;
    while ((m = re.exec(formula))) {
      const after = formula.slice(re.lastIndex).trimStart();
      if (Object.prototype.hasOwnProperty.call(values, m[0]) && !after.startsWith("(")) {
        parts.push(formula.slice(at, m.index), h("span", { class: "value", title: m[0], text: fmt(values[m[0]], 6) }));
        at = re.lastIndex;
      }
    }
    parts.push(formula.slice(at));
    return h("div", { class: "formula" },
      h("div", null, h("code", { text: formula })),
      h("div", { class: "substituted" }, "= ", ...parts, " = ", h("strong", { text: fmt(reward, 6) })));
  }

  function subGraders(resp, grader, details) {
    const subs = details.sub_graders && typeof details.sub_graders === "object" ? details.sub_graders : null;
    const keys = subs ? Object.keys(subs) : Object.keys(resp.sub_rewards || {});
    if (!keys.length) return null;
    const configs = grader && grader.graders && typeof grader.graders === "object" ? grader.graders : {};
    const rows = keys.map((key) => {
      const sub = subs ? subs[key] || {} : { reward: resp.sub_rewards[key] };
      const setFlags = Object.entries(sub.errors || {}).filter(([k, v]) => v === true).map(([k]) => k);
      const config = configs[key] || {};
      const body = h("div", { class: "body" });
      if (setFlags.length) {
        const texts = Object.entries(sub.errors || {}).filter(([, v]) => typeof v === "string").map(([, v]) => v);
        if (sub.error && !texts.includes(sub.error)) texts.push(sub.error);
        body.append(h("div", { class: "sub-errors" }, texts.map((t) => h("pre", { class: "text", text: t }))));
      }
      const { reward: _r, errors: _e, error: _x, ...rest } = sub;
      body.append(...detailSections(rest, config.type));
      return h("details", { class: "sub-grader", dataset: { key }, open: true },
        h("summary", null, h("code", { text: key }), config.type ? ` (${config.type})` : "", ": ",
          h("strong", { class: "sub-reward", text: fmt(sub.reward, 6) }), " ",
          setFlags.length ? setFlags.map(flagBadge) : h("span", { class: "flag ok", text: "ok" })),
        body);
    });
    return h("section", { class: "section" }, h("h3", { text: "Sub-graders" }), ...rows);
  }

  function errorTexts(resp, flags) {
    const errors = (resp.metadata && resp.metadata.errors) || {};
    const details = resp.details || {};
    const items = flags.map((flag) => {
      const key = state.detailsKey[flag];
      const text = key ? errors[key] : null;
      return h("li", { class: "error-flag", dataset: { flag } }, flagBadge(flag), text ? h("pre", { class: "text", text }) : null);
    });
    const shown = flags.map((f) => errors[state.detailsKey[f]]).filter(Boolean);
    const extra = typeof details.error === "string" && !shown.includes(details.error) ? h("pre", { class: "text error-details", text: details.error }) : null;
    return h("section", { class: "section errors" }, h("h3", { text: "Errors" }), h("ul", { class: "error-list" }, items), extra);
  }

  /* A whole response explained: the reward, errors, formula, templates, sub-graders, python, judge, the rest. */
  function renderResponse(resp, grader, extra) {
    const errors = (resp.metadata && resp.metadata.errors) || {};
    const flags = state.flags.filter((f) => errors[f] === true);
    const details = resp.details || {};
    const meta = resp.metadata || {};
    const root = h("div", { class: "response" });
    const time = typeof meta.execution_time === "number" ? `${(meta.execution_time * 1000).toFixed(3)} ms` : null;
    root.append(h("div", { class: "reward-line" },
      h("output", { class: `reward${flags.length ? " failed" : ""}`, text: String(resp.reward) }),
      h("span", { class: "meta" }, `${meta.name || ""} (${meta.type || "?"})`, time ? ` · graded in ${time}` : "",
        extra && extra.roundTrip ? ` · ${extra.roundTrip.toFixed(0)} ms round trip` : ""),
      h("span", { class: "flags" }, flags.length ? flags.map(flagBadge) : h("span", { class: "flag ok", text: "no errors" }))));
    if (flags.length) root.append(errorTexts(resp, flags));
    if (grader && grader.type === "multi" && typeof grader.calculate_output === "string") {
      const values = {};
      const subs = details.sub_graders || {};
      for (const key of Object.keys(grader.graders || {})) {
        if (subs[key] && typeof subs[key].reward === "number") values[key] = subs[key].reward;
        else if (resp.sub_rewards && typeof resp.sub_rewards[key] === "number") values[key] = resp.sub_rewards[key];
      }
      root.append(section("Formula (calculate_output)", formulaNode(grader.calculate_output, values, resp.reward)));
    }
    const subs = subGraders(resp, grader, details);
    if (subs) root.append(subs);
    const { sub_graders: _s, error: _e, ...rest } = details;
    root.append(...detailSections(rest, meta.type));
    const usage = resp.model_grader_token_usage_per_model || {};
    if (Object.keys(usage).length || meta.sampled_model_name) {
      root.append(section("Model calls", kv([
        ["sampled model", valueNode(meta.sampled_model_name)],
        ...Object.entries(usage).map(([model, u]) => [`tokens: ${model}`, valueNode(u)]),
      ])));
    }
    root.append(h("details", { class: "raw section" }, h("summary", { text: "The whole response as JSON (wire shape, then details)" }),
      h("pre", { class: "text", text: JSON.stringify(resp, null, 2) })));
    return root;
  }

  /* ---------- files: save and open ---------- */

  function saveGrader() {
    const text = graderEditor.text;
    let name = state.graderName || "grader.json";
    try {
      const value = JSON.parse(text);
      if (value && typeof value.name === "string" && value.name) name = `${value.name.replace(/[^A-Za-z0-9._-]+/g, "_")}.json`;
    } catch (_) { /* saved as typed, even when it is not JSON yet */ }
    const url = URL.createObjectURL(new Blob([text.endsWith("\n") ? text : `${text}\n`], { type: "application/json" }));
    const link = h("a", { href: url, download: name, class: "visually-hidden" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    setStatus($("grader-status"), `Saved as ${name} (your browser's downloads).`, "ok");
  }

  function readFile(input) {
    return new Promise((resolve, reject) => {
      const file = input.files && input.files[0];
      if (!file) { resolve(null); return; }
      const reader = new FileReader();
      reader.onload = () => resolve({ name: file.name, size: file.size, text: String(reader.result) });
      reader.onerror = () => reject(reader.error);
      reader.readAsText(file);
      input.value = "";
    });
  }

  /* ---------- versions ---------- */

  function pin(name, text) {
    state.pinned = { name, text };
    const when = new Date().toLocaleTimeString();
    $("version-a").textContent = `Version A: ${name}, pinned at ${when}.`;
    updateCompareButton();
  }

  function pinEditor() {
    let name = state.graderName || "the editor's grader";
    try { const value = JSON.parse(graderEditor.text); if (value && value.name) name = `"${value.name}"`; } catch (_) { /* pinned as typed */ }
    pin(name, graderEditor.text);
    setStatus($("grader-status"), `Pinned as version A. Change the grader, then compare on the Rows tab.`, "ok");
  }

  function updateCompareButton() {
    const source = state.source;
    const button = $("compare");
    if (!source) { button.disabled = true; button.textContent = "Compare"; return; }
    if (source instanceof FileSource) {
      button.disabled = !source.desc.has_inputs;
      button.textContent = source.desc.recorded ? "Re-grade with the editor's grader and compare" : "Grade with the editor's grader";
      $("compare-help").textContent = source.desc.has_inputs
        ? (source.desc.recorded ? `A is what ${source.desc.name} recorded; B is the editor's grader.` : `${source.desc.name} holds rows only: grade them with the editor's grader.`)
        : `${source.desc.name} has no inputs (it was written without --with-input), so it cannot be re-graded.`;
    } else {
      button.disabled = !state.pinned;
      button.textContent = "Compare A with the editor's grader (B)";
      $("compare-help").textContent = state.pinned ? "Both versions grade the same rows; the table then lists what changed." : "Pin a version A first.";
    }
  }

  /* ---------- rows: sources ---------- */

  function snippet(row) {
    if (typeof row === "string") return row.length > 160 ? `${row.slice(0, 160)}…` : row;
    if (!row || typeof row !== "object") return null;
    const s = row.model_sample !== undefined ? row.model_sample : row.sample;
    if (s === undefined) return null;
    const text = typeof s === "string" ? s : JSON.stringify(s);
    return text.length > 160 ? `${text.slice(0, 160)}…` : text;
  }

  function binsOf(rewards) {
    const finite = rewards.filter((r) => typeof r === "number" && Number.isFinite(r));
    const low = finite.length ? Math.min(0, finite.reduce((a, b) => Math.min(a, b), Infinity)) : 0;
    const high = finite.length ? Math.max(1, finite.reduce((a, b) => Math.max(a, b), -Infinity)) : 1;
    const bin = (r) => (typeof r === "number" && Number.isFinite(r) ? Math.min(BINS - 1, Math.max(0, Math.floor(((r - low) / (high - low)) * BINS))) : -1);
    return { low, high, bin };
  }

  function columnSummary(results) {
    const rewards = results.map((r) => r.reward);
    const finite = rewards.filter((r) => typeof r === "number" && Number.isFinite(r));
    const { low, high, bin } = binsOf(rewards);
    const counts = new Array(BINS).fill(0);
    for (const r of finite) counts[bin(r)]++;
    const flags = {};
    let errors = 0;
    for (const r of results) {
      if (r.flags.length) errors++;
      for (const f of r.flags) flags[f] = (flags[f] || 0) + 1;
    }
    return {
      mean: finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : null,
      min: finite.length ? finite.reduce((a, b) => Math.min(a, b), Infinity) : null,
      max: finite.length ? finite.reduce((a, b) => Math.max(a, b), -Infinity) : null,
      errors, flags, histogram: { low, high, counts },
    };
  }

  /* Rows pasted or uploaded: held in this page, graded through /playground/grade in requests within the body limit. */
  class LocalSource {
    constructor(name, text) {
      this.name = name;
      this.lines = [];
      text.split(/\r?\n/).forEach((line, index) => {
        if (!line.trim()) return;
        try { this.lines.push({ row: JSON.parse(line), number: index + 1 }); } catch (err) { this.lines.push({ bad: `line ${index + 1} is not valid JSON: ${err.message}`, number: index + 1 }); }
      });
      this.main = null;
      this.a = null;
      this.compare = false;
      this.recorded = true;
    }
    get rows() { return this.lines.length; }

    async grade(graderText, onProgress) {
      const limit = Math.max(1024, Math.floor(state.info.max_body_bytes * 0.9) - graderText.length - 4096);
      const results = new Array(this.lines.length);
      let chunk = [];
      let indices = [];
      let size = 0;
      const options = changedOptions();
      const flush = async () => {
        if (!chunk.length) return;
        const answer = await apiChecked("/playground/grade", withGrader(graderText, { rows: chunk, options }));
        answer.results.forEach((r, k) => { results[indices[k]] = r; });
        onProgress(indices[indices.length - 1] + 1);
        chunk = []; indices = []; size = 0;
      };
      for (let i = 0; i < this.lines.length; i++) {
        const line = this.lines[i];
        if (line.bad) { results[i] = { reward: null, flags: ["unreadable_line"], error: line.bad }; continue; }
        const bytes = JSON.stringify(line.row).length + 1;
        if (bytes > limit) { results[i] = { reward: null, flags: ["unreadable_line"], error: `line ${line.number} alone is larger than this server's body limit` }; continue; }
        if (size + bytes > limit || chunk.length >= 2000) await flush();
        chunk.push(line.row); indices.push(i); size += bytes;
      }
      await flush();
      return results;
    }

    selection(q) {
      const useB = this.compare && this.a;
      const primary = this.main;
      const n = this.lines.length;
      let chosen = [];
      const { bin } = binsOf(primary.map((r) => r.reward));
      for (let i = 0; i < n; i++) {
        const r = primary[i];
        if (q.flag === "any" && !r.flags.length) continue;
        if (q.flag === "none" && r.flags.length) continue;
        if (q.flag && q.flag !== "any" && q.flag !== "none" && !r.flags.includes(q.flag)) continue;
        if (q.bin != null && bin(r.reward) !== q.bin) continue;
        if (useB && q.changed && !changedRow(this.a[i], r)) continue;
        chosen.push(i);
      }
      const key = (i) => (typeof primary[i].reward === "number" ? primary[i].reward : -Infinity);
      if (q.sort === "reward") chosen.sort((x, y) => key(x) - key(y) || x - y);
      else if (q.sort === "-reward") chosen.sort((x, y) => key(y) - key(x) || x - y);
      else if (q.sort === "-change" && useB) {
        const d = (i) => Math.abs((primary[i].reward || 0) - (this.a[i].reward || 0));
        chosen = chosen.sort((x, y) => d(y) - d(x) || x - y);
      }
      return chosen;
    }

    async page(q) {
      const chosen = this.selection(q);
      const rows = chosen.slice(q.start, q.start + PAGE).map((i) => {
        const r = this.main[i];
        const entry = { row: i, sample: snippet(this.lines[i].row), error: r.error, sub_rewards: r.sub_rewards };
        if (this.compare && this.a) Object.assign(entry, { reward: this.a[i].reward, flags: this.a[i].flags, reward_b: r.reward, flags_b: r.flags, error: r.error || this.a[i].error });
        else Object.assign(entry, { reward: r.reward, flags: r.flags });
        return entry;
      });
      return { total: chosen.length, rows_in_file: this.lines.length, rows };
    }

    async summary() {
      const out = { name: this.name, rows: this.lines.length };
      if (this.compare && this.a) {
        out.a = columnSummary(this.a);
        out.b = columnSummary(this.main);
        let changed = 0;
        let most = 0;
        this.main.forEach((r, i) => { if (changedRow(this.a[i], r)) changed++; most = Math.max(most, Math.abs((r.reward || 0) - (this.a[i].reward || 0))); });
        out.changed = changed;
        out.max_change = most;
      } else out.a = columnSummary(this.main);
      return out;
    }

    async open(index) {
      const line = this.lines[index];
      const body = h("div");
      if (line.bad) { body.append(h("p", { class: "validation error", text: line.bad })); return body; }
      body.append(section("Input", h("pre", { class: "text", text: JSON.stringify(line.row, null, 2) })));
      const row = typeof line.row === "string" ? { model_sample: line.row } : line.row;
      body.append(loadButton(row));
      const versions = this.compare && this.a && state.pinned ? [["A: " + state.pinned.name, state.pinned.text], ["B: the editor's grader", graderEditor.text]] : [["The editor's grader", graderEditor.text]];
      for (const [title, text] of versions) body.append(await explainRow(title, text, row));
      return body;
    }
  }

  function changedRow(a, b) {
    return Math.abs((a.reward || 0) - (b.reward || 0)) > 1e-12 || a.flags.join() !== b.flags.join();
  }

  /* A JSONL file the server opened (`graders ui OUT.jsonl`): every query goes to the server, a page at a time. */
  class FileSource {
    constructor(desc) {
      this.desc = desc;
      this.name = desc.name;
      this.compare = false;
      this.recorded = desc.recorded;
    }
    page(q) {
      return apiChecked("/playground/file/page", { file: this.desc.file, start: q.start, count: PAGE, flag: q.flag, bin: q.bin, sort: q.sort, changed: q.changed, compare: this.compare });
    }
    summary() { return apiChecked("/playground/file/summary", { file: this.desc.file, compare: this.compare }); }
    regrade(graderText) {
      return apiChecked("/playground/file/regrade", withGrader(graderText, { file: this.desc.file, options: changedOptions() }));
    }
    async open(index) {
      const answer = await apiChecked("/playground/file/row", { file: this.desc.file, row: index });
      const body = h("div");
      if (answer.problem) body.append(h("p", { class: "validation error", text: answer.problem }));
      const line = answer.line;
      if (line !== undefined) {
        const response = this.desc.kind === "with_input" ? line.response : this.desc.kind === "rows" ? null : line;
        if (response && typeof response === "object" && "reward" in response && response.metadata) {
          body.append(h("section", { class: "section recorded" }, h("h3", { text: `Recorded in ${this.name}` }), renderResponse(response, null)));
        } else if (response && typeof response === "object") {
          body.append(section(`Recorded in ${this.name}`, h("pre", { class: "text", text: JSON.stringify(response, null, 2) })));
        }
        if (answer.reward_b !== undefined) {
          body.append(section("Re-graded with the editor's grader", h("p", null, "reward ", h("strong", { text: fmt(answer.reward_b, 6) }), " ", answer.flags_b.map(flagBadge))));
        }
      }
      if (answer.input) {
        body.append(section("Input", h("pre", { class: "text", text: JSON.stringify(answer.input, null, 2) })));
        body.append(loadButton(answer.input));
        const explain = h("button", { type: "button", text: "Explain with the editor's grader" });
        const slot = h("div");
        explain.addEventListener("click", async () => { explain.disabled = true; slot.replaceChildren(await explainRow("The editor's grader", graderEditor.text, answer.input)); });
        body.append(h("div", { class: "toolbar" }, explain), slot);
      } else if (this.desc.kind === "wire" || this.desc.kind === "compact") {
        body.append(h("p", { class: "hint", text: "This output holds responses only; write it with graders batch --with-input to see and re-run each row's input." }));
      }
      return body;
    }
  }

  function loadButton(row) {
    return h("div", { class: "toolbar" }, h("button", {
      type: "button", text: "Load this row into the editor",
      onclick: () => {
        loadSample({ model_sample: row.model_sample, sample: row.sample, item: row.item });
        $("row-dialog").close();
        selectTab("edit");
        $("run").focus();
      },
    }));
  }

  async function explainRow(title, graderText, row) {
    const fields = {};
    for (const k of ["model_sample", "sample", "item", "reference_answer"]) if (row[k] !== undefined) fields[k] = row[k];
    let grader = null;
    try { grader = JSON.parse(graderText); } catch (_) { /* the server says what is wrong */ }
    try {
      const answer = await api("/playground/run", withGrader(graderText, { ...fields, options: changedOptions() }));
      if (answer.error) return section(title, h("pre", { class: "text", text: answer.error.message }));
      return h("section", { class: "section explained" }, h("h3", { text: title }), renderResponse(answer, grader));
    } catch (err) {
      return section(title, h("p", { class: "validation error", text: err.message }));
    }
  }

  /* ---------- rows: the view ---------- */

  function setRowsStatus(text, kind) { setStatus($("rows-status"), text, kind || ""); }

  async function useSource(source) {
    state.source = source;
    state.query = { start: 0, flag: null, bin: null, sort: "row", changed: false };
    state.summary = null;
    $("sort").value = "row";
    $("changed-only").checked = false;
    $("source-name").textContent = `· ${source.name}`;
    $("table-card").hidden = false;
    $("summary-card").hidden = false;
    fillFlagFilter(null);
    updateCompareMode();
    updateCompareButton();
    await refreshRows(true);
  }

  function updateCompareMode() {
    const source = state.source;
    const comparing = Boolean(source && source.compare);
    $("compare-off").hidden = !comparing;
    $("changed-only-label").hidden = !(comparing && source.recorded);
    $("sort").querySelector('option[value="-change"]').disabled = !(comparing && source.recorded);
  }

  async function gradePasted(text, name) {
    if (!state.info) return;
    const size = new Blob([text]).size;
    if (size > state.info.max_body_bytes) {
      setRowsStatus(`${name} is ${plural(size, "byte")}, over this server's body limit of ${plural(state.info.max_body_bytes, "byte")}: open it with "graders ui ${name}" instead, which streams it.`, "error");
      return;
    }
    if (!checkJson(graderEditor, $("grader-status"), "The grader")) { setRowsStatus("The grader in the editor is not valid JSON.", "error"); return; }
    const source = new LocalSource(name, text);
    if (!source.rows) { setRowsStatus("No rows: paste one JSON object per line.", "error"); return; }
    const started = performance.now();
    setRowsStatus(`Grading ${plural(source.rows, "row")}…`);
    try {
      source.main = await source.grade(graderEditor.text, (done) => setRowsStatus(`Grading… ${done.toLocaleString("en")} of ${source.rows.toLocaleString("en")}`));
    } catch (err) {
      setRowsStatus(`Could not grade: ${err.message}`, "error");
      if (err.body && err.body.error) showEnvelope(err.body);
      return;
    }
    setRowsStatus(`Graded ${plural(source.rows, "row")} of ${name} in ${((performance.now() - started) / 1000).toFixed(2)} s.`);
    await useSource(source);
  }

  async function openFile(desc) {
    setRowsStatus(`Opening ${desc.name}…`);
    const started = performance.now();
    await useSource(new FileSource(desc));
    setRowsStatus(`${desc.name}: first page in ${((state.pageShownAt || performance.now()) - started).toFixed(0)} ms, summary in ${(performance.now() - started).toFixed(0)} ms.`);
  }

  async function compare() {
    const source = state.source;
    if (!source) return;
    if (!checkJson(graderEditor, $("grader-status"), "The grader")) { setRowsStatus("The grader in the editor is not valid JSON.", "error"); return; }
    const started = performance.now();
    $("compare").disabled = true;
    try {
      if (source instanceof FileSource) {
        setRowsStatus(`Grading every row of ${source.name} with the editor's grader…`);
        await source.regrade(graderEditor.text);
      } else {
        setRowsStatus(`Grading ${plural(source.rows, "row")} with A and with B…`);
        const a = await source.grade(state.pinned.text, () => {});
        const b = await source.grade(graderEditor.text, () => {});
        source.a = a;
        source.main = b;
      }
      source.compare = true;
    } catch (err) {
      setRowsStatus(`Could not compare: ${err.message}`, "error");
      if (err.body && err.body.error) showEnvelope(err.body);
      updateCompareButton();
      return;
    }
    updateCompareButton();
    updateCompareMode();
    const changedOnly = source.recorded;
    state.query = { start: 0, flag: null, bin: null, sort: changedOnly ? "-change" : "row", changed: changedOnly };
    $("sort").value = state.query.sort;
    $("changed-only").checked = changedOnly;
    await refreshRows(true);
    setRowsStatus(`Compared in ${((performance.now() - started) / 1000).toFixed(2)} s.`);
  }

  function stopComparing() {
    const source = state.source;
    if (!source) return;
    source.compare = false;
    if (source instanceof LocalSource && source.a) source.a = null;
    updateCompareMode();
    state.query = { start: 0, flag: null, bin: null, sort: "row", changed: false };
    $("sort").value = "row";
    $("changed-only").checked = false;
    refreshRows(true);
  }

  function fillFlagFilter(summary) {
    const select = $("filter-flag");
    const column = summary ? (summary.b || summary.a) : null;
    const counts = column ? column.flags : null;
    const current = state.query.flag;
    const options = [h("option", { value: "", text: "all rows" }), h("option", { value: "any", text: `any error${column ? ` (${column.errors.toLocaleString("en")})` : ""}` }), h("option", { value: "none", text: "no error" })];
    const flags = counts ? Object.keys(counts) : [];
    for (const flag of flags) options.push(h("option", { value: flag, text: `${flag} (${counts[flag].toLocaleString("en")})` }));
    if (current && !["any", "none"].includes(current) && !flags.includes(current)) options.push(h("option", { value: current, text: `${current} (0)` }));
    select.replaceChildren(...options);
    select.value = current || "";
  }

  async function refreshRows(withSummary) {
    const source = state.source;
    if (!source) return;
    const seq = ++state.pageSeq;
    try {
      const page = await source.page(state.query);
      if (seq !== state.pageSeq) return;
      renderTable(page);
      state.pageShownAt = performance.now();
    } catch (err) {
      if (seq === state.pageSeq) setRowsStatus(err.message, "error");
      return;
    }
    if (withSummary) {
      try {
        const summary = await source.summary();
        if (state.source !== source) return;
        state.summary = summary;
        renderSummary(summary);
        fillFlagFilter(summary);
      } catch (err) {
        setRowsStatus(err.message, "error");
      }
    }
  }

  function histogramNode(column, title, cls, clickable) {
    const { low, high, counts } = column.histogram;
    const width = 640;
    const height = 170;
    const pad = 26;
    const most = Math.max(1, ...counts);
    const barW = (width - 2 * pad) / BINS;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height + 24}`, role: "img", "aria-label": `${title}: reward histogram` });
    root.append(svg("line", { x1: pad, y1: height, x2: width - pad, y2: height }));
    counts.forEach((count, k) => {
      const from = low + ((high - low) * k) / BINS;
      const to = low + ((high - low) * (k + 1)) / BINS;
      const barH = count ? Math.max(2, ((height - 10) * count) / most) : 0;
      const label = `${fmt(from, 3)} to ${fmt(to, 3)}: ${plural(count, "row")}`;
      const bar = svg("rect", {
        class: `bar${state.query.bin === k && clickable ? " selected" : ""}`, x: pad + k * barW + 1, y: height - barH, width: barW - 2, height: barH,
        "data-bin": k, "data-count": count, tabindex: clickable && count ? 0 : null, role: clickable && count ? "button" : null, "aria-label": label,
      }, svg("title", null, label));
      if (clickable && count) {
        const choose = () => { state.query.bin = state.query.bin === k ? null : k; state.query.start = 0; showBinFilter(from, to); refreshRows(false); renderSummary(state.summary); };
        bar.addEventListener("click", choose);
        bar.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); choose(); } });
      }
      root.append(bar);
    });
    for (const [x, text, anchor] of [[pad, fmt(low, 3), "start"], [width / 2, fmt((low + high) / 2, 3), "middle"], [width - pad, fmt(high, 3), "end"]]) {
      root.append(svg("text", { class: "axis", x, y: height + 16, "text-anchor": anchor }, text));
    }
    return h("figure", { class: `histogram ${cls}` }, h("figcaption", { class: "meta", text: title }), root);
  }

  function showBinFilter(from, to) {
    const box = $("bin-filter");
    box.hidden = state.query.bin == null;
    $("bin-filter-text").textContent = state.query.bin == null ? "" : `Rewards from ${fmt(from, 3)} to ${fmt(to, 3)}`;
  }

  function stats(column, label) {
    const entries = [["rows with an error", column.errors.toLocaleString("en")], ["mean", fmt(column.mean)], ["min", fmt(column.min)], ["max", fmt(column.max)]];
    return h("dl", { class: "stats", "aria-label": label }, entries.map(([k, v]) => h("div", null, h("dt", { text: k }), h("dd", { text: v }))));
  }

  function renderSummary(summary) {
    if (!summary) return;
    const box = $("summary");
    const parts = [h("p", { class: "meta" }, `${summary.name || state.source.name}: ${plural(summary.rows, "row")}`)];
    const comparing = summary.a && summary.b;
    if (comparing) {
      parts.push(h("p", { class: "changed-summary" }, h("strong", { text: plural(summary.changed, "row") }), ` changed between A and B; the largest change is ${fmt(summary.max_change)}.`));
      parts.push(h("div", { class: "histograms" },
        h("div", null, stats(summary.a, "version A"), histogramNode(summary.a, "A", "a", false)),
        h("div", null, stats(summary.b, "version B"), histogramNode(summary.b, "B (the editor's grader)", "b", true))));
    } else {
      const column = summary.b || summary.a;
      if (column) parts.push(stats(column, "rewards"), h("div", { class: "histograms" }, histogramNode(column, "rewards", "b", true)));
      else parts.push(h("p", { class: "hint", text: "These rows have no responses yet: grade them with the editor's grader (Compare card)." }));
    }
    const column = summary.b || summary.a;
    if (column && Object.keys(column.flags).length) {
      parts.push(h("div", { class: "flag-counts chips", role: "group", "aria-label": "Filter by error flag" },
        Object.entries(column.flags).map(([flag, count]) => h("button", {
          type: "button", dataset: { flag }, text: `${flag}: ${count.toLocaleString("en")}`,
          onclick: () => { state.query.flag = flag; state.query.start = 0; $("filter-flag").value = flag; refreshRows(false); },
        }))));
    }
    box.replaceChildren(...parts);
  }

  function renderTable(page) {
    const source = state.source;
    const comparing = source.compare && source.recorded;
    const onlyB = source.compare && !source.recorded;
    const head = ["row", ...(comparing ? ["A", "B", "change"] : ["reward"]), "flags", "sample", "reason"];
    $("rows-head").replaceChildren(...head.map((name) => h("th", { scope: "col", text: name })));
    const body = $("rows-body");
    const rows = page.rows.map((entry, k) => {
      const reward = onlyB ? entry.reward_b : entry.reward;
      const flags = (source.compare ? entry.flags_b : entry.flags) || [];
      const cells = [h("td", { class: "num", text: String(entry.row) })];
      if (comparing) {
        const delta = (entry.reward_b || 0) - (entry.reward || 0);
        cells.push(h("td", { class: "num reward-a", text: fmt(entry.reward) }), h("td", { class: "num reward-b", text: fmt(entry.reward_b) }),
          h("td", { class: `num change ${delta > 0 ? "delta-up" : delta < 0 ? "delta-down" : ""}`, text: delta ? `${delta > 0 ? "+" : ""}${fmt(delta)}` : "0" }));
      } else cells.push(h("td", { class: "num reward-cell", text: fmt(reward) }));
      cells.push(h("td", { class: "flags" }, flags.map(flagBadge)));
      cells.push(h("td", { class: "sample", text: entry.sample == null ? "" : entry.sample }));
      cells.push(h("td", { class: "reason", text: entry.error || "" }));
      const tr = h("tr", { tabindex: k === 0 ? 0 : -1, dataset: { row: entry.row }, "aria-label": `row ${entry.row}, reward ${fmt(comparing ? entry.reward_b : reward)}` }, cells);
      tr.addEventListener("click", () => openRow(entry.row));
      return tr;
    });
    body.replaceChildren(...rows);
    const from = page.total ? state.query.start + 1 : 0;
    const to = Math.min(state.query.start + PAGE, page.total);
    const of = page.total === page.rows_in_file ? "" : ` (filtered from ${page.rows_in_file.toLocaleString("en")})`;
    $("page-info").textContent = `Rows ${from.toLocaleString("en")}–${to.toLocaleString("en")} of ${page.total.toLocaleString("en")}${of}`;
    $("page-prev").disabled = state.query.start === 0;
    $("page-next").disabled = state.query.start + PAGE >= page.total;
    state.total = page.total;
  }

  function movePage(delta) {
    const start = state.query.start + delta * PAGE;
    if (start < 0 || start >= (state.total || 0)) return;
    state.query.start = start;
    refreshRows(false);
  }

  async function openRow(index) {
    const dialog = $("row-dialog");
    $("row-dialog-title").textContent = `Row ${index} of ${state.source.name}`;
    const body = $("row-dialog-body");
    body.replaceChildren(h("p", { class: "hint", text: "Loading…" }));
    if (!dialog.open) dialog.showModal();
    try {
      body.replaceChildren(await state.source.open(index));
    } catch (err) {
      body.replaceChildren(h("p", { class: "validation error", text: err.message }));
    }
  }

  /* ---------- tabs and keys ---------- */

  function selectTab(name) {
    for (const tab of ["edit", "rows"]) {
      const selected = tab === name;
      $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
      $(`tab-${tab}`).tabIndex = selected ? 0 : -1;
      $(`view-${tab}`).hidden = !selected;
    }
  }

  function onKey(event) {
    const mod = event.ctrlKey || event.metaKey;
    if (mod && event.key === "Enter") {
      event.preventDefault();
      if (document.activeElement === $("rows-text")) gradePasted($("rows-text").value, "pasted rows");
      else { selectTab("edit"); run(); }
    } else if (mod && (event.key === "s" || event.key === "S")) {
      event.preventDefault();
      saveGrader();
    } else if (event.altKey && (event.key === "1" || event.key === "2")) {
      event.preventDefault();
      selectTab(event.key === "1" ? "edit" : "rows");
      $(event.key === "1" ? "tab-edit" : "tab-rows").focus();
    } else if (event.key === "?" && !isTyping(document.activeElement) && !mod) {
      event.preventDefault();
      $("help-dialog").showModal();
    }
  }

  function onTableKey(event) {
    const row = event.target.closest("tr");
    if (!row || !row.parentElement || row.parentElement.id !== "rows-body") return;
    let next = null;
    if (event.key === "ArrowDown") next = row.nextElementSibling;
    else if (event.key === "ArrowUp") next = row.previousElementSibling;
    else if (event.key === "Enter" || event.key === " ") { event.preventDefault(); openRow(Number(row.dataset.row)); return; }
    else if (event.key === "PageDown") { event.preventDefault(); movePage(1); return; }
    else if (event.key === "PageUp") { event.preventDefault(); movePage(-1); return; }
    if (next) {
      event.preventDefault();
      row.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    }
  }

  /* ---------- start ---------- */

  function chip(label, onClick, attrs) {
    return h("button", { type: "button", text: label, onclick: onClick, ...(attrs || {}) });
  }

  function buildExamples(info) {
    const good = info.examples.graders.filter((e) => e.group === "graders");
    const broken = info.examples.graders.filter((e) => e.group === "invalid");
    const load = (e) => () => loadGrader(e.name, e.text, e);
    $("examples").replaceChildren(...good.map((e) => chip(e.name.replace(/\.json$/, ""), load(e), { dataset: { example: e.name } })));
    $("broken-examples").replaceChildren(...broken.map((e) => chip(e.name.replace(/\.json$/, ""), load(e), { dataset: { example: e.name }, title: `its error names '${e.param}'` })));
    if (info.opened_graders.length) {
      $("opened-graders").hidden = false;
      $("opened-graders").replaceChildren(h("span", { class: "meta", text: "Opened: " }),
        ...info.opened_graders.map((g) => chip(g.name, () => loadGrader(g.name, g.text, null), { dataset: { opened: g.name } })));
    }
    $("example-rows").replaceChildren(...info.examples.rows.map((r) => chip(r.name, () => { $("rows-text").value = r.text; gradePasted(r.text, r.name); }, { dataset: { rows: r.name } })));
    if (info.files.length) {
      $("opened-files").hidden = false;
      $("opened-files-list").replaceChildren(...info.files.map((f) => chip(`${f.name} (${f.kind}, ${(f.bytes / 1e6).toFixed(1)} MB)`, () => openFile(f), { dataset: { file: f.file } })));
    }
  }

  function wire() {
    graderEditor = new Editor("grader-editor");
    sampleEditor = new Editor("sample-editor");
    itemEditor = new Editor("item-editor");
    graderEditor.area.addEventListener("input", validateSoon);
    itemEditor.area.addEventListener("input", debounce(() => { if (checkJson(itemEditor, $("item-status"), "The item", true)) setStatus($("item-status"), "", ""); }, 300));
    sampleEditor.area.addEventListener("input", debounce(() => { if (checkJson(sampleEditor, $("sample-status"), "The sample", true)) setStatus($("sample-status"), "", ""); }, 300));
    $("sample-kind-text").addEventListener("change", () => switchSampleKind("text"));
    $("sample-kind-structured").addEventListener("change", () => switchSampleKind("structured"));
    $("add-tool-call").addEventListener("click", addToolCall);
    $("source-text").addEventListener("input", debounce(sourceEdited, 250));
    $("source-choice").addEventListener("change", () => {
      $("source-text").value = valueAtPath(state.parsedGrader ? state.parsedGrader.value : null, $("source-choice").value.split(".")) || "";
    });
    $("run").addEventListener("click", run);
    $("format-grader").addEventListener("click", () => {
      const parsed = checkJson(graderEditor, $("grader-status"), "The grader");
      if (parsed) { graderEditor.text = JSON.stringify(parsed.value, null, 2); validateNow(); }
    });
    $("save-grader").addEventListener("click", saveGrader);
    $("open-grader").addEventListener("change", async (e) => { const f = await readFile(e.target); if (f) loadGrader(f.name, f.text, null); });
    $("pin-grader").addEventListener("click", pinEditor);
    $("pin-grader-rows").addEventListener("click", pinEditor);
    $("open-version-a").addEventListener("change", async (e) => { const f = await readFile(e.target); if (f) pin(f.name, f.text); });
    $("all-options").addEventListener("change", () => showRelevantOptions(state.parsedGrader ? state.parsedGrader.value : null));
    $("reset-options").addEventListener("click", () => {
      buildOptions();
      showRelevantOptions(state.parsedGrader ? state.parsedGrader.value : null);
      validateSoon();
      if (state.hasResult) run();
    });
    $("grade-pasted").addEventListener("click", () => gradePasted($("rows-text").value, "pasted rows"));
    $("rows-file").addEventListener("change", async (e) => {
      const file = e.target.files && e.target.files[0];
      if (file && file.size > state.info.max_body_bytes) {
        setRowsStatus(`${file.name} is ${plural(file.size, "byte")}, over this server's body limit of ${plural(state.info.max_body_bytes, "byte")}: open it with "graders ui ${file.name}" instead, which streams it.`, "error");
        e.target.value = "";
        return;
      }
      const f = await readFile(e.target);
      if (f) gradePasted(f.text, f.name);
    });
    $("compare").addEventListener("click", compare);
    $("compare-off").addEventListener("click", stopComparing);
    $("filter-flag").addEventListener("change", (e) => { state.query.flag = e.target.value || null; state.query.start = 0; refreshRows(false); });
    $("sort").addEventListener("change", (e) => { state.query.sort = e.target.value; state.query.start = 0; refreshRows(false); });
    $("changed-only").addEventListener("change", (e) => { state.query.changed = e.target.checked; state.query.start = 0; refreshRows(false); });
    $("bin-clear").addEventListener("click", () => { state.query.bin = null; state.query.start = 0; showBinFilter(); refreshRows(false); renderSummary(state.summary); });
    $("page-prev").addEventListener("click", () => movePage(-1));
    $("page-next").addEventListener("click", () => movePage(1));
    $("rows-body").addEventListener("keydown", onTableKey);
    $("row-dialog-close").addEventListener("click", () => $("row-dialog").close());
    $("help-open").addEventListener("click", () => $("help-dialog").showModal());
    $("help-close").addEventListener("click", () => $("help-dialog").close());
    for (const name of ["edit", "rows"]) {
      const tab = $(`tab-${name}`);
      tab.addEventListener("click", () => selectTab(name));
      tab.addEventListener("keydown", (e) => {
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
          e.preventDefault();
          const other = name === "edit" ? "rows" : "edit";
          selectTab(other);
          $(`tab-${other}`).focus();
        }
      });
    }
    document.addEventListener("keydown", onKey);
  }

  async function start() {
    wire();
    state.key = takeKey();
    let info = null;
    for (let attempt = 0; attempt < 3 && !info; attempt++) {
      try {
        info = await api("/playground/info", {});
      } catch (err) {
        if (err.status === 401) await askKey();
        else { $("server-status").textContent = `The server did not answer: ${err.message}`; return; }
      }
    }
    if (!info) { $("server-status").textContent = "The server refused the key."; return; }
    state.info = info;
    state.flags = info.flags;
    for (const flag of info.flags) {
      state.detailsKey[flag] = flag === "python_grader_server_error" ? "python_grader_server_error_type" : `${flag}_details`;
    }
    state.options = info.scoring_options.map((o) => ({ ...o }));
    $("server-status").textContent = `python graders: ${info.python_graders} · body limit ${(info.max_body_bytes / 1048576).toFixed(0)} MiB`;
    buildOptions();
    buildExamples(info);
    const first = info.opened_graders[0];
    if (first) loadGrader(first.name, first.text, null);
    else {
      const example = info.examples.graders.find((e) => e.name === "answer_checks_multi.json") || info.examples.graders[0];
      if (example) loadGrader(example.name, example.text, example);
    }
    if (info.files.length) {
      selectTab("rows");
      openFile(info.files[0]);
    }
    document.body.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", start);
})();
