/**
 * The conntrack engine: feeds decoded packets through a model of nf_conntrack_in (lookup from
 * either direction, protocol trackers, SEEN_REPLY, confirmation) and emits the events
 * `conntrack -E` would show. Pure: packet timestamps are its only clock, and it does no I/O.
 *
 * Time inside the engine is nanoseconds relative to the first second it saw (`epochSec`), exact in
 * a double for captures up to ~104 days.
 */
import {
  DecodedPacket,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  IPPROTO_SCTP,
  IPPROTO_GRE,
} from "../decode/packet.js";
import {
  Connection,
  ROW_DOUBLES,
  N_ORIGINAL_BYTES,
  N_LAST_SEEN,
  N_ORIGINAL_PACKETS,
  N_REPLY_BYTES,
  N_REPLY_PACKETS,
  N_STARTED,
  UDP_STREAM_NS,
  DIR_ORIGINAL,
  DIR_REPLY,
  NatAlias,
  Status,
  Tuple,
  signedTupleHash,
} from "./connection.js";
import {
  ConnectionTable,
  ExpiryHeap,
  H_EXPIRY,
  H_KEY,
  PAGE_MASK,
  PAGE_SHIFT,
  foreignBucket,
} from "./table.js";
import { ConnectionStore } from "./store.js";
import { ConntrackSettings, makeSettings } from "./settings.js";
import { EVENT_ASSURED, EVENT_PROTOINFO, TcpHost, TcpResult, TcpTracker, tcpCanEarlyDrop } from "./tcp.js";
import {
  Expectation,
  ExpectationTable,
  ExpectEvent,
  expectationRemainingSeconds,
  type ExpectRemovalCause,
} from "./expectations.js";
import {
  ExpectError,
  HelperVerdict,
  newHelperStats,
  type ConntrackHelper,
  type ExpectRequest,
  type HelperHost,
  type HelperStats,
} from "./helpers/helper.js";
import { FtpHelper } from "./helpers/ftp.js";
import { TftpHelper } from "./helpers/tftp.js";
import {
  followMasterDecision,
  invertTuple,
  natDecision,
  type NatContext,
  type NatDecision,
  type NatPath,
  type NatRuleSet,
  type NatTableView,
  SeqAdjust,
} from "./nat/index.js";

/** What conntrack made of a packet (the ctinfo a ruleset would match on, or why none). */
export const Verdict = {
  /** Original direction, no reply seen yet (ctinfo NEW), including the packet that created the entry. */
  New: 0,
  /** Part of a connection that has seen a reply, either direction (ESTABLISHED / ESTABLISHED_REPLY). */
  Established: 1,
  /** An ICMP error about a tracked connection. */
  Related: 2,
  /** Not trackable; `engine.reason` says why. */
  Invalid: 3,
  /** Deliberately untracked (ICMPv6 neighbour discovery / MLD, non-IP). */
  Ignored: 4,
  /**
   * Dropped: by a helper (an FTP command split across segments or malformed, an expectation the
   * table refused; its events wait for the next packet), or because the table was full and
   * `early_drop` found nothing to evict (no entry made). `engine.reason` says why.
   */
  Dropped: 5,
} as const;
export type PacketVerdict = (typeof Verdict)[keyof typeof Verdict];
export const VERDICT_NAMES = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "IGNORED", "DROPPED"] as const;

/** Event message bits (`enum ip_conntrack_events`). */
export const EventBit = {
  New: 1 << 0,
  Related: 1 << 1,
  Destroy: 1 << 2,
  Reply: 1 << 3,
  Assured: EVENT_ASSURED,
  ProtoInfo: EVENT_PROTOINFO,
  Helper: 1 << 6,
} as const;

export type ConntrackEventType = "NEW" | "UPDATE" | "DESTROY";
export type DestroyCause = "expired" | "reset" | "reopen" | "drain" | "early-drop";

/**
 * One event message. The engine reuses a single instance: read or copy it inside `onEvent`.
 * Optional numbers use -1 for "not in the message".
 */
export class ConntrackEvent {
  type: ConntrackEventType = "NEW";
  tsSec = 0;
  tsNsec = 0;
  connection!: Connection;
  /** Event bits the message carries. */
  bits = 0;
  /** TCP state, when the message carries PROTOINFO (always on TCP DESTROY), else -1. */
  state = -1;
  /** Remaining seconds (floor), -1 when absent (DESTROY after natural expiry). */
  timeout = -1;
  seenReply = false;
  assured = false;
  /** Counters, on DESTROY when accounting is on. */
  hasCounters = false;
  originalPackets = 0;
  originalBytes = 0;
  replyPackets = 0;
  replyBytes = 0;
  /** Whole seconds between start and stop, on DESTROY when timestamps are on, else -1. */
  deltaTime = -1;
  /**
   * On DESTROY: capture times of the connection's first packet (its NEW event's) and of the last
   * packet it took (`Connection.lastSeenAt`).
   */
  firstSec = 0;
  firstNsec = 0;
  lastSec = 0;
  lastNsec = 0;
  helper: string | null = null;
  /**
   * Why a DESTROY happened: "expired", "reset" (RST on an unanswered entry), "reopen", "drain",
   * "early-drop" (evicted to make room in a full table, by `early_drop` or the GC's early-drop mode).
   */
  destroyCause: "" | DestroyCause = "";
}

/** Helpers this engine knows, by name. */
export const HELPER_NAMES = ["ftp", "tftp"] as const;
export type HelperName = (typeof HELPER_NAMES)[number];

/**
 * Configured NAT: the engine acts as the NAT device with these rules would, giving each new
 * connection the reply tuple the device's kernel records.
 *
 * Interfaces: a single-vantage capture does not say which interface a packet came in on or leaves
 * by. Unknown (null, the default) interfaces are not checked by `-i`/`-o` matches (the rule applies as
 * if it matched), and MASQUERADE then uses the only address configured for the packet's family (as
 * `--masquerade out0=ADDR` or `interfaceAddresses` give it). So `-t nat -A POSTROUTING -o out0 -j
 * MASQUERADE` translates every connection seen, which is right for a capture of the traffic that
 * crosses the router, inside to outside.
 */
export interface EngineNatOptions {
  rules: NatRuleSet;
  /** Interface new connections arrive on (`-i` matches); null: unknown, not checked. */
  inInterface?: string | null;
  /** Interface new connections leave by (`-o` matches, MASQUERADE's address); null: unknown. */
  outInterface?: string | null;
  /** Hooks the first packets pass (default "forward"). */
  path?: NatPath;
  /**
   * Where the capture was taken (default "inside"):
   * - "inside": on the device's inside interface, `tcpdump -i in0`. Packets that arrived there (the
   *   original direction of connections started inside) are as the device's conntrack saw them;
   *   packets that arrived on the outside and left by the inside interface were already translated
   *   back: a reply carries the inverse of the original tuple (10.1.2.3 where the kernel's reply
   *   tuple says 198.51.100.32), and a connection started outside towards a translated address (a
   *   RELATED connection following its master, as active FTP's data connection) shows its original
   *   direction translated. Both are matched to the connection whose kernel tuples they translate
   *   to, and the related connection's original tuple is the one it had on arrival.
   * - "arrival": every packet as it arrived at the device, before any translation (for example only
   *   the inbound packets of each of the device's interfaces, merged): lookups use the kernel's own
   *   tuples. When nf_nat_ftp's rewrite of a PORT/EPRT/227/229 changes its length, the other side's
   *   acknowledgements arrive shifted: the tracker takes the shift off (`Connection.seqAdjust`).
   */
  vantage?: "inside" | "arrival";
}

export interface NatStats {
  /** New connections NAT changed (reply tuple differs from the inverted original). */
  translated: number;
  /** Of those, related connections translated as their master (nf_nat_follow_master). */
  followedMaster: number;
  /** Translations whose port or ICMP id is our choice where the kernel's is random. */
  ownChoice: number;
  /** First packets the device would have dropped (no address for MASQUERADE, no free port). */
  dropped: number;
  /** Packets matched through their translated (inside-interface) tuples. */
  insideMatches: number;
  /** New connections whose translation was observed (`process` given the packet's translated tuple). */
  observed: number;
  /** Notes from decisions (assumptions a rule needed), by text. */
  notes: Map<string, number>;
}

export interface EngineOptions {
  /** Timeouts and switches; missing fields take kernel defaults. Keys may be sysctl names. */
  settings?: Partial<ConntrackSettings> | Record<string, number>;
  onEvent?: (event: ConntrackEvent) => void;
  /** Expectation events (`conntrack -E expect`); the engine reuses one instance. */
  onExpectEvent?: (event: ExpectEvent) => void;
  /**
   * Attach helpers as `CT --helper` rules would (default true): a connection whose first packet goes
   * to one of a helper's ports gets that helper. false: no helpers, hence no expectations.
   */
  helpers?: boolean;
  /**
   * Ports per helper, replacing that helper's defaults (ftp [21], tftp [69]); an empty list turns the
   * helper off. Example: `{ ftp: [21, 2121] }`.
   */
  helperPorts?: Partial<Record<HelperName, readonly number[]>>;
  /** nf_conntrack_ftp's `loose` parameter (default false). */
  ftpLoose?: boolean;
  /**
   * The GC worker's early-drop mode: after a packet was dropped because the table was full, the
   * kernel's next GC pass evicts entries that are not ASSURED (or are TCP in a closing state) while
   * the table holds 95 % of `nf_conntrack_max` or more. The pass runs on the GC's own schedule, which
   * this model does not reproduce: give the delay in seconds after the drop to run it then. Default:
   * no such pass.
   */
  gcEarlyDropDelaySeconds?: number | null;
  /** Configured NAT (see EngineNatOptions); none by default. */
  nat?: EngineNatOptions | null;
  /**
   * Observed NAT feeds the engine (`process` with observed translations): keep translated
   * connections' tuples as their packets leave the device too, so that a packet whose arrival
   * sighting was missed (seen only after translation) still finds its connection. Default false.
   */
  observedNat?: boolean;
}

export interface ExpectationStats {
  created: number;
  /** Fulfilled by a new connection (which became RELATED). */
  used: number;
  expired: number;
  evicted: number;
  replaced: number;
  masterDestroyed: number;
  /** Registrations refused (clash, table full, same tuple of another class). */
  refused: number;
  maxLive: number;
}

export interface EngineStats {
  packets: number;
  /** Packets by verdict, indexed by `Verdict`. */
  verdicts: number[];
  /** Invalid and ignored packets by reason. */
  reasons: Map<string, number>;
  /** TCP packets let through without any update (table sIG, window IGNORE). */
  tcpIgnored: number;
  connectionsCreated: number;
  connectionsExpired: number;
  /** Destroyed before expiry (RST, re-open, early drop). */
  connectionsKilled: number;
  /** Entries `early_drop` evicted to make room for a new one (the kernel's `early_drop` stat). */
  earlyDrops: number;
  /** Entries the GC's early-drop mode evicted. */
  gcEarlyDrops: number;
  /** Packets dropped because the table was full and nothing could be evicted. */
  tableFullDrops: number;
  maxLive: number;
  events: { NEW: number; UPDATE: number; DESTROY: number };
  /** Packets whose timestamp was earlier than the engine clock (processed at the clock). */
  timeWentBack: number;
  expectations: ExpectationStats;
  helpers: HelperStats;
  nat: NatStats;
}

const NS = 1e9;
const GRE_PROTOCOL_PPP = 0x880b;

export const Reason = {
  notIp: "not an IP packet",
  noPorts: "transport header too short for a tuple",
  udpMalformed: "udp: truncated/malformed packet",
  udpliteCoverage: "udplite: invalid checksum coverage",
  icmpShort: "icmp: short packet",
  icmpBadType: "icmp: invalid type",
  icmpNoEmbedded: "icmp: error without a usable quoted header",
  icmpNoMatch: "icmp: error for no tracked connection",
  icmpOuterMismatch: "icmp: outer destination differs from the connection",
  cannotInvert: "icmp: type without a reply type cannot start a connection",
  icmpNotNew: "icmp: only requests start a connection",
  icmpv6Untracked: "icmpv6: neighbour discovery / MLD (untracked)",
  icmpv6BadRedirect: "icmpv6: redirect with bad source or hop limit",
  greUnsupported: "gre: version 1 without PPP payload",
  helperPartial: "helper: command split across segments (dropped)",
  helperMalformed: "helper: command with an unparsable address or port (dropped)",
  helperRefused: "helper: expectation refused (dropped)",
  tableFull: "table full: nf_conntrack_max reached and no entry to evict (dropped)",
  natDropped: "nat: the device would drop the first packet (no address for MASQUERADE, or no free port)",
} as const;

/** Hash buckets `early_drop` looks at, from the new tuple's (NF_CT_EVICTION_RANGE). */
export const EARLY_DROP_BUCKETS = 8;

export class ConntrackEngine implements TcpHost, HelperHost {
  readonly settings: ConntrackSettings;
  readonly stats: EngineStats = {
    packets: 0,
    verdicts: [0, 0, 0, 0, 0, 0],
    reasons: new Map(),
    tcpIgnored: 0,
    connectionsCreated: 0,
    connectionsExpired: 0,
    connectionsKilled: 0,
    earlyDrops: 0,
    gcEarlyDrops: 0,
    tableFullDrops: 0,
    maxLive: 0,
    events: { NEW: 0, UPDATE: 0, DESTROY: 0 },
    timeWentBack: 0,
    expectations: {
      created: 0,
      used: 0,
      expired: 0,
      evicted: 0,
      replaced: 0,
      masterDestroyed: 0,
      refused: 0,
      maxLive: 0,
    },
    helpers: newHelperStats(),
    nat: {
      translated: 0,
      followedMaster: 0,
      ownChoice: 0,
      dropped: 0,
      insideMatches: 0,
      observed: 0,
      notes: new Map(),
    },
  };
  /** Reason for the last INVALID or IGNORED verdict. */
  reason = "";
  /**
   * The confirmed connection the last packet belonged to (its tuple matched, or it created and
   * confirmed it), else null: not tracked, an ICMP error (RELATED to another connection), or a first
   * packet that made no entry. Consumers use it instead of a second lookup of their own.
   */
  lastConnection: Connection | null = null;
  /** Whole second all engine times count from (set by the first packet or advanceTo). */
  epochSec = -1;
  /** Engine clock, ns since `epochSec`. */
  now = 0;

  private readonly table = new ConnectionTable();
  private readonly heap = new ExpiryHeap(this.table);
  /** Live connections' data, a row per table slot. */
  private readonly store = new ConnectionStore(this.table, this.heap);
  private readonly tcp: TcpTracker;
  private readonly onEvent: ((event: ConntrackEvent) => void) | null;
  private readonly event = new ConntrackEvent();
  private readonly probe = new Tuple();
  /** Where a new connection's reply tuple is put together. */
  private readonly replyScratch = new Tuple();
  /**
   * `signedTupleHash(probe)` of the last lookup: signed, so that it stays a small integer (an unsigned
   * one of 2^31 or more would make this field a heap number and every call it is passed to box it).
   */
  private probeHash = 0;
  private readonly words = new Uint32Array(4);
  /** A connection object ready for the next new flow; only confirmed ones are replaced. */
  private spare = this.store.newConnection();
  /**
   * The id the next confirmed connection gets. Workers of a `--jobs` run set it per record (ids the main
   * thread renumbers later, lib/pipeline/jobs.ts); nothing else should.
   */
  nextId = 1;
  /** Event bits gathered while processing the current packet. */
  private pendingBits = 0;
  private readonly expectationTable: ExpectationTable;
  private readonly onExpectEvent: ((event: ExpectEvent) => void) | null;
  private readonly expectEvent = new ExpectEvent();
  /** Helper by `protocol << 16 | port` of a connection's first packet's destination. */
  private readonly helperByPort = new Map<number, ConntrackHelper>();
  /** Helper drop counters as of the last drop, to name the next drop's cause. */
  private readonly lastHelperDrops = [0, 0, 0];
  private readonly gcEarlyDropDelay: number;
  private readonly natRules: NatRuleSet | null;
  private readonly natContext: NatContext;
  /** Inside vantage: translated connections' inside-interface tuples, null otherwise. */
  private readonly aliasTable: ConnectionTable<NatAlias> | null;
  /** The expectation the connection being created fulfilled (its NAT follows the master's). */
  private usedExpectationDirection = -1;
  private usedExpectationPort = 0;
  /** Direction of the packet the helper is looking at (the NAT helper's `exp->dir` is its inverse). */
  private helperDirection = DIR_ORIGINAL;
  /** `process`'s observed translation of the packet at hand, null when none was given. */
  private observedTranslation: Tuple | null = null;
  /** nf_conntrack_tuple_taken over the live table, for NAT's port choice. */
  private readonly natView: NatTableView = {
    isTaken: (tuple: Tuple, newOriginal: Tuple): boolean => {
      const node = this.table.findNode(tuple, tuple.hash());
      if (node < 0) return false;
      return !this.table.nodeEquals(node & ~1, newOriginal);
    },
  };
  /** Engine time of the pending GC early-drop pass, Infinity when none. */
  private gcEarlyDropAt = Infinity;
  /** `early_drop`'s visitor and its count (kept as fields: no closure per call). */
  private earlyDropCount = 0;
  private readonly earlyDropVisit = (connection: Connection): boolean => {
    if (!connection.assured && !connection.dead) {
      this.destroy(connection, this.now, "early-drop");
      this.earlyDropCount++;
    }
    return true;
  };

  constructor(options: EngineOptions = {}) {
    // `now` holds nanoseconds past 2^31 after two seconds of capture: a number that is not a small
    // integer from the start keeps V8 from changing the field's representation mid-run, which throws
    // away every optimised function that reads the engine.
    this.now = 0.5;
    this.now = 0;
    // Likewise `epochSec`: times computed from it are doubles from the first packet on, so V8 does not
    // first compile them as 32-bit integer arithmetic that overflows two seconds in.
    this.epochSec = 0.5;
    this.epochSec = -1;
    this.settings = makeSettings(options.settings ?? {});
    this.tcp = new TcpTracker(this.settings, this.store);
    this.onEvent = options.onEvent ?? null;
    this.onExpectEvent = options.onExpectEvent ?? null;
    const gcDelay = options.gcEarlyDropDelaySeconds ?? null;
    if (gcDelay !== null && !(Number.isFinite(gcDelay) && gcDelay >= 0))
      throw new Error(`gcEarlyDropDelaySeconds: bad value ${gcDelay}`);
    this.gcEarlyDropDelay = gcDelay === null ? -1 : gcDelay * NS;
    const nat = options.nat ?? null;
    this.natRules = nat === null ? null : nat.rules;
    this.natContext = {
      inInterface: nat?.inInterface ?? null,
      outInterface: nat?.outInterface ?? null,
      path: nat?.path ?? "forward",
    };
    const vantage = nat?.vantage ?? "inside";
    if (vantage !== "inside" && vantage !== "arrival") throw new Error(`nat.vantage: unknown "${vantage}"`);
    this.aliasTable =
      (nat !== null && vantage === "inside") || options.observedNat === true
        ? new ConnectionTable<NatAlias>()
        : null;
    this.expectationTable = new ExpectationTable(this.settings.expectMax, (expectation, cause, at) =>
      this.expectationRemoved(expectation, cause, at),
    );
    if (options.helpers !== false) {
      const ports = options.helperPorts ?? {};
      const helpers: ConntrackHelper[] = [
        new FtpHelper({ loose: options.ftpLoose ?? false, ports: ports.ftp }),
        new TftpHelper({ ports: ports.tftp }),
      ];
      for (const helper of helpers) {
        for (const port of helper.defaultPorts) {
          if (!Number.isInteger(port) || port < 0 || port > 0xffff)
            throw new Error(`helper ${helper.name}: bad port ${port}`);
          this.helperByPort.set((helper.protocol << 16) | port, helper);
        }
      }
    }
  }

  get helperStats(): HelperStats {
    return this.stats.helpers;
  }

  /** Live expectations, oldest first. */
  expectations(): Expectation[] {
    return this.expectationTable.entries();
  }

  get liveExpectations(): number {
    return this.expectationTable.size;
  }

  get liveConnections(): number {
    return this.table.size;
  }

  entries(): Iterable<Connection> {
    return this.table.connections();
  }

  /**
   * Runs the clock to the given capture time, destroying everything that expires up to it. `limit`:
   * stop after that many entries (connections and expectations) expired, so that a caller can let its
   * output drain between steps; false then, and the clock has not moved yet: call again with the same
   * time. True once the clock is there.
   */
  advanceTo(tsSec: number, tsNsec: number, limit = Infinity): boolean {
    if (this.epochSec < 0) this.epochSec = tsSec;
    const t = (tsSec - this.epochSec) * NS + tsNsec;
    if (t < this.now) return true;
    if (!this.expireUntil(t, limit)) return false;
    this.now = t;
    return true;
  }

  /**
   * End of input: every remaining connection expires, in order, at its own expiry time. `limit` as
   * for `advanceTo`: false when it stopped there (call again), true when nothing is left.
   */
  drain(limit = Infinity): boolean {
    return this.expireUntil(Infinity, limit, true);
  }

  /**
   * `drain` of the entries that expire up to the capture time given (a drain in time windows: the
   * windows' events in order are one drain's). The clock does not move.
   */
  drainUntil(tsSec: number, tsNsec: number): void {
    if (this.epochSec < 0) this.epochSec = tsSec;
    this.expireUntil((tsSec - this.epochSec) * NS + tsNsec, Infinity, true);
  }

  /**
   * The engine time of the earliest pending timer (a connection's heap key, which may be earlier than
   * its expiry, or an expectation's), Infinity when none.
   */
  nextExpiry(): number {
    const expectation = this.expectationTable.nextExpiry();
    const connection = this.heap.peekKey();
    return expectation < connection ? expectation : connection;
  }

  /**
   * An engine time up to which at most `count` connections expire (the `count`-th earliest connection
   * timer), Infinity when fewer than `count` are live: the end of a drain window of bounded size.
   */
  expiryWindowEnd(count: number): number {
    return this.heap.keyAt(count);
  }

  /** Converts an engine time to capture seconds/nanoseconds. */
  toCaptureTime(t: number, out: { tsSec: number; tsNsec: number }): void {
    const sec = Math.floor(t / NS);
    out.tsSec = this.epochSec + sec;
    out.tsNsec = Math.round(t - sec * NS);
  }

  /**
   * Tracks one packet. `observedTranslation`: the packet's tuple as it left the device (observed NAT,
   * lib/pipeline/observed-nat.ts; the packet itself as it arrived): when the packet creates a
   * connection, that observation is its NAT instead of the rules'. The tuple is read, not kept.
   */
  process(packet: DecodedPacket, observedTranslation: Tuple | null = null): PacketVerdict {
    this.stats.packets++;
    this.observedTranslation = observedTranslation;
    if (this.epochSec < 0) this.epochSec = packet.tsSec;
    let t = (packet.tsSec - this.epochSec) * NS + packet.tsNsec;
    if (t < this.now) {
      this.stats.timeWentBack++;
      t = this.now;
    }
    // Most packets find nothing due: skip the loop unless a timer could have run out.
    const heap = this.heap;
    if (
      (heap.count > 0 && heap.keys[0] <= t) ||
      this.expectationTable.size !== 0 ||
      this.gcEarlyDropAt !== Infinity
    )
      this.expireUntil(t);
    this.now = t;
    this.lastConnection = null;
    const verdict = this.classify(packet);
    this.stats.verdicts[verdict]++;
    if (
      verdict === Verdict.Invalid ||
      verdict === Verdict.Ignored ||
      (verdict === Verdict.Dropped && (this.reason === Reason.tableFull || this.reason === Reason.natDropped))
    ) {
      this.stats.reasons.set(this.reason, (this.stats.reasons.get(this.reason) ?? 0) + 1);
    }
    return verdict;
  }

  private classify(packet: DecodedPacket): PacketVerdict {
    if (packet.ipVersion !== 4 && packet.ipVersion !== 6) return this.ignored(Reason.notIp);
    const protocol = packet.protocol;
    if (protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6) {
      const outcome = this.icmpError(packet);
      if (outcome >= 0) return outcome as PacketVerdict;
    }
    this.reason = Reason.noPorts;
    if (!this.fillProbe(packet)) return this.invalid(this.reason);
    this.probeHash = signedTupleHash(this.probe);

    for (;;) {
      let node = this.table.findNode(this.probe, this.probeHash);
      let connection: Connection;
      let direction: number;
      let confirmed: boolean;
      let aliasNode = -1;
      if (node < 0 && this.aliasTable !== null) {
        aliasNode = this.aliasTable.findNode(this.probe, this.probeHash);
        if (aliasNode < 0) node = this.insideTranslatedExpected();
      }
      if (aliasNode >= 0) {
        connection = this.aliasTable!.connectionOf(aliasNode).connection;
        direction = aliasNode & 1;
        confirmed = true;
        this.lastConnection = connection;
        this.stats.nat.insideMatches++;
      } else if (node >= 0) {
        connection = this.table.connectionOf(node);
        direction = node & 1;
        confirmed = true;
        this.lastConnection = connection;
      } else {
        connection = this.spare;
        direction = DIR_ORIGINAL;
        confirmed = false;
        if (!this.prepare(connection)) return this.invalid(Reason.cannotInvert);
        // `__nf_conntrack_alloc`: the new entry counts before any protocol check, so even a packet
        // the tracker will call invalid can evict others first.
        const max = this.settings.conntrackMax;
        if (max !== 0 && this.table.size + 1 > max && !this.earlyDrop(this.probeHash)) {
          this.stats.tableFullDrops++;
          if (this.gcEarlyDropDelay >= 0 && this.gcEarlyDropAt === Infinity)
            this.gcEarlyDropAt = this.now + this.gcEarlyDropDelay;
          this.reason = Reason.tableFull;
          return Verdict.Dropped;
        }
      }
      const established = direction === DIR_REPLY || connection.seenReply;
      this.pendingBits = confirmed ? connection.cachedEventBits : 0;
      connection.cachedEventBits = 0;
      const result = this.track(connection, direction, packet, confirmed);
      if (result === TRACK_INVALID) {
        connection.cachedEventBits = this.pendingBits;
        return Verdict.Invalid;
      }
      if (result === TRACK_REOPEN) {
        this.destroy(connection, this.now, "reopen");
        continue;
      }
      if (result !== TRACK_KILLED) this.markSeen(connection);
      // The NAT hooks run after conntrack, before the helper and confirmation (nf_nat_inet_fn).
      if (!confirmed && this.observedTranslation !== null) {
        this.setUpObservedNat(connection, this.observedTranslation);
      } else if (
        !confirmed &&
        (this.natRules !== null || this.usedExpectationDirection >= 0) &&
        !this.setUpNat(connection)
      ) {
        this.expectationTable.removeForMaster(connection, this.now);
        this.reason = Reason.natDropped;
        return Verdict.Dropped;
      }
      // An expected connection's packets are RELATED until the other side answers.
      const verdict: PacketVerdict = established
        ? Verdict.Established
        : connection.expected
          ? Verdict.Related
          : Verdict.New;
      if (result === TRACK_KILLED) return verdict;
      if (direction === DIR_REPLY && !connection.seenReply) {
        connection.status |= Status.SeenReply;
        this.pendingBits |= EventBit.Reply;
      }
      // Helpers run at the confirm hook, before the entry is confirmed and its events go out.
      const helper = connection.helperModule;
      this.helperDirection = direction;
      if (
        helper !== null &&
        helper.help(connection, direction, established, packet, this) === HelperVerdict.Drop
      ) {
        this.reason = this.helperDropReason();
        if (confirmed) {
          connection.cachedEventBits = this.pendingBits;
        } else {
          // An entry that never gets confirmed takes what its helper expected with it (TFTP).
          this.expectationTable.removeForMaster(connection, this.now);
        }
        return Verdict.Dropped;
      }
      if (!confirmed) this.confirm(connection);
      if (this.pendingBits !== 0)
        this.emit(connection, this.pendingBits & (EventBit.New | EventBit.Related) ? "NEW" : "UPDATE");
      return verdict;
    }
  }

  /** Runs the protocol tracker. */
  private track(
    connection: Connection,
    direction: number,
    packet: DecodedPacket,
    confirmed: boolean,
  ): number {
    switch (packet.protocol) {
      case IPPROTO_TCP: {
        const tracker = this.tcp;
        if (!tracker.checkHeader(packet)) return this.trackInvalid(tracker.reason);
        if (!confirmed) {
          this.initConnection(connection);
          if (!tracker.startConnection(connection, packet)) return this.trackInvalid(tracker.reason);
        }
        const result = tracker.track(connection, direction, packet, this);
        switch (result) {
          case TcpResult.Invalid:
            return this.trackInvalid(tracker.reason);
          case TcpResult.Reopen:
            return TRACK_REOPEN;
          case TcpResult.Killed:
            return TRACK_KILLED;
          case TcpResult.Ignore:
            this.stats.tcpIgnored++;
            return TRACK_ACCEPT;
          default:
            return TRACK_ACCEPT;
        }
      }
      case IPPROTO_UDP:
      case IPPROTO_UDPLITE:
        return this.trackUdp(connection, direction, packet, confirmed);
      case IPPROTO_ICMP:
      case IPPROTO_ICMPV6: {
        if (!confirmed) this.initConnection(connection);
        if (!confirmed && !isIcmpRequest(packet.protocol, packet.icmpType))
          return this.trackInvalid(Reason.icmpNotNew);
        const seconds =
          packet.protocol === IPPROTO_ICMP ? this.settings.icmpTimeout : this.settings.icmpv6Timeout;
        this.refreshAccount(connection, direction, packet, seconds);
        return TRACK_ACCEPT;
      }
      case IPPROTO_GRE:
        if (!confirmed) this.initConnection(connection);
        // Any packet once a reply was seen makes a GRE flow assured (no two-second rule).
        if (connection.seenReply) {
          this.refreshAccount(connection, direction, packet, this.settings.greTimeoutStream);
          if (!connection.assured) {
            connection.status |= Status.Assured;
            this.pendingBits |= EventBit.Assured;
          }
        } else {
          this.refreshAccount(connection, direction, packet, this.settings.greTimeout);
        }
        return TRACK_ACCEPT;
      default:
        if (!confirmed) this.initConnection(connection);
        this.refreshAccount(connection, direction, packet, this.settings.genericTimeout);
        return TRACK_ACCEPT;
    }
  }

  private trackUdp(
    connection: Connection,
    direction: number,
    packet: DecodedPacket,
    confirmed: boolean,
  ): number {
    const available = packet.l4Length;
    const length = packet.udpLength;
    if (packet.protocol === IPPROTO_UDPLITE) {
      // UDP-Lite: the length field is the checksum coverage (0 = everything).
      if (length !== 0 && (length < 8 || length > available))
        return this.trackInvalid(Reason.udpliteCoverage);
      if (!confirmed) this.initConnection(connection);
      if (connection.seenReply) {
        this.refreshAccount(connection, direction, packet, this.settings.udpTimeoutStream);
        if (!connection.assured) {
          connection.status |= Status.Assured;
          this.pendingBits |= EventBit.Assured;
        }
      } else {
        this.refreshAccount(connection, direction, packet, this.settings.udpTimeout);
      }
      return TRACK_ACCEPT;
    }
    if (length > available || length < 8) return this.trackInvalid(Reason.udpMalformed);
    if (!confirmed) this.initConnection(connection);
    const status = connection.status;
    if ((status & Status.SeenReply) !== 0) {
      // A flow still talking both ways after its first two seconds is a stream.
      // The start read from the row here: a time returned from a getter V8 does not inline is boxed.
      const slot = connection.tableSlot;
      const started = this.heap.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + N_STARTED];
      const stream = this.now > started + UDP_STREAM_NS;
      this.refreshAccount(
        connection,
        direction,
        packet,
        stream ? this.settings.udpTimeoutStream : this.settings.udpTimeout,
      );
      if (stream && (status & Status.Assured) === 0) {
        connection.status |= Status.Assured;
        this.pendingBits |= EventBit.Assured;
      }
    } else {
      this.refreshAccount(connection, direction, packet, this.settings.udpTimeout);
    }
    return TRACK_ACCEPT;
  }

  /**
   * ICMP/ICMPv6 before the lookup: errors are related to the connection they quote (or invalid),
   * neighbour discovery is untracked. Returns a verdict, or -1 to continue with normal tracking.
   */
  private icmpError(packet: DecodedPacket): number {
    if (!packet.hasPorts) return this.invalid(Reason.icmpShort);
    const type = packet.icmpType;
    if (packet.protocol === IPPROTO_ICMP) {
      if (type > 18) return this.invalid(Reason.icmpBadType);
      if (type !== 3 && type !== 4 && type !== 5 && type !== 11 && type !== 12) return -1;
      return this.related(packet);
    }
    if ((type >= 130 && type <= 136) || type === 143 || type === 151 || type === 152) {
      return this.ignored(Reason.icmpv6Untracked);
    }
    if (type === 137) {
      if (packet.icmpCode !== 0) return -1;
      const linkLocal = packet.src[0] === 0xfe && (packet.src[1] & 0xc0) === 0x80;
      if (packet.ttl !== 255 || !linkLocal) return this.invalid(Reason.icmpv6BadRedirect);
      return this.related(packet);
    }
    if (type >= 128) return -1;
    return this.related(packet);
  }

  /** `nf_conntrack_inet_error`: find the connection the quoted packet belongs to. */
  private related(packet: DecodedPacket): number {
    const inner = packet.embedded;
    if (!inner.present) return this.invalid(Reason.icmpNoEmbedded);
    const probe = this.probe;
    // The quoted packet travelled the other way: look up its inverse.
    probe.setAddresses(inner.ipVersion, inner.dstV4, inner.srcV4, inner.dst, inner.src);
    probe.protocol = inner.protocol;
    if (hasPortTuple(inner.protocol)) {
      if (!inner.hasPorts) return this.invalid(Reason.icmpNoEmbedded);
      probe.srcPort = inner.dstPort;
      probe.dstPort = inner.srcPort;
    } else if (inner.protocol === IPPROTO_ICMP || inner.protocol === IPPROTO_ICMPV6) {
      if (!inner.hasPorts) return this.invalid(Reason.icmpNoEmbedded);
      const replyType = icmpReplyType(inner.protocol, inner.icmpType);
      if (replyType < 0) return this.invalid(Reason.icmpNoMatch);
      probe.srcPort = inner.icmpId;
      probe.dstPort = (replyType << 8) | inner.icmpCode;
    } else {
      probe.srcPort = 0;
      probe.dstPort = 0;
    }
    const node = this.table.find(probe);
    let tuple: Tuple;
    if (node !== null) {
      tuple = node.tuple;
    } else {
      // Inside vantage: an error about a translated connection was translated back with it.
      const aliasNode = this.aliasTable === null ? -1 : this.aliasTable.findNode(probe, probe.hash());
      if (aliasNode < 0) return this.invalid(Reason.icmpNoMatch);
      const alias = this.aliasTable!.connectionOf(aliasNode);
      tuple = (aliasNode & 1) === DIR_REPLY ? alias.reply : alias.original;
      this.stats.nat.insideMatches++;
    }
    let d0: number, d1: number, d2: number, d3: number;
    if (packet.ipVersion === 4) {
      d0 = packet.dstV4 >>> 0;
      d1 = d2 = d3 = 0;
    } else {
      const w = this.words;
      wordsOf(packet.dst, w);
      d0 = w[0];
      d1 = w[1];
      d2 = w[2];
      d3 = w[3];
    }
    if (!tuple.sameDestination(packet.ipVersion, d0, d1, d2, d3))
      return this.invalid(Reason.icmpOuterMismatch);
    return Verdict.Related;
  }

  /** Fills the probe tuple from the packet; false when the packet is too short for one. */
  private fillProbe(packet: DecodedPacket): boolean {
    const probe = this.probe;
    probe.setAddresses(packet.ipVersion, packet.srcV4, packet.dstV4, packet.src, packet.dst);
    probe.protocol = packet.protocol;
    const protocol = packet.protocol;
    if (hasPortTuple(protocol)) {
      if (!packet.hasPorts) return false;
      probe.srcPort = packet.srcPort;
      probe.dstPort = packet.dstPort;
    } else if (protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6) {
      if (!packet.hasPorts) return false;
      probe.srcPort = packet.icmpId;
      probe.dstPort = (packet.icmpType << 8) | packet.icmpCode;
    } else if (protocol === IPPROTO_GRE && packet.greVersion === 1) {
      // PPTP's enhanced GRE: the key's low half is the call id; the source key would come from the
      // PPTP helper's keymap, which this model does not have (as a kernel without the helper).
      if (packet.greProtocol !== GRE_PROTOCOL_PPP || !packet.greHasKey) {
        this.reason = Reason.greUnsupported;
        return false;
      }
      probe.srcPort = 0;
      probe.dstPort = packet.greKey & 0xffff;
    } else {
      probe.srcPort = 0;
      probe.dstPort = 0;
    }
    return true;
  }

  /** `init_conntrack`: a fresh entry from the probe; false when the tuple cannot be inverted. */
  private prepare(connection: Connection): boolean {
    const probe = this.probe;
    const reply = this.replyScratch;
    reply.family = probe.family;
    reply.protocol = probe.protocol;
    reply.srcWord0 = probe.dstWord0;
    reply.srcWord1 = probe.dstWord1;
    reply.srcWord2 = probe.dstWord2;
    reply.srcWord3 = probe.dstWord3;
    reply.dstWord0 = probe.srcWord0;
    reply.dstWord1 = probe.srcWord1;
    reply.dstWord2 = probe.srcWord2;
    reply.dstWord3 = probe.srcWord3;
    if (probe.protocol === IPPROTO_ICMP || probe.protocol === IPPROTO_ICMPV6) {
      const replyType = icmpReplyType(probe.protocol, probe.dstPort >>> 8);
      if (replyType < 0) return false;
      reply.srcPort = probe.srcPort;
      reply.dstPort = (replyType << 8) | (probe.dstPort & 0xff);
    } else {
      reply.srcPort = probe.dstPort;
      reply.dstPort = probe.srcPort;
    }
    // The spare is always in the store: its row written directly.
    const slot = connection.tableSlot;
    this.table.writeTuple(slot * 2, probe);
    this.table.writeTuple(slot * 2 + 1, reply);
    connection.status = 0;
    // A TCP row left by an earlier invalid first packet is reused by the tracker.
    if (probe.protocol !== IPPROTO_TCP) connection.tcp = null;
    const row = this.heap.pages[slot >>> PAGE_SHIFT];
    const p = (slot & PAGE_MASK) * ROW_DOUBLES;
    row[p + N_ORIGINAL_PACKETS] = row[p + N_ORIGINAL_BYTES] = 0;
    row[p + N_REPLY_PACKETS] = row[p + N_REPLY_BYTES] = 0;
    row[p + H_EXPIRY] = this.now;
    // helper, helperModule, helperState, master, expectations, natAlias, seqAdjust: all null.
    connection.extras = null;
    connection.cachedEventBits = 0;
    this.usedExpectationDirection = -1;
    return true;
  }

  /**
   * `init_conntrack` after the protocol's own checks: a new entry either fulfils an expectation (it
   * becomes RELATED to the expectation's master, which is used up at once) or gets the helper its
   * port's rule names.
   */
  private initConnection(connection: Connection): void {
    // The probe is the new entry's original tuple (`prepare` copied it), read without a copy.
    const original = this.probe;
    const expectation = this.expectationTable.find(original);
    if (expectation !== null) {
      connection.status |= Status.Expected;
      connection.master = expectation.master;
      this.usedExpectationDirection = expectation.natDirection;
      this.usedExpectationPort = expectation.savedPort;
      this.expectationTable.remove(expectation, "used", this.now);
      return;
    }
    if (this.helperByPort.size === 0) return;
    const helper = this.helperByPort.get((original.protocol << 16) | original.dstPort);
    if (helper === undefined) return;
    connection.helperModule = helper;
    connection.helper = helper.name;
  }

  /** HelperHost: `nf_ct_expect_related` for `master`'s helper. */
  expectRelated(master: Connection, request: ExpectRequest): number {
    const helper = master.helperModule;
    if (helper === null) return ExpectErrorShutdown;
    let outcome = this.expectationTable.register(master, helper.name, helper.policy, request, this.now);
    if (outcome === ExpectError.Busy && request.natFindPort && master.natted) {
      outcome = this.findExpectationPort(master, helper, request);
    }
    if (typeof outcome === "number") {
      this.stats.expectations.refused++;
      return outcome;
    }
    if (master.natted) {
      // The NAT helper (nf_nat_ftp, nf_nat_tftp) makes the expected connection follow the master.
      outcome.natDirection = 1 - this.helperDirection;
      outcome.savedPort = request.natSavedPort >= 0 ? request.natSavedPort : request.dstPort;
    }
    const stats = this.stats.expectations;
    stats.created++;
    if (this.expectationTable.size > stats.maxLive) stats.maxLive = this.expectationTable.size;
    this.emitExpect(outcome, "NEW", this.now, "");
    return 0;
  }

  /**
   * `nf_nat_exp_find_port` after the announced port clashed with another master's expectation: the
   * kernel tries up to 128 random ports between it and 65534; here the next ones up, in order (our
   * choice, counted as such). Leaves the port taken in `request.dstPort`.
   */
  private findExpectationPort(
    master: Connection,
    helper: ConntrackHelper,
    request: ExpectRequest,
  ): Expectation | number {
    const first = request.dstPort;
    const attempts = Math.min(NAT_EXPECT_PORT_ATTEMPTS, 0xfffe - first);
    let outcome: Expectation | number = ExpectError.Busy;
    for (let i = 1; i <= attempts && outcome === ExpectError.Busy; i++) {
      request.dstPort = first + i;
      outcome = this.expectationTable.register(master, helper.name, helper.policy, request, this.now);
    }
    if (typeof outcome === "number") return outcome;
    const stats = this.stats.nat;
    stats.ownChoice++;
    stats.notes.set(NOTE_EXPECT_PORT_MOVED, (stats.notes.get(NOTE_EXPECT_PORT_MOVED) ?? 0) + 1);
    return outcome;
  }

  /** HelperHost: a NAT helper changed the length of this packet's data (`nf_ct_seqadj_set`). */
  adjustSequence(connection: Connection, direction: number, seq: number, delta: number): void {
    // Only configured NAT seen on arrival needs it: an inside capture shows the receiver's acks after
    // the device shifted them back, and observed NAT hands the engine the ack each packet left with.
    if (this.natRules === null || this.aliasTable !== null) return;
    if ((connection.status & Status.NatObserved) !== 0) return;
    if (connection.seqAdjust === null) connection.seqAdjust = new SeqAdjust();
    connection.seqAdjust.set(direction, seq, delta);
  }

  private expectationRemoved(expectation: Expectation, cause: ExpectRemovalCause, at: number): void {
    const stats = this.stats.expectations;
    switch (cause) {
      case "used":
        stats.used++;
        break;
      case "expired":
      case "drain":
        stats.expired++;
        break;
      case "evicted":
        stats.evicted++;
        break;
      case "replaced":
        stats.replaced++;
        break;
      case "master-destroyed":
        stats.masterDestroyed++;
        break;
    }
    this.emitExpect(expectation, "DESTROY", at, cause);
  }

  private emitExpect(
    expectation: Expectation,
    type: "NEW" | "DESTROY",
    at: number,
    cause: ExpectRemovalCause | "",
  ): void {
    if (this.onExpectEvent === null || this.settings.events === 0) return;
    const event = this.expectEvent;
    event.type = type;
    this.toCaptureTime(at, event);
    event.expectation = expectation;
    event.timeout = expectationRemainingSeconds(expectation, at, this.settings.hz);
    event.cause = cause;
    // An unconfirmed master announcing is the entry of the packet at hand, confirmed right after its
    // helper accepted it: numbered then, as the kernel's id exists from allocation.
    const master = expectation.master;
    event.masterId = master.id > 0 ? master.id : type === "NEW" && master === this.spare ? this.nextId : 0;
    this.onExpectEvent(event);
  }

  /**
   * The NAT the device sets up for a new connection (`nf_nat_setup_info` at its first packet's NAT
   * hooks): a RELATED connection whose master was translated follows the master; any other goes
   * through the rules. The reply tuple becomes the translated one. False: the device drops the packet.
   */
  private setUpNat(connection: Connection): boolean {
    const stats = this.stats.nat;
    const master = connection.master;
    let decision: NatDecision;
    if (master !== null && this.usedExpectationDirection >= 0) {
      const masterSide = this.usedExpectationDirection === DIR_REPLY ? master.original : master.reply;
      decision = followMasterDecision(
        connection.original,
        masterSide,
        this.usedExpectationPort,
        this.natView,
      );
    } else {
      decision = natDecision(this.natRules!, connection.original, this.natContext, this.natView);
    }
    if (decision.note !== null) stats.notes.set(decision.note, (stats.notes.get(decision.note) ?? 0) + 1);
    if (decision.dropped !== null) {
      stats.dropped++;
      stats.notes.set(decision.dropped, (stats.notes.get(decision.dropped) ?? 0) + 1);
      return false;
    }
    if (decision.srcNat === null && decision.dstNat === null) return true;
    connection.setReply(decision.reply);
    if (decision.srcNat !== null) connection.status |= Status.SrcNat;
    if (decision.dstNat !== null) connection.status |= Status.DstNat;
    stats.translated++;
    if (decision.srcNat?.kind === "follow-master" || decision.dstNat?.kind === "follow-master")
      stats.followedMaster++;
    if (decision.srcNat?.ownChoice === true || decision.dstNat?.ownChoice === true) {
      stats.ownChoice++;
      connection.status |= Status.NatOwnChoice;
      stats.notes.set(NOTE_OWN_PORT, (stats.notes.get(NOTE_OWN_PORT) ?? 0) + 1);
    }
    if (this.aliasTable !== null) {
      const alias = new NatAlias(connection);
      invertTuple(connection.reply, alias.original);
      invertTuple(connection.original, alias.reply);
      connection.natAlias = alias;
    }
    return true;
  }

  /**
   * Observed NAT for a new connection: the reply tuple is the inverse of the tuple its first packet
   * left the device with, so a port or ICMP id the device chose on a clash comes out as it chose it.
   */
  private setUpObservedNat(connection: Connection, translated: Tuple): void {
    const original = connection.original;
    const srcNat =
      translated.srcPort !== original.srcPort ||
      translated.srcWord0 !== original.srcWord0 ||
      translated.srcWord1 !== original.srcWord1 ||
      translated.srcWord2 !== original.srcWord2 ||
      translated.srcWord3 !== original.srcWord3;
    const dstNat =
      (translated.dstPort !== original.dstPort && !translated.isIcmp) ||
      translated.dstWord0 !== original.dstWord0 ||
      translated.dstWord1 !== original.dstWord1 ||
      translated.dstWord2 !== original.dstWord2 ||
      translated.dstWord3 !== original.dstWord3;
    if (!srcNat && !dstNat) return;
    connection.setReply(invertTuple(translated, this.replyScratch));
    connection.status |= Status.NatObserved;
    if (srcNat) connection.status |= Status.SrcNat;
    if (dstNat) connection.status |= Status.DstNat;
    this.stats.nat.translated++;
    this.stats.nat.observed++;
    if (this.aliasTable !== null) {
      const alias = new NatAlias(connection);
      invertTuple(connection.reply, alias.original);
      invertTuple(connection.original, alias.reply);
      connection.natAlias = alias;
    }
  }

  /**
   * Inside vantage, a packet no tuple knows: if it is a RELATED connection that arrived on the outside
   * and left translated (`Expectation.matchesTranslatedInbound`), rewrites the probe to the tuple it
   * arrived with. Returns the node of a connection already holding that tuple, else -1 (new).
   */
  private insideTranslatedExpected(): number {
    if (this.expectationTable.size === 0) return -1;
    const probe = this.probe;
    const expectation = this.expectationTable.findTranslatedInbound(probe);
    if (expectation === null) return -1;
    const kernel = expectation.tuple;
    probe.dstWord0 = kernel.dstWord0;
    probe.dstWord1 = kernel.dstWord1;
    probe.dstWord2 = kernel.dstWord2;
    probe.dstWord3 = kernel.dstWord3;
    probe.dstPort = kernel.dstPort;
    if (expectation.srcAddressExact) {
      probe.srcWord0 = kernel.srcWord0;
      probe.srcWord1 = kernel.srcWord1;
      probe.srcWord2 = kernel.srcWord2;
      probe.srcWord3 = kernel.srcWord3;
    }
    this.probeHash = signedTupleHash(probe);
    this.stats.nat.insideMatches++;
    return this.table.findNode(probe, this.probeHash);
  }

  private helperDropReason(): string {
    const stats = this.stats.helpers;
    // The counter the helper just raised names the cause.
    if (stats.partialDrops !== this.lastHelperDrops[0]) {
      this.lastHelperDrops[0] = stats.partialDrops;
      return Reason.helperPartial;
    }
    if (stats.malformedDrops !== this.lastHelperDrops[1]) {
      this.lastHelperDrops[1] = stats.malformedDrops;
      return Reason.helperMalformed;
    }
    this.lastHelperDrops[2] = stats.refusedDrops;
    return Reason.helperRefused;
  }

  /**
   * `early_drop`: looks at up to 8 hash buckets from the new tuple's and evicts every entry that is
   * not ASSURED in the first bucket that has any. The buckets are those of a kernel table of
   * `nf_conntrack_buckets` buckets indexed by our tuple hash (the kernel's is a seeded jhash, random
   * per boot, so which entries share a bucket differs, but how many do, and so how likely an eviction
   * is, matches). True when something was evicted.
   */
  private earlyDrop(hash: number): boolean {
    const bucketCount = Math.max(1, Math.floor(this.settings.buckets));
    let bucket = foreignBucket(hash >>> 0, bucketCount);
    for (let i = 0; i < EARLY_DROP_BUCKETS; i++) {
      this.earlyDropCount = 0;
      this.table.visitForeignBucket(bucket, bucketCount, this.earlyDropVisit);
      if (this.earlyDropCount > 0) {
        this.stats.earlyDrops += this.earlyDropCount;
        return true;
      }
      bucket = bucket + 1 === bucketCount ? 0 : bucket + 1;
    }
    return false;
  }

  /**
   * The GC worker's early-drop pass (`gc_worker` with `early_drop` set): in table order, evicts
   * entries `gc_worker_can_early_drop` allows while the table holds at least 95 % of the maximum.
   */
  private gcEarlyDropPass(at: number): void {
    this.gcEarlyDropAt = Infinity;
    const max = this.settings.conntrackMax;
    if (max === 0) return;
    const threshold = Math.floor(max / 100) * 95;
    const victims: Connection[] = [];
    for (const connection of this.table.connections()) {
      if (!connection.assured || (connection.tcpState >= 0 && tcpCanEarlyDrop(connection.tcpState)))
        victims.push(connection);
    }
    for (const connection of victims) {
      if (this.table.size < threshold) break;
      this.destroy(connection, at, "early-drop");
      this.stats.gcEarlyDrops++;
    }
  }

  /** `__nf_conntrack_confirm`: the entry joins the table and the timer starts. */
  private confirm(connection: Connection): void {
    this.lastConnection = connection;
    connection.id = this.nextId++;
    connection.startedAt = this.now;
    this.table.insert(connection, this.probeHash);
    if (connection.natAlias !== null) this.aliasTable!.insert(connection.natAlias);
    this.heap.push(connection);
    // An expected connection's confirmation is a RELATED event (printed as [NEW] all the same).
    this.pendingBits |= connection.master !== null ? EventBit.Related : EventBit.New;
    this.stats.connectionsCreated++;
    if (this.table.size > this.stats.maxLive) this.stats.maxLive = this.table.size;
    this.spare = this.store.newConnection();
  }

  refreshAccount(connection: Connection, direction: number, packet: DecodedPacket, seconds: number): void {
    this.setTimeout(connection, seconds);
    this.account(connection, direction, packet);
  }

  setTimeout(connection: Connection, seconds: number): void {
    const at = this.now + seconds * NS;
    // Written here, not passed to the heap: a time handed to a call V8 does not inline is boxed. (The
    // heap's page holds a slot's expiry also while the connection is not in the heap yet.)
    const slot = connection.tableSlot;
    const page = this.heap.pages[slot >>> PAGE_SHIFT];
    const p = (slot & PAGE_MASK) * ROW_DOUBLES;
    page[p + H_EXPIRY] = at;
    // The key is NaN while the connection is not in the heap.
    if (at < page[p + H_KEY]) this.heap.update(connection);
  }

  killAccount(connection: Connection, direction: number, packet: DecodedPacket): void {
    this.account(connection, direction, packet);
    this.markSeen(connection);
    this.destroy(connection, this.now, "reset");
  }

  cacheEvent(bits: number): void {
    this.pendingBits |= bits;
  }

  /** The connection took the packet being tracked (see `N_LAST_SEEN`). */
  private markSeen(connection: Connection): void {
    const slot = connection.tableSlot;
    this.heap.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + N_LAST_SEEN] = this.now;
  }

  private account(connection: Connection, direction: number, packet: DecodedPacket): void {
    // Straight into the row: counters passed through accessors V8 does not inline are boxed.
    const slot = connection.tableSlot;
    const numbers = this.heap.pages[slot >>> PAGE_SHIFT];
    const at =
      (slot & PAGE_MASK) * ROW_DOUBLES + (direction === DIR_ORIGINAL ? N_ORIGINAL_PACKETS : N_REPLY_PACKETS);
    numbers[at]++;
    numbers[at + 1] += packet.ipLength;
  }

  /**
   * Connections and expectations whose timers run out up to `t`, in time order; at most `limit` of
   * them (false when it stopped there, perhaps with nothing left). `draining`: the input has ended
   * (their DESTROY cause is "drain").
   */
  private expireUntil(t: number, limit = Infinity, draining = !Number.isFinite(t)): boolean {
    const expectations = this.expectationTable;
    for (let expired = 0; ; expired++) {
      if (expired >= limit) return false;
      const nextExpectation = expectations.nextExpiry();
      const gcAt = this.gcEarlyDropAt;
      let until = nextExpectation < t ? nextExpectation : t;
      if (gcAt < until) until = gcAt;
      const connection = this.heap.popExpired(until);
      if (connection !== null) {
        this.destroy(connection, connection.expiresAt, draining ? "drain" : "expired");
        continue;
      }
      if (gcAt !== Infinity && gcAt <= t && gcAt <= nextExpectation) {
        this.gcEarlyDropPass(gcAt);
        continue;
      }
      const expectation = expectations.peekExpired(t);
      if (expectation === null) return true;
      expectations.remove(expectation, draining ? "drain" : "expired", expectation.expiresAt);
    }
  }

  /** `nf_ct_delete`: DESTROY event, then the entry leaves the table. */
  private destroy(connection: Connection, at: number, cause: DestroyCause): void {
    if (connection.dead) return;
    this.heap.remove(connection);
    // Retired: the slot is free, the connection keeps reading its row until another takes it.
    this.table.remove(connection, true);
    connection.dead = true;
    if (connection.natAlias !== null) this.aliasTable!.remove(connection.natAlias);
    if (cause === "expired" || cause === "drain") this.stats.connectionsExpired++;
    else this.stats.connectionsKilled++;
    this.emit(connection, "DESTROY", at, cause);
    if (connection.expectations !== null) this.expectationTable.removeForMaster(connection, at);
  }

  private emit(
    connection: Connection,
    type: ConntrackEventType,
    at: number = this.now,
    cause: ConntrackEvent["destroyCause"] = "",
  ): void {
    const counts = this.stats.events;
    // One property per type, not `counts[type]++`: a keyed access by a varying name is megamorphic.
    if (type === "UPDATE") counts.UPDATE++;
    else if (type === "NEW") counts.NEW++;
    else counts.DESTROY++;
    if (this.onEvent === null || this.settings.events === 0) return;
    const event = this.event;
    event.type = type;
    // Times are worked out here, not passed on: a time handed to a call V8 does not inline is a new
    // heap number (toCaptureTime and remainingSeconds, inline).
    const sec = Math.floor(at / NS);
    event.tsSec = this.epochSec + sec;
    event.tsNsec = Math.round(at - sec * NS);
    event.connection = connection;
    event.seenReply = connection.seenReply;
    event.assured = connection.assured;
    event.helper = connection.helper;
    event.destroyCause = cause;
    // The row read here for the same reason (every connection the engine emits about is in its store).
    const slot = connection.tableSlot;
    const row = this.heap.pages[slot >>> PAGE_SHIFT];
    const p = (slot & PAGE_MASK) * ROW_DOUBLES;
    const expiresAt = row[p + H_EXPIRY];
    const hz = this.settings.hz;
    const remaining = Math.floor(Math.ceil((expiresAt - at) / (NS / hz)) / hz);
    if (type === "DESTROY") {
      event.bits = EventBit.Destroy;
      event.state = connection.tcpState;
      event.timeout = remaining > 0 ? remaining : -1;
      event.helper = null;
      event.hasCounters = this.settings.acct !== 0;
      event.originalPackets = row[p + N_ORIGINAL_PACKETS];
      event.originalBytes = row[p + N_ORIGINAL_BYTES];
      event.replyPackets = row[p + N_REPLY_PACKETS];
      event.replyBytes = row[p + N_REPLY_BYTES];
      event.deltaTime =
        this.settings.timestamp !== 0 ? Math.floor(at / NS) - Math.floor(row[p + N_STARTED] / NS) : -1;
      const started = row[p + N_STARTED];
      const firstSec = Math.floor(started / NS);
      event.firstSec = this.epochSec + firstSec;
      event.firstNsec = Math.round(started - firstSec * NS);
      const seen = row[p + N_LAST_SEEN];
      const lastSec = Math.floor(seen / NS);
      event.lastSec = this.epochSec + lastSec;
      event.lastNsec = Math.round(seen - lastSec * NS);
    } else {
      event.bits = this.pendingBits;
      event.state = this.pendingBits & EventBit.ProtoInfo ? connection.tcpState : -1;
      event.timeout = remaining > 0 ? remaining : 0;
      event.hasCounters = false;
      event.deltaTime = -1;
    }
    this.onEvent(event);
  }

  /**
   * Whole seconds left as the kernel prints them: it counts in jiffies (HZ ticks), so a timer set
   * and read within one tick shows the full timeout even when some nanoseconds passed.
   */
  remainingSeconds(connection: Connection, at: number = this.now): number {
    return remainingSeconds(connection.expiresAt, at, this.settings.hz);
  }

  private trackInvalid(reason: string): number {
    this.reason = reason;
    return TRACK_INVALID;
  }

  private invalid(reason: string): PacketVerdict {
    this.reason = reason;
    return Verdict.Invalid;
  }

  private ignored(reason: string): PacketVerdict {
    this.reason = reason;
    return Verdict.Ignored;
  }
}

/**
 * Seconds from `at` to `expiresAt` (engine ns) as the kernel prints them: it counts in jiffies, and
 * between the refresh and `at` either the whole ticks in that span passed or one more, by the phase
 * of a clock no capture shows. We count the fewer (the tick boundaries fall just after the refresh),
 * so a printed value is never below what the kernel could print, and at most one second above it (the
 * kernel's tick fell in between; the golden comparison's one tolerance).
 */
export function remainingSeconds(expiresAt: number, at: number, hz: number): number {
  const tick = NS / hz;
  const ticks = Math.ceil((expiresAt - at) / tick);
  return Math.floor(ticks / hz);
}

/** How many other ports `nf_nat_exp_find_port` tries for an expectation whose port is taken. */
export const NAT_EXPECT_PORT_ATTEMPTS = 128;
const NOTE_OWN_PORT =
  "nat: a port or ICMP id clashed and was re-mapped; the kernel picks the new one at random, so the one shown is this model's own choice";
const NOTE_EXPECT_PORT_MOVED =
  "nat helper: expectation port taken, the next free one used (the kernel tries random ones)";

/** -ESHUTDOWN: the master has no helper. */
const ExpectErrorShutdown = 4;

const TRACK_ACCEPT = 0;
const TRACK_INVALID = 1;
const TRACK_REOPEN = 2;
const TRACK_KILLED = 3;

function hasPortTuple(protocol: number): boolean {
  return (
    protocol === IPPROTO_TCP ||
    protocol === IPPROTO_UDP ||
    protocol === IPPROTO_UDPLITE ||
    protocol === IPPROTO_SCTP
  );
}

/** The reply type of a request/reply pair (`invmap`), -1 when the type has none. */
export function icmpReplyType(protocol: number, type: number): number {
  if (protocol === IPPROTO_ICMP) {
    switch (type) {
      case 8:
        return 0;
      case 0:
        return 8;
      case 13:
        return 14;
      case 14:
        return 13;
      case 15:
        return 16;
      case 16:
        return 15;
      case 17:
        return 18;
      case 18:
        return 17;
      default:
        return -1;
    }
  }
  switch (type) {
    case 128:
      return 129;
    case 129:
      return 128;
    case 139:
      return 140;
    case 140:
      return 139;
    default:
      return -1;
  }
}

function isIcmpRequest(protocol: number, type: number): boolean {
  return protocol === IPPROTO_ICMP
    ? type === 8 || type === 13 || type === 15 || type === 17
    : type === 128 || type === 139;
}

function wordsOf(bytes: Uint8Array, out: Uint32Array): void {
  out[0] = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  out[1] = ((bytes[4] << 24) | (bytes[5] << 16) | (bytes[6] << 8) | bytes[7]) >>> 0;
  out[2] = ((bytes[8] << 24) | (bytes[9] << 16) | (bytes[10] << 8) | bytes[11]) >>> 0;
  out[3] = ((bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) | bytes[15]) >>> 0;
}
