// The campaigns list: state badges and live figures, a state filter, "pause all".

import { api, session } from "./api.js";
import { formDialog, showBanner } from "./dialog.js";
import { badge, h, num, replace, seconds } from "./dom.js";

const STATES = ["", "draft", "scheduled", "running", "paused", "stopping", "stopped", "cancelled", "completed"];

function figureCells(stats) {
  const c = stats ? stats.calls : null;
  return [
    h("td", { class: "num", dataset: { figure: "received" } }, c ? num(c.received) : "–"),
    h("td", { class: "num", dataset: { figure: "answered" } }, c ? num(c.answered) : "–"),
    h("td", { class: "num", dataset: { figure: "avg_duration" } }, c ? seconds(c.avg_duration_seconds) : "–"),
    h("td", { class: "num", dataset: { figure: "in_flight" } }, c ? num(c.in_flight) : "–"),
  ];
}

export async function campaignsView(root, ctx) {
  const staff = ["admin", "supervisor"].includes(session.me.role);
  const filter = h("select", { id: "state-filter" },
    STATES.map((s) => h("option", { value: s }, s ? s.replaceAll("_", " ") : "all states")));
  const message = h("div", { role: "status", "aria-live": "polite" });
  const body = h("tbody");
  const rows = new Map(); // id -> {tr, campaign, stats}
  const pauseAll = h("button", { type: "button", class: "danger", onclick: confirmPauseAll }, "Pause all");

  replace(root,
    h("div", { class: "page-head" }, h("h1", {}, "Campaigns"), h("span", { class: "spacer" }),
      h("label", { for: "state-filter", class: "small" }, "Show"), filter, staff ? pauseAll : null),
    message,
    h("div", { class: "panel table-wrap" },
      h("table", { "aria-label": "Campaigns" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Campaign"), h("th", {}, "State"), h("th", { class: "num" }, "Received"),
          h("th", { class: "num" }, "Answered"), h("th", { class: "num" }, "Avg duration"),
          h("th", { class: "num" }, "In flight"))),
        body)));

  function render(entry) {
    const { campaign, stats } = entry;
    const tr = h("tr", { dataset: { campaign: campaign.id } },
      h("td", {}, h("a", { href: `#/campaigns/${encodeURIComponent(campaign.id)}` }, campaign.name),
        h("div", { class: "small muted mono" }, campaign.id)),
      h("td", {}, badge(campaign.state)),
      figureCells(stats));
    if (entry.tr) entry.tr.replaceWith(tr);
    entry.tr = tr;
    return tr;
  }

  async function load() {
    const state = filter.value;
    const list = await api("GET", `/api/v1/campaigns${state ? `?state=${state}` : ""}`);
    rows.clear();
    body.replaceChildren();
    if (!list.items.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No campaigns.")));
    for (const campaign of list.items) {
      const entry = { campaign, stats: null, tr: null };
      rows.set(campaign.id, entry);
      body.append(render(entry));
    }
    await Promise.all(list.items.map(async (c) => {
      try {
        const entry = rows.get(c.id);
        if (entry && !entry.stats) {
          entry.stats = await api("GET", `/api/v1/campaigns/${encodeURIComponent(c.id)}/stats`);
          render(entry);
        }
      } catch (err) {
        showBanner(err);
      }
    }));
  }

  async function confirmPauseAll() {
    const running = [...rows.values()].filter((e) => e.campaign.state === "running").length;
    const reason = h("input", { id: "pause-all-reason", name: "reason", maxlength: 500 });
    const out = await formDialog({
      title: "Pause every running campaign?",
      body: [h("p", {}, `Nothing more will be dialled or sent for ${running || "any"} running campaign${running === 1 ? "" : "s"}. Calls in progress finish normally.`),
        h("label", { for: "pause-all-reason" }, "Reason (optional)"), reason],
      confirm: "Pause all",
      danger: true,
      submit: () => api("POST", "/api/v1/campaigns/pause-all", reason.value ? { reason: reason.value } : {}),
    });
    if (out) replace(message, h("div", { class: "notice" }, out.paused.length
      ? `Paused ${out.paused.length} campaign${out.paused.length === 1 ? "" : "s"}: ${out.paused.join(", ")}.`
      : "No campaign was running."));
  }

  filter.addEventListener("change", () => load().catch(showBanner));
  ctx.live("campaign.state", (d) => {
    const entry = rows.get(d.campaign.id);
    if (!entry) {
      if (!filter.value || filter.value === d.campaign.state) load().catch(showBanner);
      return;
    }
    if (d.campaign.version < entry.campaign.version) return;
    entry.campaign = d.campaign;
    render(entry);
  });
  ctx.live("campaign.stats", (d) => {
    const entry = rows.get(d.stats.campaign_id);
    if (!entry) return;
    entry.stats = d.stats;
    render(entry);
  });
  ctx.live("resync", () => load().catch(showBanner));
  await load();
}
