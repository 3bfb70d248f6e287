// pgherd console: charts (uPlot) and error messages for htmx requests. No inline scripts
// (the Content-Security-Policy forbids them); everything is wired from here.
(function () {
  "use strict";

  function fmtBytes(v) {
    if (v == null) return "-";
    var units = ["B", "kB", "MB", "GB", "TB"], i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  }
  function fmtSeconds(v) {
    if (v == null) return "-";
    return v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(1) + " s";
  }

  function chartData(d) {
    if (d.kind === "archive") return [d.t, d.lag_bytes];
    return [d.t, d.lag_bytes, d.flush_lag_bytes, d.write_lag_bytes, d.lag_seconds];
  }

  function bytesChart(el, d) {
    return new uPlot({
      width: Math.max(el.clientWidth, 260),
      height: 200,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, 1024)]; } } },
      axes: [{}, { values: function (u, vals) { return vals.map(fmtBytes); }, size: 70 }],
      series: [{}, { label: "not yet archived", stroke: "#7c3aed", width: 2, value: function (u, v) { return fmtBytes(v); }, points: { show: true, size: 4 } }]
    }, chartData(d), el);
  }

  function buildChart(el, d) {
    if (d.kind === "archive") return bytesChart(el, d);
    var width = Math.max(el.clientWidth, 260);
    var opts = {
      width: width,
      height: 220,
      scales: { x: { time: true }, b: { auto: true, range: function (u, min, max) { return [0, Math.max(max, 1024)]; } }, s: { auto: true, range: function (u, min, max) { return [0, Math.max(max, 0.01)]; } } },
      axes: [
        {},
        { scale: "b", values: function (u, vals) { return vals.map(fmtBytes); }, size: 70 },
        { scale: "s", side: 1, grid: { show: false }, values: function (u, vals) { return vals.map(fmtSeconds); }, size: 60 }
      ],
      series: [
        {},
        { label: "replay lag", scale: "b", stroke: "#1d4ed8", width: 2, value: function (u, v) { return fmtBytes(v); }, points: { show: true, size: 4 } },
        { label: "flush lag", scale: "b", stroke: "#15803d", width: 1, value: function (u, v) { return fmtBytes(v); } },
        { label: "write lag", scale: "b", stroke: "#a3a3a3", width: 1, value: function (u, v) { return fmtBytes(v); } },
        { label: "replay lag (time)", scale: "s", stroke: "#b45309", width: 1, dash: [4, 4], value: function (u, v) { return fmtSeconds(v); } }
      ]
    };
    return new uPlot(opts, chartData(d), el);
  }

  function note(el, d) {
    var target = el.parentNode.querySelector(".chart-note");
    if (!target) return;
    target.textContent = d.t.length
      ? d.t.length + " samples, one every " + d.interval + " s (sent by " + Array.from(new Set(d.source)).join(", ") + ")"
      : "no lag samples for " + d.subject + " in this period (a primary has no lag of its own; a stopped node is not sampled)";
  }

  function refreshChart(el) {
    var url = "/api/history?subject=" + encodeURIComponent(el.dataset.subject) +
      "&kind=" + encodeURIComponent(el.dataset.kind || "standby") +
      "&minutes=" + encodeURIComponent(el.dataset.minutes || "60");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (d) {
        if (el._chart) { el._chart.setData(chartData(d)); }
        else { el._chart = buildChart(el, d); }
        el.dataset.points = String(d.t.length);
        el.dataset.loaded = "yes";
        note(el, d);
      })
      .catch(function (e) { el.dataset.error = String(e); });
  }

  function initCharts(root) {
    (root || document).querySelectorAll(".lag-chart[data-subject]").forEach(function (el) {
      if (el._started) return;
      el._started = true;
      refreshChart(el);
      el._timer = setInterval(function () {
        if (!document.body.contains(el)) { clearInterval(el._timer); return; }
        refreshChart(el);
      }, 10000);
    });
  }

  window.addEventListener("resize", function () {
    document.querySelectorAll(".lag-chart").forEach(function (el) {
      if (el._chart) el._chart.setSize({ width: Math.max(el.clientWidth, 260), height: 220 });
    });
  });

  function toast(text) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = text;
    t.hidden = false;
    clearTimeout(t._timer);
    t._timer = setTimeout(function () { t.hidden = true; }, 8000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    initCharts(document);
    if (!window.htmx) return;
    htmx.onLoad(function (el) { initCharts(el); });
    document.body.addEventListener("htmx:responseError", function (ev) {
      var xhr = ev.detail.xhr;
      var text = xhr.responseText || ("HTTP " + xhr.status);
      try { var body = JSON.parse(text); if (body.error) text = body.error; } catch (e) { /* plain text */ }
      toast(text);
    });
    document.body.addEventListener("htmx:sendError", function () {
      toast("the console did not answer; is it still running?");
    });
  });
})();
