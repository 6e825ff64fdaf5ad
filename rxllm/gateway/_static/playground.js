/* The rxllm playground: one prompt, several models, streamed side by side.
 *
 * Plain JavaScript, no build step and no library. Everything goes to the gateway that served
 * this page, through its OpenAI-compatible endpoints, with the key typed in (if any):
 *   GET  v1/models             the configured model names
 *   POST v1/chat/completions   one streamed request per model (stream_options.include_usage)
 *   GET  v1/rxllm/prices       the price table's rates for the provider and model that answered
 * Each column has its own AbortController: Stop aborts them all, the browser closes the
 * connections, and the gateway cancels the upstream requests.
 */
"use strict";

(function () {
  const KEY_STORAGE = "rxllm.playground.key";
  const CHOICE_STORAGE = "rxllm.playground.models";
  const EXTRA_STORAGE = "rxllm.playground.extra-models";
  // Okabe and Ito's palette: told apart by most colour-blind readers.
  const COLORS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];
  const CHARS_PER_TOKEN = 4; // the estimate while no usage has arrived (the gateway's too)

  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $("run-form"),
    key: $("key"),
    modelList: $("model-list"),
    modelsNote: $("models-note"),
    extraModels: $("extra-models"),
    system: $("system"),
    params: $("params"),
    prompt: $("prompt"),
    send: $("send"),
    stop: $("stop"),
    status: $("status"),
    columns: $("columns"),
    template: $("column-template"),
    chartSection: $("chart-section"),
    chart: $("chart"),
    legend: $("legend"),
  };

  /** The run on screen: {started, columns, finished}. */
  let run = null;
  /** "provider\nmodel" -> Promise of {price, reason}. */
  const prices = new Map();
  /** The latest listing of the models asked for (an older answer arriving late is dropped). */
  let listing = 0;

  // --- small helpers --------------------------------------------------------------------

  function stored(name) {
    try {
      return window.localStorage.getItem(name);
    } catch (error) {
      return null; // storage disabled: the page still works, it just forgets
    }
  }

  function store(name, value) {
    try {
      if (value) window.localStorage.setItem(name, value);
      else window.localStorage.removeItem(name);
    } catch (error) {
      /* storage disabled */
    }
  }

  function headers(extra) {
    const all = Object.assign({}, extra);
    const key = ui.key.value.trim();
    if (key) all.Authorization = "Bearer " + key;
    return all;
  }

  function setStatus(text, bad) {
    ui.status.textContent = text;
    ui.status.classList.toggle("bad", Boolean(bad));
  }

  /** The message of an OpenAI-style error body, or the text itself. */
  function messageOf(text) {
    try {
      const body = JSON.parse(text);
      if (body && body.error) return body.error.message || JSON.stringify(body.error);
    } catch (error) {
      /* not JSON */
    }
    return text.trim();
  }

  async function errorText(response) {
    const text = await response.text().catch(() => "");
    return `HTTP ${response.status}: ${messageOf(text) || response.statusText}`;
  }

  function duration(ms) {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  function dollars(cost) {
    if (cost === 0) return "$0";
    if (cost < 0.000001) return "<$0.000001";
    if (cost < 1) return "$" + cost.toPrecision(3);
    return "$" + cost.toFixed(2);
  }

  // --- models ---------------------------------------------------------------------------

  function savedChoices() {
    return new Set((stored(CHOICE_STORAGE) || "").split("\n").filter(Boolean));
  }

  function chosenModels() {
    const names = Array.from(ui.modelList.querySelectorAll("input[name=model]:checked"), (box) => box.value);
    for (const name of ui.extraModels.value.split(",")) {
      const trimmed = name.trim();
      if (trimmed && !names.includes(trimmed)) names.push(trimmed);
    }
    return names;
  }

  function saveChoices() {
    const checked = Array.from(ui.modelList.querySelectorAll("input[name=model]:checked"), (box) => box.value);
    store(CHOICE_STORAGE, checked.join("\n"));
    store(EXTRA_STORAGE, ui.extraModels.value.trim());
  }

  async function loadModels() {
    const mine = ++listing;
    const chosen = savedChoices();
    ui.modelsNote.textContent = "Loading the models…";
    let response, body, failure;
    try {
      response = await fetch("v1/models", { headers: headers(), cache: "no-store" });
      if (response.ok) body = await response.json();
      else failure = (await errorText(response)) + (response.status === 401 ? " Type the gateway's key above." : "");
    } catch (error) {
      failure = `Could not reach the gateway: ${error.message}`;
    }
    if (mine !== listing) return;
    if (failure) {
      ui.modelList.replaceChildren();
      ui.modelsNote.textContent = failure;
      return;
    }
    const names = (body.data || []).map((model) => model.id);
    ui.modelList.replaceChildren(
      ...names.map((name) => {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "model";
        box.value = name;
        box.checked = chosen.has(name);
        label.append(box, name);
        return label;
      }),
    );
    ui.modelsNote.textContent = names.length
      ? ""
      : "This gateway lists no model names (its models are wildcards): type names below.";
  }

  // --- streaming --------------------------------------------------------------------------

  /** One SSE block as {event, data, at}, or null for a comment (a `: keep-alive`). */
  function parseBlock(block, at) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    return data.length ? { event, data: data.join("\n"), at } : null;
  }

  /** The SSE events of a response body, each with the time its bytes arrived. */
  async function* sseEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const at = performance.now();
        // CRLF and CR end lines too; a CR at the very end may be half of a CRLF still to come.
        buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n|\r(?!$)/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = parseBlock(buffer.slice(0, cut), at);
          buffer = buffer.slice(cut + 2);
          if (event) yield event;
        }
      }
      const last = parseBlock((buffer + decoder.decode()).replace(/\r\n?/g, "\n").trim(), performance.now());
      if (last) yield last;
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function makeColumn(model, color) {
    const element = ui.template.content.firstElementChild.cloneNode(true);
    const part = (name) => element.querySelector("." + name);
    const column = {
      model,
      color,
      element,
      parts: {
        state: part("state"),
        ttft: part("ttft"),
        tps: part("tps"),
        tokens: part("tokens"),
        cost: part("cost"),
        answer: part("answer"),
        error: part("error"),
      },
      controller: new AbortController(),
      state: "waiting",
      t0: 0,
      tFirst: null,
      tLast: null,
      chars: 0,
      usage: null,
      provider: "",
      served: "",
      points: [], // [ms since sent, characters so far]
      pending: [], // [kind, text] not yet on screen
      segment: null, // the answer's last text node and its kind
      scheduled: false,
    };
    element.dataset.model = model;
    part("model").textContent = model;
    part("swatch").style.background = color;
    element.setAttribute("aria-label", `Answer of ${model}`);
    ui.columns.append(element);
    return column;
  }

  function setState(column, state) {
    column.state = state;
    column.element.dataset.state = state;
    column.parts.state.textContent = state;
  }

  function fail(column, message) {
    setState(column, "error");
    column.parts.error.textContent = message;
    column.parts.error.hidden = false;
  }

  function tokens(column) {
    if (column.usage) return { count: column.usage.completion_tokens || 0, exact: true };
    if (column.chars) return { count: Math.ceil(column.chars / CHARS_PER_TOKEN), exact: false };
    return null;
  }

  function onChunk(column, chunk, at) {
    if (chunk.provider) column.provider = chunk.provider;
    if (chunk.model) column.served = chunk.model;
    if (chunk.usage) column.usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      if (choice.index) continue; // the first choice only (the page asks for one)
      const delta = choice.delta || {};
      const reasoning = delta.reasoning_content || "";
      let text = (delta.content || "") + (delta.refusal || "");
      for (const call of delta.tool_calls || []) {
        const fn = call.function || {};
        text += (fn.name ? `\n[tool call ${fn.name}] ` : "") + (fn.arguments || "");
      }
      if (!reasoning && !text) continue;
      if (column.tFirst === null) column.tFirst = at;
      column.tLast = at;
      column.chars += reasoning.length + text.length;
      column.points.push([at - column.t0, column.chars]);
      if (reasoning) column.pending.push(["reasoning", reasoning]);
      if (text) column.pending.push(["text", text]);
    }
    if (column.state === "waiting" && column.tFirst !== null) setState(column, "streaming");
    schedule(column);
  }

  /** Show what arrived at the next frame (one DOM update per frame, not per chunk). */
  function schedule(column) {
    if (column.scheduled) return;
    column.scheduled = true;
    requestAnimationFrame(() => render(column));
  }

  function render(column) {
    column.scheduled = false;
    const answer = column.parts.answer;
    const atBottom = answer.scrollTop + answer.clientHeight >= answer.scrollHeight - 4;
    for (const [kind, text] of column.pending) {
      if (!column.segment || column.segment.kind !== kind) {
        const node = document.createTextNode("");
        if (kind === "reasoning") {
          const span = document.createElement("span");
          span.className = "reasoning";
          span.append(node);
          answer.append(span);
        } else {
          answer.append(node);
        }
        column.segment = { kind, node };
      }
      column.segment.node.appendData(text);
    }
    column.pending = [];
    if (atBottom) answer.scrollTop = answer.scrollHeight;
    const parts = column.parts;
    if (column.tFirst !== null) parts.ttft.textContent = duration(column.tFirst - column.t0);
    const count = tokens(column);
    if (count) parts.tokens.textContent = (count.exact ? "" : "~") + count.count;
    if (count && column.tLast > column.tFirst) {
      const rate = count.count / ((column.tLast - column.tFirst) / 1000);
      parts.tps.textContent = (count.exact ? "" : "~") + rate.toFixed(1);
    }
  }

  async function stream(column, body, started) {
    column.t0 = started;
    try {
      const response = await fetch("v1/chat/completions", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json" }),
        body: JSON.stringify(body),
        signal: column.controller.signal,
        cache: "no-store",
      });
      if (!response.ok) throw new Error(await errorText(response));
      let finished = false;
      for await (const event of sseEvents(response.body)) {
        if (event.event === "error") throw new Error(messageOf(event.data));
        if (event.data === "[DONE]") {
          finished = true;
          break;
        }
        onChunk(column, JSON.parse(event.data), event.at);
      }
      if (!finished) throw new Error("the stream ended without [DONE]");
      setState(column, "done");
    } catch (error) {
      if (error.name === "AbortError") setState(column, "stopped");
      else fail(column, error.message);
    }
    render(column);
    await showCost(column);
  }

  // --- cost -------------------------------------------------------------------------------

  /** The price table's rates for what answered, as the gateway bills it; {price, reason}. */
  function priceOf(provider, model) {
    const key = provider + "\n" + model;
    if (!prices.has(key)) {
      const query = new URLSearchParams({ provider, model });
      const found = fetch("v1/rxllm/prices?" + query, { headers: headers(), cache: "no-store" })
        .then(async (response) => {
          if (!response.ok) return { price: null, reason: await errorText(response) };
          const body = await response.json();
          const price = body.data && body.data[0] ? body.data[0].price : null;
          return { price, reason: price ? "" : `the price table has no rates for ${provider}/${model}` };
        })
        .catch((error) => ({ price: null, reason: error.message }));
      prices.set(key, found);
    }
    return prices.get(key);
  }

  /** ``rxllm.pricing.calculate_cost``'s formula: USD per million tokens. */
  function costOf(price, usage) {
    const prompt = usage.prompt_tokens || 0;
    const completion = usage.completion_tokens || 0;
    let input = price.input;
    let output = price.output;
    if (price.long_context_threshold != null && prompt > price.long_context_threshold) {
      input = price.long_context_input || input;
      output = price.long_context_output || output;
    }
    const details = usage.prompt_tokens_details;
    const cachedTokens = (details && details.cached_tokens) || 0;
    const cached = price.cached_input != null ? Math.min(Math.max(cachedTokens, 0), prompt) : 0;
    return ((prompt - cached) * input + cached * (price.cached_input || 0) + completion * output) / 1e6;
  }

  async function showCost(column) {
    const cell = column.parts.cost;
    if (!column.usage) {
      cell.textContent = "—";
      cell.title = "no usage was reported (a stream cut short is billed an estimate by the gateway)";
      return;
    }
    if (!column.provider) {
      cell.textContent = "no price";
      cell.title = "the stream did not say which provider answered";
      return;
    }
    const { price, reason } = await priceOf(column.provider, column.served);
    if (!price) {
      cell.textContent = "no price";
      cell.title = reason;
      return;
    }
    const usage = column.usage;
    const cost = costOf(price, usage);
    cell.textContent = dollars(cost);
    cell.dataset.usd = String(cost);
    cell.title =
      `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens of ` +
      `${column.provider}/${column.served} at $${price.input} / $${price.output} per million`;
  }

  // --- the chart ----------------------------------------------------------------------------

  /** A round step for about `count` ticks up to `top` (1, 2 or 5 times a power of ten). */
  function step(top, count) {
    const raw = top / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const factor of [1, 2, 5, 10]) if (raw <= factor * power) return factor * power;
    return 10 * power;
  }

  function drawChart() {
    const series = run.columns
      .filter((column) => column.points.length)
      .map((column) => {
        // Characters to tokens: the reported usage's ratio, else the estimate.
        const perChar = column.usage && column.chars ? (column.usage.completion_tokens || 0) / column.chars : 1 / CHARS_PER_TOKEN;
        return {
          column,
          points: column.points.map(([ms, chars]) => [ms / 1000, chars * perChar]),
        };
      });
    if (!series.length) {
      ui.chartSection.hidden = true;
      return;
    }
    ui.chartSection.hidden = false;
    const canvas = ui.chart;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const pad = { left: 56, right: 16, top: 12, bottom: 40 };
    const plotW = Math.max(width - pad.left - pad.right, 10);
    const plotH = Math.max(height - pad.top - pad.bottom, 10);
    const maxT = Math.max(...series.map((s) => s.points[s.points.length - 1][0]), 0.001);
    const maxY = Math.max(...series.map((s) => s.points[s.points.length - 1][1]), 1);
    const xStep = step(maxT, 6);
    const yStep = step(maxY, 5);
    const xTop = Math.ceil(maxT / xStep) * xStep;
    const yTop = Math.ceil(maxY / yStep) * yStep;
    const x = (t) => pad.left + (t / xTop) * plotW;
    const y = (v) => pad.top + plotH - (v / yTop) * plotH;

    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#5b6475";
    ctx.strokeStyle = "#e3e6ec";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = 0; v <= yTop + yStep / 2; v += yStep) {
      ctx.beginPath();
      ctx.moveTo(pad.left, Math.round(y(v)) + 0.5);
      ctx.lineTo(pad.left + plotW, Math.round(y(v)) + 0.5);
      ctx.stroke();
      ctx.fillText(String(Math.round(v)), pad.left - 8, y(v));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const decimals = xStep < 0.1 ? 2 : xStep < 1 ? 1 : 0;
    for (let t = 0; t <= xTop + xStep / 2; t += xStep) {
      ctx.beginPath();
      ctx.moveTo(Math.round(x(t)) + 0.5, pad.top);
      ctx.lineTo(Math.round(x(t)) + 0.5, pad.top + plotH);
      ctx.stroke();
      ctx.fillText(t.toFixed(decimals), x(t), pad.top + plotH + 6);
    }
    ctx.fillText("seconds since the prompt was sent", pad.left + plotW / 2, pad.top + plotH + 22);
    ctx.save();
    ctx.translate(14, pad.top + plotH / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("tokens", 0, -6);
    ctx.restore();
    ctx.strokeStyle = "#9aa3b2";
    ctx.beginPath();
    ctx.moveTo(pad.left + 0.5, pad.top);
    ctx.lineTo(pad.left + 0.5, pad.top + plotH + 0.5);
    ctx.lineTo(pad.left + plotW, pad.top + plotH + 0.5);
    ctx.stroke();

    // Each model's cumulative tokens, as steps: flat between chunks, up when one arrives.
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    for (const { column, points } of series) {
      ctx.strokeStyle = column.color;
      ctx.beginPath();
      ctx.moveTo(x(0), y(0));
      let last = 0;
      for (const [t, v] of points) {
        ctx.lineTo(x(t), y(last));
        ctx.lineTo(x(t), y(v));
        last = v;
      }
      ctx.stroke();
      const [tEnd, vEnd] = points[points.length - 1];
      ctx.fillStyle = column.color;
      ctx.beginPath();
      ctx.arc(x(tEnd), y(vEnd), 3.5, 0, 2 * Math.PI);
      ctx.fill();
    }

    ui.legend.replaceChildren(
      ...series.map(({ column, points }) => {
        const item = document.createElement("li");
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = column.color;
        const [tEnd, vEnd] = points[points.length - 1];
        item.append(swatch, `${column.model}: ${Math.round(vEnd)} tokens by ${tEnd.toFixed(2)} s`);
        return item;
      }),
    );
    canvas.setAttribute(
      "aria-label",
      "Cumulative tokens over time. " +
        series
          .map(({ column, points }) => {
            const [tEnd, vEnd] = points[points.length - 1];
            return `${column.model}: ${Math.round(vEnd)} tokens by ${tEnd.toFixed(2)} seconds`;
          })
          .join("; "),
    );
    canvas.dataset.drawn = String(series.length);
  }

  // --- a run ------------------------------------------------------------------------------

  async function send(event) {
    event.preventDefault();
    if (run && !run.finished) return;
    const models = chosenModels();
    if (!models.length) {
      setStatus("Choose at least one model.", true);
      return;
    }
    const prompt = ui.prompt.value;
    if (!prompt.trim()) {
      setStatus("Write a prompt first.", true);
      ui.prompt.focus();
      return;
    }
    let extra = {};
    if (ui.params.value.trim()) {
      try {
        extra = JSON.parse(ui.params.value);
      } catch (error) {
        setStatus(`More request fields: ${error.message}`, true);
        return;
      }
      if (!extra || typeof extra !== "object" || Array.isArray(extra)) {
        setStatus("More request fields must be a JSON object.", true);
        return;
      }
    }
    saveChoices();
    const messages = [];
    if (ui.system.value.trim()) messages.push({ role: "system", content: ui.system.value });
    messages.push({ role: "user", content: prompt });

    ui.columns.replaceChildren();
    ui.chartSection.hidden = true;
    delete ui.chart.dataset.drawn;
    const started = performance.now();
    run = { started, finished: false, columns: models.map((m, i) => makeColumn(m, COLORS[i % COLORS.length])) };
    ui.send.disabled = true;
    ui.stop.disabled = false;
    setStatus(`Streaming from ${models.length} model${models.length === 1 ? "" : "s"}…`);
    await Promise.all(
      run.columns.map((column) =>
        stream(
          column,
          { ...extra, model: column.model, messages, stream: true, stream_options: { include_usage: true } },
          started,
        ),
      ),
    );
    finish();
  }

  function finish() {
    run.finished = true;
    ui.send.disabled = false;
    ui.stop.disabled = true;
    const states = run.columns.map((column) => column.state);
    const count = (state) => states.filter((s) => s === state).length;
    const parts = [];
    if (count("done")) parts.push(`${count("done")} done`);
    if (count("stopped")) parts.push(`${count("stopped")} stopped`);
    if (count("error")) parts.push(`${count("error")} failed`);
    setStatus(`${parts.join(", ")} in ${duration(performance.now() - run.started)}.`, count("error") > 0);
    drawChart();
  }

  function stop() {
    if (!run || run.finished) return;
    setStatus("Stopping…");
    for (const column of run.columns) column.controller.abort();
  }

  // --- wiring -------------------------------------------------------------------------------

  ui.key.value = stored(KEY_STORAGE) || "";
  ui.extraModels.value = stored(EXTRA_STORAGE) || "";
  ui.key.addEventListener("input", () => store(KEY_STORAGE, ui.key.value.trim()));
  ui.key.addEventListener("change", () => {
    prices.clear();
    loadModels();
  });
  ui.form.addEventListener("submit", send);
  ui.stop.addEventListener("click", stop);
  ui.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      ui.form.requestSubmit();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") stop();
  });
  let resizing = false;
  window.addEventListener("resize", () => {
    if (resizing || !run || !run.finished) return;
    resizing = true;
    requestAnimationFrame(() => {
      resizing = false;
      drawChart();
    });
  });
  loadModels();
})();
