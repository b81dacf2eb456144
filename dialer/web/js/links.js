// The click map (GET /campaigns/{id}/links): every tracked link of the campaign's emails,
// its clicks by people, unique leads and link-scanner clicks; staff may change where a link
// leads (PATCH …/links/{link_id}), for mails already sent too (docs/api.md §4).

import { api } from "./api.js";
import { formDialog, showBanner } from "./dialog.js";
import { h, num, replace } from "./dom.js";

export function linksPanel(campaignOf, { staff }) {
  const body = h("tbody");
  const el = h("section", { class: "panel", "aria-labelledby": "links-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "links-title" }, "Click map")),
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Click map" },
      h("thead", {}, h("tr", {}, h("th", {}, "Step"), h("th", {}, "Leads to"), h("th", { class: "num" }, "Clicks"),
        h("th", { class: "num" }, "Unique"), h("th", { class: "num" }, "Bots"), h("th", {}, ""))),
      body)));
  const base = () => `/api/v1/campaigns/${encodeURIComponent(campaignOf().id)}/links`;

  function edit(link) {
    const input = h("input", { type: "url", name: "url", id: "link-url", required: true, value: link.url, maxlength: 2000 });
    formDialog({
      title: `Where step ${link.step + 1}'s link leads`,
      body: [h("label", { for: "link-url" }, "New target (also for mails already sent)"), input],
      confirm: "Save",
      submit: async () => api("PATCH", `${base()}/${link.id}`, { url: input.value.trim() }),
    }).then((saved) => { if (saved) load(); });
  }

  function render(items) {
    replace(body, items.length ? items.map((l) => h("tr", { dataset: { link: String(l.id) } },
      h("td", {}, String(l.step + 1)),
      h("td", { class: "small mono" }, l.url),
      h("td", { class: "num" }, num(l.clicks)),
      h("td", { class: "num" }, num(l.unique_clicks)),
      h("td", { class: "num muted" }, num(l.bot_clicks)),
      h("td", {}, staff ? h("button", { type: "button", class: "sm", onclick: () => edit(l) }, "Edit") : null)))
      : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No link has gone out yet.")));
  }

  function load() {
    return api("GET", base()).then((page) => render(page.items), showBanner);
  }
  return { el, load };
}
