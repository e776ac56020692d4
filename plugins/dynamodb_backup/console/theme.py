"""The console's look: Airflow's own Chakra UI tokens, followed live, in light and dark mode.

The pages are served by the plugin's FastAPI app and shown by Airflow 3's UI in its plugin iframe, which is
same-origin (sandbox ``allow-scripts allow-same-origin``). So the page reads what Airflow's UI has resolved:

* the color mode: Airflow's UI (next-themes, storage key ``theme``: light, dark or system) puts the class
  ``light`` or ``dark`` on its ``<html>``; the page copies it and watches it, so switching the mode in Airflow's
  user menu switches the console at once. Opened on its own (no Airflow around it) the page reads the same
  ``theme`` key from the origin's local storage, and ``prefers-color-scheme`` for ``system``, as Airflow does.
* the colors and fonts: the values of Airflow's ``--chakra-*`` CSS variables (its theme, including a custom
  ``[api] theme``) are copied onto the page's own ``--af-*`` variables, which every rule below uses. The
  defaults written here are Airflow 3.3's own values, used only when the page stands alone.
"""

from __future__ import annotations

import json

#: The page's variable -> Airflow's Chakra variable it follows.
TOKENS = {
    "bg": "colors-bg", "bg-subtle": "colors-bg-subtle", "bg-muted": "colors-bg-muted",
    "bg-emphasized": "colors-bg-emphasized", "bg-panel": "colors-bg-panel",
    "fg": "colors-fg", "fg-muted": "colors-fg-muted", "fg-subtle": "colors-fg-subtle",
    "border": "colors-border", "border-muted": "colors-border-muted",
    "border-emphasized": "colors-border-emphasized",
    "brand": "colors-brand-solid", "brand-fg": "colors-brand-fg", "brand-contrast": "colors-brand-contrast",
    "brand-subtle": "colors-brand-subtle", "brand-muted": "colors-brand-muted",
    "error": "colors-fg-error", "error-bg": "colors-bg-error", "success": "colors-fg-success",
    "success-bg": "colors-bg-success", "warning": "colors-fg-warning", "warning-bg": "colors-bg-warning",
    "info": "colors-fg-info", "font": "fonts-body", "mono": "fonts-mono", "radius": "radii-md",
}

#: Airflow 3.3.2's own values (read from its UI in a browser, light then dark), for a page opened on its own.
LIGHT = {
    "bg": "#FFFFFF", "bg-subtle": "oklch(0.985 0.004 253)", "bg-muted": "oklch(0.955 0.006 253)",
    "bg-emphasized": "oklch(0.915 0.01 253)", "bg-panel": "#FFFFFF", "fg": "oklch(0.23185 0.0323 266.44)",
    "fg-muted": "oklch(0.45 0.055 251)", "fg-subtle": "oklch(0.75 0.025 252)", "border": "oklch(0.915 0.01 253)",
    "border-muted": "oklch(0.955 0.006 253)", "border-emphasized": "oklch(0.85 0.016 253)",
    "brand": "oklch(0.469 0.084 257.657)", "brand-fg": "oklch(0.324 0.072 260.329)", "brand-contrast": "white",
    "brand-subtle": "oklch(0.962 0.012 249.460)", "brand-muted": "oklch(0.923 0.023 255.082)",
    "error": "oklch(0.637 0.237 25.331)", "error-bg": "oklch(0.971 0.013 17.38)",
    "success": "oklch(0.47 0.20 149.0)", "success-bg": "oklch(0.982 0.018 155.826)",
    "warning": "oklch(0.5902 0.198 35.93)", "warning-bg": "oklch(0.982 0.013 83.915)",
    "info": "oklch(0.546 0.245 262.881)",
    "font": ('Inter,-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif,"Apple Color Emoji",'
             '"Segoe UI Emoji","Segoe UI Symbol"'),
    "mono": 'SFMono-Regular,Menlo,Monaco,Consolas,"Liberation Mono","Courier New",monospace', "radius": "0.375rem",
}
DARK = {
    **LIGHT,
    "bg": "oklch(0.23185 0.0323 266.44)", "bg-subtle": "oklch(0.11 0.025 251)", "bg-muted": "oklch(0.18 0.03 251)",
    "bg-emphasized": "oklch(0.28 0.035 251)", "bg-panel": "oklch(0.11 0.025 251)", "fg": "oklch(0.985 0.004 253)",
    "fg-muted": "oklch(0.75 0.025 252)", "fg-subtle": "oklch(0.63 0.042 252)", "border": "oklch(0.28 0.035 251)",
    "border-muted": "oklch(0.18 0.03 251)", "border-emphasized": "oklch(0.35 0.045 251)",
    "brand-fg": "oklch(0.923 0.023 255.082)", "brand-subtle": "oklch(0.259 0.062 265.566)",
    "brand-muted": "oklch(0.324 0.072 260.329)", "error": "oklch(0.704 0.191 22.216)",
    "error-bg": "oklch(0.258 0.092 26.042)", "success": "oklch(0.75 0.18 153.0)",
    "success-bg": "oklch(0.266 0.065 152.934)", "warning": "oklch(0.857 0.118 76.815)",
    "warning-bg": "oklch(0.271 0.069 52.345)", "info": "oklch(0.809 0.105 251.813)",
}


def _variables(values: dict[str, str]) -> str:
    return ";".join(f"--af-{name}:{value}" for name, value in values.items())


STYLE = f"""
:root{{{_variables(LIGHT)};color-scheme:light}}
html.dark{{{_variables(DARK)};color-scheme:dark}}
html{{background:var(--af-bg);color:var(--af-fg)}}
body{{font-family:var(--af-font);font-size:.875rem;line-height:1.5;margin:0;padding:1rem 1.25rem;
background:var(--af-bg);color:var(--af-fg)}}
h1{{font-size:1.5rem;font-weight:600;margin:.25rem 0 .75rem}}
h2{{font-size:1.25rem;font-weight:600;margin:.25rem 0 .5rem}}
h3{{font-size:1rem;font-weight:600;margin:1.25rem 0 .5rem}}
a{{color:var(--af-brand-fg);text-decoration:none}}a:hover{{text-decoration:underline}}
.muted{{color:var(--af-fg-muted)}}code,pre,.mono{{font-family:var(--af-mono);font-size:.8rem}}
.crumbs{{color:var(--af-fg-muted);margin-bottom:.25rem}}
.toolbar{{display:flex;gap:.75rem;align-items:center;flex-wrap:wrap;margin:.5rem 0}}
.panel{{border:1px solid var(--af-border);border-radius:var(--af-radius);background:var(--af-bg-panel);
overflow-x:auto}}
table{{border-collapse:collapse;width:100%}}
th{{text-align:left;font-weight:600;color:var(--af-fg-muted);background:var(--af-bg-subtle);font-size:.8rem;
white-space:nowrap}}
th,td{{padding:.5rem .75rem;border-bottom:1px solid var(--af-border)}}tbody tr:last-child td{{border-bottom:0}}
tbody tr:hover td{{background:var(--af-bg-subtle)}}
td.n{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}.nw{{white-space:nowrap}}
p.status .mono{{word-break:break-all}}
tr.stale td{{background:var(--af-error-bg)}}tr.stale:hover td{{background:var(--af-error-bg)}}
.badge{{display:inline-block;padding:0 .5rem;border-radius:999px;font-size:.75rem;font-weight:500;
line-height:1.25rem;white-space:nowrap;background:var(--af-bg-muted);color:var(--af-fg)}}
.status-complete,.drill-passed{{background:var(--af-success-bg);color:var(--af-success)}}
.status-partial,.drill-failed,.drill-unreadable{{background:var(--af-error-bg);color:var(--af-error)}}
.status-running{{background:var(--af-brand-subtle);color:var(--af-brand-fg)}}
.warn{{color:var(--af-warning)}}.error{{color:var(--af-error)}}
label{{display:block;margin:.75rem 0 .25rem;font-weight:500}}
label.check{{display:flex;gap:.5rem;align-items:center;font-weight:400}}
.hint{{color:var(--af-fg-muted);font-size:.8rem;margin:.15rem 0 0}}
input,select{{font:inherit;color:var(--af-fg);background:var(--af-bg);border:1px solid var(--af-border-emphasized);
border-radius:var(--af-radius);padding:.375rem .625rem;min-height:2.25rem;box-sizing:border-box}}
input[type=checkbox]{{min-height:0;width:1rem;height:1rem;accent-color:var(--af-brand)}}
input:focus,select:focus{{outline:2px solid var(--af-brand);outline-offset:-1px}}
input[readonly]{{background:var(--af-bg-muted);color:var(--af-fg-muted)}}input.wide{{width:min(48rem,100%)}}
button{{font:inherit;font-weight:600;border:0;border-radius:var(--af-radius);padding:.5rem 1rem;cursor:pointer;
background:var(--af-brand);color:var(--af-brand-contrast)}}button:disabled{{opacity:.5;cursor:not-allowed}}
.columns{{display:grid;grid-template-columns:minmax(20rem,1fr) minmax(20rem,1fr);gap:1.5rem;align-items:start}}
@media (max-width:60rem){{.columns{{grid-template-columns:1fr}}}}
pre.conf{{background:var(--af-bg-subtle);border:1px solid var(--af-border);border-radius:var(--af-radius);
padding:.75rem;margin:.25rem 0;white-space:pre-wrap;word-break:break-all}}
svg.chart{{width:100%;max-width:60rem;height:auto;display:block}}
svg.chart .axis{{stroke:var(--af-border-emphasized)}}svg.chart .grid{{stroke:var(--af-border);stroke-dasharray:2 3}}
svg.chart text{{fill:var(--af-fg-muted);font-size:11px;font-family:var(--af-font)}}
svg.chart .consumed{{stroke:var(--af-brand);fill:none;stroke-width:2}}
svg.chart .area{{fill:var(--af-brand);fill-opacity:.15;stroke:none}}
svg.chart .allowed{{stroke:var(--af-error);stroke-dasharray:6 4}}svg.chart text.allowed-label{{fill:var(--af-error)}}
"""

#: Runs in <head> before the body is drawn (no flash of the wrong mode), then follows Airflow's changes.
SCRIPT = """
(function () {
  var root = document.documentElement, tokens = %(tokens)s;
  function airflow() {  // Airflow's UI around this page (its plugin iframe is same-origin), or null
    try {
      var doc = window.parent !== window ? window.parent.document : null;
      return doc && doc.documentElement && doc.body ? doc : null;
    } catch (e) { return null; }
  }
  function stored() {  // what Airflow's UI stores: light, dark or system (then the browser's preference)
    var mode = null;
    try { mode = localStorage.getItem('theme'); } catch (e) {}
    if (mode === 'light' || mode === 'dark') return mode;
    return window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
  }
  function apply() {
    var doc = airflow(), classes = doc ? doc.documentElement.classList : null;
    var mode = classes && (classes.contains('dark') || classes.contains('light'))
      ? (classes.contains('dark') ? 'dark' : 'light') : stored();
    root.classList.toggle('dark', mode === 'dark');
    root.classList.toggle('light', mode !== 'dark');
    root.dataset.colorMode = mode;
    root.dataset.themeFrom = doc ? 'airflow' : 'storage';
    if (!doc) return;
    var style = doc.defaultView.getComputedStyle(doc.body);
    Object.keys(tokens).forEach(function (name) {
      var value = style.getPropertyValue('--chakra-' + tokens[name]).trim();
      if (value) root.style.setProperty('--af-' + name, value); else root.style.removeProperty('--af-' + name);
    });
  }
  apply();
  var doc = airflow();
  if (doc) new MutationObserver(apply).observe(doc.documentElement, {attributes: true, attributeFilter: ['class']});
  window.addEventListener('storage', function (event) { if (event.key === 'theme') apply(); });
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', apply);
  window.addEventListener('DOMContentLoaded', apply);

  // Links into Airflow's own pages (runs, logs) open in Airflow's UI itself, not inside this frame: its router
  // is told of the new location (a same-document change; the sandbox allows no top-level navigation).
  document.addEventListener('click', function (event) {
    var link = event.target.closest ? event.target.closest('a[data-airflow]') : null;
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey) return;
    var host = airflow();
    if (!host) return;
    try {
      var win = host.defaultView, state = win.history.state || {};
      win.history.pushState({usr: null, key: Math.random().toString(36).slice(2, 10),
                             idx: (typeof state.idx === 'number' ? state.idx : 0) + 1}, '', link.href);
      win.dispatchEvent(new win.PopStateEvent('popstate', {state: win.history.state}));
      event.preventDefault();
    } catch (e) {}
  });
})();
"""


def head_script() -> str:
    return SCRIPT % {"tokens": json.dumps(TOKENS)}
