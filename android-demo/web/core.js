// The Android core (android-demo/core, Java) ported to JavaScript for the browser demo:
// manifest checks and sha256 verification, image preprocessing, BERT WordPiece tokenization,
// softmax / top-k / cosine, and the drift sampler with the Python hook's statistics
// (edgesmith.bundle.telemetry). Each function says which Java class it mirrors.

import { CONTROL, MARK, PUNCTUATION, WHITESPACE } from "./bert_chars.js";

// ------------------------------------------------------------------ manifest (Manifest.java)
export const SCHEMA_VERSION = 1;
export const MANIFEST = "edgesmith.json";

export class BundleError extends Error {}

/** `rel` normalised when it stays inside the bundle, else a BundleError (as bundle/manifest.py words it). */
export function safePath(rel, where) {
  const leaves = () => new BundleError(`${where}: file path '${rel}' leaves the bundle (absolute or '..'); refusing to load`);
  if (typeof rel !== "string" || !rel || rel.startsWith("/") || rel.includes("\\")) throw leaves();
  const parts = rel.split("/").filter((p) => p && p !== ".");
  if (parts.includes("..") || (parts.length && parts[0].includes(":"))) throw leaves();
  return parts.join("/");
}

export async function sha256Hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Fetch and check a bundle served under `base` (a URL ending in "/"): schema version, safe paths,
 * every model file hashed, and each listed file's size and sha256. Returns {manifest, files}.
 */
export async function loadBundle(base) {
  const where = base + MANIFEST;
  const res = await fetch(where);
  if (!res.ok) throw new BundleError(`${where}: no bundle manifest here (HTTP ${res.status})`);
  let m;
  try { m = await res.json(); } catch (e) { throw new BundleError(`${where}: not valid JSON (${e.message})`); }
  const v = m && m.schema_version;
  if (!Number.isInteger(v) || v < 1 || v > SCHEMA_VERSION) {
    throw new BundleError(`${where}: schema_version ${JSON.stringify(v)} is ` + (Number.isInteger(v) && v > SCHEMA_VERSION
      ? `newer than this page reads (${SCHEMA_VERSION}); update the demo` : `unknown; this page reads 1 to ${SCHEMA_VERSION}`));
  }
  const sums = new Map();
  for (const c of m.checksums || []) sums.set(safePath(c.path, where), c);
  for (const [fmt, e] of Object.entries(m.formats || {})) {
    for (const rel of [e.path, ...(e.files || [])]) {
      if (!sums.has(safePath(rel, where))) throw new BundleError(`${where}: ${fmt} file '${rel}' has no sha256 in the manifest; refusing to load`);
    }
  }
  const files = new Map();
  for (const [rel, c] of sums) {
    const r = await fetch(base + rel);
    if (!r.ok) throw new BundleError(`${base + rel}: missing from the bundle (listed in ${MANIFEST}); rebuild it with \`edgesmith run\``);
    const bytes = await r.arrayBuffer();
    if (bytes.byteLength !== c.size || (await sha256Hex(bytes)) !== c.sha256) {
      throw new BundleError(`${base + rel}: size or sha256 differs from ${MANIFEST} (tampered with or corrupted); rebuild the bundle`);
    }
    files.set(rel, bytes);
  }
  return { manifest: m, files };
}

/** The first format whose runtime is in `runtimes` and that passed both parity checks, else the first usable. */
export function pickFormat(manifest, runtimes) {
  const usable = Object.entries(manifest.formats || {}).filter(([, e]) => runtimes.includes(e.runtime));
  if (!usable.length) {
    const have = Object.values(manifest.formats || {}).map((e) => e.runtime).join(", ");
    throw new BundleError(`no file for ${runtimes.join(", ")} in this bundle; it has: ${have}`);
  }
  const passed = usable.find(([, e]) => (e.parity || {}).passed && (e.bundle_parity || {}).passed);
  return (passed || usable[0])[0];
}

// ------------------------------------------------------------------ images (ImagePreprocessor.java)
const f32 = Math.fround;

export class ImagePreprocessor {
  constructor(spec) {
    this.channels = spec.channels;
    [this.height, this.width] = spec.size;
    this.layout = spec.layout || "NCHW";
    this.divisor = f32(1 / (spec.uint8_scale ?? 1 / 255));
    this.mean = spec.mean.map(f32);
    this.std = spec.std.map(f32);
  }

  get size() { return this.channels * this.height * this.width; }

  /** One image's uint8 values (HWC when channelsLast, else CHW) to float32 CHW in [0, 1]. */
  unitFromUint8(pixels, channelsLast) {
    return this.#chw(pixels, channelsLast, (v) => {
      if (v < 0 || v > 255) throw new BundleError(`uint8 pixel value ${v} outside 0-255`);
      return f32(v / this.divisor);
    });
  }

  /** One float image in [0, 1] to CHW; refused outside [-0.01, 1.01]. */
  unitFromFloat(pixels, channelsLast) {
    let lo = Infinity, hi = -Infinity;
    for (const v of pixels) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (pixels.length && (lo < -0.01 || hi > 1.01)) throw new BundleError(`float images must be in [0, 1], these span [${lo}, ${hi}]`);
    return this.#chw(pixels, channelsLast, f32);
  }

  #chw(pixels, channelsLast, conv) {
    if (pixels.length !== this.size) {
      throw new BundleError(`an image of ${pixels.length} values does not fit this bundle's ${this.channels}x${this.height}x${this.width} input`);
    }
    const out = new Float32Array(this.size), hw = this.height * this.width, c = this.channels;
    for (let ch = 0; ch < c; ch++) for (let i = 0; i < hw; i++) out[ch * hw + i] = conv(pixels[channelsLast ? i * c + ch : ch * hw + i]);
    return out;
  }

  /** CHW pixels in [0, 1] to the model input of one image, (x - mean) / std in float32, in the manifest's layout. */
  normalize(unit) {
    const out = new Float32Array(this.size), hw = this.height * this.width, c = this.channels;
    const nhwc = this.layout === "NHWC";
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < hw; i++) out[nhwc ? i * c + ch : ch * hw + i] = f32(f32(unit[ch * hw + i] - this.mean[ch]) / this.std[ch]);
    }
    return out;
  }

  /** RGBA bytes (canvas getImageData) to uint8 HWC: RGB, or Pillow's greyscale for one channel. */
  static rgbaToUint8(rgba, channels) {
    const n = rgba.length / 4, out = new Uint8Array(n * channels);
    for (let i = 0; i < n; i++) {
      const r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
      if (channels === 1) out[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
      else { out[3 * i] = r; out[3 * i + 1] = g; out[3 * i + 2] = b; }
    }
    return out;
  }
}

// ------------------------------------------------------------------ tokenizer (WordPieceTokenizer.java, BertChars.java)
// Character classes as Hugging Face tokenizers applies them (bert_chars.js, probed out of the library):
// the browser's own Unicode data is newer and would give other ids for characters added since.
function inRanges(ranges, cp) {
  let lo = 0, hi = ranges.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ranges[2 * mid]) hi = mid - 1;
    else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}
const isWhitespace = (cp) => inRanges(WHITESPACE, cp);
const isControl = (cp) => inRanges(CONTROL, cp);
const isMark = (cp) => inRanges(MARK, cp);
const isPunct = (cp) => inRanges(PUNCTUATION, cp);
const isChinese = (cp) => (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df)
  || (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf)
  || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);

export class WordPieceTokenizer {
  /** From a parsed tokenizer.json (BertNormalizer, BertPreTokenizer, WordPiece, [CLS] $A [SEP]). */
  constructor(tj, maxLength) {
    if (!tj.model || tj.model.type !== "WordPiece") throw new BundleError("tokenizer.json: not a WordPiece tokenizer");
    const n = tj.normalizer || {};
    if (tj.normalizer && n.type !== "BertNormalizer") throw new BundleError(`tokenizer.json: normalizer ${n.type} is not BertNormalizer`);
    this.vocab = new Map(Object.entries(tj.model.vocab));
    this.unk = tj.model.unk_token;
    this.prefix = tj.model.continuing_subword_prefix ?? "##";
    this.maxChars = tj.model.max_input_chars_per_word ?? 100;
    this.clean = n.clean_text !== false;
    this.chinese = n.handle_chinese_chars !== false;
    this.lower = n.lowercase !== false;
    this.strip = n.strip_accents ?? this.lower;
    this.added = (tj.added_tokens || []).map((a) => a.content);
    for (const a of tj.added_tokens || []) this.vocab.set(a.content, a.id);
    const post = tj.post_processor;
    if (post && post.type === "TemplateProcessing") {
      const s = post.single;
      this.cls = post.special_tokens[s[0].SpecialToken.id].ids[0];
      this.sep = post.special_tokens[s[s.length - 1].SpecialToken.id].ids[0];
    } else if (post && post.type === "BertProcessing") {
      this.cls = post.cls[1]; this.sep = post.sep[1];
    } else {
      this.cls = this.vocab.get("[CLS]"); this.sep = this.vocab.get("[SEP]");
    }
    this.pad = tj.padding && tj.padding.pad_id != null ? tj.padding.pad_id : (this.vocab.get("[PAD]") ?? 0);
    this.maxLength = maxLength;
  }

  #splitAdded(text) {
    const out = [];
    let start = 0, i = 0;
    while (i < text.length) {
      let best = null;
      for (const a of this.added) if (a && text.startsWith(a, i) && (!best || a.length > best.length)) best = a;
      if (!best) { i++; continue; }
      if (i > start) out.push([text.slice(start, i), false]);
      out.push([best, true]);
      i += best.length;
      start = i;
    }
    if (start < text.length) out.push([text.slice(start), false]);
    return out;
  }

  normalize(s) {
    let t = "";
    for (const ch of s) {
      let cp = ch.codePointAt(0);
      if (this.clean) {
        if (cp === 0 || cp === 0xfffd || isControl(cp)) continue;
        if (isWhitespace(cp)) cp = 0x20;
      }
      t += this.chinese && isChinese(cp) ? ` ${String.fromCodePoint(cp)} ` : String.fromCodePoint(cp);
    }
    if (this.strip) {
      let u = "";
      for (const ch of t.normalize("NFD")) if (!isMark(ch.codePointAt(0))) u += ch;
      t = u;
    }
    if (this.lower) {
      let u = "";
      for (const ch of t) u += ch.codePointAt(0) === 0x130 ? "i\u0307" : ch.toLowerCase();
      t = u;
    }
    return t;
  }

  static preTokenize(s) {
    const out = [];
    let word = "";
    for (const ch of s) {
      const cp = ch.codePointAt(0);
      if (isWhitespace(cp)) { if (word) out.push(word); word = ""; }
      else if (isPunct(cp)) { if (word) out.push(word); word = ""; out.push(ch); }
      else word += ch;
    }
    if (word) out.push(word);
    return out;
  }

  #wordPiece(word, ids) {
    const cps = Array.from(word);
    if (cps.length > this.maxChars) { ids.push(this.vocab.get(this.unk)); return; }
    const pieces = [];
    let start = 0;
    while (start < cps.length) {
      let end = cps.length, found;
      while (start < end) {
        const sub = (start > 0 ? this.prefix : "") + cps.slice(start, end).join("");
        found = this.vocab.get(sub);
        if (found !== undefined) break;
        end--;
      }
      if (found === undefined) { ids.push(this.vocab.get(this.unk)); return; }
      pieces.push(found);
      start = end;
    }
    ids.push(...pieces);
  }

  /** Ids with [CLS] / [SEP], truncated to maxLength (0: the manifest's). */
  encode(text, maxLength = 0) {
    const limit = maxLength > 0 ? maxLength : this.maxLength;
    const ids = [];
    for (const [piece, special] of this.#splitAdded(text)) {
      if (special) { ids.push(this.vocab.get(piece)); continue; }
      for (const w of WordPieceTokenizer.preTokenize(this.normalize(piece))) this.#wordPiece(w, ids);
    }
    return [this.cls, ...ids.slice(0, Math.max(0, Math.min(ids.length, limit - 2))), this.sep];
  }

  /** Padded batch {ids, mask (BigInt64Array), batch, seqLen, lengths}: to the longest, or to padTo. */
  encodeBatch(texts, padTo = 0) {
    const rows = texts.map((t) => this.encode(t, padTo > 0 ? padTo : this.maxLength));
    const len = padTo > 0 ? padTo : Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(rows.length * len), mask = new BigInt64Array(rows.length * len);
    rows.forEach((r, i) => {
      for (let j = 0; j < len; j++) { ids[i * len + j] = BigInt(j < r.length ? r[j] : this.pad); mask[i * len + j] = j < r.length ? 1n : 0n; }
    });
    return { ids, mask, batch: rows.length, seqLen: len, lengths: rows.map((r) => r.length) };
  }
}

// ------------------------------------------------------------------ outputs (Outputs.java)
export function softmax(logits) {
  const max = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export function topK(probs, k, labels) {
  const order = probs.map((p, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  return order.slice(0, Math.max(1, k)).map((i) => ({ index: i, label: labels && labels.length === probs.length ? labels[i] : String(i), probability: probs[i] }));
}

export const norm = (v) => Math.sqrt(Array.from(v).reduce((a, x) => a + x * x, 0));

export function cosine(a, b) {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
  const n = norm(a) * norm(b);
  return n === 0 ? 0 : dot / n;
}

// ------------------------------------------------------------------ drift (DriftStats.java, DriftMonitor.java)
export const PSI_EPSILON = 1e-4;
export const REPORT_SCHEMA = "edgesmith.drift/1";
const STATUSES = ["ok", "warn", "drift"];
export const DEFAULT_CONFIG = { sample_rate: 0.1, window: 500, seed: 0, psi_warn: 0.1, psi_drift: 0.25, shift_warn: 0.32, shift_drift: 0.5 };

export function binIndex(v, edges) {
  let lo = 0, hi = edges.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (edges[mid] <= v) lo = mid + 1; else hi = mid; }
  return Math.max(0, Math.min(lo - 1, edges.length - 2));
}

export function psi(live, reference) {
  const floor = (a) => { const s = Math.max(a.reduce((x, y) => x + y, 0), 1e-300); return a.map((x) => Math.max(x / s, PSI_EPSILON)); };
  const p = floor(live), q = floor(reference);
  return p.reduce((acc, pi, i) => acc + (pi - q[i]) * Math.log(pi / q[i]), 0);
}

export const round6 = (v) => (Number.isFinite(v) ? Number(v.toFixed(6)) : v);

function status(config, metric, value) {
  const v = Math.abs(value), warn = config[`${metric}_warn`], drift = config[`${metric}_drift`];
  return v < warn ? "ok" : v <= drift ? "warn" : "drift";
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The drift hook: per sampled item the pixel histograms (or token length) and the predicted class and
 * confidence (or embedding norm); a report every `window` sampled items, sent to `sink(report, line)`.
 * Sampling is seeded but with its own generator: positions differ from Python's and Java's.
 */
export class DriftMonitor {
  constructor(manifest, format, settings = {}, sink = null) {
    this.config = { ...DEFAULT_CONFIG, ...settings };
    const prof = manifest.reference_profile;
    if (!prof || typeof prof !== "object") throw new BundleError(`${MANIFEST}: no 'reference_profile' to compare traffic with; rebuild the bundle with a current edgesmith`);
    if (prof.error) throw new BundleError(`${MANIFEST}: 'reference_profile' holds no statistics (${prof.error})`);
    const hist = (name, h) => {
      if (!h || !h.edges || !h.fractions || h.edges.length !== h.fractions.length + 1) throw new BundleError(`${MANIFEST}: reference_profile histogram of ${name} is malformed`);
      return { name, metric: "psi", reference: h.fractions, edges: h.edges, bins: null };
    };
    const kind = manifest.preprocessing.kind;
    this.inputs = kind === "image" ? prof.inputs.channels.map((c, i) => hist(`pixels[${i}]`, c.histogram))
      : [hist("token_length", prof.inputs.token_length.histogram)];
    this.classifier = manifest.outputs[0].meaning === "logits";
    const out = prof.outputs;
    this.outputs = this.classifier
      ? [{ name: "predicted_class", metric: "psi", reference: Object.values(out.predicted_class), bins: Object.keys(out.predicted_class) },
        hist("confidence", out.confidence.histogram)]
      : [{ name: "embedding_norm", metric: "shift", reference: [out.norm.mean, out.norm.std] }];
    this.referenceSamples = prof.samples || 0;
    const src = manifest.source || {};
    this.identity = { recipe: src.recipe ?? null, recipe_sha256: src.recipe_sha256 ?? null, format, created_utc: manifest.created_utc ?? null };
    this.sink = sink;
    this.reports = [];
    this.rng = mulberry32(this.config.seed);
    this.seen = 0; this.sampled = 0; this.windows = 0;
    this.next = this.#gap() - 1;
    this.#reset();
  }

  get stats() { return [...this.inputs, ...this.outputs]; }

  #gap() {
    const r = this.config.sample_rate;
    if (r <= 0) return Number.MAX_SAFE_INTEGER;
    if (r >= 1) return 1;
    return 1 + Math.floor(Math.log(1 - this.rng()) / Math.log1p(-r));
  }

  #blank() { return this.stats.map((s) => new Array(s.metric === "psi" ? s.reference.length : 3).fill(0)); }

  #reset() { this.window = this.#blank(); this.windowN = 0; }

  #pick(n) {
    const start = this.seen, end = this.seen + n, picked = [];
    this.seen = end;
    while (this.next < end) { picked.push(this.next - start); this.next += this.#gap(); }
    return picked;
  }

  #addOutputs(acc, out) {
    const at = this.inputs.length;
    if (this.classifier) {
      const p = softmax(out);
      let best = 0;
      for (let k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
      acc[at][best] += 1;
      acc[at + 1][binIndex(p[best], this.outputs[1].edges)] += 1;
    } else {
      const v = norm(out);
      acc[at][0] += 1; acc[at][1] += v; acc[at][2] += v * v;
    }
  }

  /** A batch of images: CHW pixels in [0, 1] per item, and its output rows. Returns completed reports. */
  observeImages(units, outputs) {
    const rows = this.#pick(outputs.length).map((i) => {
      const acc = this.#blank(), x = units[i], hw = x.length / this.inputs.length;
      this.inputs.forEach((s, c) => { for (let j = 0; j < hw; j++) acc[c][binIndex(x[c * hw + j], s.edges)] += 1; });
      this.#addOutputs(acc, outputs[i]);
      return acc;
    });
    return this.#accumulate(rows);
  }

  /** A batch of texts: token lengths (special tokens included, truncated) and output rows. */
  observeTexts(lengths, outputs) {
    const rows = this.#pick(outputs.length).map((i) => {
      const acc = this.#blank();
      acc[0][binIndex(lengths[i], this.inputs[0].edges)] += 1;
      this.#addOutputs(acc, outputs[i]);
      return acc;
    });
    return this.#accumulate(rows);
  }

  #accumulate(rows) {
    const done = [];
    this.sampled += rows.length;
    for (const row of rows) {
      row.forEach((r, s) => r.forEach((v, k) => { this.window[s][k] += v; }));
      this.windowN++;
      if (this.windowN >= this.config.window) { done.push(this.#build(true)); this.#reset(); }
    }
    done.forEach((r) => this.#emit(r));
    return done;
  }

  #score(stat, acc) {
    let value, detail;
    if (stat.metric === "psi") {
      value = psi(acc, stat.reference);
      const total = Math.max(acc.reduce((a, b) => a + b, 0), 1);
      const fr = acc.map((c) => round6(c / total));
      detail = { fractions: stat.bins ? Object.fromEntries(stat.bins.map((b, k) => [b, fr[k]])) : fr };
    } else {
      const [n, s, s2] = acc, mean = n ? s / n : NaN, std = n ? Math.sqrt(Math.max(s2 / n - mean * mean, 0)) : NaN;
      const [rm, rs] = stat.reference, scale = Math.max(rs, 1e-3 * Math.abs(rm), 1e-12);
      value = (mean - rm) / scale;
      detail = { mean, std, reference_mean: rm, reference_std: rs };
    }
    return { name: stat.name, metric: stat.metric, value: round6(value), status: status(this.config, stat.metric, value), ...detail };
  }

  #build(full) {
    const stats = this.windowN ? this.stats.map((s, i) => this.#score(s, this.window[i])) : [];
    let worst = null;
    for (const r of stats) {
      const rank = STATUSES.indexOf(r.status), wr = worst ? STATUSES.indexOf(worst.status) : -1;
      if (!worst || rank > wr || (rank === wr && Math.abs(r.value) > Math.abs(worst.value))) worst = r;
    }
    const report = {
      schema: REPORT_SCHEMA,
      created_utc: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
      bundle: { ...this.identity },
      window: { index: this.windows, samples: this.windowN, full, requests_seen: this.seen, sampled_total: this.sampled, reference_samples: this.referenceSamples },
      config: { ...this.config },
      status: worst ? worst.status : "no_data",
      worst: worst ? worst.name : null,
      statistics: stats,
    };
    if (full) this.windows++;
    return report;
  }

  report() { return this.#build(false); }

  flush() {
    if (!this.windowN) return null;
    const r = this.#build(false);
    this.windows++;
    this.#reset();
    this.#emit(r);
    return r;
  }

  #emit(r) {
    this.reports.push(r);
    if (this.sink) {
      try { this.sink(r, JSON.stringify(r)); } catch (e) { console.warn("drift telemetry: the report sink failed", e); }
    }
  }
}
