// The audit trail (GET /campaigns/{id}/events, oldest first), read incrementally.

import { api } from "./api.js";
import { showBanner } from "./dialog.js";
import { badge, debounce, h, replace, timeTag, words } from "./dom.js";

const PAGE = 1000;
const SHOWN = 300;

function summary(data) {
  const parts = Object.entries(data || {}).filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length));
  return parts.map(([k, v]) => `${words(k)}: ${Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

export function auditPanel(campaignOf) {
  const onlyControl = h("input", { type: "checkbox", id: "audit-control", checked: true });
  const body = h("tbody");
  const count = h("span", { class: "small muted" });
  const el = h("section", { class: "panel", "aria-labelledby": "audit-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "audit-title" }, "Audit trail"), count, h("span", { class: "spacer" }),
      h("label", { class: "choice", for: "audit-control" }, onlyControl, "Campaign actions only")),
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Audit trail" },
      h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Who"), h("th", {}, "What"),
        h("th", {}, "State"), h("th", {}, "Reason / details"))),
      body)));
  const items = [];
  let after = 0;
  let loading = null;

  function render() {
    const shown = items.filter((e) => !onlyControl.checked || e.entity === "campaign").slice(-SHOWN);
    count.textContent = `${shown.length} of ${items.length} events`;
    replace(body, shown.length ? shown.map((e) => h("tr", { dataset: { event: e.type } },
      h("td", { class: "small" }, timeTag(e.at)),
      h("td", { class: "small mono" }, e.actor),
      h("td", {}, words(e.type.replace(".", ": ")), e.entity !== "campaign" ? h("div", { class: "small muted" }, `${e.entity} ${e.entity_id}`) : null),
      h("td", {}, e.from_state && e.to_state && e.from_state !== e.to_state ? [badge(e.from_state), " → ", badge(e.to_state)] : e.to_state ? badge(e.to_state) : "–"),
      h("td", { class: "small" }, [e.reason, summary(e.data)].filter(Boolean).join(" · ")))) : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No events yet.")));
  }

  async function fetchNew() {
    for (let i = 0; i < 50; i++) {
      const page = await api("GET", `/api/v1/campaigns/${encodeURIComponent(campaignOf().id)}/events?after=${after}&limit=${PAGE}${onlyControl.checked ? "&entity=campaign" : ""}`);
      items.push(...page.items);
      if (page.items.length) after = Number(page.items[page.items.length - 1].id);
      if (page.items.length < PAGE) break;
    }
    if (items.length > 20 * SHOWN) items.splice(0, items.length - 20 * SHOWN);
    render();
  }

  function load() {
    loading = loading || fetchNew().catch(showBanner).finally(() => { loading = null; });
    return loading;
  }

  // The server filters campaign actions (?entity=campaign): re-read when the choice changes.
  onlyControl.addEventListener("change", () => { items.length = 0; after = 0; render(); load(); });
  return { el, load, changed: debounce(() => { if (el.isConnected && !el.closest("[hidden]")) load(); }, 800) };
}
