// The login page: username + password -> session cookie; the CSRF token stays in memory.

import { api } from "./api.js";
import { errorBox } from "./dialog.js";
import { h, replace } from "./dom.js";

export async function loginView(root, { onLogin }) {
  const errors = h("div", { "aria-live": "assertive" });
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h("form", { class: "panel login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in to dialer"),
    h("label", { for: "username" }, "Username"), username,
    h("label", { for: "password" }, "Password"), password,
    errors,
    h("div", { class: "row" }, h("span", { class: "spacer" }), submit));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    submit.disabled = true;
    try {
      const out = await api("POST", "/api/v1/auth/login", { username: username.value, password: password.value });
      const me = await api("GET", "/api/v1/auth/me");
      onLogin({ ...me, csrf_token: out.csrf_token });
    } catch (err) {
      errors.append(errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, form);
  username.focus();
}
