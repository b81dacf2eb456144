// The campaign's configuration: shown always, editable only when paused, draft or scheduled.
// Saved with PATCH and If-Match: <version>; a 409, 412 or 422 is shown in words.

import { api } from "./api.js";
import { errorBox } from "./dialog.js";
import { h, replace } from "./dom.js";

const EDITABLE = ["draft", "scheduled", "paused"];
const MODES = ["preview", "progressive", "power", "predictive", "agentless"];
const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

export function configPanel(campaignOf, { staff, onSaved }) {
  const f = {};
  const input = (key, label, attrs = {}) => {
    f[key] = h(attrs.tag || "input", { id: `cfg-${key}`, name: key, ...attrs, tag: null });
    return h("div", {}, h("label", { for: `cfg-${key}` }, label), f[key]);
  };
  const hint = h("p", { class: "hint" });
  const result = h("div", { "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "primary" }, "Save changes");
  const fieldset = h("fieldset", {},
    h("div", { class: "fields" },
      input("name", "Name", { maxlength: 200 }),
      h("div", {}, h("label", { for: "cfg-mode" }, "Pacing mode"),
        f.mode = h("select", { id: "cfg-mode" }, MODES.map((m) => h("option", { value: m }, m)))),
      input("lines_per_agent", "Lines per agent", { type: "number", step: "0.1", min: "1" }),
      input("calls_per_second", "Calls per second", { type: "number", step: "0.1", min: "0" }),
      input("max_abandon_rate", "Max abandon rate (0–1)", { type: "number", step: "0.005", min: "0", max: "1" }),
      input("wrap_up_seconds", "Wrap-up seconds", { type: "number", step: "1", min: "0" }),
      input("agent_ids", "Agents (ids, comma separated)"),
      input("caller_ids", "Caller ids (comma separated)"),
      input("sender_email", "Sender email", { type: "email" }),
      input("sender_name", "Sender name")),
    input("sequence", "Sequence (JSON)", { tag: "textarea", spellcheck: "false" }),
    input("schedule", "Schedule (JSON, or empty for none)", { tag: "textarea", spellcheck: "false" }),
    h("div", { class: "row" }, h("span", { class: "spacer" }), save));
  const form = h("form", { "aria-labelledby": "config-title" }, hint, fieldset, result);
  const el = h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", { id: "config-title" }, "Configuration")), form);
  let loadedVersion = null;
  let dirty = false; // the user has typed since the last fill: don't overwrite their edits
  form.addEventListener("input", () => { dirty = true; });

  function fill(c) {
    f.name.value = c.name;
    f.mode.value = c.pacing.mode;
    f.lines_per_agent.value = c.pacing.lines_per_agent;
    f.calls_per_second.value = c.pacing.calls_per_second;
    f.max_abandon_rate.value = c.pacing.max_abandon_rate;
    f.wrap_up_seconds.value = c.wrap_up_seconds;
    f.agent_ids.value = c.agent_ids.join(", ");
    f.caller_ids.value = c.caller_ids.join(", ");
    f.sender_email.value = c.sender ? c.sender.email : "";
    f.sender_name.value = c.sender ? c.sender.name : "";
    f.sequence.value = JSON.stringify(c.sequence, null, 2);
    f.schedule.value = c.schedule ? JSON.stringify(c.schedule, null, 2) : "";
    loadedVersion = c.version;
    dirty = false;
  }

  function json(field, text) {
    try {
      return text.trim() ? JSON.parse(text) : null;
    } catch (exc) {
      throw new Error(`${field} is not valid JSON: ${exc.message}`);
    }
  }

  // Only what the form changed goes in the PATCH.
  function changes(c) {
    const out = {};
    const pacing = { ...c.pacing, mode: f.mode.value, lines_per_agent: Number(f.lines_per_agent.value),
      calls_per_second: Number(f.calls_per_second.value), max_abandon_rate: Number(f.max_abandon_rate.value) };
    const sender = f.sender_email.value ? { email: f.sender_email.value, name: f.sender_name.value } : null;
    const next = { name: f.name.value, pacing, wrap_up_seconds: Number(f.wrap_up_seconds.value),
      agent_ids: list(f.agent_ids.value), caller_ids: list(f.caller_ids.value), sender,
      sequence: json("Sequence", f.sequence.value), schedule: json("Schedule", f.schedule.value) };
    for (const [key, value] of Object.entries(next)) {
      if (JSON.stringify(value) !== JSON.stringify(c[key] ?? null)) out[key] = value;
    }
    return out;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    result.replaceChildren();
    const c = campaignOf();
    try {
      const patch = changes(c);
      if (!Object.keys(patch).length) {
        replace(result, h("div", { class: "notice" }, "Nothing changed."));
        return;
      }
      save.disabled = true;
      const updated = await api("PATCH", `/api/v1/campaigns/${encodeURIComponent(c.id)}`, patch, { "If-Match": String(loadedVersion) });
      fill(updated);
      onSaved(updated);
      replace(result, h("div", { class: "notice" }, `Saved: ${Object.keys(patch).join(", ")} (version ${updated.version}).`));
    } catch (err) {
      replace(result, errorBox(err));
    } finally {
      save.disabled = false;
    }
  });

  function update(c, { refill = false } = {}) {
    const editable = staff && EDITABLE.includes(c.state);
    fieldset.disabled = !editable;
    hint.textContent = editable
      ? `Version ${c.version}. Changes apply when the campaign runs again.`
      : staff ? `Version ${c.version}. The campaign is ${c.state}: pause it to change its configuration.`
        : `Version ${c.version}. Read only.`;
    if (refill || !dirty || !editable) fill(c);
  }

  return { el, update };
}
