// locara-server completion UI: the text is the prompt, the model's continuation is appended to it.
// Talks to llama-server's /completion endpoint with `stream: true` (server-sent events).
// No framework, no build step, nothing loaded from elsewhere (works under `default-src 'self'`).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    text: $("text"),
    backdrop: $("backdrop"),
    complete: $("complete"),
    stop: $("stop"),
    undo: $("undo"),
    status: $("status"),
    tokens: $("stat-tokens"),
    speed: $("stat-speed"),
    serverDot: $("server-dot"),
    serverText: $("server-text"),
    facts: $("facts"),
    reset: $("reset"),
    apiKey: $("api_key"),
  };
  const SETTINGS_KEY = "locara.completion.settings.v1";
  const TEXT_KEY = "locara.completion.text.v1";
  const DEFAULTS = { temperature: 0.8, top_p: 0.95, n_predict: 256 };
  const FIELDS = {
    temperature: { el: $("temperature"), out: $("temperature-out"), min: 0, max: 2, digits: 2 },
    top_p: { el: $("top_p"), out: $("top_p-out"), min: 0.05, max: 1, digits: 2 },
    n_predict: { el: $("n_predict"), out: null, min: 1, max: 8192, digits: 0 },
  };

  let controller = null; // AbortController of the running request
  let gen = null; // {start, end} of the last completion inside the text, while it is untouched
  let beforeLast = null; // the text before the last completion (for Undo)
  let serverOk = false;

  // ---- settings ---------------------------------------------------------------------------

  function loadSettings() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}") || {};
    } catch (_) {
      saved = {};
    }
    for (const [name, f] of Object.entries(FIELDS)) {
      const v = Number(saved[name]);
      f.el.value = String(Number.isFinite(v) ? clamp(v, f.min, f.max) : DEFAULTS[name]);
    }
    ui.apiKey.value = typeof saved.api_key === "string" ? saved.api_key : "";
    showSettings();
  }

  function clamp(v, lo, hi) {
    return Math.min(hi, Math.max(lo, v));
  }

  function settings() {
    const out = {};
    for (const [name, f] of Object.entries(FIELDS)) {
      let v = Number(f.el.value);
      if (!Number.isFinite(v) || f.el.value === "") v = DEFAULTS[name];
      v = clamp(v, f.min, f.max);
      out[name] = f.digits === 0 ? Math.round(v) : v;
    }
    return out;
  }

  function showSettings() {
    for (const f of Object.values(FIELDS)) {
      if (f.out) f.out.value = Number(f.el.value).toFixed(f.digits);
    }
  }

  function saveSettings() {
    const s = settings();
    s.api_key = ui.apiKey.value;
    try {
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
    } catch (_) {
      /* private mode: settings last for this page only */
    }
    showSettings();
  }

  function saveText() {
    try {
      localStorage.setItem(TEXT_KEY, ui.text.value);
    } catch (_) {
      /* ignore */
    }
  }

  // ---- server -------------------------------------------------------------------------------

  // Relative URLs, so the page also works behind a reverse proxy under a path prefix.
  const api = (path) => new URL(path, document.baseURI).toString();

  function headers(json) {
    const h = {};
    if (json) h["Content-Type"] = "application/json";
    if (ui.apiKey.value) h["Authorization"] = "Bearer " + ui.apiKey.value;
    return h;
  }

  function setServer(kind, text) {
    ui.serverDot.className = "dot " + kind;
    ui.serverText.textContent = text;
  }

  function shortModel(name) {
    if (!name) return "model";
    const base = String(name).split(/[\\/]/).pop();
    return /^[0-9a-f]{64}$/.test(base) ? "sha256:" + base.slice(0, 12) + "…" : base;
  }

  function fact(dl, key, value) {
    if (value === undefined || value === null || value === "") return;
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dl.append(dt, dd);
  }

  async function checkServer() {
    try {
      const res = await fetch(api("health"), { headers: headers(false), cache: "no-store" });
      if (res.status === 503) {
        serverOk = false;
        setServer("busy", "loading the model…");
        return;
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      if (!serverOk) await loadProps();
      serverOk = true;
    } catch (_) {
      serverOk = false;
      setServer("down", "server unreachable");
    }
  }

  async function loadProps() {
    try {
      const res = await fetch(api("props"), { headers: headers(false), cache: "no-store" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const p = await res.json();
      const n_ctx = p.default_generation_settings && p.default_generation_settings.n_ctx;
      setServer("ok", shortModel(p.model_alias || p.model_path) + (n_ctx ? " · ctx " + n_ctx : ""));
      ui.facts.replaceChildren();
      fact(ui.facts, "model", shortModel(p.model_alias || p.model_path));
      fact(ui.facts, "context", n_ctx);
      fact(ui.facts, "slots", p.total_slots);
      fact(ui.facts, "build", p.build_info);
    } catch (_) {
      setServer("ok", "ready");
    }
  }

  // ---- the text and its highlight ---------------------------------------------------------

  function renderBackdrop() {
    const value = ui.text.value;
    const parts = [];
    if (gen && gen.end > gen.start) {
      parts.push(document.createTextNode(value.slice(0, gen.start)));
      const mark = document.createElement("mark");
      mark.textContent = value.slice(gen.start, gen.end);
      parts.push(mark);
      parts.push(document.createTextNode(value.slice(gen.end)));
    } else {
      parts.push(document.createTextNode(value));
    }
    parts.push(document.createTextNode("\n")); // a trailing newline wraps like the textarea does
    ui.backdrop.replaceChildren(...parts);
    ui.backdrop.scrollTop = ui.text.scrollTop;
  }

  function appendText(chunk) {
    const t = ui.text;
    const follow = t.scrollHeight - t.scrollTop - t.clientHeight < 48;
    t.value += chunk;
    if (gen) gen.end = t.value.length;
    renderBackdrop();
    if (follow) {
      t.scrollTop = t.scrollHeight;
      ui.backdrop.scrollTop = t.scrollTop;
    }
  }

  // ---- generation ------------------------------------------------------------------------

  function setStatus(text, isError) {
    ui.status.textContent = text;
    ui.status.classList.toggle("error", Boolean(isError));
  }

  function setBusy(busy) {
    ui.complete.disabled = busy;
    ui.stop.disabled = !busy;
    ui.undo.disabled = busy || beforeLast === null;
    ui.text.readOnly = busy;
    document.body.classList.toggle("busy", busy);
  }

  function showStats(tokens, perSecond) {
    ui.tokens.textContent = tokens === 1 ? "1 token" : tokens + " tokens";
    ui.speed.textContent = (perSecond > 0 ? perSecond.toFixed(1) : "–") + " tok/s";
  }

  async function errorText(res) {
    const body = await res.text();
    try {
      const j = JSON.parse(body);
      if (j && j.error) return j.error.message || JSON.stringify(j.error);
    } catch (_) {
      /* not JSON */
    }
    if (res.status === 401) return "the server wants an API key (Server → API key)";
    return "HTTP " + res.status + (body ? ": " + body.slice(0, 200) : "");
  }

  // Split an SSE stream into events; call onEvent(field, data) for each `data:`/`error:` payload.
  function sseParser(onEvent) {
    let buffer = "";
    return (chunk, flush) => {
      buffer += chunk;
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = flush ? "" : blocks.pop();
      for (const block of blocks) {
        const data = [];
        let kind = "data";
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          else if (line.startsWith("error:")) {
            kind = "error";
            data.push(line.slice(6).replace(/^ /, ""));
          }
        }
        if (data.length) onEvent(kind, data.join("\n"));
      }
    };
  }

  function duration(ms) {
    return ms < 1000 ? Math.max(1, Math.round(ms)) + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  function stopMessage(last, limit) {
    if (!last) return "Done.";
    switch (last.stop_type) {
      case "eos":
        return "Done: the model ended the text.";
      case "limit":
        return "Done: reached the limit of " + limit + " tokens.";
      case "word":
        return "Done: hit a stop word.";
      default:
        return "Done.";
    }
  }

  async function complete() {
    if (controller) return;
    const prompt = ui.text.value;
    if (!prompt.trim()) {
      setStatus("Write the beginning of a text first: the model continues it.");
      ui.text.focus();
      return;
    }
    saveSettings();
    const s = settings();
    beforeLast = prompt;
    gen = { start: prompt.length, end: prompt.length };
    controller = new AbortController();
    setBusy(true);
    setStatus("Reading the prompt…");
    showStats(0, 0);

    let tokens = 0;
    let firstTokenAt = 0;
    let last = null;
    let streamError = null;
    const parse = sseParser((kind, data) => {
      if (data === "[DONE]") return;
      let obj;
      try {
        obj = JSON.parse(data);
      } catch (_) {
        return;
      }
      if (kind === "error" || obj.error) {
        const e = obj.error || obj;
        streamError = e.message || JSON.stringify(e);
        return;
      }
      if (typeof obj.content === "string" && obj.content.length) {
        if (!firstTokenAt) {
          firstTokenAt = performance.now();
          setStatus("Generating…");
        }
        tokens += Array.isArray(obj.tokens) && obj.tokens.length ? obj.tokens.length : 1;
        appendText(obj.content);
        const seconds = (performance.now() - firstTokenAt) / 1000;
        showStats(tokens, tokens > 1 && seconds > 0 ? (tokens - 1) / seconds : 0);
      }
      if (obj.stop) last = obj;
    });

    try {
      const res = await fetch(api("completion"), {
        method: "POST",
        headers: headers(true),
        body: JSON.stringify({
          prompt,
          stream: true,
          n_predict: s.n_predict,
          temperature: s.temperature,
          top_p: s.top_p,
          cache_prompt: true,
        }),
        signal: controller.signal,
      });
      if (!res.ok) throw new Error(await errorText(res));
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parse(decoder.decode(value, { stream: true }), false);
      }
      parse(decoder.decode(), true);
      if (streamError) throw new Error(streamError);
      const t = last && last.timings;
      if (t && t.predicted_n) showStats(t.predicted_n, t.predicted_per_second || 0);
      setStatus(stopMessage(last, s.n_predict) + (t && t.prompt_n ? " Prompt: " + t.prompt_n + " new tokens read in " + duration(t.prompt_ms) + "." : ""));
    } catch (err) {
      if (err && err.name === "AbortError") {
        setStatus(tokens ? "Stopped." : "Stopped before the first token.");
      } else {
        const msg = err && err.message ? err.message : String(err);
        setStatus(/Failed to fetch|NetworkError|network/i.test(msg) ? "The server is not reachable. Is llama-server still running?" : "Error: " + msg, true);
        checkServer();
      }
    } finally {
      controller = null;
      if (gen && gen.end === gen.start) {
        gen = null;
        beforeLast = null;
      }
      setBusy(false);
      renderBackdrop();
      saveText();
      ui.text.focus();
    }
  }

  function stop() {
    if (controller) controller.abort();
  }

  function undo() {
    if (beforeLast === null || controller) return;
    ui.text.value = beforeLast;
    beforeLast = null;
    gen = null;
    renderBackdrop();
    setBusy(false);
    setStatus("Removed the last completion.");
    saveText();
  }

  // ---- wiring ----------------------------------------------------------------------------

  ui.complete.addEventListener("click", complete);
  ui.stop.addEventListener("click", stop);
  ui.undo.addEventListener("click", undo);
  ui.reset.addEventListener("click", () => {
    for (const [name, f] of Object.entries(FIELDS)) f.el.value = String(DEFAULTS[name]);
    saveSettings();
  });
  for (const f of Object.values(FIELDS)) f.el.addEventListener("input", saveSettings);
  $("server-form").addEventListener("submit", (e) => e.preventDefault());
  ui.apiKey.addEventListener("change", () => {
    saveSettings();
    serverOk = false;
    checkServer();
  });
  ui.text.addEventListener("input", () => {
    // the user edited the text: the highlighted completion and Undo no longer apply
    gen = null;
    beforeLast = null;
    ui.undo.disabled = true;
    renderBackdrop();
    saveText();
  });
  ui.text.addEventListener("scroll", () => {
    ui.backdrop.scrollTop = ui.text.scrollTop;
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      complete();
    } else if (e.key === "Escape" && controller) {
      e.preventDefault();
      stop();
    }
  });
  window.addEventListener("resize", renderBackdrop);

  loadSettings();
  try {
    ui.text.value = localStorage.getItem(TEXT_KEY) || "";
  } catch (_) {
    /* ignore */
  }
  renderBackdrop();
  checkServer();
  setInterval(() => {
    if (!controller) checkServer();
  }, 5000);
})();
