// The campaign's leads: a status filter, pages, and lead actions (pause with reason and
// "until", resume, stop, skip, qualify). Rows follow lead.state events.

import { api } from "./api.js";
import { formDialog, showBanner } from "./dialog.js";
import { badge, h, localToIso, replace, when, words } from "./dom.js";

const STATUSES = ["", "pending", "in_progress", "paused", "completed", "stopped", "skipped"];
const OPEN = ["pending", "in_progress", "paused"];

export function leadsPanel(campaignOf, { staff }) {
  const filter = h("select", { id: "lead-filter" },
    STATUSES.map((s) => h("option", { value: s }, s ? words(s) : "all statuses")));
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const rows = new Map(); // lead id -> tr
  let cursor = null;
  const el = h("section", { class: "panel", "aria-labelledby": "leads-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "leads-title" }, "Leads"), h("span", { class: "spacer" }),
      h("label", { for: "lead-filter", class: "small" }, "Status"), filter),
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Leads" },
      h("thead", {}, h("tr", {}, h("th", {}, "Lead"), h("th", {}, "Company"), h("th", {}, "Phone / email"),
        h("th", {}, "Status"), h("th", { class: "num" }, "Step"), h("th", { class: "num" }, "Tries"),
        h("th", {}, "Note"), staff ? h("th", {}, "Actions") : null)),
      body)),
    h("div", { class: "row" }, more));

  const path = (lead, action) => `/api/v1/leads/${encodeURIComponent(lead.id)}/${action}`;

  async function act(lead, action, body) {
    try {
      render(await api("POST", path(lead, action), body));
    } catch (err) {
      showBanner(err);
    }
  }

  async function pause(lead) {
    const reason = h("input", { id: "lead-reason", maxlength: 500 });
    const until = h("input", { id: "lead-until", type: "datetime-local" });
    const out = await formDialog({
      title: `Pause ${lead.first_name || ""} ${lead.last_name || ""}`.trim(),
      body: [h("label", { for: "lead-reason" }, "Reason"), reason,
        h("label", { for: "lead-until" }, "Until (optional: it resumes by itself then)"), until],
      confirm: "Pause lead",
      submit: () => api("POST", path(lead, "pause"), { reason: reason.value || null, until: localToIso(until.value) }),
    });
    if (out) render(out);
  }

  async function stop(lead) {
    const reason = h("input", { id: "lead-stop-reason", maxlength: 500 });
    const out = await formDialog({
      title: "Stop this lead for good?",
      body: [h("p", {}, "No more calls or emails to this lead."), h("label", { for: "lead-stop-reason" }, "Reason"), reason],
      confirm: "Stop lead", danger: true,
      submit: () => api("POST", path(lead, "stop"), { reason: reason.value || null }),
    });
    if (out) render(out);
  }

  async function qualify(lead) {
    const one = h("input", { type: "radio", name: "scope", id: "scope-lead", value: "lead", checked: true });
    const all = h("input", { type: "radio", name: "scope", id: "scope-company", value: "company" });
    const out = await formDialog({
      title: "Qualify",
      body: [h("p", {}, "A qualified lead is stopped: the sequence has done its job."),
        h("label", { class: "choice", for: "scope-lead" }, one, "This lead only"),
        h("label", { class: "choice", for: "scope-company" }, all, `Every open lead of ${lead.company || "its company"}`)],
      confirm: "Qualify",
      submit: () => api("POST", path(lead, "qualify"), { scope: all.checked ? "company" : "lead" }),
    });
    if (out) out.items.forEach(render);
  }

  function actions(lead) {
    const b = (text, fn, title) => h("button", { type: "button", class: "sm", onclick: () => fn(lead), "aria-label": `${title || text} lead ${lead.id}` }, text);
    return h("div", { class: "actions" },
      lead.status === "in_progress" ? b("Pause", pause) : null,
      lead.status === "paused" ? b("Resume", (l) => act(l, "resume")) : null,
      lead.status === "pending" ? b("Skip", (l) => act(l, "skip")) : null,
      OPEN.includes(lead.status) ? b("Stop", stop) : null,
      OPEN.includes(lead.status) ? b("Qualify", qualify) : null);
  }

  function render(lead) {
    const note = lead.status === "paused"
      ? `${lead.pause_reason || "paused"}${lead.paused_until ? ` · until ${when(lead.paused_until)}` : ""}`
      : lead.stop_reason || "";
    const tr = h("tr", { dataset: { lead: lead.id, status: lead.status } },
      h("td", {}, `${lead.first_name || ""} ${lead.last_name || ""}`.trim() || lead.id),
      h("td", {}, lead.company || "–"),
      h("td", { class: "mono small" }, lead.phone || lead.email || "–"),
      h("td", {}, badge(lead.status)),
      h("td", { class: "num" }, lead.step + 1), h("td", { class: "num" }, lead.tries),
      h("td", { class: "small muted" }, note),
      staff ? h("td", {}, actions(lead)) : null);
    const old = rows.get(lead.id);
    if (old) old.replaceWith(tr);
    rows.set(lead.id, tr);
    return tr;
  }

  async function load(append = false) {
    const q = new URLSearchParams({ limit: "50" });
    if (filter.value) q.set("status", filter.value);
    if (append && cursor) q.set("cursor", cursor);
    const page = await api("GET", `/api/v1/campaigns/${encodeURIComponent(campaignOf().id)}/leads?${q}`);
    if (!append) {
      rows.clear();
      body.replaceChildren();
    }
    for (const lead of page.items) body.append(render(lead));
    if (!append && !page.items.length) replace(body, h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No leads with this status.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }

  filter.addEventListener("change", () => load().catch(showBanner));
  more.addEventListener("click", () => load(true).catch(showBanner));

  function event(d) {
    if (rows.has(d.lead.id)) render(d.lead);
  }

  return { el, load, event };
}
