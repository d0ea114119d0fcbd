// Small DOM helpers and the error display policy shared by every panel.
//
// Errors are shown by severity (the hub's `error.severity`):
// - low: inline, next to the control that sent the request (or in the activity log when no control did);
// - medium: a toast that goes away by itself (or with its close button);
// - high / critical: a banner at the top with a "Reconnect" button (the hub closes the connection after them).
// The correlation id is always visible so a user can quote it in a bug report.

/** `el("button", {class: "x", onclick}, "text", child…)`: create an element. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** One line describing an error: "message (code · id cid)". */
export function describeError(err) {
  const parts = [err.code || "error"];
  if (err.correlation_id) parts.push(`id ${err.correlation_id}`);
  if (err.retry_after) parts.push(`retry in ${Math.ceil(err.retry_after)} s`);
  return { text: err.message || String(err), meta: parts.join(" · ") };
}

function errorBody(err) {
  const { text, meta } = describeError(err);
  return [el("span", { class: "error-text" }, text), " ",
          el("span", { class: "error-meta", "data-cid": err.correlation_id || "" }, `(${meta})`)];
}

/** Show `err` by its severity. `anchor`: the control (or its container) the request came from. */
export function showError(err, anchor = null) {
  if (!err || typeof err !== "object") err = { message: String(err), severity: "medium", code: "client_error" };
  if (err instanceof Error) err = { message: err.message, severity: "medium", code: err.name || "client_error" };
  const severity = err.severity || "medium";
  console.warn("voicebot error", err);
  if (severity === "high" || severity === "critical") showBanner(err);
  else if (severity === "medium") showToast(err);
  else showInline(err, anchor);
}

/** The inline error slot of a control: the `.inline-error` of its closest `.field`/`form`/`[data-errors]`. */
function inlineSlot(anchor) {
  const scope = anchor && anchor.closest ? anchor.closest("[data-errors], .field, form, fieldset") : null;
  return (scope && scope.querySelector(".inline-error")) || $("#activity-errors");
}

export function showInline(err, anchor) {
  const slot = inlineSlot(anchor);
  slot.replaceChildren(...errorBody(err));
  slot.dataset.code = err.code || "";
  slot.dataset.severity = err.severity || "low";
  slot.hidden = false;
  if (err.field && anchor && anchor.closest) {
    const form = anchor.closest("form");
    const input = form && form.querySelector(`[name="${CSS.escape(err.field)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", slot.id || "");
    }
  }
}

/** Clear the inline errors of a form/field (after the user tries again). */
export function clearInline(anchor) {
  const slot = inlineSlot(anchor);
  if (slot && slot.id !== "activity-errors") {
    slot.hidden = true;
    slot.replaceChildren();
  }
  const form = anchor && anchor.closest ? anchor.closest("form") : null;
  if (form) for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

export function showToast(err, { timeoutMs = 8000 } = {}) {
  const toast = el("div", { class: `toast toast-${err.severity || "medium"}`, role: "status",
                            dataset: { code: err.code || "", severity: err.severity || "medium" } },
    el("div", { class: "toast-body" }, ...errorBody(err)),
    el("button", { type: "button", class: "icon", "aria-label": "Dismiss", onclick: () => toast.remove() }, "×"));
  $("#toasts").append(toast);
  setTimeout(() => toast.remove(), timeoutMs);
}

/** Non-error notices (copied, lobby closed…) reuse the toast look. */
export function notify(message) {
  showToast({ message, severity: "info", code: "notice" }, { timeoutMs: 4000 });
}

let bannerReconnect = null;

/** The banner's Reconnect button calls `fn`. */
export function onBannerReconnect(fn) {
  bannerReconnect = fn;
}

export function showBanner(err, { reconnect = true } = {}) {
  const banner = $("#banner");
  banner.dataset.severity = err.severity || "high";
  banner.dataset.code = err.code || "";
  $("#banner-body").replaceChildren(...errorBody(err));
  $("#banner-reconnect").hidden = !reconnect;
  banner.hidden = false;
  if (reconnect) $("#banner-reconnect").focus();
}

export function hideBanner() {
  $("#banner").hidden = true;
}

export function initBanner() {
  $("#banner-reconnect").addEventListener("click", () => {
    hideBanner();
    if (bannerReconnect) bannerReconnect();
  });
  $("#banner-close").addEventListener("click", hideBanner);
}

/** A level meter element (a <meter> for assistive tech, styled as a bar). */
export function levelMeter(label) {
  return el("meter", { class: "level", min: 0, max: 1, low: 0.2, high: 0.85, optimum: 0.5, value: 0,
                       "aria-label": label });
}
