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

// ------------------------------------------------------------------ drift statistics (DriftStats.java)
// The deterministic parts (PSI, z and binomial p-values, the chi-square power behind the minimum sample)
// follow edgesmith.bundle.telemetry.stats and agree with it to rounding. The Monte-Carlo parts (the PSI
// bootstrap null, the MMD permutation null) run the same algorithm with the same number of draws but this
// file's generator (mulberry32), so their p-values agree with Python's within Monte-Carlo error only.
export const PSI_EPSILON = 1e-4;
export const NULL_DRAWS = 400; // bootstrap windows per PSI p-value: the smallest p-value is 1/401
export const REPORT_SCHEMA = "edgesmith.drift/2";
export const STATUSES = ["no_data", "insufficient", "ok", "warn", "drift", "recalibrate"]; // rising severity
export const DEFAULT_CONFIG = {
  sample_rate: 0.1, window: 500, seed: 0, alpha: 0.01, power: 0.8, min_samples: 0, psi_warn: 0.1, psi_drift: 0.25,
  shift_warn: 0.32, shift_drift: 0.5, saturation_recalibrate: 0.01, reservoir: 200, permutations: 200, device: "",
};

export function binIndex(v, edges) {
  let lo = 0, hi = edges.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (edges[mid] <= v) lo = mid + 1; else hi = mid; }
  return Math.max(0, Math.min(lo - 1, edges.length - 2));
}

export function psi(live, reference) {
  const floor = (a) => { const s = Math.max(a.reduce((x, y) => x + y, 0), 1e-300); return a.map((x) => Math.max(x / s, PSI_EPSILON)); };
  const p = floor(Array.from(live)), q = floor(Array.from(reference));
  return p.reduce((acc, pi, i) => acc + (pi - q[i]) * Math.log(pi / q[i]), 0);
}

/** Python's round(v, digits) (toFixed rounds the exact binary value; ties, which need an exact binary tie, go up). */
export const round = (v, digits) => (Number.isFinite(v) ? Number(v.toFixed(digits)) : v);
export const round6 = (v) => round(v, 6);

export function mulberry32(seed) {
  let a = Number(seed) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The complementary error function to about 1e-13 relative (DriftStats.erfc): series below 2.5, continued fraction above. */
export function erfc(x) {
  if (Number.isNaN(x)) return x;
  if (x < 0) return 2 - erfc(-x);
  const x2 = x * x;
  if (x < 2.5) {
    let t = x, s = x;
    for (let k = 1; k < 500; k++) { t *= (2 * x2) / (2 * k + 1); const s2 = s + t; if (s2 === s) break; s = s2; }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * s;
  }
  if (x > 27) return 0;
  let f = x;
  for (let k = 60; k > 0; k--) f = x + k / 2 / f;
  return Math.exp(-x2) / (Math.sqrt(Math.PI) * f);
}

/** The standard normal quantile, by bisection on erfc (DriftStats.normalInvCdf). */
export function normalInvCdf(p) {
  if (!(p > 0 && p < 1)) throw new RangeError(`p must be in (0, 1), got ${p}`);
  if (p > 0.5) return -normalInvCdf(1 - p);
  let lo = -40, hi = 0;
  for (;;) {
    const mid = 0.5 * (lo + hi);
    if (mid === lo || mid === hi) return mid;
    if (0.5 * erfc(-mid / Math.SQRT2) < p) lo = mid; else hi = mid;
  }
}

export const normalPvalue = (z) => (Number.isFinite(z) ? erfc(Math.abs(z) / Math.SQRT2) : 0);

export function binomialExcessPvalue(hits, n, p0) {
  if (n <= 0 || hits <= n * p0) return 1;
  const p = Math.min(Math.max(p0, 1e-6), 1 - 1e-6);
  return 0.5 * erfc((hits - 0.5 - n * p) / Math.sqrt(n * p * (1 - p)) / Math.SQRT2);
}

/** P(null >= observed): (1 + k) / (1 + B); beyond every draw the normal tail of the draws, capped at 1 / (1 + B). */
export function tailPvalue(nul, observed) {
  const k = nul.filter((v) => v >= observed - 1e-12).length;
  if (k) return (1 + k) / (1 + nul.length);
  const mean = nul.reduce((a, b) => a + b, 0) / nul.length;
  const sd = Math.sqrt(nul.reduce((a, v) => a + (v - mean) * (v - mean), 0) / nul.length);
  return Math.min(1 / (1 + nul.length), 0.5 * erfc((observed - mean) / Math.max(sd, 1e-12) / Math.SQRT2));
}

/** (draws x references) PSIs of n-item windows drawn from each reference, against an m-item redraw of it. */
export function psiNull(references, n, m, seed, draws = NULL_DRAWS) {
  const rng = mulberry32(seed), out = Array.from({ length: draws }, () => new Array(references.length));
  references.forEach((ref, j) => {
    let q = ref.map((v) => Math.max(v, 0));
    const sum = q.reduce((a, b) => a + b, 0);
    q = q.map((v) => (sum > 0 ? v / sum : 1 / q.length));
    const cdf = [];
    q.reduce((a, v, k) => (cdf[k] = a + v), 0);
    const draw = (count) => {
      const c = new Array(q.length).fill(0);
      for (let i = 0; i < count; i++) {
        const u = rng() * cdf[cdf.length - 1];
        let lo = 0, hi = cdf.length - 1;
        while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] > u) hi = mid; else lo = mid + 1; }
        c[lo] += 1;
      }
      return c;
    };
    for (let d = 0; d < draws; d++) out[d][j] = psi(draw(Math.max(n, 1)), m > 0 ? draw(m) : q);
  });
  return out;
}

export const psiPvalue = (value, ref, n, m, seed) => tailPvalue(psiNull([ref], n, m, seed).map((r) => r[0]), value);
export const maxPsiPvalue = (value, refs, n, m, seed) => tailPvalue(psiNull(refs, n, m, seed).map((r) => Math.max(...r)), value);

function chi2Sf(x, df) {
  if (x <= 0) return 1;
  const a = 2 / (9 * df);
  return 0.5 * erfc(((x / df) ** (1 / 3) - (1 - a)) / Math.sqrt(a) / Math.SQRT2);
}

function chi2Isf(p, df) {
  const a = 2 / (9 * df);
  return df * Math.max(1 - a + normalInvCdf(1 - p) * Math.sqrt(a), 0) ** 3;
}

function chi2Power(n, df, effect, alpha, m) {
  const lam = effect / (1 / n + (m ? 1 / m : 0));
  const rho = (df + 2 * lam) / (df + lam), nu = (df + lam) ** 2 / (df + 2 * lam); // Patnaik
  return chi2Sf(chi2Isf(alpha, df) / rho, nu);
}

/** The fewest items detecting a true PSI `effect` over `bins` bins with `power` at `alpha`; null when none can. */
export function requiredSamples(bins, effect, alpha, power = 0.8, m = 0) {
  const df = Math.max(bins - 1, 1);
  if (m && chi2Power(1e7, df, effect, alpha, m) < power) return null;
  let lo = 1, hi = 1e7;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (chi2Power(mid, df, effect, alpha, m) >= power) hi = mid; else lo = mid + 1;
  }
  return lo;
}

export function shiftSamples(shift, alpha, power = 0.8) {
  const z = normalInvCdf(1 - alpha / 2) + normalInvCdf(power);
  return Math.ceil((z / shift) ** 2);
}

// ------------------------------------------------------------------ scoring (DriftScoring.java)
const level = (c, metric, value) => {
  const v = Math.abs(value), warn = c[`${metric}_warn`], drift = c[`${metric}_drift`];
  return v < warn ? "ok" : v <= drift ? "warn" : "drift";
};

/** The window's minimum sample: min_samples, or the largest window the tests need for a drift-sized effect. */
export function minimumSample(stats, c, m) {
  if (c.min_samples) return c.min_samples;
  const alpha = c.alpha / Math.max(stats.length, 1);
  let need = 1;
  for (const s of stats) {
    if (s.metric === "psi" || s.metric === "max_psi") {
      const mm = s.referenceSamples || m;
      for (const r of s.refs) need = Math.max(need, requiredSamples(r.length, c.psi_drift, alpha / s.refs.length, c.power, mm) || 10 * mm);
    } else if (s.metric === "shift") need = Math.max(need, shiftSamples(c.shift_drift, alpha, c.power));
  }
  return need;
}

/** A statistic's report entry, scored (scoring.score); `mmd`: [value, p, reservoir] of an mmd statistic. */
function scoreStat(s, acc, mmd, n, m, c, tests, minN) {
  const alpha = c.alpha / Math.max(tests, 1), e = { name: s.name, metric: s.metric }, detail = {};
  let value, p, lvl;
  if (s.metric === "mmd") {
    [value, p] = mmd;
    lvl = "drift";
    Object.assign(e, { value: null, p_value: null, reservoir: mmd[2], mergeable: false });
  } else {
    const counts = acc.map((v) => round(v, 6)), mm = s.referenceSamples || m;
    if (s.metric === "max_psi") {
      const bins = acc.length / s.refs.length, rows = s.refs.map((_, j) => counts.slice(j * bins, (j + 1) * bins));
      const per = rows.map((r, j) => psi(r, s.refs[j]));
      value = Math.max(...per);
      e.counts = rows;
      p = maxPsiPvalue(value, s.refs, n, mm, c.seed);
      lvl = level(c, "psi", value);
      detail.per_direction = per.map((v) => round(v, 4));
    } else if (s.metric === "psi") {
      e.counts = counts;
      value = psi(counts, s.refs[0]);
      p = psiPvalue(value, s.refs[0], n, mm, c.seed);
      lvl = level(c, "psi", value);
    } else { // shift: [items, sum, sum of squares]
      e.counts = counts;
      const [k, sum, s2] = counts, mean = k ? sum / k : NaN, std = k ? Math.sqrt(Math.max(s2 / k - mean * mean, 0)) : NaN;
      const [rm, rs] = s.refs[0], scale = Math.max(rs, 1e-3 * Math.abs(rm), 1e-12);
      value = (mean - rm) / scale;
      p = normalPvalue(value * Math.sqrt(Math.max(k, 1)));
      lvl = level(c, "shift", value);
      Object.assign(detail, { mean, std });
    }
    e.reference = s.metric === "max_psi" ? s.refs : s.refs[0];
    if (s.referenceSamples) e.reference_samples = s.referenceSamples;
    if (s.metric === "psi") {
      const total = Math.max(acc.reduce((a, b) => a + b, 0), 1), fr = acc.map((v) => round6(v / total));
      e.fractions = s.bins ? Object.fromEntries(s.bins.map((b, k) => [b, fr[k]])) : fr;
    }
  }
  Object.assign(e, { value: round6(value), p_value: round6(p), status: n < minN ? "insufficient" : p < alpha ? lvl : "ok" }, detail);
  return e;
}

// ------------------------------------------------------------------ embeddings (EmbeddingDrift.java)
class EmbeddingDrift {
  constructor(prof) {
    this.centroid = prof.centroid;
    this.directions = prof.directions;
    this.projRefs = prof.projection_histograms.map((h) => h.fractions);
    this.projEdges = prof.projection_histograms.map((h) => h.edges);
    this.cosRef = prof.centroid_cosine.fractions;
    this.cosEdges = prof.centroid_cosine.edges;
    this.sample = prof.sample;
    this.bandwidth = prof.bandwidth || 1;
    this.measuredOn = prof.measured_on || 0;
  }

  project(x) { return this.directions.map((d) => d.reduce((a, dk, k) => a + (x[k] - this.centroid[k]) * dk, 0)); }

  cosine(x) {
    let cc = 0, dot = 0, xx = 0;
    this.centroid.forEach((c, k) => { cc += c * c; dot += x[k] * c; xx += x[k] * x[k]; });
    return dot / Math.max(Math.sqrt(cc), 1e-12) / Math.max(Math.sqrt(xx), 1e-12);
  }

  /** Unbiased MMD^2 (Gaussian kernel) between the profile's sample and `live`, and its permutation p-value. */
  mmdTest(live, permutations, seed) {
    if (live.length < 8) return [0, 1];
    const z = [...this.sample, ...live], n = this.sample.length, m = live.length, t = z.length;
    const sq = z.map((r) => r.reduce((a, v) => a + v * v, 0)), g = 2 * this.bandwidth * this.bandwidth;
    const k = Array.from({ length: t }, () => new Float64Array(t));
    for (let i = 0; i < t; i++) {
      for (let j = i + 1; j < t; j++) {
        let dot = 0;
        for (let d = 0; d < z[i].length; d++) dot += z[i][d] * z[j][d];
        k[i][j] = k[j][i] = Math.exp(-Math.max(sq[i] + sq[j] - 2 * dot, 0) / g);
      }
    }
    const order = Array.from({ length: t }, (_, i) => i), first = new Uint8Array(t);
    const mmd = () => {
      first.fill(0);
      for (let i = 0; i < n; i++) first[order[i]] = 1;
      let aa = 0, bb = 0, ab = 0;
      for (let i = 0; i < t; i++) {
        const row = k[i];
        for (let j = i + 1; j < t; j++) {
          if (first[i] !== first[j]) ab += row[j]; else if (first[i]) aa += row[j]; else bb += row[j];
        }
      }
      return (2 * aa) / (n * (n - 1)) + (2 * bb) / (m * (m - 1)) - (2 * ab) / (n * m);
    };
    const observed = mmd(), rng = mulberry32(seed), nul = [];
    for (let p = 0; p < permutations; p++) {
      for (let i = t - 1; i > 0; i--) { const j = Math.floor(rng() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
      nul.push(mmd());
    }
    return [observed, tailPvalue(nul, observed)];
  }
}

/** A uniform sample of at most `size` rows of a stream (Vitter's algorithm R). */
class Reservoir {
  constructor(size, seed) { this.size = size; this.rows = []; this.seen = 0; this.rng = mulberry32(seed); }

  add(row) {
    if (this.seen < this.size) this.rows.push(row);
    else { const j = Math.floor(this.rng() * (this.seen + 1)); if (j < this.size) this.rows[j] = row; }
    this.seen++;
  }
}

// ------------------------------------------------------------------ the hook (DriftMonitor.java)
/**
 * The drift hook, report schema edgesmith.drift/2: per sampled item the pixel histograms (or token length),
 * the predicted class and confidence (classifiers) or the embedding norm, projections, centroid cosine and
 * an MMD reservoir (encoders); every `window` sampled items a report with counts, effect sizes, p-values and
 * statuses is sent to `sink(report, line)`. As in Java: sampling and the Monte-Carlo tests use this file's
 * generator (positions and p-values differ from Python's within sampling / Monte-Carlo error), `sketches` is
 * empty (no KLL) and there are no saturation statistics.
 */
export class DriftMonitor {
  constructor(manifest, format, settings = {}, sink = null) {
    this.config = { ...DEFAULT_CONFIG, ...settings };
    const prof = manifest.reference_profile;
    if (!prof || typeof prof !== "object") throw new BundleError(`${MANIFEST}: no 'reference_profile' to compare traffic with; rebuild the bundle with a current edgesmith`);
    if (prof.error) throw new BundleError(`${MANIFEST}: 'reference_profile' holds no statistics (${prof.error})`);
    const hist = (name, h) => {
      if (!h || !h.edges || !h.fractions || h.edges.length !== h.fractions.length + 1) throw new BundleError(`${MANIFEST}: reference_profile histogram of ${name} is malformed`);
      return { name, metric: "psi", refs: [h.fractions], edges: [h.edges], bins: null, referenceSamples: 0, width: h.fractions.length };
    };
    const kind = manifest.preprocessing.kind;
    this.inputs = kind === "image" ? prof.inputs.channels.map((c, i) => hist(`pixels[${i}]`, c.histogram))
      : [hist("token_length", prof.inputs.token_length.histogram)];
    this.classifier = manifest.outputs[0].meaning === "logits";
    const out = prof.outputs;
    this.embedding = null;
    if (this.classifier) {
      const classes = out.predicted_class;
      this.outputs = [{ name: "predicted_class", metric: "psi", refs: [Object.values(classes)], bins: Object.keys(classes), referenceSamples: 0, width: Object.keys(classes).length },
        hist("confidence", out.confidence.histogram)];
    } else {
      this.outputs = [{ name: "embedding_norm", metric: "shift", refs: [[out.norm.mean, out.norm.std]], referenceSamples: 0, width: 3 }];
      if (out.embedding) {
        const e = (this.embedding = new EmbeddingDrift(out.embedding));
        this.outputs.push(
          { name: "embedding_directions", metric: "max_psi", refs: e.projRefs, edges: e.projEdges, referenceSamples: e.measuredOn, width: e.projRefs.length * e.projRefs[0].length },
          { name: "centroid_cosine", metric: "psi", refs: [e.cosRef], edges: [e.cosEdges], bins: null, referenceSamples: e.measuredOn, width: e.cosRef.length },
          { name: "embedding_mmd", metric: "mmd", refs: [], width: e.directions.length });
      }
    }
    this.referenceSamples = prof.samples || 0;
    this.minSamples = minimumSample(this.stats, this.config, this.referenceSamples);
    const src = manifest.source || {};
    this.identity = { recipe: src.recipe ?? null, recipe_sha256: src.recipe_sha256 ?? null, format, created_utc: manifest.created_utc ?? null };
    this.device = this.config.device || "browser";
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

  #blank() { return this.stats.map((s) => new Array(s.width).fill(0)); }

  #reset() {
    this.window = this.#blank();
    this.reservoir = new Reservoir(this.config.reservoir, this.config.seed + this.windows);
    this.windowN = 0;
  }

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
      acc[at + 1][binIndex(p[best], this.outputs[1].edges[0])] += 1;
      return;
    }
    const v = norm(out);
    acc[at][0] += 1; acc[at][1] += v; acc[at][2] += v * v;
    if (this.embedding) {
      const e = this.embedding, proj = e.project(out), dirs = this.outputs[1], bins = dirs.width / dirs.refs.length;
      dirs.refs.forEach((_, j) => { acc[at + 1][j * bins + binIndex(proj[j], dirs.edges[j])] += 1; });
      acc[at + 2][binIndex(e.cosine(out), this.outputs[2].edges[0])] += 1;
      acc[at + 3] = proj; // the MMD's row: goes to the reservoir, not summed
    }
  }

  /** A batch of images: CHW pixels in [0, 1] per item, and its output rows. Returns completed reports. */
  observeImages(units, outputs) {
    const rows = this.#pick(outputs.length).map((i) => {
      const acc = this.#blank(), x = units[i], hw = x.length / this.inputs.length;
      this.inputs.forEach((s, c) => { for (let j = 0; j < hw; j++) acc[c][binIndex(x[c * hw + j], s.edges[0])] += 1; });
      this.#addOutputs(acc, outputs[i]);
      return acc;
    });
    return this.#accumulate(rows);
  }

  /** A batch of texts: token lengths (special tokens included, truncated) and output rows. */
  observeTexts(lengths, outputs) {
    const rows = this.#pick(outputs.length).map((i) => {
      const acc = this.#blank();
      acc[0][binIndex(lengths[i], this.inputs[0].edges[0])] += 1;
      this.#addOutputs(acc, outputs[i]);
      return acc;
    });
    return this.#accumulate(rows);
  }

  #accumulate(rows) {
    const done = [], stats = this.stats;
    this.sampled += rows.length;
    for (const row of rows) {
      row.forEach((r, s) => {
        if (stats[s].metric === "mmd") this.reservoir.add(r);
        else r.forEach((v, k) => { this.window[s][k] += v; });
      });
      this.windowN++;
      if (this.windowN >= this.config.window) { done.push(this.#build(true)); this.windows++; this.#reset(); }
    }
    done.forEach((r) => this.#emit(r));
    return done;
  }

  #build(full) {
    const c = this.config, all = this.stats;
    const stats = this.windowN ? all.map((s, i) => {
      const mmd = s.metric === "mmd" ? [...this.embedding.mmdTest(this.reservoir.rows, c.permutations, c.seed), this.reservoir.rows.length] : null;
      return scoreStat(s, this.window[i], mmd, this.windowN, this.referenceSamples, c, all.length, this.minSamples);
    }) : [];
    let worst = null; // the most severe, then the smallest p-value (the first wins a tie)
    for (const r of stats) {
      const a = STATUSES.indexOf(r.status), b = worst ? STATUSES.indexOf(worst.status) : -1;
      if (!worst || a > b || (a === b && r.p_value < worst.p_value)) worst = r;
    }
    return {
      schema: REPORT_SCHEMA,
      created_utc: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
      device: this.device,
      bundle: { ...this.identity },
      window: { index: this.windows, samples: this.windowN, full, requests_seen: this.seen, sampled_total: this.sampled,
        reference_samples: this.referenceSamples, min_samples: this.minSamples, tests: all.length },
      config: { ...c },
      status: worst ? worst.status : "no_data",
      worst: worst ? worst.name : null,
      statistics: stats,
      sketches: {}, // no KLL sketches in the browser
    };
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
