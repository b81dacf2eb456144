// A confirmation / form dialog on the page's one <dialog>, and error boxes in words.

import { describe } from "./api.js";
import { h, replace } from "./dom.js";

export function errorBox(err) {
  const { title, lines } = describe(err);
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, title), lines.length ? h("ul", {}, lines.map((l) => h("li", {}, l))) : null);
}

export function showBanner(err) {
  const banner = document.getElementById("banner");
  const { title, lines } = describe(err);
  replace(banner,
    h("div", {}, h("strong", {}, `${title}: `), lines.join(" ")),
    h("button", { class: "link close", type: "button", "aria-label": "Dismiss", onclick: () => { banner.hidden = true; } }, "Dismiss"));
  banner.hidden = false;
}

export function hideBanner() {
  document.getElementById("banner").hidden = true;
}

// Opens the dialog; `submit(form)` runs on confirm and may throw an ApiError, which is shown
// in the dialog (it stays open). Resolves with submit's result, or null when cancelled.
export function formDialog({ title, body = [], confirm = "Confirm", danger = false, submit }) {
  const dialog = document.getElementById("dialog");
  return new Promise((resolve) => {
    const errors = h("div", { "aria-live": "assertive" });
    const ok = h("button", { type: "submit", class: danger ? "danger" : "primary" }, confirm);
    const cancel = h("button", { type: "button", onclick: () => { dialog.close(); } }, "Cancel");
    const form = h("form", { method: "dialog" },
      h("h2", { id: "dialog-title" }, title), body, errors, h("div", { class: "buttons" }, cancel, ok));
    let result = null;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      ok.disabled = cancel.disabled = true;
      errors.replaceChildren();
      try {
        result = (await submit(form)) ?? true;
        dialog.close();
      } catch (err) {
        errors.append(errorBox(err));
      } finally {
        ok.disabled = cancel.disabled = false;
      }
    });
    dialog.addEventListener("close", () => resolve(result), { once: true });
    replace(dialog, form);
    dialog.showModal();
    const first = form.querySelector("input, select, textarea");
    (first || ok).focus();
  });
}
