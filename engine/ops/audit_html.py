"""``fleetlog audit --html FILE``: one self-contained page (inline CSS and JS, no fetch).

The timeline travels as JSON inside ``<script type="application/json">`` (``<`` escaped,
so no output text can close the tag) and the page's script builds the DOM from it with
``textContent`` only: a backend output containing markup is shown, never run.
"""

from __future__ import annotations

import html
import json
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1d232a;background:#fafafa}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin:1.4rem 0 .3rem}
.meta{color:#667}.state{font-weight:600}.resource{border-top:1px solid #ccd;padding-top:.3rem}
ol.timeline{list-style:none;padding-left:0;margin:0}
li.entry{margin:.35rem 0;padding:.35rem .6rem;border-left:4px solid #99a;background:#fff}
li.entry-transition{border-color:#3a7bd5}li.entry-drift{border-color:#d5473a}
li.entry-reconciled{border-color:#e5a13a}li.entry-observation{border-color:#3ab07b}
.when{color:#667;font-family:monospace;font-size:12px;margin-right:.6rem}
.why{color:#5a3a9a;margin:.2rem 0}.failed,.in_doubt{color:#b3261e}
.steps{border-collapse:collapse;margin-top:.25rem;font-size:13px}
.steps td{padding:.05rem .6rem .05rem 0}
details summary{cursor:pointer}pre{white-space:pre-wrap;margin:.2rem 0;font-size:12px}
#filter{margin:.5rem 0;padding:.25rem;width:20rem}
"""

_JS = r"""
(function () {
  const data = JSON.parse(document.getElementById('audit-data').textContent);
  const root = document.getElementById('timeline');
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function dur(s) {
    if (s === null || s === undefined) return '';
    return s < 1 ? (s * 1000).toFixed(1) + 'ms' : s.toFixed(2) + 's';
  }
  function why(links) {
    const parts = links.map(l => l.step === undefined
      ? 'caused by ' + (l.type || 'event') + ' ' + l.event_id
      : 'step `' + l.step + '` (attempt ' + l.attempt + ') of ' + l.resource + "'s " +
        l.trigger + ' (' + l.from + ' -> ' + l.to + ')');
    let t = 'because ' + parts.join(', which ran because ') + ' ensured it';
    const c = links[links.length - 1].command;
    if (c) t += '; that was asked by ' + c.actor + '@' + c.host + ' at ' + c.at;
    return t;
  }
  function entry(e) {
    const li = el('li', 'entry entry-' + e.kind);
    li.dataset.seq = e.seq;
    li.appendChild(el('span', 'when', 'seq ' + e.seq + ' · ' + e.at));
    if (e.kind === 'transition') {
      li.appendChild(el('strong', null, e.trigger + ': ' + e.from + ' → ' + e.to));
      li.appendChild(el('span', e.outcome, ' ' + e.outcome +
        (e.duration !== null ? ' in ' + dur(e.duration) : '') + (e.error ? ': ' + e.error : '')));
      if (e.command) li.appendChild(el('div', 'asked', 'asked by ' + e.command.actor + '@' +
        e.command.host + ' (command ' + e.command.command_id + ')'));
      if (e.cause.length) li.appendChild(el('div', 'why', why(e.cause)));
      const table = el('table', 'steps');
      for (const s of e.steps) {
        const tr = el('tr', 'step ' + s.status);
        tr.appendChild(el('td', null, s.step + (s.undo ? ' (undo)' : '')));
        tr.appendChild(el('td', null, s.status + (s.skipped ? ' (' + s.skipped + ')' : '')));
        tr.appendChild(el('td', null, s.attempts.length + ' attempt(s)'));
        tr.appendChild(el('td', null,
          dur(s.attempts.reduce((a, x) => a + (x.duration || 0), 0))));
        const last = s.attempts[s.attempts.length - 1];
        const td = el('td');
        if (last && (last.output || last.error)) {
          const d = el('details'); d.appendChild(el('summary', null, 'output'));
          const text = (last.error ? last.error + '\n' : '') + (last.output || '');
          d.appendChild(el('pre', null, text));
          td.appendChild(d);
        }
        tr.appendChild(td);
        table.appendChild(tr);
      }
      li.appendChild(table);
    } else if (e.kind === 'drift') {
      const v = e.evidence || {};
      li.appendChild(el('strong', null, 'drift ' + e['class']));
      li.appendChild(el('span', null, ': journal ' + v.journal_state + ', backend ' +
        JSON.stringify(v.observed) + ' → ' + v.mapped_state + ' (sha256 ' +
        String(v.raw_sha256).slice(0, 12) + '…)'));
      if (e.unfixable) li.appendChild(el('div', 'failed', 'unfixable: ' + e.unfixable));
      if (e.fixed_by) li.appendChild(el('div', null, 'fixed at seq ' + e.fixed_by.seq +
        ' by ' + e.fixed_by.actor + '@' + e.fixed_by.host));
    } else if (e.kind === 'reconciled') {
      li.appendChild(el('strong', null, 'reconciled ' + e.from + ' → ' + e.to));
      li.appendChild(el('span', null, ' by ' + e.actor + '@' + e.host + ' (' +
        (e.finding['class'] || '') + ' finding)'));
    } else if (e.kind === 'observation') {
      li.appendChild(el('strong', null, 'observed ' + JSON.stringify(e.status)));
      li.appendChild(el('span', null, ' at ' + e.event_time + ' (' + e.source + ', message ' +
        e.message_id + ')'));
    } else if (e.kind === 'created') {
      li.appendChild(el('strong', null, 'created in ' + e.state));
      li.appendChild(el('span', null, ' by ' + e.actor + '@' + e.host));
    } else {
      li.appendChild(el('strong', null, e.type));
      li.appendChild(el('span', null, ' ' + JSON.stringify(e.detail)));
    }
    return li;
  }
  for (const r of data.resources) {
    const sec = el('section', 'resource');
    sec.dataset.resource = r.resource;
    const h = el('h2', null, r.resource + ' ');
    h.appendChild(el('span', 'state', r.state || '(not in the journal)'));
    sec.appendChild(h);
    const ol = el('ol', 'timeline');
    for (const e of r.entries) ol.appendChild(entry(e));
    sec.appendChild(ol);
    root.appendChild(sec);
  }
  const f = document.getElementById('filter');
  f.addEventListener('input', function () {
    for (const s of root.querySelectorAll('section.resource')) {
      s.hidden = !s.dataset.resource.includes(f.value);
    }
  });
  root.dataset.rendered = String(data.resources.length);
})();
"""


def render_html(timeline: list[dict[str, Any]], *, title: str = "fleetlog audit") -> str:
    data = json.dumps({"resources": timeline}, sort_keys=True, default=str)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    as_of = timeline[0]["as_of_seq"] if timeline else 0
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">{len(timeline)} resource(s), as of journal seq {as_of}</p>'
        '<input id="filter" placeholder="filter resources">'
        "<noscript>This page builds its timeline with JavaScript.</noscript>"
        '<main id="timeline"></main>'
        f'<script type="application/json" id="audit-data">{data}</script>'
        f"<script>{_JS}</script></body></html>\n"
    )
