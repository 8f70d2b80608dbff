// Drift view of the dashboard: one timeline table per bundle and device; a row per
// statistic, a column per report window, each cell its score coloured by status
// (hover: p-value, window size, time). Self-contained: reads #edgesmith-drift only.
(function () {
  const node = document.getElementById('edgesmith-drift');
  const root = document.getElementById('drift');
  if (!node || !root) return;
  const DRIFT = JSON.parse(node.textContent);
  const COLOURS = {ok: '#d8f0d8', warn: '#fbe7a1', drift: '#f4b4b4', recalibrate: '#e3c4f4',
                   insufficient: '#eeeeee', no_data: '#ffffff'};
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }
  for (const g of DRIFT.groups) {
    const head = el('tr', {}, el('th', {}, 'statistic'),
      ...g.windows.map(w => el('th', {title: w.time}, `${w.time.slice(5, 16).replace('T', ' ')} #${w.window ?? '-'}`)));
    const status = el('tr', {}, el('td', {}, el('b', {}, 'status')),
      ...g.windows.map(w => el('td', {style: `background:${COLOURS[w.status] || '#fff'}`,
                                      title: `${w.samples} items`}, w.status)));
    const rows = g.statistics.map(name => el('tr', {}, el('td', {}, name), ...g.windows.map(w => {
      const s = w.stats[name];
      if (!s) return el('td', {}, '');
      const title = `p-value ${s.p_value}; ${w.samples} items (minimum ${w.min_samples}); ${w.time}`;
      return el('td', {style: `background:${COLOURS[s.status] || '#fff'}`, title},
                s.value === null ? '-' : Number(s.value).toPrecision(3));
    })));
    const table = el('table', {class: 'drift'}, el('thead', {}, head), el('tbody', {}, status, ...rows));
    root.append(el('h3', {}, `${g.bundle} (${g.format}) on ${g.device}: ${g.windows.length} window(s), worst ${g.worst}`),
                el('div', {style: 'overflow-x:auto'}, table));
  }
})();
