// The campaign's pacing (GET /api/v1/campaigns/{id}/pacing, read every 5 s while shown): the
// abandon rate over the rolling window against the campaign's cap, and the dial level the
// pacer applies now (docs/architecture.md §8).

import { api } from "./api.js";
import { h, num, pct, replace } from "./dom.js";

const EVERY_MS = 5000;

export function pacingPanel(path) {
  const rate = h("div", { class: "value", id: "pacing-rate", "aria-live": "off" }, "–");
  const level = h("div", { class: "value", id: "pacing-level", "aria-live": "off" }, "–");
  const bar = h("div", { class: "leadbar", role: "img", id: "pacing-bar", "aria-label": "Abandon rate against the cap" });
  const note = h("p", { class: "small muted", id: "pacing-note" });
  const el = h("section", { class: "panel", id: "pacing", "aria-labelledby": "pacing-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "pacing-title" }, "Pacing")),
    h("div", { class: "figures" },
      h("div", { class: "figure" }, h("div", { class: "label" }, "Abandon rate vs cap"), rate),
      h("div", { class: "figure" }, h("div", { class: "label" }, "Dial level"), level)),
    bar, note);

  function update(p) {
    rate.textContent = `${pct(p.abandon_rate)} / ${pct(p.max_abandon_rate)}`;
    level.textContent = p.dial_level ? `${p.dial_level.toFixed(2)} lines/agent` : "–";
    const used = p.max_abandon_rate > 0 ? Math.min(1, p.abandon_rate / p.max_abandon_rate) : 0;
    const seg = h("span", { title: `${pct(p.abandon_rate)} of ${pct(p.max_abandon_rate)}` });
    seg.style.width = `${100 * used}%`;
    seg.style.background = used >= 1 ? "#c8362e" : used >= 2 / 3 ? "#e59a1a" : "#1f9d57";
    replace(bar, seg);
    bar.setAttribute("aria-label", `Abandon rate ${pct(p.abandon_rate)} against a cap of ${pct(p.max_abandon_rate)}`);
    note.textContent = `${p.mode} · ${num(p.abandoned)} abandoned of ${num(p.answered_humans)} answered by a person over ${num(p.window_days)} days · ${num(p.available_agents)} free agents, ${num(p.live_calls)} calls ringing`;
  }

  async function load() {
    try {
      update(await api("GET", `${path}/pacing`));
      el.hidden = false;
    } catch {
      el.hidden = true; // an older server without the route, or a transient error
    }
  }

  load();
  const timer = setInterval(load, EVERY_MS);
  return { el, load, stop: () => clearInterval(timer) };
}
