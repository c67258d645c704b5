/**
 * A live capture source over `cap` (libpcap bindings, an optional dependency).
 *
 * `cap` hands each packet over synchronously from its poll callback, in one buffer it reuses for
 * every packet, and gives no timestamp. So every packet is stamped on arrival from the wall clock
 * and copied into a ring that the consumer drains through the usual `next()`/`fill()` contract. The
 * ring is allocated once: when the consumer falls that far behind, packets are dropped and counted
 * (memory never grows with traffic).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import {
  emptyCaptureRecord,
  type CaptureInterface,
  type CaptureRecord,
  type CaptureSource,
  type CaptureWarning,
} from "./source.js";

/** The part of `cap`'s API used here. */
interface CapHandle {
  open(device: string, filter: string, bufferSize: number, buffer: Buffer): string;
  close(): boolean;
  on(event: "packet", listener: (nbytes: number, truncated: boolean) => void): void;
  removeAllListeners(event: "packet"): void;
}
interface CapModule {
  Cap: { new (): CapHandle; deviceList(): { name: string; description?: string }[] };
}

/** libpcap's snapshot length inside `cap` (fixed there): no packet is ever longer than this. */
export const CAP_SNAPLEN = 65535;
const NS = 1_000_000_000;

export type LiveCaptureErrorKind = "unavailable" | "no-such-device" | "permission" | "filter" | "open";

/** Why a live capture could not start; `kind` says which, the message says what to do. */
export class LiveCaptureError extends Error {
  constructor(
    readonly kind: LiveCaptureErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "LiveCaptureError";
  }
}

/** The module loaded for `cap`: PCAP_CONNTRACK_CAP names another (tests use it to simulate its absence). */
function capSpecifier(): string {
  return process.env.PCAP_CONNTRACK_CAP || "cap";
}

/** Loads `cap`, or explains how to install it. */
export function loadCap(): CapModule {
  const specifier = capSpecifier();
  try {
    return createRequire(import.meta.url)(specifier) as CapModule;
  } catch (error) {
    throw new LiveCaptureError(
      "unavailable",
      `live capture needs the libpcap bindings (npm package "cap"), which could not be loaded ` +
        `(${(error as Error).message.split("\n")[0]}). Install libpcap's headers and a compiler ` +
        `(Debian/Ubuntu: apt-get install libpcap-dev make g++), then rebuild the bindings with ` +
        `\`npm rebuild cap\` (or reinstall: \`npm install cap\`).`,
    );
  }
}

/** Names of the interfaces libpcap can capture on. */
export function listCaptureDevices(cap: CapModule = loadCap()): { name: string; description?: string }[] {
  return cap.Cap.deviceList().map((device) => ({ name: device.name, description: device.description }));
}

/** LINKTYPE_* for the link-layer name `cap.open` returns (it maps a few DLT_* values to names). */
export function linkTypeFromCap(name: string): number {
  switch (name) {
    case "NULL":
      return 0;
    case "ETHERNET":
      return 1;
    case "RAW":
      return 101; // DLT_RAW is 12 or 14 depending on the OS; the file format calls it 101
    case "LINKTYPE_LINUX_SLL":
      return 113;
    case "IEEE802_11_RADIO":
      return 127;
  }
  // "Unknown linktype N": N is a DLT_* value, equal to its LINKTYPE_* for everything Linux reports.
  const match = /(\d+)\s*$/.exec(name);
  if (match === null) throw new Error(`libpcap reported an unreadable link type "${name}"`);
  return Number(match[1]);
}

export interface LiveCaptureOptions {
  /** Interface name as libpcap knows it (`any` for all). */
  device: string;
  /** BPF filter expression (pcap-filter(7)); empty or absent captures everything. */
  filter?: string;
  /** Bytes kept of each packet (at most CAP_SNAPLEN, the default). */
  snaplen?: number;
  /** libpcap's kernel buffer in bytes (default 4 MiB). */
  bufferSize?: number;
  /** Bytes of the ring between libpcap and the consumer (default 16 MiB). */
  queueBytes?: number;
  /**
   * `fill()` resolves after this many milliseconds even without a packet (default 100), so that a
   * consumer can run its clock while the link is idle.
   */
  idleMs?: number;
}

/** Counters of a live capture. */
export interface LiveCaptureStats {
  /**
   * What libpcap's pcap_stats() reports on Linux, read from the capture socket (PACKET_STATISTICS):
   * packets that passed the filter (ps_recv) and those of them the kernel dropped because the
   * capture buffer was full (ps_drop). Null where they could not be read (see `readSocketStatistics`).
   */
  kernel: { received: number; dropped: number } | null;
  /** Packets libpcap delivered to pcap-conntrack. */
  received: number;
  /** Packets dropped because the consumer fell a whole queue behind. */
  queueDropped: number;
  /** Growth of the interface's rx_dropped counter since the start (what libpcap reports as ps_ifdrop); null when unreadable. */
  interfaceDropped: number | null;
  /** Packets handed to the consumer through `next()`. */
  delivered: number;
}

/** Reads /sys/class/net/IF/statistics/rx_dropped, null where there is none (e.g. `any`). */
function readRxDropped(device: string): number | null {
  if (!/^[\w.:@-]+$/.test(device)) return null;
  try {
    return Number(readFileSync(`/sys/class/net/${device}/statistics/rx_dropped`, "utf8").trim());
  } catch {
    return null;
  }
}

/** Wall-clock stamps with sub-microsecond resolution that never go backwards. */
export class WallClock {
  private baseSec: number;
  private baseNsec: number;
  private lastNs = 0;

  constructor() {
    // timeOrigin has microsecond precision (Date.now() only milliseconds); performance.now() counts
    // from it on the monotonic clock.
    const origin = performance.timeOrigin;
    this.baseSec = Math.floor(origin / 1000);
    this.baseNsec = Math.round((origin - this.baseSec * 1000) * 1e6);
  }

  /** Writes the current time into `out` (whole seconds and nanoseconds since the epoch). */
  stamp(out: { tsSec: number; tsNsec: number }): void {
    let ns = this.baseNsec + Math.round(performance.now() * 1e6);
    if (ns < this.lastNs) ns = this.lastNs;
    this.lastNs = ns;
    const carry = Math.floor(ns / NS);
    out.tsSec = this.baseSec + carry;
    out.tsNsec = ns - carry * NS;
  }

  /**
   * Follows a stepped system clock: the monotonic clock does not see NTP steps, so when the two
   * disagree by more than `toleranceMs` the stamps move to the system clock (never backwards).
   */
  resync(toleranceMs = 5): void {
    const ours = this.baseSec * 1000 + (this.baseNsec + performance.now() * 1e6) / 1e6;
    const skewMs = Date.now() - ours;
    if (Math.abs(skewMs) <= toleranceMs) return;
    const shiftNs = Math.round(skewMs * 1e6);
    const ns = this.baseNsec + shiftNs;
    const carry = Math.floor(ns / NS);
    this.baseSec += carry;
    this.baseNsec = ns - carry * NS;
    this.lastNs -= carry * NS;
  }
}

/**
 * Live packets as a CaptureSource: `next()` hands out what arrived, `fill()` waits for more (or for
 * `idleMs`, resolving true with nothing new) and resolves false once `stop()` was called and the
 * queue is empty.
 */
export class LiveCaptureSource implements CaptureSource {
  readonly name: string;
  readonly record: CaptureRecord = emptyCaptureRecord();
  readonly interfaces: CaptureInterface[];
  readonly warnings: CaptureWarning[] = [];
  readonly format = "pcap-nsec" as const;
  readonly compressed = false;
  readonly outOfOrder = 0;
  readonly linkType: number;
  readonly snaplen: number;
  readonly clock = new WallClock();

  private readonly cap: CapHandle;
  private readonly capBuffer: Buffer;
  private readonly queue: Buffer;
  private readonly slotStart: Int32Array;
  private readonly slotLength: Int32Array;
  private readonly slotOrigLength: Int32Array;
  private readonly slotSec: Float64Array;
  private readonly slotNsec: Float64Array;
  /** Oldest slot still in use (the record handed out last, or the next to hand out). */
  private head = 0;
  /** Slots in use, including the one handed out last while `holding`. */
  private count = 0;
  private holding = false;
  private writeAt = 0;
  private received = 0;
  private queueDropped = 0;
  private delivered = 0;
  private readonly rxDroppedAtStart: number | null;
  /** Our descriptor of libpcap's capture socket, -1 when it could not be told apart. */
  private readonly socketFd: number;
  /** PACKET_STATISTICS summed over every read (the kernel resets them on each); null if unreadable. */
  private kernelStats: { received: number; dropped: number } | null = { received: 0, dropped: 0 };
  private stopped = false;
  private closed = false;
  private wake: ((more: boolean) => void) | null = null;
  private waiting: Promise<boolean> | null = null;
  private readonly ticker: NodeJS.Timeout;
  private readonly arrival = { tsSec: 0, tsNsec: 0 };

  private constructor(
    cap: CapHandle,
    linkType: number,
    options: LiveCaptureOptions,
    capBuffer: Buffer,
    socketFd: number,
  ) {
    this.cap = cap;
    this.socketFd = socketFd;
    this.capBuffer = capBuffer;
    this.name = options.device;
    this.linkType = linkType;
    this.snaplen = options.snaplen ?? CAP_SNAPLEN;
    this.interfaces = [
      {
        sectionIndex: 0,
        localId: 0,
        linkType,
        snaplen: this.snaplen,
        name: options.device,
        unitsPerSecond: 1e9,
        tsOffsetSec: 0,
      },
    ];
    const queueBytes = Math.max(options.queueBytes ?? 16 << 20, 2 * CAP_SNAPLEN);
    this.queue = Buffer.allocUnsafe(queueBytes);
    // Enough slots for a queue of minimum-size Ethernet frames (60 bytes); shorter records (a small
    // --snaplen) may run out of slots first, which drops as a full queue does.
    const slots = Math.ceil(queueBytes / 60);
    this.slotStart = new Int32Array(slots);
    this.slotLength = new Int32Array(slots);
    this.slotOrigLength = new Int32Array(slots);
    this.slotSec = new Float64Array(slots);
    this.slotNsec = new Float64Array(slots);
    this.rxDroppedAtStart = readRxDropped(options.device);
    this.record.linkType = linkType;
    this.record.data = this.queue;
    cap.on("packet", this.onPacket);
    this.ticker = setInterval(() => {
      this.clock.resync();
      this.resolveWaiting(true);
    }, options.idleMs ?? 100);
  }

  /**
   * Opens `options.device` with libpcap. Throws LiveCaptureError: bindings missing, no such device
   * (naming the ones there are), not permitted, a filter libpcap cannot compile, anything else.
   */
  static open(options: LiveCaptureOptions): LiveCaptureSource {
    const snaplen = options.snaplen ?? CAP_SNAPLEN;
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > CAP_SNAPLEN)
      throw new RangeError(`snaplen ${snaplen} is not within 1..${CAP_SNAPLEN} (libpcap's limit in cap)`);
    const bufferSize = options.bufferSize ?? 4 << 20;
    if (!Number.isInteger(bufferSize) || bufferSize < 1 || bufferSize > 0x7fffffff)
      throw new RangeError(`buffer size ${bufferSize} is not a positive number of bytes below 2 GiB`);
    const capModule = loadCap();
    const devices = capModule.Cap.deviceList().map((device) => device.name);
    const noSuchDevice = () =>
      new LiveCaptureError(
        "no-such-device",
        `no interface "${options.device}" to capture on; the interfaces here are: ${devices.join(", ") || "(none)"}`,
      );
    if (!devices.includes(options.device)) throw noSuchDevice();
    const filter = options.filter ?? "";
    // The buffer cap copies each packet into; CAP_SNAPLEN bytes, so its copy never cuts a packet.
    const capBuffer = Buffer.alloc(CAP_SNAPLEN);
    const cap = new capModule.Cap();
    const socketsBefore = ownPacketSockets();
    let linkName: string;
    try {
      linkName = cap.open(options.device, filter, bufferSize, capBuffer);
    } catch (error) {
      // cap's close() after a failed open stops a poll handle it never started (a crash), and so
      // would its destructor if the handle were collected: keep the handle, never close it.
      failedHandles.push(cap);
      const message = (error as Error).message;
      if (/no such device|doesn't exist/i.test(message)) throw noSuchDevice();
      if (/permission|not permitted|EPERM|EACCES/i.test(message))
        throw new LiveCaptureError(
          "permission",
          `not permitted to capture on ${options.device} (libpcap: ${message}). Capturing needs the ` +
            `CAP_NET_RAW capability (and CAP_NET_ADMIN for promiscuous mode): run as root, or grant ` +
            `them to node, e.g. \`setcap cap_net_raw,cap_net_admin=eip $(command -v node)\`.`,
        );
      // cap compiles the filter after opening the device: if the device opens without the filter,
      // the message is libpcap's verdict on the filter.
      if (filter !== "" && opensWithoutFilter(capModule, options.device, bufferSize))
        throw new LiveCaptureError("filter", `filter "${filter}" does not compile: ${message}`);
      throw new LiveCaptureError("open", `cannot capture on ${options.device}: ${message}`);
    }
    try {
      const opened = [...ownPacketSockets()].filter(([fd]) => !socketsBefore.has(fd));
      const socketFd = opened.length === 1 ? opened[0][0] : -1;
      return new LiveCaptureSource(
        cap,
        linkTypeFromCap(linkName),
        { ...options, snaplen },
        capBuffer,
        socketFd,
      );
    } catch (error) {
      cap.close();
      throw error;
    }
  }

  /** Counters so far. */
  stats(): LiveCaptureStats {
    const rxDropped = this.rxDroppedAtStart === null ? null : readRxDropped(this.name);
    return {
      kernel: this.stopped ? this.kernelStats : this.readKernelStats(),
      received: this.received,
      queueDropped: this.queueDropped,
      interfaceDropped:
        rxDropped === null || this.rxDroppedAtStart === null ? null : rxDropped - this.rxDroppedAtStart,
      delivered: this.delivered,
    };
  }

  /** Packets queued and not yet handed out. */
  get queued(): number {
    return this.count - (this.holding ? 1 : 0);
  }

  /** Whether `stop()` was called. */
  get stopping(): boolean {
    return this.stopped;
  }

  /** The current wall-clock time, as a packet arriving now would be stamped. */
  now(out: { tsSec: number; tsNsec: number }): void {
    this.clock.stamp(out);
  }

  /** Stops capturing: later packets are ignored, those queued are still handed out. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    // Read before the socket closes with the capture.
    this.readKernelStats();
    this.cap.removeAllListeners("packet");
    this.cap.close();
    clearInterval(this.ticker);
    this.resolveWaiting(false);
  }

  next(): boolean {
    if (this.holding) {
      this.holding = false;
      this.head = this.head + 1 === this.slotStart.length ? 0 : this.head + 1;
      this.count--;
    }
    if (this.count === 0) return false;
    const slot = this.head;
    const record = this.record;
    record.offset = this.slotStart[slot];
    record.caplen = this.slotLength[slot];
    record.origlen = this.slotOrigLength[slot];
    record.tsSec = this.slotSec[slot];
    record.tsNsec = this.slotNsec[slot];
    record.recordNumber = ++this.delivered;
    record.fileOffset = 0;
    this.holding = true;
    return true;
  }

  fill(): Promise<boolean> {
    if (this.queued > 0) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    this.waiting ??= new Promise<boolean>((resolve) => {
      this.wake = resolve;
    });
    return this.waiting;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stop();
  }

  private readKernelStats(): { received: number; dropped: number } | null {
    const read = readSocketStatistics(this.socketFd);
    if (read === null || this.kernelStats === null) this.kernelStats = null;
    else {
      this.kernelStats.received += read.received;
      this.kernelStats.dropped += read.dropped;
    }
    return this.kernelStats === null ? null : { ...this.kernelStats };
  }

  private resolveWaiting(more: boolean): void {
    const wake = this.wake;
    if (wake === null) return;
    this.wake = null;
    this.waiting = null;
    wake(more);
  }

  private readonly onPacket = (nbytes: number): void => {
    this.clock.stamp(this.arrival);
    this.received++;
    const caplen = nbytes > this.snaplen ? this.snaplen : nbytes;
    const at = this.allocate(caplen);
    if (at < 0) {
      this.queueDropped++;
      return;
    }
    this.capBuffer.copy(this.queue, at, 0, caplen);
    let slot = this.head + this.count;
    if (slot >= this.slotStart.length) slot -= this.slotStart.length;
    this.slotStart[slot] = at;
    this.slotLength[slot] = caplen;
    this.slotOrigLength[slot] = nbytes;
    this.slotSec[slot] = this.arrival.tsSec;
    this.slotNsec[slot] = this.arrival.tsNsec;
    this.count++;
    this.writeAt = at + (caplen > 0 ? caplen : 1);
    this.resolveWaiting(true);
  };

  /**
   * Where `length` bytes go in the queue, or -1 when it is full. The bytes in use run from the start
   * of the oldest slot in use to `writeAt`, wrapping at the end; a record never wraps.
   */
  private allocate(length: number): number {
    if (this.count === this.slotStart.length) return -1;
    if (this.count === 0) return 0;
    const size = length > 0 ? length : 1;
    const oldest = this.slotStart[this.head];
    if (this.writeAt >= oldest) {
      if (this.writeAt + size <= this.queue.length) return this.writeAt;
      return size < oldest ? 0 : -1;
    }
    return this.writeAt + size < oldest ? this.writeAt : -1;
  }
}

/** Our descriptors of AF_PACKET sockets (fd → socket inode), from /proc; empty where unreadable. */
function ownPacketSockets(): Map<number, string> {
  const sockets = new Map<number, string>();
  try {
    const packetInodes = new Set(
      readFileSync("/proc/net/packet", "utf8")
        .split("\n")
        .slice(1)
        .map((line) => line.trim().split(/\s+/).pop()),
    );
    for (const name of readdirSync("/proc/self/fd")) {
      let target: string;
      try {
        target = readlinkSync(`/proc/self/fd/${name}`);
      } catch {
        continue; // closed meanwhile (the directory's own descriptor, for one)
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined && packetInodes.has(inode)) sockets.set(Number(name), inode);
    }
  } catch {
    // Not Linux, or no /proc: no socket statistics.
  }
  return sockets;
}

/**
 * The capture socket's PACKET_STATISTICS (what pcap_stats() returns on Linux), which cap does not
 * expose. Node cannot call getsockopt, so a python3 child inherits the descriptor and reads them.
 * The kernel resets them on every read (the caller sums them). Null without python3.
 */
function readSocketStatistics(fd: number): { received: number; dropped: number } | null {
  if (fd < 0) return null;
  const script =
    "import socket, struct\n" +
    "s = socket.socket(fileno=3)\n" +
    "print(*struct.unpack('II', s.getsockopt(263, 6, 12)[:8]))\n" + // SOL_PACKET, PACKET_STATISTICS
    "s.detach()\n";
  const result = spawnSync("python3", ["-c", script], {
    stdio: ["ignore", "pipe", "ignore", fd],
    encoding: "utf8",
    timeout: 5000,
  });
  const counters = /^(\d+) (\d+)\s*$/.exec(result.stdout ?? "");
  if (result.status !== 0 || counters === null) return null;
  return { received: Number(counters[1]), dropped: Number(counters[2]) };
}

/** Handles whose open failed (see `LiveCaptureSource.open`). */
const failedHandles: CapHandle[] = [];

/** Whether `device` opens without a filter (closing it again at once). */
function opensWithoutFilter(capModule: CapModule, device: string, bufferSize: number): boolean {
  const probe = new capModule.Cap();
  try {
    probe.open(device, "", bufferSize, Buffer.alloc(CAP_SNAPLEN));
  } catch {
    failedHandles.push(probe);
    return false;
  }
  probe.close();
  return true;
}
