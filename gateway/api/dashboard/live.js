// What stays live while the dashboard is open, whatever page shows: the task rooms over
// /ws/tasks, the stats pushed on /ws/stats, and the keepers' counts sampled every few seconds
// (the API keeps no per-keeper history: the sparklines are drawn from these samples).

import { getJson, socketUrl } from "./api.js";

const PING_EVERY_MS = 25_000; // the gateway closes a connection silent for 45 s
const RECONNECT_MS = [1_000, 2_000, 5_000, 10_000, 30_000];
const SAMPLE_EVERY_MS = 5_000;
const MAX_SAMPLES = 120; // 10 minutes at one sample every 5 s

/** A WebSocket to the gateway that pings to stay open and reconnects (with back-off) when it
 * closes; `onOpen(socket)` runs on every (re)connection, `onFrame(frame)` on each JSON frame. */
class Connection {
  constructor(path, onOpen, onFrame) {
    Object.assign(this, { path, onOpen, onFrame, failures: 0, socket: null, state: "connecting" });
    this.stateListeners = new Set();
    this.open();
  }

  open() {
    const socket = (this.socket = new WebSocket(socketUrl(this.path)));
    const pinger = setInterval(() => this.send({ type: "PING" }), PING_EVERY_MS);
    socket.addEventListener("open", () => {
      this.failures = 0;
      this.setState("live");
      this.onOpen();
    });
    socket.addEventListener("message", (message) => this.onFrame(JSON.parse(message.data)));
    socket.addEventListener("close", () => {
      clearInterval(pinger);
      this.setState("reconnecting");
      const wait = RECONNECT_MS[Math.min(this.failures++, RECONNECT_MS.length - 1)];
      setTimeout(() => this.open(), wait);
    });
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  setState(state) {
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }

  /** Call `listener(state)` now and on each change ("connecting", "live", "reconnecting"). */
  watchState(listener) {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }
}

/** The task rooms (job:<id>, task:<id>, user:<address>) the pages watch, over one connection.
 * SUBSCRIBE frames are paced below the gateway's limit (20 at once, then 5 a second). */
class TaskRooms {
  constructor() {
    this.listeners = new Map(); // room -> Set of listeners
    this.queue = [];
    this.tokens = 15;
    this.connection = new Connection("/ws/tasks", () => this.resubscribe(), (frame) => this.dispatch(frame));
    setInterval(() => {
      this.tokens = Math.min(15, this.tokens + 2);
      this.drain();
    }, 500);
  }

  /** Call `listener(frame)` with every frame of `room` (its snapshot first); the returned function
   * stops it, and leaves the room once no page watches it. */
  watch(room, listener) {
    if (!this.listeners.has(room)) {
      this.listeners.set(room, new Set());
      this.request({ type: "SUBSCRIBE", room });
    }
    this.listeners.get(room).add(listener);
    return () => {
      const members = this.listeners.get(room);
      if (!members) return;
      members.delete(listener);
      if (members.size === 0) {
        this.listeners.delete(room);
        this.request({ type: "UNSUBSCRIBE", room });
      }
    };
  }

  request(frame) {
    this.queue = this.queue.filter((queued) => queued.room !== frame.room); // the latest wish wins
    this.queue.push(frame);
    this.drain();
  }

  drain() {
    if (this.connection.state !== "live") return;
    while (this.queue.length && this.tokens >= 1) {
      const frame = this.queue.shift();
      if (frame.type === "SUBSCRIBE") this.tokens -= 1;
      this.connection.send(frame);
    }
  }

  resubscribe() {
    this.queue = [...this.listeners.keys()].map((room) => ({ type: "SUBSCRIBE", room }));
    this.drain();
  }

  dispatch(frame) {
    const members = frame.room && this.listeners.get(frame.room);
    if (members) for (const listener of members) listener(frame);
  }
}

/** The network stats pushed on /ws/stats (every 5 s), kept as a series for the charts. */
class StatsSeries {
  constructor() {
    this.samples = [];
    this.listeners = new Set();
    this.connection = new Connection("/ws/stats", () => {}, (frame) => {
      if (frame.type === "STATS") this.add(frame);
    });
  }

  add(sample) {
    const last = this.samples[this.samples.length - 1];
    if (last && last.at >= sample.at) return;
    this.samples.push(sample);
    if (this.samples.length > MAX_SAMPLES * 3) this.samples.shift();
    for (const listener of this.listeners) listener(this.samples);
  }

  /** Call `listener(samples)` now (after reading GET /api/stats if none yet) and on each push. */
  watch(listener) {
    this.listeners.add(listener);
    if (this.samples.length) listener(this.samples);
    else getJson("/api/stats").then((sample) => this.add(sample), () => listener(this.samples));
    return () => this.listeners.delete(listener);
  }
}

/** GET /api/keepers every few seconds: the latest answer, and each keeper's counts over time. */
class KeeperSamples {
  constructor() {
    this.keepers = [];
    this.history = new Map(); // address -> [{at, executed, attested}]
    this.listeners = new Set();
    this.error = null;
    this.ready = this.sample();
    setInterval(() => this.sample(), SAMPLE_EVERY_MS);
  }

  async sample() {
    try {
      this.keepers = (await getJson("/api/keepers")).keepers;
      this.error = null;
    } catch (failure) {
      this.error = failure.message;
    }
    const at = Date.now() / 1000;
    for (const keeper of this.keepers) {
      const series = this.history.get(keeper.address) || [];
      series.push({ at, executed: keeper.tasksExecuted, attested: keeper.tasksAttested });
      if (series.length > MAX_SAMPLES) series.shift();
      this.history.set(keeper.address, series);
    }
    for (const listener of this.listeners) listener(this);
  }

  /** The keeper whose operator id is `id`, if one is known. */
  byOperator(id) {
    return this.keepers.find((keeper) => keeper.operatorId === id);
  }

  /** Call `listener(this)` once the first sample is in, and after each one. */
  watch(listener) {
    this.listeners.add(listener);
    this.ready.then(() => this.listeners.has(listener) && listener(this));
    return () => this.listeners.delete(listener);
  }
}

export const taskRooms = new TaskRooms();
export const stats = new StatsSeries();
export const keeperSamples = new KeeperSamples();
