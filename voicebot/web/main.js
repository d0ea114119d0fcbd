// voicebot web client: wires the signaling socket, the microphone, the WebRTC mesh and the panels together.
//
// URL parameters: `lobby=ID` preselects a lobby (invite links), `name=` prefills the name, `join=1` connects and
// joins as soon as the microphone is granted, `ws=URL` overrides the WebSocket URL (default: this origin's /ws,
// wss on https). Test hooks: `fake_tone=HZ` replaces the microphone with a tone, `fake_mic=1` with silence (both
// let `voicebot.inject(url)` speak a sound file), `test=1` adds `voicebot.receive(msg)` (feed a message as if
// the server had sent it). `window.voicebot` exposes state and per-peer audio probes for tests and debugging.

import { Microphone } from "./audio.js";
import { CallView } from "./call.js";
import { LobbyPanel } from "./lobbies.js";
import { Mesh } from "./mesh.js";
import { Signaling, loadSaved } from "./signaling.js";
import { $, clearInline, hideBanner, initBanner, notify, onBannerReconnect, showBanner, showError } from "./ui.js";

const params = new URLSearchParams(location.search);
const defaultWs = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const wsUrl = params.get("ws") || defaultWs;
const fakeTone = params.has("fake_tone") ? Number(params.get("fake_tone")) : null;
const MIC_KEY = "voicebot.mic";

const mic = new Microphone({ fakeTone, fakeMic: params.get("fake_mic") === "1" });
const signaling = new Signaling(wsUrl, { onMessage: (msg) => onMessage(msg), onStatus: (s) => onStatus(s) });
const mesh = new Mesh((msg) => signaling.send(msg));
const request = (msg, timeout) => signaling.request(msg, timeout);

/** What the page knows: our welcome, the lobby we are in, its members, timing marks (for benchmarks). */
const state = {
  welcome: null,
  lobby: null,
  members: new Map(),
  micReady: null,
  autoJoin: params.get("join") === "1",
  marks: { start: performance.now() },
};

const lobbies = new LobbyPanel({ request, join: (id, pw, anchor) => joinLobby(id, pw, anchor) });
const call = new CallView({
  request, ctx: mic.ctx, micMeter: () => mic.meter, sendChat: (text) => signaling.send({ type: "chat", text }),
});

// -- connection status ------------------------------------------------------------------------------------
function onStatus(status) {
  const box = $("#conn-status");
  box.dataset.state = status.state;
  const text = {
    offline: "Offline",
    connecting: "Connecting…",
    connected: status.resumed ? "Connected (resumed)" : "Connected",
    reconnecting: status.inMs !== undefined
      ? `Reconnecting in ${(status.inMs / 1000).toFixed(1)} s (attempt ${status.attempt})…`
      : `Reconnecting (attempt ${status.attempt})…`,
    closed: `Disconnected: ${status.reason || ""}`,
  }[status.state] || status.state;
  $("#conn-text").textContent = text;
  if (status.state === "closed") {
    showBanner({ severity: "high", code: `close_${status.code}`, message: status.reason });
  }
}

// -- messages from the hub ---------------------------------------------------------------------------------
function onMessage(msg) {
  switch (msg.type) {
    case "welcome": return onWelcome(msg);
    case "lobby.joined": return enterLobby(msg.lobby, msg.peers, { resumed: false });
    case "lobby.state": return msg.lobby ? enterLobby(msg.lobby, msg.peers, { resumed: true }) : leaveLocal();
    case "lobby.left": return onLobbyLeft(msg);
    case "peer.joined": return addMember(msg.peer);
    case "peer.left": return removeMember(msg.peer_id);
    case "signal": return mesh.onSignal(msg);
    case "chat": return call.addChat(msg);
    case "caption": return call.addCaption(msg);
    case "bot.status": return call.setBotStatus(msg);
    case "bot.added": case "bot.removed": return call.refreshBots();
    case "error": return onError(msg);
    default: return undefined; // pong, signal.sent, replies handled by their callers
  }
}

function onError(err) {
  // Crossed offers are resolved by perfect negotiation (mesh.js); nothing for the user to do.
  if (err.code === "offer_glare") return console.info("offer glare resolved by perfect negotiation", err);
  showError(err);
}

function onWelcome(welcome) {
  const first = state.welcome === null;
  state.welcome = welcome;
  state.marks.welcome ??= performance.now();
  mesh.configure(welcome.peer_id, welcome.ice_servers);
  $("#login").hidden = true;
  $("#me").hidden = false;
  $("#me-name").textContent = welcome.name;
  $("#mic-panel").hidden = false;
  hideBanner();
  if (first) state.micReady = openMicrophone();
  if (welcome.lobby) {
    enterLobby(welcome.lobby, welcome.peers || [], { resumed: true });
  } else if (state.lobby || welcome.previousLobbyId) {
    // The session could not be resumed (grace expired): join the lobby we were in again.
    const lobbyId = state.lobby ? state.lobby.id : welcome.previousLobbyId;
    leaveLocal();
    joinLobby(lobbyId, undefined, null);
  } else {
    showLobbies();
    if (state.autoJoin && lobbies.invited) {
      state.autoJoin = false;
      joinLobby(lobbies.invited, undefined, $("#invite-join"));
    }
  }
}

// -- login -------------------------------------------------------------------------------------------------
async function login(event) {
  if (event) event.preventDefault();
  const form = $("#login-form");
  clearInline(form);
  const name = $("#name").value.trim();
  const password = $("#password").value;
  const button = $("#connect");
  button.disabled = true;
  mic.wake(); // inside the click: browsers allow audio from here on
  try {
    await signaling.login(name, password);
  } catch (err) {
    if (err.code === "auth_failed") {
      $("#password-field").hidden = false;
      $("#password").focus();
    }
    showError(err.severity === "low" || !err.severity ? err : { ...err, severity: "low" }, button);
  } finally {
    button.disabled = false;
  }
}

function logout() {
  if (state.lobby) signaling.send({ type: "lobby.leave" });
  leaveLocal();
  signaling.logout();
  state.welcome = null;
  lobbies.stop();
  $("#lobby-panel").hidden = true;
  $("#mic-panel").hidden = true;
  $("#me").hidden = true;
  $("#login").hidden = false;
  document.body.dataset.view = "login";
  $("#name").focus();
}

// -- microphone ---------------------------------------------------------------------------------------------
async function openMicrophone(deviceId = localStorage.getItem(MIC_KEY) || "") {
  try {
    await mic.open(deviceId);
  } catch (err) {
    if (deviceId) return openMicrophone(""); // a remembered device that is gone: use the default
    showError({ code: "microphone_unavailable", severity: "low", message: `microphone: ${err.message || err.name}`
      + " (you can still listen)" }, $("#mic-device"));
    return false;
  }
  state.marks.mic ??= performance.now();
  clearInline($("#mic-device"));
  await listDevices();
  return true;
}

/** Fill the device picker (again when devices come and go). */
async function listDevices() {
  const select = $("#mic-device");
  const devices = await mic.devices();
  select.replaceChildren(...devices.map((d) => new Option(d.label, d.deviceId)));
  select.value = mic.deviceId;
}

if (navigator.mediaDevices) navigator.mediaDevices.addEventListener("devicechange", () => {
  if (mic.track) listDevices();
});

mic.addEventListener("track", (event) => mesh.setTrack(event.detail, mic.stream));

// -- lobbies ------------------------------------------------------------------------------------------------
function showLobbies() {
  $("#lobby-panel").hidden = false;
  $("#call").hidden = true;
  document.body.dataset.view = "lobbies";
  lobbies.start();
}

async function joinLobby(lobbyId, password, anchor) {
  if (!lobbyId) return;
  await state.micReady; // join with the microphone when it can be had (listen-only otherwise)
  const msg = { type: "lobby.join", lobby_id: lobbyId };
  if (password) msg.password = password;
  try {
    await request(msg);
  } catch (err) {
    if (err.code === "wrong_password" && lobbyId === lobbies.invited) lobbies.askInvitePassword();
    showError(err, anchor);
    if (!state.lobby) showLobbies();
  }
}

/** We are in `lobby` with `peers`. `resumed`: our session came back (a reload, a reconnect, a state resend): keep
 * the connections that still work, and start over (bye + offer) with everyone else. */
function enterLobby(lobby, peers, { resumed }) {
  const same = state.lobby && state.lobby.id === lobby.id;
  if (state.lobby && !same) leaveLocal();
  state.lobby = lobby;
  state.marks.joined ??= performance.now();
  signaling.rememberLobby(lobby.id);
  lobbies.stop();
  $("#lobby-panel").hidden = true;
  $("#call").hidden = false;
  document.body.dataset.view = "call";
  call.open(lobby, { peer_id: state.welcome.peer_id, name: state.welcome.name });
  const present = new Set(peers.map((p) => p.peer_id));
  for (const id of [...state.members.keys()]) if (!present.has(id)) removeMember(id);
  for (const peer of peers) {
    addMember(peer);
    const link = mesh.links.get(peer.peer_id);
    const healthy = link && !["failed", "closed"].includes(link.state);
    if (healthy) continue;
    if (resumed) mesh.connect(peer, { fresh: true }); // the peer may hold a connection to our old page
    else if (peer.kind !== "bot") mesh.connect(peer); // newcomer offers to people; bots offer to us
  }
  const url = new URL(location.href);
  if (url.searchParams.get("lobby") !== lobby.id) {
    url.searchParams.set("lobby", lobby.id);
    url.searchParams.delete("join");
    history.replaceState(null, "", url);
  }
}

function addMember(peer) {
  state.members.set(peer.peer_id, peer);
  mesh.addMember(peer);
  call.addPeer(peer);
}

function removeMember(peerId) {
  state.members.delete(peerId);
  mesh.removeMember(peerId);
  call.removePeer(peerId);
}

function onLobbyLeft(msg) {
  if (msg.reason === "closed") notify("The lobby was closed by an administrator.");
  leaveLocal();
  if (msg.reason !== "switched") showLobbies();
}

function leaveLocal() {
  mesh.closeAll();
  state.members.clear();
  state.lobby = null;
  call.close();
  signaling.rememberLobby(null);
}

async function leave() {
  try {
    await request({ type: "lobby.leave" });
  } catch (err) {
    showError(err, $("#leave"));
  }
  const url = new URL(location.href);
  url.searchParams.delete("lobby");
  history.replaceState(null, "", url);
}

/** The invite link of the current lobby (keeps a `ws=` override so development setups work). */
function inviteLink() {
  const url = new URL(location.pathname, location.origin);
  url.searchParams.set("lobby", state.lobby.id);
  if (params.get("ws")) url.searchParams.set("ws", params.get("ws"));
  return url.toString();
}

async function copyInvite() {
  const link = inviteLink();
  try {
    await navigator.clipboard.writeText(link);
    notify(`Invite link copied: ${link}`);
  } catch {
    window.prompt("Copy this invite link", link); // clipboard refused (insecure origin): let the user copy it
  }
}

// -- mesh → tiles ------------------------------------------------------------------------------------------
mesh.addEventListener("link", ({ detail: link }) => {
  call.setState(link.peer.peer_id, link.state);
  link.addEventListener("state", (e) => {
    if (mesh.links.get(link.peer.peer_id) === link) call.setState(link.peer.peer_id, e.detail);
  });
  link.addEventListener("stream", (e) => {
    call.setStream(link.peer.peer_id, e.detail);
    state.marks.firstRemoteTrack ??= performance.now();
    if (state.marks.firstRemoteAudio === undefined) watchFirstAudio(link.peer.peer_id);
  });
});
/** Mark when audio is first heard from a peer (level above -48 dBFS), for the load/join benchmarks. */
function watchFirstAudio(peerId) {
  const started = performance.now();
  const timer = setInterval(() => {
    const level = call.meterOf(peerId)?.level() ?? 0;
    if (level > 0.2 || performance.now() - started > 10000 || state.marks.firstRemoteAudio !== undefined) {
      clearInterval(timer);
      if (level > 0.2) state.marks.firstRemoteAudio ??= performance.now();
    }
  }, 10);
}

mesh.addEventListener("waiting", ({ detail: peer }) => call.setState(peer.peer_id, "waiting"));
mesh.addEventListener("link-error", ({ detail }) => {
  console.warn("peer connection error", detail);
  const tile = document.querySelector(`.tile[data-peer-id="${CSS.escape(detail.peerId)}"]`);
  showError({ code: "webrtc_error", severity: "low", message: `audio link: ${detail.error.message || detail.error}` },
            tile);
});

// -- page wiring ---------------------------------------------------------------------------------------------
function init() {
  initBanner();
  onBannerReconnect(() => signaling.reconnectNow());
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  $("#leave").addEventListener("click", leave);
  $("#copy-invite").addEventListener("click", copyInvite);
  $("#mute").addEventListener("click", (event) => {
    const muted = !mic.muted;
    mic.setMuted(muted);
    event.currentTarget.setAttribute("aria-pressed", String(muted));
    event.currentTarget.textContent = muted ? "Unmute" : "Mute";
  });
  $("#mic-device").addEventListener("change", async (event) => {
    localStorage.setItem(MIC_KEY, event.target.value);
    await openMicrophone(event.target.value);
  });
  setInterval(() => {
    if (!$("#mic-panel").hidden) $("#mic-level").value = mic.meter ? mic.meter.level() : 0;
  }, 100);
  lobbies.invite(params.get("lobby"));
  const saved = loadSaved();
  $("#name").value = params.get("name") || (saved && saved.name) || "";
  if ($("#name").value && (saved || state.autoJoin)) login(); // reload: resume; invite with join=1: go
  else $("#name").focus();
}

// -- test and debugging hooks ---------------------------------------------------------------------------------
window.voicebot = {
  /** A snapshot: connection state, our peer id, lobby id, members and their link states. */
  get state() {
    return {
      connection: signaling.status.state,
      peerId: state.welcome ? state.welcome.peer_id : null,
      lobbyId: state.lobby ? state.lobby.id : null,
      members: [...state.members.values()].map((p) => ({ ...p, link: mesh.links.get(p.peer_id)?.state ?? null })),
      marks: { ...state.marks },
      iceServers: mesh.iceServers,
    };
  },
  /** Strongest frequency received from `peerId` ({hz, db}), or null before its audio arrives. */
  dominantFrequency: (peerId, lo, hi) => call.meterOf(peerId)?.dominantFrequency(lo, hi) ?? null,
  level: (peerId) => call.meterOf(peerId)?.level() ?? null,
  inboundAudio: async (peerId) => (mesh.links.get(peerId) ? mesh.links.get(peerId).inboundAudio() : null),
  inject: (source) => mic.inject(source),
  inviteLink: () => (state.lobby ? inviteLink() : null),
};
if (params.get("test") === "1") window.voicebot.receive = (msg) => onMessage(msg);

init();
