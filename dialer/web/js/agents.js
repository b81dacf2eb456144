// All agents (supervisor view), live from agent.state events; each links to its work view.
// A supervisor may force an agent the tables leave stuck (on a call, held, in wrap-up) to
// available or offline: POST /agents/{id}/state with `force` (docs/api.md §6).

import { api, session } from "./api.js";
import { formDialog, showBanner } from "./dialog.js";
import { badge, h, replace, when, words } from "./dom.js";

// What an agent can ask for itself (AGENT_SELF_STATES): no force needed from these.
const SELF_STATES = ["available", "offline", "break"];

export async function agentsView(root, ctx) {
  const staff = ["admin", "supervisor"].includes(session.me.role);
  const body = h("tbody");
  const agents = new Map();
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Agents")),
    h("div", { class: "panel table-wrap" }, h("table", { "aria-label": "Agents" },
      h("thead", {}, h("tr", {}, h("th", {}, "Agent"), h("th", {}, "State"), h("th", {}, "Campaign"), h("th", {}, "Since"),
        staff ? h("th", {}, "Override") : null)),
      body)));

  function render() {
    replace(body, [...agents.values()].map((a) => h("tr", { dataset: { agent: a.id } },
      h("td", {}, h("a", { href: `#/agents/${encodeURIComponent(a.id)}` }, a.name), h("span", { class: "small muted mono" }, ` ${a.id}`)),
      h("td", {}, badge(a.state)),
      h("td", {}, a.campaign_id ? h("a", { href: `#/campaigns/${encodeURIComponent(a.campaign_id)}`, class: "mono" }, a.campaign_id) : "–"),
      h("td", { class: "small" }, when(a.state_since)),
      staff ? h("td", {}, overrides(a)) : null)));
  }

  function overrides(a) {
    if (SELF_STATES.includes(a.state)) return null;
    return h("div", { class: "actions" },
      h("button", { type: "button", class: "sm", onclick: () => force(a, "available") }, "Force available"),
      h("button", { type: "button", class: "sm", onclick: () => force(a, "offline") }, "Force offline"));
  }

  async function force(a, state) {
    const reason = h("input", { id: "force-reason", name: "reason", maxlength: 500, placeholder: "e.g. stuck after a crash" });
    const call = a.attempt_id ? ` and drops its hold on call ${a.attempt_id} (the call itself is not hung up)` : "";
    const out = await formDialog({
      title: `Force ${a.name} ${state}?`,
      body: [h("p", {}, `${a.name} is ${words(a.state)}. This moves it to ${state}${call}; `,
        state === "offline" ? "it is released from its campaign." : "it stays with its campaign only if that campaign is running.",
        " The change is recorded in the audit trail with your name."),
      h("label", { for: "force-reason" }, "Reason (optional)"), reason],
      confirm: `Force ${state}`,
      danger: true,
      submit: () => api("POST", `/api/v1/agents/${encodeURIComponent(a.id)}/state`,
        { state, force: true, ...(reason.value ? { reason: reason.value } : {}) }),
    });
    if (!out) return;
    const old = agents.get(out.id);
    if (!old || out.version >= old.version) agents.set(out.id, out);
    render();
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
