// The call view: a tile per member (people and bots: connection state, level meter, bot status badge, remove),
// the bot picker with each bot's options, live captions and chat.

import { StreamMeter } from "./audio.js";
import { $, clearInline, el, levelMeter, showError } from "./ui.js";

const MAX_CAPTIONS = 100;
const MAX_CHAT = 200;

/** Option fields per known bot (others get a free JSON field). Names are the `bot.add` fields. */
const BOT_OPTIONS = {
  echo: [],
  speaker: [
    { name: "text", label: "Text to say", kind: "textarea", required: true, maxlength: 1000,
      value: "Hello from the speaker bot." },
    { name: "repeat", label: "Repeat every (seconds, optional)", kind: "number", min: 0.5, max: 3600, step: 0.5 },
  ],
  assistant: [
    { name: "persona", label: "Persona (system prompt, optional)", kind: "textarea", maxlength: 4000 },
    { name: "greeting", label: "Greeting (optional; empty: the default hello)", kind: "text", maxlength: 500 },
    { name: "no_greeting", label: "Join silently (no greeting)", kind: "checkbox" },
  ],
};

function timeOf(ts) {
  const d = ts ? new Date(ts) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class CallView {
  /**
   * @param {{request: (msg: object) => Promise<object>, ctx: AudioContext, micMeter: () => StreamMeter|null,
   *          selfName: () => string, sendChat: (text: string) => boolean}} deps
   */
  constructor(deps) {
    this.deps = deps;
    this.tiles = new Map(); // peer_id -> {li, peer, meter: StreamMeter|null, audio}
    this.captions = new Map(); // caption key -> li
    this.bots = [];
    this.selfId = "";
    this.meterTimer = null;
    $("#bot-select").addEventListener("change", () => this._renderBotOptions());
    $("#bot-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.addBot(event.target);
    });
    $("#chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("#chat-text");
      const text = input.value.trim();
      if (!text) return;
      clearInline(event.target);
      // `chat` has no reply (the hub echoes the message to everyone, us included); errors arrive unsolicited.
      if (this.deps.sendChat(text)) input.value = "";
      else showError({ code: "not_connected", severity: "low", message: "not connected (reconnecting)" }, input);
    });
  }

  /** Show the call for `lobby` with ourselves as `self`. */
  open(lobby, self) {
    this.selfId = self.peer_id;
    $("#call-name").textContent = lobby.name;
    $("#call-id").textContent = lobby.id;
    $("#call-flags").textContent = [lobby.private ? "private" : "public", lobby.has_password ? "password" : "",
                                    lobby.persistent ? "persistent" : "", `max ${lobby.max_members}`]
      .filter(Boolean).join(" · ");
    if (!this.tiles.has(self.peer_id)) this._tile({ ...self, kind: "self" });
    this.refreshBots();
    if (!this.meterTimer) this.meterTimer = setInterval(() => this._updateMeters(), 100);
  }

  /** Leave the call view: remove every tile, caption and chat line. */
  close() {
    for (const id of [...this.tiles.keys()]) this.removePeer(id);
    this.captions.clear();
    $("#captions").replaceChildren();
    $("#chat-log").replaceChildren();
    if (this.meterTimer) clearInterval(this.meterTimer);
    this.meterTimer = null;
  }

  /** Names of members by peer id (captions say who spoke). */
  nameOf(peerId) {
    const tile = this.tiles.get(peerId);
    return tile ? tile.peer.name : peerId;
  }

  addPeer(peer) {
    if (!this.tiles.has(peer.peer_id)) this._tile(peer);
  }

  removePeer(peerId) {
    const tile = this.tiles.get(peerId);
    if (!tile) return;
    if (tile.meter) tile.meter.dispose();
    tile.audio.srcObject = null;
    tile.li.remove();
    this.tiles.delete(peerId);
  }

  /** A peer link's connection state (`new`, `connecting`, `connected`, `failed`, `closed`, `waiting`…). */
  setState(peerId, state) {
    const tile = this.tiles.get(peerId);
    if (!tile) return;
    tile.li.dataset.state = state;
    tile.li.querySelector(".state").textContent = state;
  }

  /** Remote audio of a peer: play it and meter it. */
  setStream(peerId, stream) {
    const tile = this.tiles.get(peerId);
    if (!tile) return;
    tile.audio.srcObject = stream;
    tile.audio.play().catch(() => {}); // autoplay policy: plays after the next user gesture
    if (tile.meter) tile.meter.dispose();
    tile.meter = new StreamMeter(this.deps.ctx, stream);
  }

  meterOf(peerId) {
    const tile = this.tiles.get(peerId);
    return tile ? tile.meter : null;
  }

  /** `bot.status {peer_id, state, detail}` → the bot's badge. */
  setBotStatus(msg) {
    const tile = this.tiles.get(msg.peer_id);
    if (!tile) return;
    const badge = tile.li.querySelector(".bot-status");
    badge.hidden = false;
    badge.dataset.state = msg.state;
    badge.textContent = msg.state;
    badge.title = msg.detail || "";
  }

  /** `caption {from, name, role, about, text, final, turn_id}`: partial greyed, final solid, speaker named. */
  addCaption(msg) {
    const speaker = msg.role === "user" ? this.nameOf(msg.about || msg.from) : (msg.name || this.nameOf(msg.from));
    const key = [msg.from, msg.role, msg.turn_id ?? `~${msg.about || ""}`].join("|");
    let li = this.captions.get(key);
    if (!li) {
      li = el("li", { class: "caption" }, el("span", { class: "who" }), " ", el("span", { class: "text" }));
      $("#captions").append(li);
      this.captions.set(key, li);
      while ($("#captions").children.length > MAX_CAPTIONS) $("#captions").firstElementChild.remove();
    }
    li.dataset.role = msg.role;
    li.dataset.final = msg.final ? "true" : "false";
    li.classList.toggle("partial", !msg.final);
    li.querySelector(".who").textContent = `${speaker}:`;
    li.querySelector(".text").textContent = msg.text;
    if (msg.final) this.captions.delete(key); // the next caption of that speaker starts a new line
    const list = $("#captions");
    list.scrollTop = list.scrollHeight; // scroll the list, never the page
  }

  addChat(msg) {
    const log = $("#chat-log");
    log.append(el("li", { class: msg.from === this.selfId ? "mine" : "" },
      el("time", {}, timeOf(msg.ts)), " ", el("strong", {}, msg.name), " ", el("span", {}, msg.text)));
    while (log.children.length > MAX_CHAT) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  /** Ask the hub which bots exist (and which a worker can take now). */
  async refreshBots() {
    try {
      const reply = await this.deps.request({ type: "bot.list" });
      this.bots = reply.bots || [];
    } catch (err) {
      showError(err, $("#bot-select"));
      return;
    }
    const select = $("#bot-select");
    const current = select.value;
    select.replaceChildren(...this.bots.map((b) => el("option", { value: b.name }, b.available
      ? b.name : `${b.name} (busy)`)));
    if (this.bots.some((b) => b.name === current)) select.value = current;
    $("#bot-add").disabled = this.bots.length === 0;
    if (this.optionsFor !== select.value) this._renderBotOptions(); // keep what the user typed
  }

  async addBot(form) {
    clearInline(form);
    const bot = $("#bot-select").value;
    const msg = { type: "bot.add", bot };
    for (const input of $("#bot-options").querySelectorAll("[data-option]")) {
      const name = input.dataset.option;
      if (input.type === "checkbox") {
        if (name === "no_greeting" && input.checked) msg.greeting = "";
      } else if (name === "__json") {
        if (input.value.trim()) {
          try {
            Object.assign(msg, JSON.parse(input.value), { type: "bot.add", bot });
          } catch (err) {
            showError({ code: "invalid_options", severity: "low", message: `options: ${err.message}`,
                        field: "__json" }, input);
            return;
          }
        }
      } else if (input.value.trim() !== "" && !(name === "greeting" && "greeting" in msg)) {
        msg[name] = input.type === "number" ? Number(input.value) : input.value;
      }
    }
    const button = $("#bot-add");
    button.disabled = true;
    button.textContent = "Adding…";
    try {
      await this.deps.request(msg, 60000);
    } catch (err) {
      showError(err, button);
    } finally {
      button.disabled = false;
      button.textContent = "Add bot";
    }
  }

  async removeBot(peerId, button) {
    button.disabled = true;
    try {
      await this.deps.request({ type: "bot.remove", peer_id: peerId });
    } catch (err) {
      button.disabled = false;
      showError(err, button);
    }
  }

  _renderBotOptions() {
    const name = $("#bot-select").value;
    this.optionsFor = name;
    const info = this.bots.find((b) => b.name === name);
    $("#bot-description").textContent = info ? info.description : "";
    const fields = BOT_OPTIONS[name] || [{ name: "__json", label: "Options (JSON object, optional)",
                                           kind: "textarea" }];
    $("#bot-options").replaceChildren(...fields.map((f) => {
      const id = `bot-opt-${f.name}`;
      const attrs = { id, name: f.name, dataset: { option: f.name }, required: f.required, maxlength: f.maxlength,
                      min: f.min, max: f.max, step: f.step };
      if (f.kind === "checkbox") {
        return el("div", { class: "field check" },
          el("label", {}, el("input", { ...attrs, type: "checkbox" }), ` ${f.label}`));
      }
      const input = f.kind === "textarea" ? el("textarea", { ...attrs, rows: 2 }, f.value || "")
        : el("input", { ...attrs, type: f.kind, value: f.value });
      return el("div", { class: "field" }, el("label", { for: id }, f.label), input);
    }));
  }

  _tile(peer) {
    const isSelf = peer.kind === "self";
    const isBot = peer.kind === "bot";
    const audio = el("audio", { autoplay: true });
    const li = el("li", { class: `tile ${peer.kind}`, dataset: { peerId: peer.peer_id, kind: peer.kind,
                                                                state: isSelf ? "local" : "waiting" },
                          "aria-label": `${peer.name}${isSelf ? " (you)" : ""}` },
      el("div", { class: "tile-head" },
        el("span", { class: "avatar", "aria-hidden": "true" }, (peer.name[0] || "?").toUpperCase()),
        el("span", { class: "tile-name", title: peer.name }, peer.name),
        el("span", { class: "kind" }, isSelf ? "you" : peer.kind)),
      levelMeter(`${peer.name} level`),
      el("div", { class: "tile-foot" },
        el("span", { class: "state", role: "status" }, isSelf ? "microphone" : "waiting"),
        el("span", { class: "bot-status", hidden: true }),
        isBot ? el("button", { type: "button", class: "secondary small remove-bot",
                               "aria-label": `Remove bot ${peer.name}`,
                               onclick: (event) => this.removeBot(peer.peer_id, event.currentTarget) }, "Remove")
          : null),
      el("p", { class: "inline-error", hidden: true }),
      audio);
    li.dataset.errors = "";
    $("#tiles").append(li);
    this.tiles.set(peer.peer_id, { li, peer, meter: null, audio });
  }

  _updateMeters() {
    if (document.hidden) return; // nobody looks: save the CPU
    for (const [id, tile] of this.tiles) {
      const meter = id === this.selfId ? this.deps.micMeter() : tile.meter;
      tile.li.querySelector("meter").value = meter ? meter.level() : 0;
    }
  }
}
