// Signaling: one WebSocket to the hub (/ws), protocol v1, with automatic resume.
//
// - `request(msg)` sends a request with a fresh `id` and resolves with the reply carrying it back as `reply_to`
//   (or rejects with the hub's `error` object, or a local `timeout` error after `REQUEST_TIMEOUT_MS`; the caller
//   shows it next to the control that sent the request).
// - Every message except `error` replies is handed to `onMessage` (replies too, so state lives in one place:
//   lobby.joined, peer.joined, signal, chat, caption, unsolicited errors…).
// - When the socket drops (and the close was not final: 4001 resumed elsewhere, 4004 removed by an admin), it
//   reconnects with exponential backoff and full jitter, and says `hello {resume: token}`. The resume token is
//   kept in sessionStorage (per tab), so a page reload within the server's resume grace resumes too.
// - A client-side heartbeat (`ping` every heartbeat_interval; no `pong` within 2 intervals closes the socket)
//   finds half-open connections the browser would otherwise keep for minutes.

const REQUEST_TIMEOUT_MS = 30000;
const STORAGE_KEY = "voicebot.session";
/** Close codes after which reconnecting would be wrong (the session lives elsewhere or was removed). */
const FINAL_CLOSE_CODES = new Map([
  [4001, "This session was resumed in another tab or window."],
  [4004, "You were removed by an administrator."],
]);

/** Backoff before reconnect attempt `n` (1-based): 0.25 s doubling to at most 10 s, full jitter above half. */
export function backoffDelay(n) {
  const ceiling = Math.min(10000, 250 * 2 ** (n - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** The saved session of this tab: `{name, token, lobbyId}` or null. */
export function loadSaved() {
  try {
    return JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
  } catch {
    return null;
  }
}

function save(data) {
  try {
    if (data) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(data));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    /* storage disabled: resume after reload is lost, live reconnects still work */
  }
}

/** A local error shaped like the hub's `error` message (so the UI shows both alike). */
export function localError(code, message, severity = "medium", extra = {}) {
  return { type: "error", code, category: "network", severity, message, correlation_id: null,
           retryable: true, local: true, ...extra };
}

export class Signaling extends EventTarget {
  /**
   * @param {string} url  WebSocket URL of the hub (`ws://host:port/ws`).
   * @param {{onMessage: (msg: object) => void, onStatus: (status: object) => void}} handlers
   */
  constructor(url, { onMessage, onStatus }) {
    super();
    this.url = url;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.identity = null; // {name, password} of the current login
    this.welcome = null; // last welcome
    this.attempt = 0;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.lastPong = 0;
    this.stopped = true;
    this.status = { state: "offline" };
  }

  /** Log in as `name` (resuming this tab's session when the saved one has the same name). Resolves with the
   * `welcome`; rejects with the hub's error (e.g. `auth_failed` when the name needs its password). */
  async login(name, password) {
    this.identity = { name, password: password || undefined };
    this.stopped = false;
    this.attempt = 0;
    return this._open();
  }

  /** Remember which lobby we are in, so a resume that lost its session can rejoin it. */
  rememberLobby(lobbyId) {
    const saved = loadSaved();
    if (saved) save({ ...saved, lobbyId: lobbyId || null });
  }

  /** Close for good (no reconnect) and forget the session. */
  logout() {
    this.stopped = true;
    save(null);
    this._clearRetry();
    if (this.ws) this.ws.close(1000, "bye");
    this._setStatus({ state: "offline" });
  }

  /** Reconnect now (the banner's button), skipping the remaining backoff. */
  reconnectNow() {
    if (!this.identity) return;
    this.stopped = false;
    this._clearRetry();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(4000, "reconnect");
    else this._open().catch(() => {});
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.welcome !== null;
  }

  /** Send a request and wait for its reply (or error). */
  request(msg, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.connected) {
      return Promise.reject(localError("not_connected", "not connected to the server (reconnecting)", "low"));
    }
    return this._request(msg, timeoutMs);
  }

  /** Send without waiting for a reply (signals, chat). Returns false when not connected. */
  send(msg) {
    if (!this.connected) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  // -- internals -------------------------------------------------------------------------------------
  _request(msg, timeoutMs) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(localError("timeout", `no reply to ${msg.type} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, type: msg.type });
      this.ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  _setStatus(status) {
    this.status = status;
    this.onStatus(status);
  }

  _open() {
    this._clearRetry();
    const resuming = this.attempt > 0;
    this._setStatus({ state: resuming ? "reconnecting" : "connecting", attempt: this.attempt });
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        reject(localError("connect_failed", `cannot open ${this.url}: ${err.message}`, "high"));
        return;
      }
      this.ws = ws;
      this.welcome = null;
      let settled = false;
      ws.onopen = async () => {
        const saved = loadSaved();
        const hello = { type: "hello", name: this.identity.name, protocol: 1 };
        if (this.identity.password) hello.password = this.identity.password;
        if (saved && saved.token && saved.name === this.identity.name) hello.resume = saved.token;
        try {
          const welcome = await this._request(hello, REQUEST_TIMEOUT_MS);
          this.welcome = welcome;
          this.attempt = 0;
          save({ name: welcome.name, token: welcome.resume_token,
                 lobbyId: welcome.lobby_id || (saved && saved.name === welcome.name ? saved.lobbyId : null) });
          this._startHeartbeat(welcome.heartbeat_interval || 15);
          this._setStatus({ state: "connected", resumed: welcome.resumed });
          settled = true;
          this.onMessage({ ...welcome, previousLobbyId: saved && saved.name === welcome.name ? saved.lobbyId : null });
          resolve(welcome);
        } catch (err) {
          settled = true;
          if (err.code === "auth_failed" || err.code === "name_invalid" || err.code === "login_throttled") {
            this.stopped = true; // the user must change something: do not retry by ourselves
            ws.close(1000, "login failed");
            this._setStatus({ state: "offline", error: err });
          }
          reject(err);
        }
      };
      ws.onmessage = (event) => this._receive(event.data);
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this._stopHeartbeat();
        this.welcome = null;
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(localError("connection_lost", `connection lost before the reply to ${p.type}`, "low"));
          this.pending.delete(id);
        }
        if (!settled) {
          settled = true;
          reject(localError("connect_failed", `cannot reach the server (${event.code || "no answer"})`, "medium"));
        }
        const final = FINAL_CLOSE_CODES.get(event.code);
        if (final) {
          this.stopped = true;
          save(null);
          this._setStatus({ state: "closed", code: event.code, reason: final });
          return;
        }
        if (this.stopped) {
          if (this.status.state !== "offline") this._setStatus({ state: "offline" });
          return;
        }
        this._scheduleRetry(event.code, event.reason);
      };
    });
  }

  _scheduleRetry(code, reason) {
    this.attempt += 1;
    const delay = backoffDelay(this.attempt);
    this._setStatus({ state: "reconnecting", attempt: this.attempt, inMs: delay, code, reason });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this._open().catch(() => {}); // failures close the socket, which schedules the next attempt
    }, delay);
  }

  _clearRetry() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  _startHeartbeat(intervalS) {
    this._stopHeartbeat();
    this.lastPong = performance.now();
    const ms = Math.max(1000, intervalS * 1000);
    this.heartbeatTimer = setInterval(() => {
      if (performance.now() - this.lastPong > 2 * ms + 1000) {
        this.ws.close(4000, "heartbeat timeout"); // half-open: reconnect and resume
        return;
      }
      this.send({ type: "ping" });
    }, ms);
  }

  _stopHeartbeat() {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  _receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.onMessage(localError("invalid_json", "the server sent a frame that is not JSON", "low"));
      return;
    }
    if (msg.type === "pong") {
      this.lastPong = performance.now();
      if (!this.pending.has(msg.reply_to)) return;
    }
    const waiter = msg.reply_to !== undefined ? this.pending.get(msg.reply_to) : undefined;
    if (waiter) {
      this.pending.delete(msg.reply_to);
      clearTimeout(waiter.timer);
      if (msg.type === "error") {
        waiter.reject({ ...msg, request: waiter.type });
      } else {
        waiter.resolve(msg);
        if (msg.type === "welcome") return; // handled by _open after the session is saved
      }
      if (msg.type !== "error") this.onMessage(msg);
      return;
    }
    this.onMessage(msg);
  }
}
