// The campaign's leads: filters (status, search, stale pauses), pages, lead actions (pause
// with reason and "until", resume, stop, skip, qualify), a bulk action on every lead the
// filters select (count first, then confirm) and the CSV export. Rows follow lead.state
// events. docs/api.md §5.

import { api } from "./api.js";
import { formDialog, showBanner } from "./dialog.js";
import { badge, h, localToIso, replace, when, words } from "./dom.js";

const STATUSES = ["", "pending", "in_progress", "paused", "completed", "stopped", "skipped"];
const OPEN = ["pending", "in_progress", "paused"];
const DONE = { pause: "paused", resume: "resumed", stop: "stopped", skip: "skipped" };

export function leadsPanel(campaignOf, { staff }) {
  const filter = h("select", { id: "lead-filter" },
    STATUSES.map((s) => h("option", { value: s }, s ? words(s) : "all statuses")));
  const search = h("input", { id: "lead-search", type: "search", maxlength: 200, placeholder: "phone, email, name, company" });
  const stale = h("input", { id: "lead-stale", type: "checkbox" });
  const exportLink = h("a", { id: "lead-export", class: "button sm", download: "" }, "Export CSV");
  const bulkButton = staff ? h("button", { type: "button", id: "lead-bulk", class: "sm" }, "Bulk action…") : null;
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const rows = new Map(); // lead id -> tr
  let cursor = null;
  const el = h("section", { class: "panel", "aria-labelledby": "leads-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "leads-title" }, "Leads"), h("span", { class: "spacer" }),
      h("label", { for: "lead-search", class: "small" }, "Search"), search,
      h("label", { for: "lead-filter", class: "small" }, "Status"), filter,
      h("label", { class: "choice small", for: "lead-stale" }, stale, "Stale pauses only"),
      exportLink, bulkButton),
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

  // The filters in force, as the list, the export and a bulk action take them.
  function filters() {
    const f = {};
    if (filter.value) f.status = filter.value;
    if (search.value.trim()) f.q = search.value.trim();
    if (stale.checked) f.stale = true;
    return f;
  }

  function query(extra = {}) {
    const q = new URLSearchParams(extra);
    for (const [k, v] of Object.entries(filters())) q.set(k, String(v));
    return q;
  }

  async function bulk() {
    const what = h("select", { id: "bulk-action" },
      ["pause", "resume", "stop", "skip"].map((a) => h("option", { value: a }, words(a))));
    const reason = h("input", { id: "bulk-reason", maxlength: 500 });
    const at = h("input", { id: "bulk-at", type: "datetime-local" });
    const f = filters();
    const described = Object.entries(f).map(([k, v]) => `${k}: ${v}`).join(", ") || "every lead";
    const url = `/api/v1/campaigns/${encodeURIComponent(campaignOf().id)}/leads/actions`;
    const body = () => {
      const out = { action: what.value, filter: f };
      if (reason.value && ["pause", "stop"].includes(what.value)) out.reason = reason.value;
      if (at.value && what.value === "resume") out.at = localToIso(at.value);
      return out;
    };
    // First the count (a dry run), then the action once confirmed.
    const counted = await formDialog({
      title: "Bulk action",
      body: [h("p", {}, `Leads selected by the filters (${described}).`),
        h("label", { for: "bulk-action" }, "Action"), what,
        h("label", { for: "bulk-reason" }, "Reason (pause, stop)"), reason,
        h("label", { for: "bulk-at" }, "Go on at (resume: a reschedule; optional)"), at],
      confirm: "Preview count",
      submit: async () => ({ request: body(), result: await api("POST", url, { ...body(), dry_run: true }) }),
    });
    if (!counted) return;
    const { request, result } = counted;
    const done = await formDialog({
      title: `${words(request.action)} ${result.changed} lead${result.changed === 1 ? "" : "s"}?`,
      body: [h("p", { id: "bulk-count" },
        `${result.matched} match the filters; ${result.changed} can be ${DONE[request.action]}` +
        " (the others' status does not take this action).")],
      confirm: `${words(request.action)} ${result.changed}`, danger: request.action === "stop",
      submit: () => api("POST", url, request),
    });
    if (done) await load();
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
      ? `${lead.pause_reason || "paused"}${lead.paused_until ? ` · until ${when(lead.paused_until)}` : ""}${lead.paused_at ? ` · since ${when(lead.paused_at)}` : ""}`
      : lead.stop_reason || "";
    const tr = h("tr", { dataset: { lead: lead.id, status: lead.status } },
      h("td", {}, `${lead.first_name || ""} ${lead.last_name || ""}`.trim() || lead.id),
      h("td", {}, lead.company || "–"),
      h("td", { class: "mono small" }, lead.phone || lead.email || "–"),
      h("td", {}, badge(lead.status), lead.stale ? badge("stale") : null),
      h("td", { class: "num" }, lead.step + 1), h("td", { class: "num" }, lead.tries),
      h("td", { class: "small muted" }, note),
      staff ? h("td", {}, actions(lead)) : null);
    const old = rows.get(lead.id);
    if (old) old.replaceWith(tr);
    rows.set(lead.id, tr);
    return tr;
  }

  async function load(append = false) {
    exportLink.href = `/api/v1/campaigns/${encodeURIComponent(campaignOf().id)}/leads.csv?${query()}`;
    const q = query({ limit: "50" });
    if (append && cursor) q.set("cursor", cursor);
    const page = await api("GET", `/api/v1/campaigns/${encodeURIComponent(campaignOf().id)}/leads?${q}`);
    if (!append) {
      rows.clear();
      body.replaceChildren();
    }
    for (const lead of page.items) body.append(render(lead));
    if (!append && !page.items.length) replace(body, h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No leads match these filters.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }

  filter.addEventListener("change", () => load().catch(showBanner));
  stale.addEventListener("change", () => load().catch(showBanner));
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => load().catch(showBanner), 300);
  });
  if (bulkButton) bulkButton.addEventListener("click", () => bulk().catch(showBanner));
  more.addEventListener("click", () => load(true).catch(showBanner));

  function event(d) {
    if (rows.has(d.lead.id)) render(d.lead);
  }

  return { el, load, event };
}
