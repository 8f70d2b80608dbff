// edgesmith dashboard, search section: the Pareto view of `edgesmith search` runs
// (self-contained: reads DATA.search, draws into #search-pareto, shows a point's recipe).
(() => {
  'use strict';
  const DATA = JSON.parse(document.getElementById('edgesmith-data').textContent);
  const POINTS = DATA.search || [];
  const box = document.getElementById('search-pareto');
  const recipeBox = document.getElementById('search-recipe');
  if (!box) return;
  const NS = document.getElementById('svg-ns').namespaceURI;
  function mk(ns, tag, attrs, ...kids) {
    const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, v);
    for (const k of kids.flat()) if (k != null && k !== false) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  const h = (tag, attrs, ...kids) => mk(null, tag, attrs, ...kids);
  const s = (tag, attrs, ...kids) => mk(NS, tag, attrs, ...kids);
  const ms = (v) => (v == null ? '–' : v >= 10 ? v.toFixed(1) : v >= 0.1 ? v.toFixed(2) : v.toFixed(4));
  const kb = (b) => (b == null ? '–' : b >= 1e6 ? (b / 1e6).toFixed(1) + ' MB' : (b / 1e3).toFixed(1) + ' kB');
  const quality = (p) => (p.accuracy != null ? p.accuracy : p.cosine);

  function yaml(v, indent) {
    // a small YAML writer for the recipe panel (plain mappings, lists and scalars)
    const pad = ' '.repeat(indent);
    if (Array.isArray(v)) {
      if (!v.length) return ' []';
      if (v.every((x) => x === null || typeof x !== 'object')) return ' [' + v.map((x) => JSON.stringify(x)).join(', ') + ']';
      return v.map((x) => '\n' + pad + '-' + yaml(x, indent + 2).replace(/^\n\s*/, ' ')).join('');
    }
    if (v && typeof v === 'object') {
      const keys = Object.keys(v);
      if (!keys.length) return ' {}';
      return keys.map((k) => '\n' + pad + k + ':' + yaml(v[k], indent + 2)).join('');
    }
    return ' ' + (typeof v === 'string' && !/^[\w./-]+$/.test(v) ? JSON.stringify(v) : String(v));
  }

  function show(p) {
    for (const c of box.querySelectorAll('.spt.selected')) { c.classList.remove('selected'); c.setAttribute('stroke-width', '1'); }
    const dot = box.querySelector(`.spt[data-id="${p.id}"]`);
    if (dot) { dot.classList.add('selected'); dot.setAttribute('stroke-width', '3'); }
    const head = p.reference ? `${p.name} (reference point: no recipe)` :
      `# ${p.name} of ${p.search}${p.on_front ? ' (on the front)' : ''}\n` +
      `# edgesmith search ... --export-recipe ${p.trial} writes it as a file`;
    recipeBox.textContent = head + (p.trial_recipe ? yaml(p.trial_recipe, 0) : '');
    recipeBox.dataset.point = String(p.id);
    const q = new URLSearchParams(location.hash.slice(1));
    q.set('spoint', String(p.id));
    try { history.replaceState(null, '', '#' + q.toString()); } catch (e) { /* a file: URL may refuse */ }
  }

  function plot(pts) {
    const W = 560, H = 320, L = 60, R = 16, T = 14, B = 44;
    const svg = s('svg', { class: 'plot search-plot', width: W, height: H, viewBox: `0 0 ${W} ${H}` });
    const xs = pts.flatMap((p) => [p.p50, ...(p.p50_ci || [])]).filter((v) => v > 0), ys = pts.map(quality);
    let x0 = Math.log10(Math.min(...xs)), x1 = Math.log10(Math.max(...xs));
    const xp = Math.max(0.1, (x1 - x0) * 0.08); x0 -= xp; x1 += xp;
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    const yp = Math.max(0.005, (y1 - y0) * 0.12); y0 -= yp; y1 += yp;
    const px = (v) => L + ((Math.log10(v) - x0) / (x1 - x0)) * (W - L - R);
    const py = (v) => H - B - ((v - y0) / (y1 - y0)) * (H - T - B);
    for (let i = 0; i <= 4; i += 1) {
      const v = y0 + ((y1 - y0) * i) / 4, xv = 10 ** (x0 + ((x1 - x0) * i) / 4);
      svg.append(s('line', { class: 'grid', x1: L, x2: W - R, y1: py(v), y2: py(v) }));
      svg.append(s('text', { x: L - 6, y: py(v) + 4, 'text-anchor': 'end' }, pts[0].accuracy != null ? (100 * v).toFixed(1) + '%' : v.toFixed(3)));
      svg.append(s('text', { x: px(xv), y: H - B + 14, 'text-anchor': 'middle' }, ms(xv)));
    }
    svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.append(s('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    svg.append(s('text', { x: (L + W - R) / 2, y: H - 8, 'text-anchor': 'middle' }, 'p50 latency, ms (log scale); marker area: file size'));
    svg.append(s('text', { x: 14, y: (T + H - B) / 2, transform: `rotate(-90 14 ${(T + H - B) / 2})`, 'text-anchor': 'middle' }, pts[0].accuracy != null ? 'accuracy' : 'cosine'));
    const front = pts.filter((p) => p.on_front).sort((a, b) => a.p50 - b.p50);
    if (front.length > 1) {
      svg.append(s('path', { class: 'front', d: front.map((p, i) => `${i ? 'L' : 'M'}${px(p.p50)},${py(quality(p))}`).join('') }));
    }
    const maxSize = Math.max(...pts.map((p) => p.size || 1));
    for (const p of [...pts].sort((a, b) => (b.size || 0) - (a.size || 0))) {
      const r = 4 + 10 * Math.sqrt((p.size || 0) / maxSize);
      const tip = `${p.name}: p50 ${ms(p.p50)} ms, ${kb(p.size)}, ${p.accuracy != null ? (100 * p.accuracy).toFixed(2) + '%' : 'cosine ' + (p.cosine ?? 0).toFixed(4)}` +
        (p.params ? '\n' + Object.entries(p.params).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n') : '');
      const cls = 'spt' + (p.reference ? ' ref' : p.on_front ? ' front-pt' : '');
      const look = { fill: p.reference ? '#9d755d' : p.on_front ? '#e45756' : '#4c78a8', 'fill-opacity': 0.75,
        stroke: '#111', 'stroke-width': 1, cursor: 'pointer' };
      const shape = p.reference
        ? s('rect', { ...look, class: cls, 'data-id': p.id, x: px(p.p50) - r * 0.8, y: py(quality(p)) - r * 0.8, width: 1.6 * r, height: 1.6 * r }, s('title', {}, tip))
        : s('circle', { ...look, class: cls, 'data-id': p.id, cx: px(p.p50), cy: py(quality(p)), r }, s('title', {}, tip));
      shape.addEventListener('click', () => show(p));
      if (p.p50_ci && p.p50_ci[0] > 0 && p.p50_ci[1] > 0) {  // the p50's 95% interval
        svg.append(s('line', { x1: px(p.p50_ci[0]), x2: px(p.p50_ci[1]), y1: py(quality(p)), y2: py(quality(p)), stroke: '#111', 'stroke-width': 1.5 }));
      }
      svg.append(shape);
      if (p.reference || p.on_front) svg.append(s('text', { class: 'label', x: px(p.p50) + r + 2, y: py(quality(p)) - 2 }, p.reference ? p.name.split(' [')[0] : `#${p.trial}`));
    }
    return svg;
  }

  const groups = new Map();
  for (const p of POINTS.filter((q) => q.p50 > 0 && quality(q) != null)) {
    const k = `${p.search}\u0000${p.target}\u0000${p.runtime}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(p);
  }
  if (!groups.size) box.append(h('p', { class: 'empty' }, 'no search in this results store (edgesmith search RECIPE --db FILE adds one)'));
  for (const [k, pts] of groups) {
    const [search, target, runtime] = k.split('\u0000');
    const n = pts.filter((p) => !p.reference).length, f = pts.filter((p) => p.on_front).length;
    box.append(h('div', { class: 'search-group', 'data-search': search },
      h('h3', {}, `${pts[0].recipe} · ${runtime} on ${target} `, h('span', { class: 'dim' }, `${search} · ${n} trials, ${f} on the front · ${pts[0].cpu_model || ''}`)),
      plot(pts)));
  }
  const want = new URLSearchParams(location.hash.slice(1)).get('spoint');
  const chosen = POINTS.find((p) => String(p.id) === want);
  if (chosen) show(chosen);
  box.dataset.rendered = String(POINTS.length);
})();
