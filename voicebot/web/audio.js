// Audio: the microphone (device choice, mute, level), level meters for every stream, and the test hooks that
// replace the microphone with WebAudio (a tone, or decoded speech played on demand).
//
// Chrome only pulls a *remote* WebRTC stream through WebAudio when the stream also plays in a media element, so
// every remote stream gets an <audio> element (which is what plays it anyway) and a separate analyser.

/** Level meter + spectrum over one MediaStream (not connected to the speakers). */
export class StreamMeter {
  constructor(ctx, stream) {
    this.source = ctx.createMediaStreamSource(stream);
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 8192; // 5.9 Hz bins at 48 kHz: tones a few Hz apart stay apart
    this.analyser.smoothingTimeConstant = 0.2;
    this.source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
    this.bins = new Float32Array(this.analyser.frequencyBinCount);
    this.sampleRate = ctx.sampleRate;
  }

  /** Current level, 0..1 (RMS mapped from -60..0 dBFS). */
  level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const v of this.samples) sum += v * v;
    const rms = Math.sqrt(sum / this.samples.length);
    const db = 20 * Math.log10(rms + 1e-9);
    return Math.max(0, Math.min(1, (db + 60) / 60));
  }

  /** The strongest frequency between `lo` and `hi` Hz: `{hz, db}`. */
  dominantFrequency(lo = 80, hi = 4000) {
    this.analyser.getFloatFrequencyData(this.bins);
    const binHz = this.sampleRate / this.analyser.fftSize;
    let best = -1;
    let bestDb = -Infinity;
    for (let i = Math.ceil(lo / binHz); i <= Math.floor(hi / binHz) && i < this.bins.length; i++) {
      if (this.bins[i] > bestDb) {
        bestDb = this.bins[i];
        best = i;
      }
    }
    return { hz: best * binHz, db: bestDb };
  }

  dispose() {
    this.source.disconnect();
  }
}

/** The local microphone, real or synthetic. */
export class Microphone extends EventTarget {
  /**
   * @param {{fakeTone?: number|null, fakeMic?: boolean}} options  `fakeTone` (Hz) or `fakeMic` replace the
   *   device with WebAudio (tests; also handy to check a call without speaking).
   */
  constructor({ fakeTone = null, fakeMic = false } = {}) {
    super();
    this.ctx = new AudioContext({ latencyHint: "interactive" });
    this.fakeTone = fakeTone;
    this.fake = fakeMic || fakeTone !== null;
    this.stream = null;
    this.track = null;
    this.deviceId = "";
    this.muted = false;
    this.meter = null;
    this.fakeDest = null;
  }

  /** Resume the AudioContext (browsers keep it suspended until a user gesture). */
  async wake() {
    if (this.ctx.state !== "running") {
      try {
        await this.ctx.resume();
      } catch {
        /* resumed on the next gesture */
      }
    }
  }

  /** Open the microphone (`deviceId` "" = default). Dispatches "track" with the new track. */
  async open(deviceId = "") {
    await this.wake();
    const stream = this.fake ? this._fakeStream() : await navigator.mediaDevices.getUserMedia({
      audio: { deviceId: deviceId ? { exact: deviceId } : undefined, echoCancellation: true,
               noiseSuppression: true, autoGainControl: true },
      video: false,
    });
    const old = this.stream;
    this.stream = stream;
    this.track = stream.getAudioTracks()[0];
    this.track.enabled = !this.muted;
    this.deviceId = this.fake ? "fake" : (this.track.getSettings().deviceId || deviceId);
    if (this.meter) this.meter.dispose();
    this.meter = new StreamMeter(this.ctx, stream);
    if (old && old !== stream) for (const t of old.getTracks()) t.stop();
    this.dispatchEvent(new CustomEvent("track", { detail: this.track }));
    return this.track;
  }

  /** Audio inputs for the device picker: `[{deviceId, label}]`. */
  async devices() {
    if (this.fake) {
      return [{ deviceId: "fake", label: this.fakeTone ? `Test tone ${this.fakeTone} Hz` : "Synthetic (silent)" }];
    }
    const all = await navigator.mediaDevices.enumerateDevices();
    return all.filter((d) => d.kind === "audioinput")
      .map((d, i) => ({ deviceId: d.deviceId, label: d.label || `Microphone ${i + 1}` }));
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.track) this.track.enabled = !muted;
  }

  /** Decode `source` (URL or ArrayBuffer) and play it into the synthetic microphone; resolves when played. */
  async inject(source) {
    if (!this.fakeDest) throw new Error("inject needs the synthetic microphone (?fake_mic=1 or ?fake_tone=HZ)");
    const data = typeof source === "string" ? await (await fetch(source)).arrayBuffer() : source;
    const buffer = await this.ctx.decodeAudioData(data);
    const node = this.ctx.createBufferSource();
    node.buffer = buffer;
    node.connect(this.fakeDest);
    const ended = new Promise((resolve) => { node.onended = resolve; });
    node.start();
    await ended;
    return buffer.duration;
  }

  _fakeStream() {
    if (!this.fakeDest) {
      this.fakeDest = this.ctx.createMediaStreamDestination();
      // A zero-valued constant source keeps RTP flowing while nothing else plays (Chrome sends no packets for
      // a destination with no input).
      const keepAlive = this.ctx.createConstantSource();
      keepAlive.offset.value = 0;
      keepAlive.connect(this.fakeDest);
      keepAlive.start();
      if (this.fakeTone) {
        const osc = this.ctx.createOscillator();
        osc.frequency.value = this.fakeTone;
        const gain = this.ctx.createGain();
        gain.gain.value = 0.3;
        osc.connect(gain).connect(this.fakeDest);
        osc.start();
      }
    }
    return this.fakeDest.stream;
  }
}
