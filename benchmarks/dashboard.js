// edgesmith dashboard: draws the embedded results (no network, no libraries).
(() => {
  'use strict';
  const DATA = JSON.parse(document.getElementById('edgesmith-data').textContent);
  const SVG = document.getElementById('svg-ns').namespaceURI;
  const COLORS = ['#4c78a8', '#e45756', '#54a24b', '#b279a2', '#f58518', '#72b7b2', '#9d755d', '#eeca3b'];
  const FILTERS = ['recipe', 'runtime', 'target', 'host_key', 'run_id'];
  const state = { recipe: '', runtime: '', target: '', host_key: '', run_id: '', budget: '', a: '', b: '' };
  const HOSTS = DATA.hosts || [];
  const hostLabel = (key) => (HOSTS.find((h) => h.key === key) || {}).label || key || 'unknown host';
  const runLabel = (id) => { const r = DATA.runs.find((x) => x.id === id); return r ? `run ${id} · ${r.recipe} · ${r.added_at || ''}` : id == null ? 'bench (no run)' : `run ${id}`; };
  const uniq = (xs) => [...new Set(xs.filter((x) => x != null && x !== ''))].sort();
  const runtimes = uniq(DATA.benchmarks.map((b) => b.runtime));
  const color = (rt) => COLORS[Math.max(0, runtimes.indexOf(rt)) % COLORS.length];

  function add(node, kids) {
    for (const k of kids.flat()) if (k != null && k !== false) node.append(k instanceof Node ? k : String(k));
    return node;
  }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, v);
    return add(e, kids);
  }
  function sv(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, v);
    return add(e, kids);
  }
  const fmtMs = (v) => (v == null ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 0.1 ? v.toFixed(2) : v.toFixed(3));
  const fmtAcc = (a) => (a == null ? '–' : (100 * a).toFixed(2) + '%');
  function fmtBytes(b) {
    if (b == null) return '–';
    const u = ['B', 'KB', 'MB', 'GB'];
    let i = 0;
    while (b >= 1000 && i < u.length - 1) { b /= 1000; i += 1; }
    return (b >= 100 || i === 0 ? b.toFixed(0) : b.toFixed(1)) + ' ' + u[i];
  }
  const device = (b) => b.gpu || b.cpu_model || b.target;
  const ok = (b) => !b.error && b.p50 != null;
  const matches = (b) => FILTERS.every((k) => !state[k] || String(b[k]) === state[k]);
  const budget = () => (state.budget === '' || isNaN(+state.budget) ? null : +state.budget);

  // benchmarks/stats.py compare_latency, the one rule for "slower" / "faster"
  function verdict(a, b) {
    if (!a.p50 || !b.p50) return 'same';
    const [slow, fast] = b.p50 > a.p50 ? [b, a] : [a, b];
    const apart = slow.p50_ci_lo == null || fast.p50_ci_hi == null || slow.p50_ci_lo > fast.p50_ci_hi;
    const gap = slow.p50 - fast.p50, floor = Math.max(a.overhead_ms || 0, b.overhead_ms || 0);
    if (gap > 0.05 * fast.p50 && apart && gap > floor) return b.p50 > a.p50 ? 'slower' : 'faster';
    return 'same';
  }

  // ---- host against host ----
  function renderHosts(rows) {
    const section = document.getElementById('hosts-section');
    const keys = uniq(rows.filter(ok).map((b) => b.host_key));
    const list = document.querySelector('#hostlist tbody');
    document.querySelector('#hostlist thead').replaceChildren(el('tr', {}, ['host', 'CPU', 'cores', 'ISA flags', 'runtimes', 'measurements', 'harness overhead'].map((h) => el('th', {}, h))));
    list.replaceChildren(...HOSTS.map((h) => {
      const over = DATA.benchmarks.filter((b) => b.host_key === h.key && b.overhead_ms != null).map((b) => b.overhead_ms).sort((x, y) => x - y);
      const libs = Object.entries(h.libraries || {}).map(([k, v]) => `${k} ${v}`).join(', ');
      return el('tr', { 'data-host': h.key }, el('td', {}, h.hostname || '–'), el('td', {}, h.cpu_model || h.gpu || '–'), el('td', { class: 'num' }, h.cores ?? '–'),
        el('td', {}, (h.flags || []).join(' ') || '–'), el('td', { class: 'wrap' }, libs || '–'), el('td', { class: 'num' }, h.n),
        el('td', { class: 'num' }, over.length ? `${(1000 * over[Math.floor(over.length / 2)]).toFixed(1)} µs` : '–'));
    }));
    const pickA = document.getElementById('host-a'), pickB = document.getElementById('host-b');
    for (const [pick, k, i] of [[pickA, 'a', 0], [pickB, 'b', 1]]) {
      pick.replaceChildren(...HOSTS.map((h) => el('option', { value: h.key }, h.label)));
      if (!HOSTS.some((h) => h.key === state[k])) state[k] = (keys[i] ?? keys[0] ?? '');
      pick.value = state[k];
    }
    const head = document.querySelector('#hostcmp thead'), body = document.querySelector('#hostcmp tbody');
    head.replaceChildren(el('tr', {}, ['recipe', 'model', 'runtime', 'target', 'threads', 'batch', 'seq', 'p50 A, ms', 'p50 B, ms', 'B / A', 'interval', 'B is'].map((h) => el('th', {}, h))));
    if (keys.length < 2 || state.a === state.b) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 12, class: 'empty' }, keys.length < 2 ? 'one host only: measure the same model on another machine (edgesmith bench ... --db) to compare' : 'pick two different hosts')));
      section.dataset.pairs = '0';
      return;
    }
    const keyOf = (b) => [b.recipe, b.model, b.runtime, b.target, b.threads, b.batch, b.seq_len].join('\u0001');
    const latest = (h) => { const m = new Map(); for (const b of rows.filter((x) => ok(x) && x.host_key === h)) { const k = keyOf(b); if (!m.has(k) || m.get(k).id < b.id) m.set(k, b); } return m; };
    const A = latest(state.a), B = latest(state.b);
    const pairs = [...A.keys()].filter((k) => B.has(k)).map((k) => [A.get(k), B.get(k)]);
    section.dataset.pairs = String(pairs.length);
    if (!pairs.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 12, class: 'empty' }, 'no model measured with the same runtime and settings on both hosts')));
      return;
    }
    body.replaceChildren(...pairs.map(([a, b]) => {
      const v = verdict(a, b), r = b.p50 / a.p50;
      const lo = a.p50_ci_hi && b.p50_ci_lo ? b.p50_ci_lo / a.p50_ci_hi : null, hi = a.p50_ci_lo && b.p50_ci_hi ? b.p50_ci_hi / a.p50_ci_lo : null;
      const num = (x) => el('td', { class: 'num' }, x);
      return el('tr', { class: 'pair', 'data-verdict': v }, el('td', {}, a.recipe || '–'), el('td', {}, a.model || '–'), el('td', {}, a.runtime), el('td', {}, a.target),
        num(a.threads ?? '–'), num(a.batch ?? '–'), num(a.seq_len ?? '–'), num(fmtMs(a.p50)), num(fmtMs(b.p50)), num(r.toFixed(2) + '×'),
        num(lo != null && hi != null ? `${lo.toFixed(2)}–${hi.toFixed(2)}` : '–'), el('td', { class: v === 'slower' ? 'bad' : v === 'faster' ? 'ok' : 'dim' }, v));
    }));
  }

  // ---- Pareto scatter plots ----
  function scatter(points, xKey, xLabel, fmtX) {
    const W = 540, H = 300, L = 58, R = 16, T = 14, B = 44;
    const pts = points.filter((p) => p[xKey] > 0 && p.accuracy != null);
    const svg = sv('svg', { class: 'plot', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-x': xKey });
    if (!pts.length) return add(svg, [sv('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no measurement with an accuracy')]);
    const xs = pts.flatMap((p) => [p[xKey], xKey === 'p50' ? p.p50_ci_lo : null, xKey === 'p50' ? p.p50_ci_hi : null]).filter((v) => v > 0);
    let x0 = Math.log10(Math.min(...xs)), x1 = Math.log10(Math.max(...xs));
    const xpad = Math.max(0.15, (x1 - x0) * 0.08); x0 -= xpad; x1 += xpad;
    const ys = pts.map((p) => p.accuracy);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    const ypad = Math.max(0.005, (y1 - y0) * 0.12); y0 = Math.max(0, y0 - ypad); y1 = Math.min(1, y1 + ypad);
    const px = (v) => L + ((Math.log10(v) - x0) / (x1 - x0)) * (W - L - R);
    const py = (v) => H - B - ((v - y0) / (y1 - y0)) * (H - T - B);
    const decades = x1 - x0, steps = decades > 3 ? [1] : decades > 1.2 ? [1, 2, 5] : [1, 2, 3, 5, 7];
    for (let e = Math.floor(x0); e <= Math.ceil(x1); e += 1) {
      for (const m of steps) {
        const v = m * 10 ** e;
        if (Math.log10(v) < x0 || Math.log10(v) > x1) continue;
        svg.append(sv('line', { class: 'grid', x1: px(v), x2: px(v), y1: T, y2: H - B }));
        svg.append(sv('text', { x: px(v), y: H - B + 14, 'text-anchor': 'middle' }, fmtX(v)));
      }
    }
    for (let i = 0; i <= 4; i += 1) {
      const v = y0 + ((y1 - y0) * i) / 4;
      svg.append(sv('line', { class: 'grid', x1: L, x2: W - R, y1: py(v), y2: py(v) }));
      svg.append(sv('text', { x: L - 6, y: py(v) + 4, 'text-anchor': 'end' }, (100 * v).toFixed(1) + '%'));
    }
    svg.append(sv('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.append(sv('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    svg.append(sv('text', { x: (L + W - R) / 2, y: H - 8, 'text-anchor': 'middle' }, xLabel + ' (log scale)'));
    svg.append(sv('text', { x: 14, y: (T + H - B) / 2, transform: `rotate(-90 14 ${(T + H - B) / 2})`, 'text-anchor': 'middle' }, 'accuracy'));
    // Pareto front: lower x and higher accuracy are better.
    const sorted = [...pts].sort((a, b) => a[xKey] - b[xKey] || b.accuracy - a.accuracy);
    const front = [];
    for (const p of sorted) if (!front.length || p.accuracy > front[front.length - 1].accuracy) front.push(p);
    if (front.length > 1) {
      let d = `M${px(front[0][xKey])},${py(front[0].accuracy)}`;
      for (const p of front.slice(1)) d += `H${px(p[xKey])}V${py(p.accuracy)}`;
      svg.append(sv('path', { class: 'front', d }));
    }
    const placed = [];
    for (const p of pts) {
      const cx = px(p[xKey]), cy = py(p.accuracy), c = color(p.runtime);
      if (xKey === 'p50' && p.p50_ci_lo > 0 && p.p50_ci_hi > 0) {
        svg.append(sv('line', { class: 'ci', x1: px(p.p50_ci_lo), x2: px(p.p50_ci_hi), y1: cy, y2: cy, stroke: c }));
      }
      const tip = `${p.recipe} · ${p.model} · ${p.runtime} on ${device(p)}\np50 ${fmtMs(p.p50)} ms, size ${fmtBytes(p.model_size_bytes)}, accuracy ${fmtAcc(p.accuracy)}`;
      const onFront = front.includes(p);
      svg.append(sv('circle', { class: 'pt', cx, cy, r: 5.5, fill: c, stroke: onFront ? '#111' : '#fff', 'stroke-width': onFront ? 2 : 1 }, sv('title', {}, tip)));
      // Label beside the point, moved down until it clears the labels already placed.
      const text = `${p.model} (${p.runtime})`, w = text.length * 5.6, right = cx + 8 + w > W - R;
      const lx = right ? cx - 8 - w : cx + 8;
      let ly = cy - 6;
      while (placed.some((q) => Math.abs(q.y - ly) < 11 && lx < q.x + q.w && q.x < lx + w)) ly += 12;
      placed.push({ x: lx, y: ly, w });
      svg.append(sv('text', { class: 'label', x: lx, y: ly }, text));
    }
    return svg;
  }

  function renderPareto(rows) {
    // One pair of plots per target and recipe: quality is only comparable within a task.
    const box = document.getElementById('pareto');
    box.replaceChildren();
    const good = rows.filter(ok);
    if (!good.length) box.append(el('p', { class: 'empty' }, 'no successful measurement matches the filters'));
    // faceted by host: latencies of two machines never share a plot
    for (const t of uniq(good.map((b) => b.target))) {
      for (const h of uniq(good.filter((b) => b.target === t).map((b) => b.host_key))) {
        for (const r of uniq(good.filter((b) => b.target === t && b.host_key === h).map((b) => b.recipe || '–'))) {
          const pts = good.filter((b) => b.target === t && b.host_key === h && (b.recipe || '–') === r);
          const legend = el('span', { class: 'legend' }, uniq(pts.map((p) => p.runtime)).map((rt) => el('span', {}, el('i', { style: `background:${color(rt)}` }), rt)));
          box.append(el('div', { class: 'target', 'data-target': t, 'data-recipe': r, 'data-host': h },
            el('h3', {}, `target ${t} · ${r} `, el('span', { class: 'host' }, hostLabel(h)), ' ', legend),
            el('div', { class: 'plots' }, scatter(pts, 'p50', 'p50 latency, ms', fmtMs), scatter(pts, 'model_size_bytes', 'model size', fmtBytes))));
        }
      }
    }
  }

  // ---- hardware comparison table ----
  function renderHardware(rows) {
    const lim = budget();
    let shown = lim == null ? rows : rows.filter((b) => ok(b) && b.p50 <= lim);
    shown = [...shown].sort(lim == null
      ? (a, b) => (a.recipe || '').localeCompare(b.recipe || '') || a.target.localeCompare(b.target) || (a.p50 ?? Infinity) - (b.p50 ?? Infinity)
      : (a, b) => (b.accuracy ?? -1) - (a.accuracy ?? -1) || a.p50 - b.p50);
    const head = ['device', 'host', 'run', 'target', 'runtime', 'recipe', 'model', 'threads', 'batch', 'p50 ms [95% CI]', 'p99 ms', 'accuracy', 'size', 'peak RSS', 'status'];
    const numeric = new Set(['threads', 'batch', 'p50 ms [95% CI]', 'p99 ms', 'accuracy', 'size', 'peak RSS']);
    document.querySelector('#hw thead').replaceChildren(el('tr', {}, head.map((h) => el('th', { class: numeric.has(h) ? 'num' : null }, h))));
    const best = lim == null ? null : shown.find((b) => b.accuracy != null);
    const body = document.querySelector('#hw tbody');
    body.replaceChildren(...shown.map((b) => {
      const ci = b.p50_ci_lo != null ? ` [${fmtMs(b.p50_ci_lo)}–${fmtMs(b.p50_ci_hi)}]` : '';
      const cls = b.error ? 'failed' : b === best ? 'best' : null;
      const num = (v) => el('td', { class: 'num' }, v);
      return el('tr', { class: cls, 'data-id': b.id },
        el('td', { title: b.host || '' }, device(b)), el('td', { title: hostLabel(b.host_key) }, b.host || '–'),
        el('td', { title: runLabel(b.run_id) }, b.run_id == null ? '–' : String(b.run_id)), el('td', {}, b.target), el('td', {}, b.runtime), el('td', {}, b.recipe || '–'),
        el('td', {}, b.model || '–'), num(b.threads ?? '–'), num(b.batch ?? '–'), num(fmtMs(b.p50) + ci), num(fmtMs(b.p99)),
        num(fmtAcc(b.accuracy)), num(fmtBytes(b.model_size_bytes)), num(b.peak_rss_mb == null ? '–' : b.peak_rss_mb.toFixed(0) + ' MB'),
        el('td', { class: 'status' }, b.error ? 'failed: ' + b.error : 'ok'));
    }));
    const failed = rows.filter((b) => b.error).length;
    document.getElementById('hw-caption').textContent = lim == null
      ? `${rows.length} measurements (${failed} failed). Enter a latency budget to keep only those whose p50 meets it, best accuracy first.`
      : `${shown.length} of ${rows.length} measurements meet p50 ≤ ${lim} ms` +
        (best ? `; best quality: ${best.recipe}/${best.model} on ${best.runtime} (${device(best)}), ${fmtAcc(best.accuracy)} at ${fmtMs(best.p50)} ms.` : '.');
  }

  // ---- per-stage waterfall ----
  function renderWaterfall(rows) {
    const box = document.getElementById('waterfall');
    box.replaceChildren();
    const runs = DATA.runs.filter((r) => !state.recipe || r.recipe === state.recipe);
    if (!runs.length) box.append(el('p', { class: 'empty' }, 'no run matches the filters'));
    for (const run of runs) {
      const bench = rows.filter((b) => b.run_id === run.id && ok(b));
      const cols = uniq(bench.map((b) => `${b.target} · ${b.runtime}`));
      const teacher = run.stages[0] || {};
      const maxSize = Math.max(1, ...run.stages.map((s) => s.size_bytes || 0), ...run.exports.map((e) => e.size_bytes || 0));
      const head = el('tr', {}, ['step', 'kind', 'params', 'size', 'accuracy'].map((h) => el('th', {}, h)), cols.map((c) => el('th', { class: 'num' }, `p50 ms, ${c}`)), el('th', {}, 'parity'));
      const prev = {};
      const sizeCell = (bytes) => el('td', {}, el('span', { class: 'bar', style: `width:${Math.round((120 * (bytes || 0)) / maxSize)}px` }), fmtBytes(bytes),
        bytes && teacher.size_bytes && bytes < teacher.size_bytes ? el('span', { class: 'dim' }, ` ${(teacher.size_bytes / bytes).toFixed(1)}× smaller`) : null);
      const body = run.stages.map((s) => {
        const delta = s.accuracy != null && teacher.accuracy != null && s !== teacher ? ` (${s.accuracy >= teacher.accuracy ? '+' : ''}${(100 * (s.accuracy - teacher.accuracy)).toFixed(2)} pt)` : '';
        const lat = cols.map((c) => {
          const b = bench.find((x) => x.model === s.name && `${x.target} · ${x.runtime}` === c);
          if (!b) return el('td', { class: 'num dim' }, '–');
          // the pipeline's rule (benchmarks/stats.py compare_latency): over 5% slower, the p50 CIs
          // apart, and the gap above the harness overhead
          const p = prev[c];
          const slower = p != null && verdict(p, b) === 'slower';
          const cell = el('td', { class: slower ? 'num slower' : 'num', title: slower ? `p50 ${fmtMs(p.p50)} ms in the stage before` : null }, fmtMs(b.p50), slower ? el('span', { class: 'badge' }, 'slower') : null);
          prev[c] = b;
          return cell;
        });
        return el('tr', { 'data-stage': s.name }, el('td', {}, s.name), el('td', {}, s.kind), el('td', { class: 'num' }, s.params == null ? '–' : s.params.toLocaleString('en')),
          sizeCell(s.size_bytes), el('td', {}, fmtAcc(s.accuracy), el('span', { class: 'dim' }, delta)), lat, el('td', {}, ''));
      });
      const exp = run.exports.map((e) => el('tr', { 'data-export': e.format }, el('td', {}, `export: ${e.format}`), el('td', {}, e.precision || ''), el('td', {}, ''),
        sizeCell(e.size_bytes), el('td', {}, ''), cols.map(() => el('td', {}, '')),
        el('td', { class: e.error || e.parity_passed === 0 ? 'bad' : 'ok' }, e.error ? 'failed: ' + e.error : e.parity_passed ? `ok, max|diff| ${e.max_abs_diff?.toExponential(1) ?? '–'}` : e.parity_passed === 0 ? 'failed' : '–')));
      box.append(el('div', { class: 'run', 'data-run': run.id }, el('h3', {}, `${run.recipe} `, el('span', { class: 'dim' }, `${run.task || ''} · ${run.source || ''} · ${run.added_at || ''}`)),
        el('table', { class: 'waterfall' }, el('thead', {}, head), el('tbody', {}, body, exp))));
    }
  }

  function render() {
    const rows = DATA.benchmarks.filter(matches);
    renderPareto(rows);
    renderHosts(DATA.benchmarks.filter((b) => FILTERS.every((k) => k === 'host_key' || !state[k] || String(b[k]) === state[k])));
    renderHardware(rows);
    renderWaterfall(rows);
    document.body.dataset.rendered = String(rows.length);
  }

  function saveHash() {
    const q = new URLSearchParams(Object.entries(state).filter(([, v]) => v !== ''));
    try { history.replaceState(null, '', '#' + q.toString()); } catch (e) { /* a file: URL may refuse */ }
  }

  const hash = new URLSearchParams(location.hash.slice(1));
  for (const k of FILTERS) {
    const sel = document.getElementById('f-' + k);
    const values = uniq([...DATA.benchmarks.map((b) => (b[k] == null ? null : String(b[k]))), ...(k === 'recipe' ? DATA.runs.map((r) => r.recipe) : [])]);
    const label = k === 'host_key' ? hostLabel : k === 'run_id' ? (v) => runLabel(+v) : (v) => v;
    for (const v of values) sel.append(el('option', { value: v }, label(v)));
    if (values.includes(hash.get(k))) { state[k] = hash.get(k); sel.value = state[k]; }
    sel.addEventListener('change', () => { state[k] = sel.value; saveHash(); render(); });
  }
  for (const k of ['a', 'b']) {
    const pick = document.getElementById('host-' + k);
    if (HOSTS.some((h) => h.key === hash.get(k))) state[k] = hash.get(k);
    pick.addEventListener('change', () => { state[k] = pick.value; saveHash(); render(); });
  }
  const input = document.getElementById('budget');
  if (hash.get('budget') && !isNaN(+hash.get('budget'))) { state.budget = hash.get('budget'); input.value = state.budget; }
  input.addEventListener('input', () => { state.budget = input.value; saveHash(); render(); });
  document.getElementById('meta').textContent =
    `${DATA.runs.length} runs, ${DATA.benchmarks.length} measurements · ${DATA.database} · generated ${DATA.generated_at}`;
  render();
})();
