// The campaign page: control, figures and chart, agents, danger zone, leads, configuration,
// audit trail. Everything on it comes from the API and its live events.

import { api, session } from "./api.js";
import { auditPanel } from "./audit.js";
import { configPanel } from "./config.js";
import { controlPanel } from "./control.js";
import { crewPanel } from "./crew.js";
import { showBanner } from "./dialog.js";
import { badge, debounce, h, num, replace } from "./dom.js";
import { figuresPanel } from "./figures.js";
import { pacingPanel } from "./pacing.js";
import { channelBanner, waitingPanel } from "./health.js";
import { leadsPanel } from "./leads.js";
import { linksPanel } from "./links.js";
import { dangerZone } from "./terminate.js";

export async function campaignView(root, ctx, id) {
  const path = `/api/v1/campaigns/${encodeURIComponent(id)}`;
  let [campaign, stats] = await Promise.all([api("GET", path), api("GET", `${path}/stats`)]);
  const staff = ["admin", "supervisor"].includes(session.me.role);
  const campaignOf = () => campaign;

  const title = h("h1", {});
  const state = h("span", { id: "campaign-state" });
  const meta = h("span", { class: "small muted mono" });
  const figures = figuresPanel();
  const pacing = pacingPanel(path);
  const crew = crewPanel(campaignOf);
  const leads = leadsPanel(campaignOf, { staff });
  const audit = auditPanel(campaignOf);
  const links = linksPanel(campaignOf, { staff });
  const danger = dangerZone(campaignOf, { staff });
  const control = controlPanel(campaignOf, {
    staff,
    reload,
    onResult: (r) => crew.released(r.released, `Paused with ${r.in_flight} call${r.in_flight === 1 ? "" : "s"} in flight`),
  });
  const config = configPanel(campaignOf, { staff, onSaved: (c) => apply(c) });
  const channels = channelBanner();
  const waiting = waitingPanel();
  const today = agentFigures(campaignOf);
  // Archive / unarchive, and a scheduled campaign's pause (its start is dropped).
  const archiveButton = h("button", { type: "button", id: "archive", class: "sm" });
  const pauseSchedule = h("button", { type: "button", id: "pause-schedule", class: "sm", hidden: true }, "Pause (drop the scheduled start)");
  archiveButton.addEventListener("click", () => {
    const verb = campaign.archived ? "unarchive" : "archive";
    api("POST", `${path}/${verb}`).then(apply, showBanner);
  });
  pauseSchedule.addEventListener("click", () => {
    api("POST", `${path}/pause`, {}).then(() => reload(), showBanner);
  });

  const tabs = [
    ["overview", "Overview", h("div", { class: "grid cols-2" },
      h("div", {}, control.el, waiting.el, figures.el, pacing.el), h("div", {}, crew.el, today.el, danger.el))],
    ["leads", "Leads", leads.el],
    ["config", "Configuration", config.el],
    ["audit", "Audit trail", audit.el],
    ["links", "Click map", links.el],
  ];
  const tabList = h("div", { class: "tabs", role: "tablist", "aria-label": "Campaign sections" });
  const panels = tabs.map(([key, label, el]) => {
    const panel = h("div", { role: "tabpanel", id: `tab-${key}`, "aria-labelledby": `tab-btn-${key}`, hidden: key !== "overview" }, el);
    tabList.append(h("button", { type: "button", role: "tab", id: `tab-btn-${key}`, "aria-controls": `tab-${key}`,
      "aria-selected": key === "overview" ? "true" : "false", onclick: () => show(key) }, label));
    return [key, panel];
  });
  const loaded = new Set(["overview"]);

  function show(key) {
    for (const [k, panel] of panels) panel.hidden = k !== key;
    for (const btn of tabList.children) btn.setAttribute("aria-selected", String(btn.id === `tab-btn-${key}`));
    if (key === "overview") figures.shown();
    if (loaded.has(key)) return;
    loaded.add(key);
    if (key === "leads") leads.load().catch(showBanner);
    if (key === "audit") audit.load();
    if (key === "links") links.load();
  }

  function apply(c) {
    if (c.version < campaign.version) return;
    if (campaign.state === "paused" && c.state === "running") crew.clearNote();
    // Channels and waiting_for come with GET (null in live events): keep the last read.
    if (c.channels === null || c.channels === undefined) {
      c = { ...c, channels: campaign.channels, waiting_for: c.state === campaign.state ? campaign.waiting_for : null };
    }
    campaign = c;
    channels.update(c.channels);
    waiting.update(c);
    title.textContent = c.name;
    replace(state, badge(c.state));
    meta.textContent = `${c.id} · version ${c.version}${c.archived ? " · archived" : ""}`;
    archiveButton.textContent = c.archived ? "Unarchive" : "Archive";
    archiveButton.hidden = !staff;
    pauseSchedule.hidden = !staff || c.state !== "scheduled";
    control.update(c);
    danger.update(c);
    config.update(c);
    crew.render();
  }

  async function reload() {
    const [c, s] = await Promise.all([api("GET", path), api("GET", `${path}/stats`)]);
    apply(c);
    figures.update(s);
  }

  replace(root,
    h("p", { class: "small" }, h("a", { href: "#/campaigns" }, "← All campaigns")),
    h("div", { class: "page-head" }, title, state, meta, pauseSchedule, archiveButton),
    channels.el, tabList, panels.map(([, panel]) => panel));
  apply(campaign);
  figures.update(stats);
  figures.shown();
  await crew.load();
  today.load();

  // GET /campaigns/{id}: the only source of `channels` and `waiting_for` (docs/api.md §4.5).
  const refreshCampaign = debounce(async () => {
    try {
      apply(await api("GET", path));
    } catch (err) {
      showBanner(err);
    }
  }, 300);
  ctx.live("campaign.state", (d) => {
    if (d.campaign.id !== id) return;
    danger.event(d);
    apply(d.campaign);
    audit.changed();
    // A channel report, or a campaign now stopping: re-read what only GET carries.
    if (String(d.type).startsWith("campaign.channel_") || d.campaign.state === "stopping") refreshCampaign();
  });
  // The stream pushes figures while a campaign runs or stops; calls still in flight after a
  // pause end later, so then the figures are re-read from GET /stats until nothing is left.
  let latest = stats;
  const LIVE = ["running", "stopping"];
  const refreshStats = debounce(async () => {
    try {
      latest = await api("GET", `${path}/stats`);
      figures.update(latest);
    } catch (err) {
      showBanner(err);
    }
  }, 700);
  const settling = setInterval(() => {
    const busy = latest.calls.in_flight > 0 || latest.emails.in_flight > 0;
    if (busy && !LIVE.includes(campaign.state)) refreshStats();
    // What a stopping campaign waits for changes without a campaign event: re-read it.
    if (campaign.state === "stopping") refreshCampaign();
  }, 2000);
  ctx.onLeave(() => clearInterval(settling));
  ctx.live("campaign.stats", (d) => {
    if (d.stats.campaign_id !== id) return;
    latest = d.stats;
    figures.update(d.stats);
  });
  ctx.live("agent.state", (d) => { crew.event(d); today.changed(); });
  ctx.live("lead.state", (d) => {
    if (d.lead.campaign_id !== id) return;
    leads.event(d);
    audit.changed();
    if (!LIVE.includes(campaign.state)) refreshStats();
  });
  ctx.live("resync", () => { reload().catch(showBanner); crew.load(); });
  ctx.onLeave(figures.stop);
  ctx.onLeave(pacing.stop);
}

// Today's figures of the campaign's agents (GET /api/v1/agents: calls handled, talk time,
// occupancy since midnight UTC; docs/api.md §6).
function agentFigures(campaignOf) {
  const body = h("tbody");
  const el = h("section", { class: "panel", "aria-labelledby": "today-title" },
    h("h2", { id: "today-title" }, "Agents today"),
    h("table", { "aria-label": "Agents today" },
      h("thead", {}, h("tr", {}, h("th", {}, "Agent"), h("th", { class: "num" }, "Calls"),
        h("th", { class: "num" }, "Talk (min)"), h("th", { class: "num" }, "Occupancy"))),
      body));

  async function load() {
    try {
      const list = await api("GET", "/api/v1/agents");
      const ids = new Set(campaignOf().agent_ids);
      const mine = list.items.filter((a) => ids.has(a.id) || a.campaign_id === campaignOf().id);
      replace(body, mine.length
        ? mine.map((a) => h("tr", { dataset: { agent: a.id } }, h("td", {}, a.name),
          h("td", { class: "num" }, num(a.calls_handled)), h("td", { class: "num" }, num(a.talk_seconds / 60)),
          h("td", { class: "num" }, `${Math.round(a.occupancy * 100)} %`)))
        : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No agent is assigned.")));
    } catch (err) {
      showBanner(err);
    }
  }

  return { el, load, changed: debounce(load, 1500) };
}
