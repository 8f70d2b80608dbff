// The browser demo: a verified bundle's ONNX file in onnxruntime-web (WASM, SIMD) with the Android core's
// preprocessing, tokenizer and drift hook (core.js). Served by `edgesmith demo BUNDLE`.
// URL parameters: threads (default 1), sample_rate (1), window (20).
import * as ort from "/ort/ort.wasm.min.mjs";
import { DriftMonitor, ImagePreprocessor, WordPieceTokenizer, cosine, loadBundle, pickFormat, softmax, topK, sha256Hex } from "/core.js";

const params = new URLSearchParams(location.search);
const threads = Number(params.get("threads") || 1);
const $ = (id) => document.getElementById(id);
const state = { sent: 0, posts: [] };

function show(screen) {
  document.querySelectorAll(".screen").forEach((s) => s.classList.toggle("active", s.id === screen));
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.screen === screen));
}
document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.screen)));

// Reports go out one at a time, each after the last has been answered, so the collector stores them in window
// order (concurrent fetches may land in any order); a failed post does not hold back the next one.
function post(report, line) {
  const send = () => fetch("/telemetry", { method: "POST", headers: { "Content-Type": "application/json" }, body: line })
    .then((r) => { if (r.ok) { state.sent++; $("sent").textContent = state.sent; } return r.status; }, () => 0);
  const p = (state.posts.length ? state.posts[state.posts.length - 1] : Promise.resolve()).then(send);
  state.posts.push(p);
  $("last-status").textContent = report.status;
  $("last-report").textContent = JSON.stringify(report, null, 1);
}

async function init() {
  ort.env.wasm.wasmPaths = "/ort/";
  ort.env.wasm.numThreads = threads;
  const { manifest, files } = await loadBundle("/bundle/");
  const format = pickFormat(manifest, ["onnxruntime"]);
  const entry = manifest.formats[format];
  const session = await ort.InferenceSession.create(new Uint8Array(files.get(entry.path)), { executionProviders: ["wasm"] });
  const kind = manifest.preprocessing.kind;
  const names = manifest.inputs.map((i) => i.name);
  const staticShape = entry.static_shapes ? Object.values(entry.static_shapes)[0] : null;
  const step = staticShape ? staticShape[0] : entry.max_batch || 64;
  const monitor = new DriftMonitor(manifest, format, {
    sample_rate: Number(params.get("sample_rate") || 1), window: Number(params.get("window") || 20),
  }, post);
  const s = { manifest, format, session, kind, monitor, files };
  const rowsOf = (t) => { const w = t.dims[1], d = t.data; return Array.from({ length: t.dims[0] }, (_, i) => Array.from(d.subarray(i * w, (i + 1) * w))); };

  if (kind === "image") {
    s.pre = new ImagePreprocessor(manifest.preprocessing);
    const p = s.pre, dims = p.layout === "NHWC" ? [p.height, p.width, p.channels] : [p.channels, p.height, p.width];
    s.runUnits = async (units, observe = true) => {
      const rows = [];
      for (let i = 0; i < units.length; i += step) {
        const part = units.slice(i, i + step), data = new Float32Array(part.length * p.size);
        part.forEach((u, k) => data.set(p.normalize(u), k * p.size));
        const out = await session.run({ [names[0]]: new ort.Tensor("float32", data, [part.length, ...dims]) });
        rows.push(...rowsOf(out[session.outputNames[0]]));
      }
      if (observe) monitor.observeImages(units, rows);
      return rows;
    };
    s.latencyFeeds = () => ({ [names[0]]: new ort.Tensor("float32", p.normalize(new Float32Array(p.size)), [1, ...dims]) });
  } else {
    const tj = JSON.parse(new TextDecoder().decode(files.get(`${manifest.preprocessing.tokenizer}/tokenizer.json`)));
    s.tok = new WordPieceTokenizer(tj, manifest.preprocessing.max_length);
    const padTo = staticShape && staticShape.length === 2 ? staticShape[1] : 0;
    s.feeds = (texts) => {
      const b = s.tok.encodeBatch(texts, padTo), shape = [b.batch, b.seqLen], feeds = {};
      for (const n of names) {
        const data = n === "attention_mask" ? b.mask : n === "token_type_ids" ? new BigInt64Array(b.ids.length) : b.ids;
        feeds[n] = new ort.Tensor("int64", data, shape);
      }
      return { feeds, lengths: b.lengths };
    };
    s.runTexts = async (texts, observe = true) => {
      const rows = [], lengths = [];
      for (let i = 0; i < texts.length; i += step) {
        const { feeds, lengths: l } = s.feeds(texts.slice(i, i + step));
        const out = await session.run(feeds);
        rows.push(...rowsOf(out[session.outputNames[0]]));
        lengths.push(...l);
      }
      if (observe) monitor.observeTexts(lengths, rows);
      return rows;
    };
    s.latencyFeeds = () => s.feeds(["The quick brown fox jumps over the lazy dog."]).feeds;
  }
  return s;
}

function percentile(sorted, q) {  // numpy's default (linear)
  const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function latency(s, n = 100) {
  const feeds = s.latencyFeeds();
  for (let i = 0; i < 5; i++) await s.session.run(feeds);
  const t = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await s.session.run(feeds);
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  const r = { runtime: `onnxruntime-web ${ort.env.versions.web} (wasm, SIMD)`, threads: ort.env.wasm.numThreads,
    p50_ms: percentile(t, 0.5), p90_ms: percentile(t, 0.9), runs: n, cross_origin_isolated: self.crossOriginIsolated };
  $("lat-runtime").textContent = r.runtime;
  $("lat-threads").textContent = r.threads;
  $("lat-p50").textContent = `${r.p50_ms.toFixed(3)} ms`;
  $("lat-p90").textContent = `${r.p90_ms.toFixed(3)} ms`;
  $("lat-runs").textContent = n;
  return r;
}

function wireUi(s) {
  $("bundle-info").textContent = `${s.manifest.source ? s.manifest.source.recipe : "bundle"}: ${s.kind} → ${s.manifest.outputs[0].meaning}, `
    + `${s.format} file, ${s.files.size} files verified (sha256)`;
  $("run-latency").addEventListener("click", () => latency(s));
  $("flush").addEventListener("click", () => s.monitor.flush());
  if (s.kind === "image") {
    show("classify");
    $("run-text").disabled = true;
    const pad = $("pad"), ctx = pad.getContext("2d");
    const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height); $("top-k").innerHTML = ""; };
    clear();
    let drawing = false;
    pad.addEventListener("pointerdown", (e) => { drawing = true; ctx.beginPath(); ctx.moveTo(e.offsetX, e.offsetY); });
    pad.addEventListener("pointermove", (e) => {
      if (!drawing) return;
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineTo(e.offsetX, e.offsetY); ctx.stroke();
    });
    addEventListener("pointerup", () => { drawing = false; });
    $("clear").addEventListener("click", clear);
    $("file").addEventListener("change", async (e) => {
      const img = await createImageBitmap(e.target.files[0]);
      ctx.drawImage(img, 0, 0, pad.width, pad.height);
    });
    $("run-image").addEventListener("click", async () => {
      const p = s.pre, small = new OffscreenCanvas(p.width, p.height), sc = small.getContext("2d");
      sc.imageSmoothingQuality = "high";
      sc.drawImage(pad, 0, 0, p.width, p.height);
      const hwc = ImagePreprocessor.rgbaToUint8(sc.getImageData(0, 0, p.width, p.height).data, p.channels);
      const [logits] = await s.runUnits([p.unitFromUint8(hwc, true)]);
      $("top-k").innerHTML = topK(softmax(logits), 3, s.manifest.labels)
        .map((r) => `<li>${r.label}: ${(100 * r.probability).toFixed(1)}%</li>`).join("");
    });
  } else {
    show("compare");
    $("run-image").disabled = true;
    $("run-text").addEventListener("click", async () => {
      const a = $("text-a").value, b = $("text-b").value;
      const [ea, eb] = await s.runTexts([a, b]);
      $("cosine").textContent = cosine(ea, eb).toFixed(4);
      $("tokens").textContent = `(${s.tok.encode(a).length} and ${s.tok.encode(b).length} tokens)`;
    });
  }
}

function testApi(s) {  // what tests/android/test_web_demo.py drives through playwright
  return {
    info: { format: s.format, kind: s.kind, ort: ort.env.versions.web, threads: ort.env.wasm.numThreads },
    async classify(cases) {
      const units = cases.map((c) => (c.dtype === "uint8" ? s.pre.unitFromUint8(c.pixels, c.channels_last) : s.pre.unitFromFloat(c.pixels, c.channels_last)));
      const logits = [];
      for (const u of units) logits.push(...(await s.runUnits([u])));  // one call per image, like the app
      return { inputs: units.map((u) => Array.from(s.pre.normalize(u))), logits };
    },
    tokenize: (texts, padTo = 0) => { const b = s.tok.encodeBatch(texts, padTo); return { ids: Array.from(b.ids, Number), mask: Array.from(b.mask, Number), seqLen: b.seqLen }; },
    async sweep(stop) {
      const enc = new TextEncoder(), parts = [];
      for (let cp = 0; cp < stop; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        parts.push(`${cp} ${s.tok.encode("a" + String.fromCodePoint(cp) + "b", 1e9).join(" ")}\n`);
      }
      return sha256Hex(enc.encode(parts.join("")));
    },
    embed: (texts) => s.runTexts(texts),
    latency: (n) => latency(s, n),
    replay(scenario) {  // the golden drift scenario through a fresh JS monitor, on Python's outputs
      const m = new DriftMonitor(s.manifest, s.format, scenario.config);
      let at = 0;
      for (const size of scenario.calls) {
        const items = scenario.items.slice(at, at + size), outs = scenario.outputs.slice(at, at + size);
        if (s.kind === "image") m.observeImages(items.map((x) => s.pre.unitFromUint8(x, false)), outs);
        else m.observeTexts(items.map((t) => s.tok.encode(t).length), outs);
        at += size;
      }
      m.flush();
      return m.reports;
    },
    async flush() { const r = s.monitor.flush(); await Promise.all(state.posts); return { report: r, sent: state.sent }; },
  };
}

window.edgesmith = {};
window.edgesmith.ready = init().then((s) => {
  wireUi(s);
  Object.assign(window.edgesmith, testApi(s));
  $("status").textContent = "Bundle verified; model loaded.";
  $("status").dataset.state = "ready";
  return window.edgesmith.info;
}).catch((e) => {
  $("status").textContent = `error: ${e.message}`;
  $("status").dataset.state = "error";
  throw e;
});
