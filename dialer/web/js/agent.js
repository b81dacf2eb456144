// An agent's own view: its state, the campaign it serves, the current call and upcoming work
// (GET /agents/{id}/queue, re-read on agent.state and campaign.state events), state buttons.
// Preview mode: the next lead with Dial / Skip (POST /agents/{id}/dial, /skip; docs/api.md §6).

import { api } from "./api.js";
import { showBanner } from "./dialog.js";
import { badge, debounce, h, replace, timeTag, words } from "./dom.js";

const BUTTONS = [["available", "Available"], ["break", "Break"], ["offline", "Offline"]];

export async function agentView(root, ctx, agentId) {
  if (!agentId) {
    replace(root, h("div", { class: "panel" }, h("h1", {}, "No agent"), h("p", {}, "This user is not linked to an agent. Ask an admin to create it with an agent id.")));
    return;
  }
  const campaigns = new Map(); // id -> campaign (from campaign.state events)
  const head = h("div", { class: "agent-status", id: "agent-status" });
  const buttons = h("div", { class: "row", role: "group", "aria-label": "Set my state" });
  const current = h("div", { id: "current-call" });
  const upcoming = h("div", { id: "upcoming" });
  const serving = h("p", { id: "agent-campaign" });
  const preview = h("div", { id: "preview" });
  replace(root,
    h("section", { class: "panel", "aria-labelledby": "agent-title" },
      h("div", { class: "panel-head" }, h("h1", { id: "agent-title" }, "My work"), h("span", { class: "spacer" }), buttons),
      head, serving, preview),
    h("div", { class: "grid cols-2" },
      h("section", { class: "panel", "aria-labelledby": "upcoming-title" }, h("h2", { id: "upcoming-title" }, "Upcoming work"), upcoming),
      h("section", { class: "panel", "aria-labelledby": "current-title" }, h("h2", { id: "current-title" }, "Current call"), current)));

  let queue = null;
  let lastCampaign = null; // the campaign it served last: says why the queue is empty

  async function setState(state) {
    try {
      await api("POST", `/api/v1/agents/${encodeURIComponent(agentId)}/state`, { state });
      await load();
    } catch (err) {
      showBanner(err);
    }
  }

  async function previewAction(action, leadId) {
    try {
      queue = await api("POST", `/api/v1/agents/${encodeURIComponent(agentId)}/${action}`, { lead_id: Number(leadId) });
      render();
    } catch (err) {
      showBanner(err);
      await load().catch(() => {});
    }
  }

  function renderPreview() {
    const l = queue.preview;
    if (!l) { replace(preview); return; }
    const name = `${l.first_name || ""} ${l.last_name || ""}`.trim() || "–";
    replace(preview, h("section", { class: "panel", "aria-labelledby": "preview-title", dataset: { lead: l.id } },
      h("h2", { id: "preview-title" }, "Next lead (preview)"),
      h("dl", { class: "kv" }, h("dt", {}, "Name"), h("dd", {}, name), h("dt", {}, "Company"), h("dd", {}, l.company || "–"),
        h("dt", {}, "Phone"), h("dd", { class: "mono" }, l.phone || "–"), h("dt", {}, "Time zone"), h("dd", {}, l.timezone || "–")),
      h("div", { class: "row", role: "group", "aria-label": "Preview" },
        h("button", { type: "button", class: "primary", onclick: () => previewAction("dial", l.id) }, "Dial"),
        h("button", { type: "button", onclick: () => previewAction("skip", l.id) }, "Skip"))));
  }

  function render() {
    renderPreview();
    const a = queue.agent;
    const free = a.state === "available" && !queue.current;
    replace(head,
      h("span", { class: `big ${free ? "free" : "busy"}`, dataset: { free: String(free) } }, free ? "Free" : words(a.state)),
      badge(a.state), h("span", { class: "small muted" }, a.name, " · since ", timeTag(a.state_since)));
    if (queue.campaign_id) lastCampaign = queue.campaign_id;
    const c = lastCampaign ? campaigns.get(lastCampaign) : null;
    replace(serving, queue.campaign_id
      ? ["Serving campaign ", h("strong", {}, c ? c.name : queue.campaign_id), " ", c ? badge(c.state) : null]
      : h("span", { class: "muted" }, "Not serving any campaign right now.",
        c && c.state !== "running" ? ` ${c.name} is ${words(c.state)}: you were released.` : ""));
    const wrap = a.state === "wrap_up";
    replace(buttons,
      wrap ? h("button", { type: "button", class: "primary", onclick: () => setState("available") }, "Finish wrap-up") : null,
      BUTTONS.map(([state, label]) => h("button", { type: "button", "aria-pressed": String(a.state === state),
        class: a.state === state ? "primary" : "", disabled: a.state === state, onclick: () => setState(state) }, label)));
    const call = queue.current;
    replace(current, call
      ? h("dl", { class: "kv" }, h("dt", {}, "Lead"), h("dd", {}, call.lead_id), h("dt", {}, "Status"), h("dd", {}, badge(call.status)),
        h("dt", {}, "Answered by"), h("dd", {}, call.answered_by || "–"), h("dt", {}, "Started"), h("dd", {}, timeTag(call.created_at)))
      : h("div", { class: "empty" }, "No call right now."));
    const paused = c && c.state !== "running";
    replace(upcoming, queue.upcoming.length
      ? h("table", { "aria-label": "Upcoming leads" }, h("thead", {}, h("tr", {}, h("th", {}, "Lead"), h("th", {}, "Company"), h("th", {}, "Phone"), h("th", {}, "Time zone"))),
        h("tbody", {}, queue.upcoming.map((l) => h("tr", { dataset: { lead: l.id } },
          h("td", {}, `${l.first_name || ""} ${l.last_name || ""}`.trim()), h("td", {}, l.company || "–"),
          h("td", { class: "mono small" }, l.phone || "–"), h("td", { class: "small" }, l.timezone || "–")))))
      : h("div", { class: "empty", dataset: { empty: "true" } }, paused ? `Campaign ${words(c.state)}: no work queued.` : "No work queued."));
  }

  async function load() {
    queue = await api("GET", `/api/v1/agents/${encodeURIComponent(agentId)}/queue`);
    render();
  }

  const refresh = debounce(() => load().catch(showBanner), 150);
  ctx.live("agent.state", (d) => { if (d.agent.id === agentId) refresh(); });
  ctx.live("campaign.state", (d) => {
    campaigns.set(d.campaign.id, d.campaign);
    if (queue && (d.campaign.id === queue.campaign_id || d.campaign.id === lastCampaign || !queue.campaign_id)) refresh();
  });
  ctx.live("resync", refresh);
  await load();
}
