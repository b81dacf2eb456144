// The campaign's figures (from GET /stats, then campaign.stats events) and a small live chart.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h, num, pct, replace, seconds, words } from "./dom.js";

const CARDS = [
  ["received", "Received calls", (s) => num(s.calls.received)],
  ["answered", "Answered calls", (s) => num(s.calls.answered)],
  ["avg_duration", "Average duration", (s) => seconds(s.calls.avg_duration_seconds)],
  ["abandon_rate", "Abandon rate", (s) => pct(s.calls.abandon_rate)],
  ["in_flight", "Calls in flight", (s) => num(s.calls.in_flight)],
  ["emails_sent", "Emails sent", (s) => num(s.emails.sent)],
];
const LEADS = ["pending", "in_progress", "paused", "completed", "stopped", "skipped"];
const POINTS = 600;

export function figuresPanel() {
  const values = new Map();
  const cards = h("div", { class: "figures" }, CARDS.map(([key, label]) => {
    const value = h("div", { class: "value", dataset: { figure: key }, "aria-live": "off" }, "–");
    values.set(key, value);
    return h("div", { class: "figure" }, h("div", { class: "label", id: `fig-${key}` }, label), value);
  }));
  const bar = h("div", { class: "leadbar", role: "img", "aria-label": "Leads by status" });
  const legend = h("div", { class: "legend" });
  const dialed = h("span", { class: "small muted" });
  const chartBox = h("div", { class: "chart", role: "img", "aria-label": "Received and answered calls over time" });
  const el = h("section", { class: "panel", "aria-labelledby": "figures-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "figures-title" }, "Figures"), h("span", { class: "spacer" }), dialed),
    cards,
    h("h3", { class: "small muted" }, "Leads"), bar, legend,
    h("h3", { class: "small muted" }, "Calls over time"), chartBox);
  for (const [key] of CARDS) values.get(key).setAttribute("aria-labelledby", `fig-${key}`);

  const data = [[], [], []];
  let plot = null;
  let last = null;

  function ensurePlot() {
    if (plot || !chartBox.isConnected || chartBox.clientWidth === 0) return;
    plot = new uPlot({
      width: chartBox.clientWidth, height: 220,
      legend: { show: true, live: false },
      cursor: { show: false },
      scales: { x: { time: true } },
      axes: [
        { stroke: "#5d6779", grid: { stroke: "#eef1f5" }, ticks: { show: false },
          values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })) },
        { stroke: "#5d6779", grid: { stroke: "#eef1f5" }, ticks: { show: false } },
      ],
      series: [
        {},
        { label: "Received", stroke: "#1f4fd1", width: 2, fill: "rgba(31,79,209,.08)", points: { show: false } },
        { label: "Answered", stroke: "#1f9d57", width: 2, fill: "rgba(31,157,87,.06)", points: { show: false } },
      ],
    }, data, chartBox);
    new ResizeObserver(() => {
      if (chartBox.clientWidth) plot.setSize({ width: chartBox.clientWidth, height: 220 });
    }).observe(chartBox);
  }

  function point(stats) {
    data[0].push(Date.now() / 1000);
    data[1].push(stats.calls.received);
    data[2].push(stats.calls.answered);
    if (data[0].length > POINTS) data.forEach((series) => series.shift());
    ensurePlot();
    if (plot) plot.setData(data);
  }

  function update(stats) {
    last = stats;
    for (const [key, , format] of CARDS) values.get(key).textContent = format(stats);
    dialed.textContent = `${num(stats.calls.dialed)} dialled · ${num(stats.calls.abandoned)} abandoned · ${num(stats.emails.failed)} emails failed`;
    const total = LEADS.reduce((sum, k) => sum + (stats.leads[k] || 0), 0);
    replace(bar, LEADS.filter((k) => stats.leads[k]).map((k) => {
      const seg = h("span", { class: `c-${k}`, title: `${words(k)}: ${stats.leads[k]}` });
      seg.style.width = `${(100 * stats.leads[k]) / total}%`;
      return seg;
    }));
    replace(legend, LEADS.map((k) => h("span", { dataset: { leads: k } },
      h("span", { class: `dot c-${k}`, "aria-hidden": "true" }), `${words(k)} `, h("strong", {}, num(stats.leads[k] || 0)))));
    point(stats);
  }

  // A point every 2 s with the last figures the server sent, so a pause shows as a flat line.
  const ticker = setInterval(() => { if (last) point(last); }, 2000);
  return { el, update, stop: () => clearInterval(ticker), shown: ensurePlot };
}
