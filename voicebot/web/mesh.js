// The WebRTC mesh: one RTCPeerConnection per remote peer (people and bots), perfect negotiation, trickle ICE.
//
// Roles, matching the hub and the bots:
// - Between people the peer with the greater peer_id is *polite* (the hub names the same peer in `offer_glare`).
//   The newcomer offers to the people already in the lobby; the others wait for that offer.
// - Bots are always the polite side and make the first offer to every person, so the page waits for a bot's offer
//   (it only offers to a bot after it said `bye`, e.g. after a page reload, when the bot waits for a new offer).
// - `bye` from a peer means "forget our connection": the page closes it and waits for that peer's next offer.
// Signals of one peer are handled strictly in order (a promise chain per peer).

/** Connection to one remote peer. Events: "state" (connectionState changed), "stream" (remote audio). */
class PeerLink extends EventTarget {
  constructor(mesh, peer, initiate) {
    super();
    this.mesh = mesh;
    this.peer = peer;
    this.polite = peer.kind === "bot" ? false : mesh.selfId > peer.peer_id;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingAnswer = false;
    this.chain = Promise.resolve();
    this.closed = false;
    this.stream = null;
    this.pc = new RTCPeerConnection({ iceServers: mesh.iceServers });
    this.transceiver = null;
    this.pc.onicecandidate = ({ candidate }) => {
      this.mesh.send({ type: "signal", to: peer.peer_id, kind: "candidate",
                       candidate: candidate ? candidate.toJSON() : null });
    };
    this.pc.onnegotiationneeded = () => this._enqueue(() => this._offer());
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      this.dispatchEvent(new CustomEvent("state", { detail: state }));
      // Between browsers an ICE restart recovers a failed path; a bot rebuilds by itself (aiortc has no ICE
      // restart) with `bye` and a fresh offer.
      if (state === "failed" && this.peer.kind !== "bot" && !this.closed) this.pc.restartIce();
    };
    this.pc.ontrack = ({ track, streams }) => {
      this.stream = streams[0] || new MediaStream([track]);
      this.dispatchEvent(new CustomEvent("stream", { detail: this.stream }));
    };
    if (initiate) this._addSender(); // fires negotiationneeded → our offer
  }

  get state() {
    return this.closed ? "closed" : this.pc.connectionState;
  }

  /** Handle one signal from this peer (queued behind the previous ones). */
  signal(msg) {
    return this._enqueue(() => this._signal(msg));
  }

  replaceTrack(track) {
    if (this.transceiver) this.transceiver.sender.replaceTrack(track).catch(() => {});
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.pc.close();
    this.dispatchEvent(new CustomEvent("state", { detail: "closed" }));
  }

  /** Inbound audio statistics (`inbound-rtp`, kind audio) or null. */
  async inboundAudio() {
    const report = await this.pc.getStats();
    for (const s of report.values()) {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        return { packetsReceived: s.packetsReceived, bytesReceived: s.bytesReceived,
                 audioLevel: s.audioLevel ?? null, totalAudioEnergy: s.totalAudioEnergy ?? null,
                 jitter: s.jitter, packetsLost: s.packetsLost };
      }
    }
    return null;
  }

  _enqueue(step) {
    this.chain = this.chain.then(() => (this.closed ? undefined : step())).catch((err) => {
      this.mesh.dispatchEvent(new CustomEvent("link-error", { detail: { peerId: this.peer.peer_id, error: err } }));
    });
    return this.chain;
  }

  _addSender() {
    const track = this.mesh.track;
    const streams = this.mesh.localStream ? [this.mesh.localStream] : [];
    this.transceiver = this.pc.addTransceiver(track || "audio", { direction: "sendrecv", streams });
  }

  async _offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.mesh.send({ type: "signal", to: this.peer.peer_id, kind: "offer", sdp: this.pc.localDescription.sdp });
    } finally {
      this.makingOffer = false;
    }
  }

  async _signal(msg) {
    if (msg.kind === "offer" || msg.kind === "answer") {
      const readyForOffer = !this.makingOffer && (this.pc.signalingState === "stable" || this.settingAnswer);
      const collision = msg.kind === "offer" && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      if (msg.kind === "answer" && this.pc.signalingState !== "have-local-offer") return; // stale answer
      this.settingAnswer = msg.kind === "answer";
      await this.pc.setRemoteDescription({ type: msg.kind, sdp: msg.sdp });
      this.settingAnswer = false;
      if (msg.kind === "offer") {
        if (!this.transceiver) {
          // Answer with our microphone on the transceiver the offer created.
          this.transceiver = this.pc.getTransceivers().find((t) => t.receiver.track.kind === "audio") || null;
          if (this.transceiver) {
            this.transceiver.direction = "sendrecv";
            if (this.mesh.localStream) this.transceiver.sender.setStreams(this.mesh.localStream);
            await this.transceiver.sender.replaceTrack(this.mesh.track);
          } else {
            this._addSender();
          }
        }
        await this.pc.setLocalDescription();
        this.mesh.send({ type: "signal", to: this.peer.peer_id, kind: "answer", sdp: this.pc.localDescription.sdp });
      }
    } else if (msg.kind === "candidate") {
      try {
        await this.pc.addIceCandidate(msg.candidate && msg.candidate.candidate ? msg.candidate : null);
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
    }
  }
}

/** All peer links of the current lobby. Events: "link" (new PeerLink), "link-error". */
export class Mesh extends EventTarget {
  /** @param {(msg: object) => boolean} send  sends a signal through the hub */
  constructor(send) {
    super();
    this.send = send;
    this.selfId = "";
    this.iceServers = [];
    this.track = null;
    this.localStream = null;
    this.links = new Map();
    this.members = new Map(); // peer_id -> peer ({peer_id, name, kind})
  }

  /** Our identity and ICE servers (from `welcome`). */
  configure(selfId, iceServers) {
    this.selfId = selfId;
    this.iceServers = Array.isArray(iceServers) ? iceServers : [];
  }

  setTrack(track, stream) {
    this.track = track;
    this.localStream = stream;
    for (const link of this.links.values()) link.replaceTrack(track);
  }

  /** A peer is a member of our lobby (no connection yet: people who joined after us and bots offer first). */
  addMember(peer) {
    this.members.set(peer.peer_id, peer);
  }

  /** Offer to `peer` on a fresh connection. `fresh` first tells it to forget any earlier one (`bye`): after a
   * page reload the peer may still hold a connection to our previous page. */
  connect(peer, { fresh = false } = {}) {
    this.addMember(peer);
    this.drop(peer.peer_id);
    if (fresh) this.send({ type: "signal", to: peer.peer_id, kind: "bye" });
    return this._newLink(peer, true);
  }

  /** Forget a peer that left the lobby. */
  removeMember(peerId) {
    this.members.delete(peerId);
    this.drop(peerId);
  }

  drop(peerId) {
    const link = this.links.get(peerId);
    if (link) {
      this.links.delete(peerId);
      link.close();
    }
  }

  closeAll() {
    for (const id of [...this.links.keys()]) this.drop(id);
    this.members.clear();
  }

  /** A `signal {from, kind, sdp?, candidate?}` from the hub. */
  onSignal(msg) {
    const from = msg.from;
    if (msg.kind === "bye") {
      this.drop(from); // the peer starts over with a new offer (or waits for ours after it reloaded)
      const peer = this.members.get(from);
      if (peer) this.dispatchEvent(new CustomEvent("waiting", { detail: peer }));
      return;
    }
    let link = this.links.get(from);
    if (!link || link.closed) {
      if (msg.kind !== "offer") return; // candidates/answers for a connection we no longer have
      const peer = this.members.get(from) || { peer_id: from, name: from, kind: "user" };
      link = this._newLink(peer, false);
    }
    link.signal(msg);
  }

  _newLink(peer, initiate) {
    const link = new PeerLink(this, peer, initiate);
    this.links.set(peer.peer_id, link);
    this.dispatchEvent(new CustomEvent("link", { detail: link }));
    return link;
  }
}
