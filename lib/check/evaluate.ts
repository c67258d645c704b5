/**
 * Judging a replay against a policy, as the replay goes: each rule sees every finished connection
 * record and every orphaned packet once, keeps its counts and lists only its first offenders
 * (`maxListed`), so memory follows the rules and the live table, never the capture.
 */
import { IPPROTO_TCP } from "../decode/packet.js";
import { Verdict } from "../conntrack/engine.js";
import type { Connection } from "../conntrack/connection.js";
import { FlowTracker, type FlowRecord } from "../report/flows.js";
import { OrphanTracker, type OrphanKind, type OrphanRecord } from "../report/orphans.js";
import type { TupleRecord } from "../report/event-formats.js";
import { replayCaptures, type ReplayOptions, type ReplayResult } from "../pipeline/replay.js";
import {
  endpointMatches,
  endpointText,
  flowMatches,
  forwardView,
  originalView,
  type FlowView,
} from "./match.js";
import {
  REACH_WORDS,
  type BoundsRule,
  type LimitRule,
  type Policy,
  type PolicyLocation,
  type PolicyRule,
} from "./policy.js";

/** A packet by its input and 1-based record number in it (as Wireshark numbers frames). */
export interface PacketRef {
  input: string;
  packet: number;
}

/** A connection that breaks a rule. */
export interface ConnectionOffender {
  type: "connection";
  /** The engine's connection id (as in flows.csv). */
  id: number;
  protocol: string;
  original: TupleRecord;
  reply: TupleRecord;
  /** Which addresses NAT changed: none, snat, dnat, both. */
  nat: string;
  finalState: string;
  endReason: string;
  flags: string[];
  duration: number;
  packets: number;
  bytes: number;
  /** The packet that created the connection, and the last one it accounted (null when unknown). */
  firstPacket: PacketRef | null;
  lastPacket: PacketRef | null;
  /** How it breaks the rule. */
  why: string;
}

/** An orphaned or INVALID packet that breaks a limit. */
export interface PacketOffender {
  type: "packet";
  input: string;
  packet: number;
  time: string;
  protocol: string;
  src: string;
  dst: string;
  sport: number | null;
  dport: number | null;
  kind: OrphanKind;
  why: string;
}

export type Offender = ConnectionOffender | PacketOffender;

export interface RuleResult {
  id: string;
  name: string;
  kind: PolicyRule["kind"];
  location: PolicyLocation;
  passed: boolean;
  /** One line: what was found ("3 connections, at most 0 allowed", "2 matching, none established"). */
  summary: string;
  /** Offenders counted (connections or packets that break the rule). */
  violations: number;
  /** The first `maxListed` of them. */
  offenders: Offender[];
}

export interface CheckTotals {
  connections: number;
  orphans: number;
  invalidPackets: number;
}

export interface CheckOutcome {
  policy: { file: string; name: string | null };
  inputs: string[];
  passed: boolean;
  totals: CheckTotals;
  rules: RuleResult[];
}

/** What the packet numbers of one connection are known as. */
export interface PacketSpan {
  firstInput: number;
  first: number;
  lastInput: number;
  last: number;
}

/** Orphan kinds that answer a connection the table does not have. */
const REPLY_KINDS: ReadonlySet<OrphanKind> = new Set([
  "no-original",
  "icmp-error-unknown",
  "after-end",
  "reply-after-expiry",
]);
/** Orphan kinds the engine gave an INVALID verdict. */
const INVALID_KINDS: ReadonlySet<OrphanKind> = new Set([
  "no-original",
  "icmp-error-unknown",
  "outside-window",
  "after-end",
  "invalid",
]);

abstract class RuleJudge {
  violations = 0;
  readonly offenders: Offender[] = [];
  constructor(
    readonly rule: PolicyRule,
    protected readonly maxListed: number,
  ) {}
  flow(_record: FlowRecord, _offender: OffenderFactory, _forward: FlowView, _original: FlowView): void {}
  orphan(_record: OrphanRecord): void {}
  abstract result(): { passed: boolean; summary: string };
  protected offend(make: () => Offender): void {
    this.violations++;
    if (this.offenders.length < this.maxListed) this.offenders.push(make());
  }
}

type OffenderFactory = (why: string) => ConnectionOffender;

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

class LimitJudge extends RuleJudge {
  declare readonly rule: LimitRule;
  private count = 0;
  override flow(record: FlowRecord, offender: OffenderFactory): void {
    const rule = this.rule;
    if (rule.protocol !== null && record.protocol !== rule.protocol) return;
    let why: string;
    switch (rule.metric) {
      case "unreplied-connections":
        if (!record.flags.includes("UNREPLIED")) return;
        why = "never answered";
        break;
      case "rst-ended-connections":
        // A RST either kills an unanswered entry at once or leaves it in CLOSE until its timeout.
        if (
          record.endReason !== "reset" &&
          !(record.protocolNumber === IPPROTO_TCP && record.finalState === "CLOSE")
        )
          return;
        why = `ended by a RST (${record.endDetail})`;
        break;
      case "open-at-end":
        if (record.endReason !== "live") return;
        why = record.endDetail;
        break;
      default:
        return;
    }
    this.count++;
    if (this.offenders.length < this.maxListed) this.offenders.push(offender(why));
  }
  override orphan(record: OrphanRecord): void {
    const rule = this.rule;
    if (rule.protocol !== null && record.protocol !== rule.protocol) return;
    if (rule.metric === "orphaned-replies" && !REPLY_KINDS.has(record.kind)) return;
    if (rule.metric === "invalid-packets" && !INVALID_KINDS.has(record.kind)) return;
    if (rule.metric !== "orphans" && rule.metric !== "orphaned-replies" && rule.metric !== "invalid-packets")
      return;
    this.count++;
    const offender = (): PacketOffender => ({
      type: "packet",
      input: record.input,
      packet: record.packet,
      time: record.time,
      protocol: record.protocol,
      src: record.src,
      dst: record.dst,
      sport: record.sport,
      dport: record.dport,
      kind: record.kind,
      why: record.reason,
    });
    if (this.offenders.length < this.maxListed) this.offenders.push(offender());
  }
  result(): { passed: boolean; summary: string } {
    const passed = this.count <= this.rule.max;
    // Over the limit, every counted item is part of the violation; within it, none is.
    this.violations = passed ? 0 : this.count;
    if (passed) this.offenders.length = 0;
    const noun =
      this.rule.metric.endsWith("packets") || this.rule.metric.startsWith("orphan") ? "packet" : "connection";
    return { passed, summary: `${plural(this.count, noun)}, at most ${this.rule.max} allowed` };
  }
}

/** Judges only what a stateful firewall judges: the first packet of a connection that is not RELATED. */
function judgedByFirewall(record: FlowRecord): boolean {
  return !record.flags.includes("RELATED");
}

class DenyJudge extends RuleJudge {
  constructor(
    rule: PolicyRule & { kind: "deny" },
    maxListed: number,
    private readonly inside: Policy["inside"],
  ) {
    super(rule, maxListed);
  }
  override flow(record: FlowRecord, offender: OffenderFactory, forward: FlowView): void {
    if (!judgedByFirewall(record)) return;
    const rule = this.rule as PolicyRule & { kind: "deny" };
    if (flowMatches(rule.match, forward, this.inside))
      this.offend(() => offender(`matches the deny entry (${rule.match.text})`));
  }
  result(): { passed: boolean; summary: string } {
    return {
      passed: this.violations === 0,
      summary:
        this.violations === 0 ? "no connection matches" : `${plural(this.violations, "connection")} denied`,
    };
  }
}

class DefaultDenyJudge extends RuleJudge {
  constructor(
    rule: PolicyRule & { kind: "default-deny" },
    maxListed: number,
    private readonly inside: Policy["inside"],
  ) {
    super(rule, maxListed);
  }
  private judged = 0;
  private denied = 0;
  override flow(record: FlowRecord, offender: OffenderFactory, forward: FlowView): void {
    if (!judgedByFirewall(record)) return;
    const rule = this.rule as PolicyRule & { kind: "default-deny" };
    // An explicitly denied connection is the deny entry's violation, not this one's.
    if (rule.deny.some((match) => flowMatches(match, forward, this.inside))) {
      this.denied++;
      return;
    }
    this.judged++;
    if (rule.allow.some((match) => flowMatches(match, forward, this.inside))) return;
    this.offend(() => offender("no allow entry matches"));
  }
  result(): { passed: boolean; summary: string } {
    const denied = this.denied === 0 ? "" : ` (${this.denied} more matched a deny entry)`;
    return {
      passed: this.violations === 0,
      summary:
        (this.violations === 0
          ? `all ${plural(this.judged, "new connection")} allowed`
          : `${plural(this.violations, "new connection")} of ${this.judged} matched no allow entry`) + denied,
    };
  }
}

function reached(record: FlowRecord, reach: "seen" | "replied" | "established" | "assured"): boolean {
  switch (reach) {
    case "seen":
      return true;
    case "replied":
      return record.flags.includes("SEEN_REPLY");
    case "assured":
      return record.flags.includes("ASSURED");
    case "established":
      // conntrack's ESTABLISHED: TCP through its handshake, other protocols answered.
      return record.protocolNumber === IPPROTO_TCP
        ? record.flags.includes("ASSURED") || record.history.some((change) => change.state === "ESTABLISHED")
        : record.flags.includes("SEEN_REPLY");
  }
}

class RequireJudge extends RuleJudge {
  private matched = 0;
  private satisfied = 0;
  constructor(
    rule: PolicyRule & { kind: "require" },
    maxListed: number,
    private readonly inside: Policy["inside"],
  ) {
    super(rule, maxListed);
  }
  override flow(record: FlowRecord, offender: OffenderFactory, _forward: FlowView, original: FlowView): void {
    const rule = this.rule as PolicyRule & { kind: "require" };
    if (!flowMatches(rule.match, original, this.inside)) return;
    this.matched++;
    if (reached(record, rule.reach)) this.satisfied++;
    else
      this.offend(() =>
        offender(`not ${REACH_WORDS[rule.reach]} (${record.finalState}, ${record.flags.join(" ")})`),
      );
  }
  result(): { passed: boolean; summary: string } {
    const rule = this.rule as PolicyRule & { kind: "require" };
    const passed = this.satisfied >= rule.atLeast;
    // Matching connections that fell short only break the rule when too few others made it.
    if (passed) {
      this.violations = 0;
      this.offenders.length = 0;
    }
    const summary =
      this.matched === 0
        ? "no connection matches"
        : `${plural(this.matched, "matching connection")}, ${this.satisfied} ${REACH_WORDS[rule.reach]}` +
          (passed ? "" : ` (at least ${rule.atLeast} required)`);
    return { passed, summary };
  }
}

class NatJudge extends RuleJudge {
  private matched = 0;
  constructor(
    rule: PolicyRule & { kind: "nat" },
    maxListed: number,
    private readonly inside: Policy["inside"],
  ) {
    super(rule, maxListed);
  }
  override flow(record: FlowRecord, offender: OffenderFactory, _forward: FlowView, original: FlowView): void {
    const rule = this.rule as PolicyRule & { kind: "nat" };
    if (!flowMatches(rule.match, original, this.inside)) return;
    this.matched++;
    // The reply comes back to where the source was translated to, and from where the destination was.
    const address = rule.side === "source" ? record.reply.dst : record.reply.src;
    const port = rule.side === "source" ? record.reply.dport : record.reply.sport;
    if (endpointMatches(rule.expect, address, port)) return;
    const verb = rule.side === "source" ? "left as" : "forwarded to";
    this.offend(() => offender(`${verb} ${endpointText(address, port)}, expected ${rule.expect.text}`));
  }
  result(): { passed: boolean; summary: string } {
    const rule = this.rule as PolicyRule & { kind: "nat" };
    if (this.matched < rule.atLeast)
      return {
        passed: false,
        summary: `${plural(this.matched, "matching connection")} (at least ${rule.atLeast} required)`,
      };
    return {
      passed: this.violations === 0,
      summary:
        this.violations === 0
          ? `all ${plural(this.matched, "matching connection")} translated as expected`
          : `${plural(this.violations, "connection")} of ${this.matched} translated otherwise`,
    };
  }
}

class BoundsJudge extends RuleJudge {
  private matched = 0;
  constructor(
    rule: BoundsRule,
    maxListed: number,
    private readonly inside: Policy["inside"],
  ) {
    super(rule, maxListed);
  }
  override flow(record: FlowRecord, offender: OffenderFactory, _forward: FlowView, original: FlowView): void {
    const rule = this.rule as BoundsRule;
    if (!flowMatches(rule.match, original, this.inside)) return;
    this.matched++;
    const problems: string[] = [];
    const check = (
      what: string,
      value: number,
      low: number | null,
      high: number | null,
      unit: string,
    ): void => {
      if (low !== null && value < low) problems.push(`${what} ${formatNumber(value)}${unit} < ${low}${unit}`);
      if (high !== null && value > high)
        problems.push(`${what} ${formatNumber(value)}${unit} > ${high}${unit}`);
    };
    check("duration", record.duration, rule.minDuration, rule.maxDuration, " s");
    check("bytes", record.originalBytes + record.replyBytes, rule.minBytes, rule.maxBytes, "");
    check("packets", record.originalPackets + record.replyPackets, rule.minPackets, rule.maxPackets, "");
    if (problems.length > 0) this.offend(() => offender(problems.join(", ")));
  }
  result(): { passed: boolean; summary: string } {
    return {
      passed: this.violations === 0,
      summary:
        this.violations === 0
          ? `all ${plural(this.matched, "matching connection")} within bounds`
          : `${plural(this.violations, "connection")} of ${this.matched} out of bounds`,
    };
  }
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(6).replace(/0+$/, "");
}

export interface PolicyEvaluatorOptions {
  /** Offenders listed per rule (default 20); all are counted. */
  maxListed?: number;
}

/** Feeds records to every rule; `finish` gives the outcome. */
export class PolicyEvaluator {
  private readonly judges: RuleJudge[];
  private connections = 0;
  private orphans = 0;
  private invalidPackets = 0;
  inputNames: readonly string[] = [];

  constructor(
    private readonly policy: Policy,
    options: PolicyEvaluatorOptions = {},
  ) {
    const maxListed = Math.max(0, options.maxListed ?? 20);
    this.judges = policy.rules.map((rule): RuleJudge => {
      switch (rule.kind) {
        case "limit":
          return new LimitJudge(rule, maxListed);
        case "deny":
          return new DenyJudge(rule, maxListed, policy.inside);
        case "default-deny":
          return new DefaultDenyJudge(rule, maxListed, policy.inside);
        case "require":
          return new RequireJudge(rule, maxListed, policy.inside);
        case "nat":
          return new NatJudge(rule, maxListed, policy.inside);
        case "bounds":
          return new BoundsJudge(rule, maxListed, policy.inside);
      }
    });
  }

  /** A finished connection and where its packets are (null when not known). */
  addFlow(record: FlowRecord, span: PacketSpan | null): void {
    this.connections++;
    const original = originalView(record);
    const forward = forwardView(record, original);
    const names = this.inputNames;
    const ref = (input: number, packet: number): PacketRef => ({
      input: names[input] ?? String(input),
      packet,
    });
    const offender: OffenderFactory = (why) => ({
      type: "connection",
      id: record.id,
      protocol: record.protocol,
      original: record.original,
      reply: record.reply,
      nat: record.nat,
      finalState: record.finalState,
      endReason: record.endReason,
      flags: record.flags,
      duration: record.duration,
      packets: record.originalPackets + record.replyPackets,
      bytes: record.originalBytes + record.replyBytes,
      firstPacket: span === null ? null : ref(span.firstInput, span.first),
      lastPacket: span === null ? null : ref(span.lastInput, span.last),
      why,
    });
    for (const judge of this.judges) judge.flow(record, offender, forward, original);
  }

  addOrphan(record: OrphanRecord): void {
    this.orphans++;
    if (INVALID_KINDS.has(record.kind)) this.invalidPackets++;
    for (const judge of this.judges) judge.orphan(record);
  }

  finish(inputs: readonly string[]): CheckOutcome {
    const rules = this.judges.map((judge): RuleResult => {
      const { passed, summary } = judge.result();
      return {
        id: judge.rule.id,
        name: judge.rule.name,
        kind: judge.rule.kind,
        location: judge.rule.location,
        passed,
        summary,
        violations: judge.violations,
        offenders: judge.offenders,
      };
    });
    return {
      policy: { file: this.policy.file, name: this.policy.name },
      inputs: [...inputs],
      passed: rules.every((rule) => rule.passed),
      totals: { connections: this.connections, orphans: this.orphans, invalidPackets: this.invalidPackets },
      rules,
    };
  }
}

export interface CheckOptions extends Omit<
  ReplayOptions,
  "onEvent" | "onExpectEvent" | "onPacket" | "onInputs" | "backpressure"
> {
  maxListed?: number;
  /** Ended connections remembered to explain late replies (default 4096, as `report`). */
  orphanMemory?: number;
}

export interface CheckRun {
  outcome: CheckOutcome;
  replay: ReplayResult;
  /** The most ended flows held at once waiting for their last packet's number (memory's bound). */
  flowsHeldAtMost: number;
}

/**
 * Each live connection's first and last packet (input and record number), by its table slot: typed
 * arrays, no object or map entry per connection. A slot's numbers are its connection's only while
 * `owner` holds that connection's id (a slot is reused once its connection is gone).
 */
class SlotSpans {
  private owner = new Float64Array(1024);
  private numbers = new Float64Array(1024 * 4);

  begin(slot: number, id: number, input: number, packet: number): void {
    if (slot >= this.owner.length) this.grow(slot);
    this.owner[slot] = id;
    const at = slot * 4;
    this.numbers[at] = this.numbers[at + 2] = input;
    this.numbers[at + 1] = this.numbers[at + 3] = packet;
  }

  touch(slot: number, id: number, input: number, packet: number): void {
    if (slot >= this.owner.length || this.owner[slot] !== id) return;
    this.numbers[slot * 4 + 2] = input;
    this.numbers[slot * 4 + 3] = packet;
  }

  /** The connection's span (null when none was begun), and the slot let go. */
  take(slot: number, id: number): PacketSpan | null {
    if (slot < 0 || slot >= this.owner.length || this.owner[slot] !== id) return null;
    this.owner[slot] = 0;
    const at = slot * 4;
    const numbers = this.numbers;
    return {
      firstInput: numbers[at],
      first: numbers[at + 1],
      lastInput: numbers[at + 2],
      last: numbers[at + 3],
    };
  }

  private grow(slot: number): void {
    let size = this.owner.length;
    while (size <= slot) size *= 2;
    const owner = new Float64Array(size);
    owner.set(this.owner);
    const numbers = new Float64Array(size * 4);
    numbers.set(this.numbers);
    this.owner = owner;
    this.numbers = numbers;
  }
}

/**
 * Replays the captures once and judges them against the policy. The packet that created each
 * connection (and the last it accounted) is noted by record number; nothing else per packet is kept.
 */
export async function runCheck(
  files: readonly string[],
  policy: Policy,
  options: CheckOptions = {},
): Promise<CheckRun> {
  const { maxListed, orphanMemory, ...replayOptions } = options;
  const evaluator = new PolicyEvaluator(policy, { maxListed });
  const spans = new SlotSpans();
  /** Connections created by the packet being processed, waiting for its record number. */
  const created: Connection[] = [];
  /**
   * Connections a packet's RST killed (that packet is their last), and any ended after them while it
   * was processed (so that flows are judged in the order they ended); judged once its number is known.
   * Others are judged as they end: holding every flow a drain or the end of the input ends would hold
   * a record per connection at once.
   */
  const ended: { record: FlowRecord; span: PacketSpan | null }[] = [];
  let flowsHeldAtMost = 0;
  /** The ending flow's span, taken while its connection still holds its table slot. */
  let endingSpan: PacketSpan | null = null;
  const flows = new FlowTracker({
    onFlowEnd: (end) => {
      const connection = end.connection!;
      endingSpan = spans.take(connection.tableSlot, connection.id);
      // Created and ended by one packet: it never gets that packet's number.
      const pending = created.indexOf(connection);
      if (pending >= 0) created.splice(pending, 1);
    },
    onFlow: (record) => {
      const span = endingSpan;
      endingSpan = null;
      if (ended.length > 0 || record.endReason === "reset") {
        if (ended.push({ record, span }) > flowsHeldAtMost) flowsHeldAtMost = ended.length;
      } else evaluator.addFlow(record, span);
    },
  });
  const orphans = new OrphanTracker({
    memory: orphanMemory,
    onOrphan: (record) => evaluator.addOrphan(record),
  });

  // The flows need every event whatever nf_conntrack_events says (as `report`).
  const settings = { ...((replayOptions.settings ?? {}) as Record<string, number>) };
  delete settings["net.netfilter.nf_conntrack_events"];
  settings.events = 1;

  const replay = await replayCaptures(files, {
    ...replayOptions,
    settings,
    onInputs: (names) => {
      orphans.setInputNames(names);
      evaluator.inputNames = names;
    },
    onEvent: (event) => {
      orphans.onEvent(event);
      flows.onEvent(event);
      if (event.type === "NEW") created.push(event.connection);
    },
    onPacket: (record, _packetClass, packet, verdict, reason, connection) => {
      if (verdict < 0) return;
      // Most packets create nothing (and setting an array's length is a call even when it is 0).
      if (created.length > 0) {
        for (let i = 0; i < created.length; i++)
          spans.begin(created[i].tableSlot, created[i].id, record.inputIndex, record.recordNumber);
        created.length = 0;
      }
      const live = flows.liveConnection(verdict, connection);
      if (live !== null && verdict !== Verdict.Invalid)
        spans.touch(live.tableSlot, live.id, record.inputIndex, record.recordNumber);
      if (ended.length > 0) {
        for (let i = 0; i < ended.length; i++) {
          const { record: flowRecord, span } = ended[i];
          // A RST that kills its connection is the packet being processed: its last.
          if (span !== null && flowRecord.endReason === "reset") {
            span.lastInput = record.inputIndex;
            span.last = record.recordNumber;
          }
          evaluator.addFlow(flowRecord, span);
        }
        ended.length = 0;
      }
      orphans.onPacket(record.inputIndex, record.recordNumber, packet, verdict, reason, live);
    },
  });
  for (const { record, span } of ended) evaluator.addFlow(record, span);
  ended.length = 0;
  flows.finish(replay.engine);
  for (const { record, span } of ended) evaluator.addFlow(record, span);
  ended.length = 0;
  return { outcome: evaluator.finish(replay.inputNames), replay, flowsHeldAtMost };
}
