// wattwatch report: inflates the embedded plotly.js and data, builds the page, draws each meter's
// figure when its section comes into view. User text only ever goes in as textContent.
"use strict";
(async function () {
  const SEV = ["info", "warning", "critical"];
  const SEV_FILL = {info: "rgba(70,120,210,0.16)", warning: "rgba(240,160,0,0.24)", critical: "rgba(220,40,40,0.24)"};
  const SEV_LINE = {info: "rgb(70,120,210)", warning: "rgb(225,145,0)", critical: "rgb(205,30,30)"};
  // No "Share chart..." button (plotly.js 4 shows one by default): it opens cloud.plotly.com and posts
  // the figure's data to it, which the page's Content-Security-Policy cannot stop (a new window).
  const CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"],
                  showSendToCloud: false, plotlyServerURL: ""};

  async function inflate(id) {
    const b64 = document.getElementById(id).textContent.trim();
    const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).text();
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "cls") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  function fmtTime(iso) { return iso ? iso.replace("T", " ").replace(/\.000Z$|Z$/, " UTC") : ""; }
  function fmtNum(x) {
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x)) return String(x);
    const a = Math.abs(x);
    return a >= 1000 ? x.toFixed(0) : a >= 10 ? x.toFixed(2) : x.toPrecision(3);
  }
  // plotly renders a few tags in its text (bold, links): user text given to it is escaped.
  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  function sevBadge(s) { return el("span", {cls: "sev sev-" + (SEV.includes(s) ? s : "info"), text: s}); }

  // Evidence: an object as a key / value table; nested objects as nested tables, lists inline.
  function evidenceTable(ev) {
    const t = el("table", {cls: "evidence"});
    const keys = Object.keys(ev || {});
    if (!keys.length) return el("p", {cls: "muted", text: "no evidence recorded"});
    for (const k of keys) {
      const v = ev[k];
      let cell;
      if (v !== null && typeof v === "object" && !Array.isArray(v)) cell = evidenceTable(v);
      else if (Array.isArray(v)) cell = document.createTextNode(v.slice(0, 20).map((x) =>
        x !== null && typeof x === "object" ? JSON.stringify(x) : fmtNum(x)).join(", ") + (v.length > 20 ? ", … (" + v.length + ")" : ""));
      else cell = document.createTextNode(v === null ? "—" : fmtNum(v));
      t.append(el("tr", {}, el("th", {text: k}), el("td", {}, cell)));
    }
    return t;
  }

  let D, Plotly;
  try {
    if (typeof DecompressionStream === "undefined") throw new Error("this browser cannot inflate the embedded data (DecompressionStream is missing): open the report in a current Chromium, Firefox or Safari");
    const lib = await inflate("ww-plotly");
    const s = document.createElement("script");
    s.text = lib;
    document.head.append(s);
    Plotly = window.Plotly;
    performance.mark("ww-plotly");
    D = JSON.parse(await inflate("ww-data"));
    performance.mark("ww-data");
  } catch (err) {
    document.getElementById("loading").textContent = "The report could not be opened: " + err.message;
    throw err;
  }
  document.title = D.title;
  const app = document.getElementById("app");
  const ov = D.overview;
  const meterIndex = new Map(D.meters.map((m, i) => [m.id, i]));

  // ------------------------------------------------------------------ overview
  const head = el("header", {},
    el("h1", {text: D.title}),
    el("p", {cls: "meta"},
      "period ", el("b", {text: fmtTime(D.period[0])}), " → ", el("b", {text: fmtTime(D.period[1])}),
      " · " + D.alerts.length + " alerts on " + D.meters.length + " meters",
      D.fleet_meters !== null ? " · fleet of " + D.fleet_meters + " meters in the store" : "",
      " · source: ", el("code", {text: D.source}),
      " · generated " + fmtTime(D.generated)));
  app.append(head);
  if (D.note) app.append(el("p", {cls: "note", id: "telemetry-note", text: D.note}));
  if (D.not_drawn && D.not_drawn.length) {
    const cmd = "wattwatch report" + (D.db ? " --db " + D.db : "") + " --meters " + D.not_drawn.slice(0, 50).join(",") + " --out more.html";
    app.append(el("details", {cls: "note"}, el("summary", {text: "Meters whose channels are not drawn here (" + D.not_drawn.length + ")"}),
      el("p", {text: D.not_drawn.join(", ")}), el("p", {}, "Draw them (50 at a time): ", el("code", {text: cmd}))));
  }

  const overview = el("section", {id: "overview"}, el("h2", {text: "Fleet overview"}));
  app.append(overview);
  // Counts by code and severity.
  const ct = el("table", {cls: "counts", id: "counts"});
  ct.append(el("tr", {}, ...["code", "alerts", "critical", "warning", "info", "meters", "if nobody acts"].map((h) => el("th", {text: h}))));
  const metersByCode = {};
  for (const a of D.alerts) (metersByCode[a.code] = metersByCode[a.code] || new Set()).add(a.meter_id);
  for (const [code, c] of Object.entries(ov.by_code)) {
    ct.append(el("tr", {}, el("td", {}, el("code", {text: code})), el("td", {text: String(c.info + c.warning + c.critical)}),
      el("td", {text: String(c.critical)}), el("td", {text: String(c.warning)}), el("td", {text: String(c.info)}),
      el("td", {text: String(metersByCode[code].size)}), el("td", {cls: "muted", text: D.consequence[code] || ""})));
  }
  ct.append(el("tr", {cls: "total"}, el("td", {text: "all"}), el("td", {text: String(D.alerts.length)}),
    ...["critical", "warning", "info"].map((s) => el("td", {text: String(ov.by_severity[s])})),
    el("td", {text: String(D.meters.length)}), el("td", {})));
  const barDiv = el("div", {cls: "plot", id: "plot-counts", style: "height:" + (90 + 22 * Object.keys(ov.by_code).length) + "px"});
  overview.append(ct, barDiv);

  if (D.evaluation) {
    const E = D.evaluation;
    const et = el("table", {cls: "counts", id: "evaluation"});
    et.append(el("tr", {}, ...["fault type", "events", "detected", "recall", "median delay (min)"].map((h) => el("th", {text: h}))));
    for (const [k, v] of Object.entries(E.per_type || {}))
      et.append(el("tr", {}, el("td", {text: k}), el("td", {text: String(v.events)}), el("td", {text: String(v.detected)}),
        el("td", {text: fmtNum(v.recall)}), el("td", {text: v.median_delay_min === null ? "" : String(Math.round(v.median_delay_min))})));
    overview.append(el("h3", {text: "Against the simulator's labels"}),
      el("p", {text: "event recall " + fmtNum(E.recall) + ", alert precision " + fmtNum(E.precision) + ", F1 " + fmtNum(E.f1)}), et);
  }

  // Meters x days strip.
  const stripH = Math.max(180, Math.min(1100, 60 + 14 * D.meters.length));
  const strip = el("div", {cls: "plot", id: "plot-strip", style: "height:" + stripH + "px"});
  overview.append(el("h3", {text: "Alerts per meter and day (worst severity; click a cell to open the meter)"}), strip);

  // Index.
  const idx = el("table", {cls: "index", id: "index"});
  idx.append(el("tr", {}, ...["meter", "worst", "alerts", "codes", "first alert", "channels"].map((h) => el("th", {text: h}))));
  for (const [i, m] of D.meters.entries()) {
    const al = m.alerts.map((k) => D.alerts[k]);
    const worst = al.reduce((w, a) => Math.max(w, SEV.indexOf(a.severity)), -1);
    const codes = [...new Set(al.map((a) => a.code))].join(", ");
    const first = al.length ? al.map((a) => a.start).sort()[0] : "";
    idx.append(el("tr", {}, el("td", {}, el("a", {href: "#m-" + i, text: m.id})),
      el("td", {}, worst >= 0 ? sevBadge(SEV[worst]) : "—"), el("td", {text: String(al.length)}),
      el("td", {text: codes}), el("td", {text: fmtTime(first)}),
      el("td", {text: m.drawn ? "drawn" : D.has_telemetry ? "not drawn (see note)" : "not available"})));
  }
  app.append(el("section", {id: "nav"}, el("h2", {text: "Meters (" + D.meters.length + ")"}), idx));

  // ------------------------------------------------------------------ meter sections
  // Sections are built after the overview's figures are drawn, in slices between frames: the page
  // opens (overview drawn) at the same speed whatever the number of meters, and plotly's text
  // measurements do not lay out a document of 1,000 alert cards.
  const sections = el("div", {id: "meters"});
  const notDrawn = new Set(D.not_drawn);
  function buildSection(i) {
    const m = D.meters[i];
    const sec = el("section", {cls: "meter", id: "m-" + i, "data-meter": m.id});
    const al = m.alerts.map((k) => D.alerts[k]);
    sec.append(el("h2", {}, el("span", {text: m.id}), " ", el("a", {href: "#nav", cls: "up", text: "↑ index"})));
    const panels = m.drawn ? D.panels.filter((p) => p[1].some((c) => D.series[m.id].includes(c))) : [];
    const h = m.drawn ? 70 + 150 * panels.length : 90 + 26 * new Set(al.map((a) => a.code)).size;
    if (m.drawn || al.length) sec.append(el("div", {cls: "plot meter-plot", id: "plot-m-" + i, "data-i": String(i), style: "height:" + h + "px"}));
    if (!m.drawn) sec.append(el("p", {cls: "muted", text: D.has_telemetry
      ? (notDrawn.has(m.id) ? "Channels not drawn (size budget): wattwatch report" + (D.db ? " --db " + D.db : "") + " --meters " + m.id + " --out " + "meter.html"
        : "No readings of this meter in the store for this period.")
      : "Telemetry not available (report made from an alerts file): the figure shows the alert spans."}));
    if (!al.length) sec.append(el("p", {cls: "muted", text: "No alerts in this period."}));
    for (const a of al) {
      const card = el("div", {cls: "alert sev-border-" + a.severity});
      card.append(el("h3", {}, sevBadge(a.severity), " ", el("code", {text: a.code}), " ",
        el("span", {text: fmtTime(a.start) + " → " + fmtTime(a.end)})));
      const facts = el("table", {cls: "facts"});
      for (const [k, v] of [["message", a.message], ["recommended action", a.action || "—"], ["score", a.score === null ? "—" : fmtNum(a.score)],
        ["detector", a.detector], ["status", a.status + (a.note ? " (" + a.note + ")" : "")], ["id", a.id]])
        facts.append(el("tr", {}, el("th", {text: k}), el("td", {cls: k === "recommended action" ? "action" : "", text: String(v)})));
      card.append(facts, el("div", {cls: "evidence-title", text: "evidence"}), evidenceTable(a.evidence));
      sec.append(card);
    }
    return sec;
  }
  document.getElementById("loading").remove();

  // ------------------------------------------------------------------ figures
  // When each figure was drawn (ms since the page started loading): what the benchmark reads.
  const drawnAt = {};
  function done(div) { div.setAttribute("data-drawn", "1"); drawnAt[div.id] = performance.now(); }

  function countsFigure() {
    const codes = Object.keys(ov.by_code);
    const traces = ["critical", "warning", "info"].map((s) => ({
      type: "bar", orientation: "h", name: s, y: codes.map(esc), x: codes.map((c) => ov.by_code[c][s]),
      marker: {color: SEV_LINE[s]}}));
    return Plotly.newPlot(barDiv, traces, {barmode: "stack", margin: {l: 230, r: 10, t: 10, b: 30},
      legend: {orientation: "h"}, yaxis: {automargin: true}, template: undefined}, CONFIG).then(() => done(barDiv));
  }

  function stripFigure() {
    const days = [];
    const d0 = Date.parse(ov.day0);
    for (let k = 0; k < ov.days; k++) days.push(new Date(d0 + k * 86400000).toISOString().slice(0, 10));
    const text = ov.count.map((row) => row.map((n) => n + (n === 1 ? " alert" : " alerts")));
    const trace = {type: "heatmap", z: ov.worst, x: days, y: D.meters.map((m, i) => i), text: text,
      customdata: D.meters.map((m) => days.map(() => esc(m.id))),
      hovertemplate: "%{customdata}<br>%{x}: %{text}<extra></extra>", zmin: 0, zmax: 3, showscale: false, xgap: 1, ygap: D.meters.length < 80 ? 1 : 0,
      colorscale: [[0, "#f4f5f7"], [0.2499, "#f4f5f7"], [0.25, SEV_LINE.info], [0.4999, SEV_LINE.info], [0.5, "#f0b400"],
        [0.7499, "#f0b400"], [0.75, SEV_LINE.critical], [1, SEV_LINE.critical]]};
    const labels = D.meters.length <= 60;
    const layout = {margin: {l: labels ? 150 : 40, r: 10, t: 10, b: 40},
      yaxis: {autorange: "reversed", tickmode: labels ? "array" : "auto", tickvals: labels ? D.meters.map((m, i) => i) : undefined,
        ticktext: labels ? D.meters.map((m) => esc(m.id.length > 24 ? m.id.slice(0, 23) + "…" : m.id)) : undefined,
        title: labels ? undefined : {text: "meters, worst first"}, showticklabels: labels},
      xaxis: {type: "category", tickangle: -45, nticks: 20}};
    return Plotly.newPlot(strip, [trace], layout, CONFIG).then(() => {
      strip.on("plotly_click", (ev) => { const i = ev.points[0].y; location.hash = "#m-" + i; });
      done(strip);
    });
  }

  function xs(t) {
    const x = new Array(2 * t.bins);
    for (let k = 0; k < t.bins; k++) {
      x[2 * k] = (t.t0 + k * t.step) * 1000;
      x[2 * k + 1] = (t.t0 + (k + 0.5) * t.step) * 1000;
    }
    return x;
  }

  function spans(al, yref) {
    const shapes = [], notes = [];
    for (const a of al) {
      const s = Date.parse(a.start), e = Date.parse(a.end), sev = SEV.includes(a.severity) ? a.severity : "info";
      if (e > s) shapes.push({type: "rect", xref: "x", yref: yref, x0: s, x1: e, y0: 0, y1: 1, fillcolor: SEV_FILL[sev], line: {width: 0}, layer: "below"});
      else shapes.push({type: "line", xref: "x", yref: yref, x0: s, x1: s, y0: 0, y1: 1, line: {color: SEV_LINE[sev], width: 2}, layer: "below"});
      if (al.length <= 8) notes.push({x: s, xref: "x", y: 1, yref: "paper", yanchor: "bottom", xanchor: "left", showarrow: false,
        text: esc(a.code), font: {size: 9, color: SEV_LINE[sev]}});
    }
    return {shapes, notes};
  }

  const t0 = Date.parse(D.period[0]), t1 = Date.parse(D.period[1]);
  function meterFigure(div) {
    const m = D.meters[+div.dataset.i];
    const al = m.alerts.map((k) => D.alerts[k]);
    const sp = spans(al, "paper");
    if (!m.drawn) {  // the alert spans alone, one row per code
      const traces = al.map((a) => {
        const sev = SEV.includes(a.severity) ? a.severity : "info";
        const s = Date.parse(a.start), e = Math.max(Date.parse(a.end), s + (t1 - t0) / 400);
        return {type: "scatter", mode: "lines", x: [s, e], y: [esc(a.code), esc(a.code)], line: {color: SEV_LINE[sev], width: 12},
          name: esc(a.code), showlegend: false, text: [esc(a.message), esc(a.message)], hovertemplate: "%{y}<br>%{text}<extra>" + sev + "</extra>"};
      });
      return Plotly.newPlot(div, traces, {margin: {l: 230, r: 10, t: 20, b: 30}, shapes: sp.shapes,
        xaxis: {type: "date", range: [t0, t1]}, yaxis: {type: "category", automargin: true}}, CONFIG).then(() => done(div));
    }
    return channels().then((all) => meterChannels(div, m, al, sp, all[m.id]));
  }
  function meterChannels(div, m, al, sp, T) {
    const x = xs(T);
    const panels = D.panels.filter((p) => p[1].some((c) => c in T.series));
    const n = panels.length, gap = 0.035, hh = (1 - gap * (n - 1)) / n;
    const traces = [], layout = {margin: {l: 60, r: 10, t: 30, b: 30}, showlegend: true, legend: {orientation: "h", y: -0.04, yanchor: "top"},
      hovermode: "closest", shapes: sp.shapes, annotations: sp.notes.slice()};
    panels.forEach((p, j) => {
      const ax = j === 0 ? "" : String(j + 1);
      const top = 1 - j * (hh + gap);
      layout["yaxis" + ax] = {domain: [Math.max(0, top - hh), top], automargin: true, title: {text: p[0], font: {size: 10}}};
      for (const c of p[1]) if (c in T.series)
        traces.push({type: "scatter", mode: "lines", x: x, y: T.series[c], name: c, xaxis: "x", yaxis: "y" + ax,
          line: {width: 1}, connectgaps: false, hovertemplate: c + " %{y}<extra></extra>"});
    });
    layout.xaxis = {type: "date", range: [t0, t1], anchor: "y" + (n > 1 ? String(n) : "")};
    const binText = T.step >= 3600 ? (T.step / 3600) + " h" : T.step >= 60 ? (T.step / 60) + " min" : T.step + " s";
    div.before(el("p", {cls: "muted bins", text: T.n + " readings; each " + binText + " bin drawn as its minimum and maximum; "
      + "alert spans shaded by severity (info blue, warning amber, critical red)"}));
    return Plotly.newPlot(div, traces, layout, CONFIG).then(() => done(div));
  }

  performance.mark("ww-dom");
  let telemetry = null;
  function channels() { return telemetry || (telemetry = inflate("ww-telemetry").then(JSON.parse)); }
  await countsFigure();
  performance.mark("ww-counts");
  await stripFigure();
  const openedAt = performance.now();
  channels();  // start inflating the channels now, for the first meter figure
  app.append(sections);
  const pending = new Set();
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting || pending.has(e.target)) continue;
      pending.add(e.target);
      io.unobserve(e.target);
      meterFigure(e.target);
    }
  }, {rootMargin: "400px 0px"});
  let next = 0;
  const wanted = location.hash;
  function slice() {
    const stop = Math.min(D.meters.length, next + 40);
    for (; next < stop; next++) {
      const sec = buildSection(next);
      sections.append(sec);
      const div = sec.querySelector(".meter-plot");
      if (div) io.observe(div);
    }
    if (next < D.meters.length) { setTimeout(slice, 0); return; }
    document.body.setAttribute("data-sections", "1");
    if (wanted && wanted.startsWith("#m-")) { const t = document.getElementById(wanted.slice(1)); if (t) t.scrollIntoView(); }
  }
  slice();
  window.wattwatchReport = {drawnAt: drawnAt, openedAt: openedAt, meters: D.meters.length, alerts: D.alerts.length};
  document.body.setAttribute("data-ready", "1");
})();
