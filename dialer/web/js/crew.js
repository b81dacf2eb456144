// The agents of one campaign: engaged now (serving it) and released (assigned, not engaged).

import { api } from "./api.js";
import { showBanner } from "./dialog.js";
import { badge, h, replace } from "./dom.js";

export function crewPanel(campaignOf) {
  const engaged = h("tbody");
  const released = h("ul", { class: "legend", "aria-label": "Released agents" });
  const lastRelease = h("p", { class: "small muted", "aria-live": "polite" });
  const el = h("section", { class: "panel", "aria-labelledby": "crew-title" },
    h("h2", { id: "crew-title" }, "Agents"),
    h("h3", { class: "small muted" }, "Engaged"),
    h("table", { "aria-label": "Engaged agents" }, h("thead", {}, h("tr", {}, h("th", {}, "Agent"), h("th", {}, "State"))), engaged),
    h("h3", { class: "small muted" }, "Released / not engaged"), released, lastRelease);
  const agents = new Map();

  function render() {
    const c = campaignOf();
    const mine = [...agents.values()].filter((a) => a.campaign_id === c.id);
    replace(engaged, mine.length
      ? mine.map((a) => h("tr", { dataset: { agent: a.id } }, h("td", {}, a.name, h("span", { class: "small muted mono" }, ` ${a.id}`)), h("td", {}, badge(a.state))))
      : h("tr", {}, h("td", { colspan: 2, class: "muted" }, "No agent is engaged.")));
    const others = c.agent_ids.filter((id) => !mine.some((a) => a.id === id));
    replace(released, others.length
      ? others.map((id) => { const a = agents.get(id); return h("li", { dataset: { agent: id } }, a ? `${a.name} ` : "", a ? badge(a.state) : h("span", { class: "mono" }, id)); })
      : h("li", { class: "muted" }, "None."));
  }

  async function load() {
    try {
      const list = await api("GET", "/api/v1/agents");
      agents.clear();
      for (const a of list.items) agents.set(a.id, a);
      render();
    } catch (err) {
      showBanner(err);
    }
  }

  function event(d) {
    const old = agents.get(d.agent.id);
    if (old && d.version < old.version) return;
    agents.set(d.agent.id, d.agent);
    render();
  }

  function released_(ids, why) {
    lastRelease.textContent = `${why}: released ${ids.length ? ids.join(", ") : "no agent"}.`;
  }

  return { el, load, event, render, released: released_, clearNote: () => { lastRelease.textContent = ""; } };
}
