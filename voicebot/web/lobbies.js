// The lobby panel: the public lobby list (kept current by polling `lobby.list` while it is visible), the
// invited lobby from `?lobby=ID`, and the create form.

import { $, clearInline, el, showError } from "./ui.js";

const POLL_MS = 3000;

export class LobbyPanel {
  /**
   * @param {{request: (msg: object) => Promise<object>, join: (lobbyId: string, password?: string, anchor?: Element)
   *   => Promise<void>}} actions
   */
  constructor({ request, join }) {
    this.request = request;
    this.join = join;
    this.timer = null;
    this.lobbies = [];
    this.invited = null; // lobby id from ?lobby=
    this.rendered = "";
    $("#refresh-lobbies").addEventListener("click", () => this.refresh($("#refresh-lobbies")));
    $("#create-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create(event.target);
    });
    $("#invite-form").addEventListener("submit", (event) => {
      event.preventDefault();
      clearInline(event.target);
      this.join(this.invited, $("#invite-password").value || undefined, $("#invite-join"));
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.timer) this.refresh();
    });
  }

  /** Preselect lobby `id` (invite link). */
  invite(id) {
    this.invited = id || null;
    $("#invite").hidden = !id;
    $("#invite-id").textContent = id || "";
    this._render();
  }

  /** The invited lobby needs a password (its join said `wrong_password`). */
  askInvitePassword() {
    $("#invite-password-field").hidden = false;
    $("#invite-password").focus();
  }

  start() {
    this.stop();
    this.refresh();
    this.timer = setInterval(() => {
      if (!document.hidden) this.refresh();
    }, POLL_MS);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async refresh(anchor = null) {
    try {
      const reply = await this.request({ type: "lobby.list" });
      this.lobbies = reply.lobbies || [];
      $("#lobby-list-error").hidden = true;
      this._render();
    } catch (err) {
      if (err.code !== "not_connected" && err.code !== "connection_lost") showError(err, anchor || $("#lobby-list"));
    }
  }

  async create(form) {
    clearInline(form);
    const data = new FormData(form);
    const msg = { type: "lobby.create", name: String(data.get("name") || "").trim(),
                  private: data.get("private") === "on", persistent: data.get("persistent") === "on" };
    const max = Number(data.get("max_members"));
    if (Number.isInteger(max) && max > 0) msg.max_members = max;
    const password = String(data.get("password") || "");
    if (password) msg.password = password;
    const button = $("#create-button");
    button.disabled = true;
    try {
      const reply = await this.request(msg);
      form.reset();
      await this.join(reply.lobby.id, password || undefined, button);
    } catch (err) {
      showError(err, button);
    } finally {
      button.disabled = false;
    }
  }

  _render() {
    const list = $("#lobby-list");
    const key = JSON.stringify([this.invited, this.lobbies]);
    $("#lobby-empty").hidden = this.lobbies.length > 0;
    if (key === this.rendered) return; // unchanged: keep inline errors and typed passwords

    const items = this.lobbies.map((lobby) => {
      const passwordId = `pw-${lobby.id}`;
      const form = el("form", { class: "lobby", dataset: { lobbyId: lobby.id, errors: "" },
                                onsubmit: (event) => {
                                  event.preventDefault();
                                  clearInline(event.target);
                                  const pw = event.target.querySelector("input[type=password]");
                                  this.join(lobby.id, pw && pw.value ? pw.value : undefined,
                                            event.target.querySelector("button"));
                                } },
        el("div", { class: "lobby-info" },
          el("strong", {}, lobby.name),
          el("span", { class: "muted small" }, ` ${lobby.members}/${lobby.max_members}`,
             lobby.has_password ? " · password" : "", lobby.persistent ? " · persistent" : "")),
        lobby.has_password
          ? el("span", { class: "field compact" },
              el("label", { for: passwordId, class: "visually-hidden" }, `Password for ${lobby.name}`),
              el("input", { id: passwordId, name: "password", type: "password", placeholder: "password",
                            autocomplete: "off" }))
          : null,
        el("button", { type: "submit", disabled: lobby.members >= lobby.max_members,
                       "aria-label": `Join ${lobby.name}` }, lobby.id === this.invited ? "Join (invited)" : "Join"),
        el("p", { class: "inline-error", hidden: true }));
      return el("li", { class: lobby.id === this.invited ? "invited" : "" }, form);
    });
    if (list.contains(document.activeElement)) return; // the user is typing: render on the next poll
    this.rendered = key;
    list.replaceChildren(...items);
  }
}
