// All agents (supervisor view), live from agent.state events; each links to its work view.

import { api } from "./api.js";
import { showBanner } from "./dialog.js";
import { badge, h, replace, when } from "./dom.js";

export async function agentsView(root, ctx) {
  const body = h("tbody");
  const agents = new Map();
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Agents")),
    h("div", { class: "panel table-wrap" }, h("table", { "aria-label": "Agents" },
      h("thead", {}, h("tr", {}, h("th", {}, "Agent"), h("th", {}, "State"), h("th", {}, "Campaign"), h("th", {}, "Since"))),
      body)));

  function render() {
    replace(body, [...agents.values()].map((a) => h("tr", { dataset: { agent: a.id } },
      h("td", {}, h("a", { href: `#/agents/${encodeURIComponent(a.id)}` }, a.name), h("span", { class: "small muted mono" }, ` ${a.id}`)),
      h("td", {}, badge(a.state)),
      h("td", {}, a.campaign_id ? h("a", { href: `#/campaigns/${encodeURIComponent(a.campaign_id)}`, class: "mono" }, a.campaign_id) : "–"),
      h("td", { class: "small" }, when(a.state_since)))));
  }

  async function load() {
    const list = await api("GET", "/api/v1/agents");
    agents.clear();
    for (const a of list.items) agents.set(a.id, a);
    render();
  }

  ctx.live("agent.state", (d) => {
    const old = agents.get(d.agent.id);
    if (old && d.version < old.version) return;
    agents.set(d.agent.id, d.agent);
    render();
  });
  ctx.live("resync", () => load().catch(showBanner));
  await load();
}
