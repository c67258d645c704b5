/**
 * What a NAT device with these rules does to a new connection, as nf_nat_core.c does it on the
 * connection's first packet: the destination hook (PREROUTING, or OUTPUT for the device's own
 * traffic) may DNAT/REDIRECT, then the source hook (POSTROUTING, or INPUT for traffic to the device)
 * may SNAT/MASQUERADE. The first rule that matches in chain order decides; a hook where no rule
 * translates still gets the kernel's "null binding", which keeps the addresses but can move a
 * source port that clashes. The outcome is the reply tuple the device records: the inverse of the
 * translated original.
 *
 * Exact: rule order and matching, address choice from a range (find_best_ips_proto's jhash2, which
 * has no random seed), keeping ports and ICMP ids when they do not clash, re-using an existing
 * source mapping (when the table view offers them), and a destination port chosen from a range
 * without --random (the kernel starts at the range's first port and steps by one).
 * Our own choice: a *source* port or ICMP id that has to move because of a clash, and anything with
 * --random/--random-fully — the kernel starts its search at get_random_u16(); we start at a hash of
 * the original tuple instead, then step by one through the range as the kernel does (128 tries,
 * then halving rounds from a new start). `ownChoice` says when that happened.
 * Not modelled: the last 32 tries' eviction of a clashing TIME_WAIT entry
 * (nf_nat_used_tuple_harder), the SMP-race exception of nf_nat_used_tuple_new, conntrack zones.
 */
import { Tuple } from "../connection.js";
import { IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6 } from "../../decode/packet.js";
import {
  protocolHasPorts,
  type AddressMatch,
  type InterfaceMatch,
  type NatAddress,
  type NatRange,
  type NatRule,
  type NatRuleSet,
  type PortMatch,
} from "./rules.js";

/** What the decision needs to know about the live table (the engine implements it). */
export interface NatTableView {
  /**
   * nf_conntrack_tuple_taken: whether a live connection other than the new one has `tuple` as its
   * original or reply tuple — except a connection whose original tuple equals the new one's
   * (`newOriginal`), which the kernel leaves to clash resolution.
   */
  isTaken(tuple: Tuple, newOriginal: Tuple): boolean;
  /**
   * find_appropriate_src (optional): reply tuples of live connections that had a source NAT set up
   * (null bindings included) and whose original tuple has this protocol, source address and source
   * port, most recently created first. Without it an earlier mapping of the same inside endpoint is
   * not re-used, which only matters when that mapping had itself been moved by a clash.
   */
  sourceMappings?(original: Tuple): Iterable<Tuple>;
}

/** Which hooks the first packet passes. */
export type NatPath = "forward" | "input" | "output";

export interface NatContext {
  /** Interface the packet came in on; null when unknown (then `-i` matches are not checked). */
  inInterface: string | null;
  /** Interface it leaves by; null when unknown (then `-o` matches are not checked). */
  outInterface: string | null;
  /** Default "forward": PREROUTING then POSTROUTING. "input": PREROUTING then INPUT. "output": OUTPUT then POSTROUTING. */
  path?: NatPath;
}

export interface NatTranslation {
  /**
   * The rule that translated, or null for a null binding that had to move a clashing port and for a
   * related connection that follows its master.
   */
  rule: NatRule | null;
  kind: "SNAT" | "DNAT" | "MASQUERADE" | "REDIRECT" | "null-binding" | "follow-master";
  /** New address (source for SNAT/MASQUERADE, destination for DNAT/REDIRECT) as Tuple words. */
  family: number;
  address0: number;
  address1: number;
  address2: number;
  address3: number;
  /** New port, or ICMP id (for ICMP both SNAT and DNAT change the id). 0 when the protocol has none. */
  port: number;
  /** True when the port/id is our pick where the kernel picks at random (a clash, or --random). */
  ownChoice: boolean;
}

export interface NatDecision {
  /** Destination translation (PREROUTING/OUTPUT); null when nothing changed. */
  dstNat: NatTranslation | null;
  /** Source translation (POSTROUTING/INPUT); null when nothing changed. */
  srcNat: NatTranslation | null;
  /** The reply tuple the device records: the inverse of the translated original. */
  reply: Tuple;
  /**
   * Set when the kernel would drop the packet instead: MASQUERADE/REDIRECT without a known interface
   * address, or no free port left in the range.
   */
  dropped: string | null;
  /** Set when a rule had to assume something (REDIRECT with the incoming interface's address unknown). */
  note: string | null;
}

/** The ICMP reply types conntrack inverts to (nf_conntrack_proto_icmp invmap). */
const ICMP_REPLY: Record<number, number> = { 8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17 };
const ICMPV6_REPLY: Record<number, number> = { 128: 129, 129: 128, 139: 140, 140: 139 };

/** nf_ct_invert_tuple: swapped addresses and ports; ICMP keeps the id and maps the type. */
export function invertTuple(tuple: Tuple, out: Tuple = new Tuple()): Tuple {
  out.family = tuple.family;
  out.protocol = tuple.protocol;
  out.src0 = tuple.dst0;
  out.src1 = tuple.dst1;
  out.src2 = tuple.dst2;
  out.src3 = tuple.dst3;
  out.dst0 = tuple.src0;
  out.dst1 = tuple.src1;
  out.dst2 = tuple.src2;
  out.dst3 = tuple.src3;
  if (tuple.protocol === IPPROTO_ICMP || tuple.protocol === IPPROTO_ICMPV6) {
    const map = tuple.protocol === IPPROTO_ICMP ? ICMP_REPLY : ICMPV6_REPLY;
    const type = tuple.dstPort >>> 8;
    const replyType = map[type] ?? type;
    out.srcPort = tuple.srcPort;
    out.dstPort = (replyType << 8) | (tuple.dstPort & 0xff);
  } else {
    out.srcPort = tuple.dstPort;
    out.dstPort = tuple.srcPort;
  }
  return out;
}

// ---------------------------------------------------------------- matching

function addressMatches(
  match: AddressMatch,
  family: number,
  w0: number,
  w1: number,
  w2: number,
  w3: number,
): boolean {
  if (match.family !== family) return match.negated;
  const m = match.mask;
  const n = match.network;
  const inside =
    (w0 & m[0]) >>> 0 === n[0] &&
    (w1 & m[1]) >>> 0 === n[1] &&
    (w2 & m[2]) >>> 0 === n[2] &&
    (w3 & m[3]) >>> 0 === n[3];
  return inside !== match.negated;
}

function portMatches(match: PortMatch, port: number): boolean {
  let inside = false;
  for (const [low, high] of match.ranges) if (port >= low && port <= high) inside = true;
  return inside !== match.negated;
}

/** xt's interface match: exact name, or prefix when the rule's name ended in `+`. Unknown (null) matches. */
function interfaceMatches(match: InterfaceMatch, name: string | null): boolean {
  if (name === null) return true;
  const equal = match.wildcard ? name.startsWith(match.name) : name === match.name;
  return equal !== match.negated;
}

function ruleMatches(rule: NatRule, t: Tuple, context: NatContext): boolean {
  if (rule.family !== 0 && rule.family !== t.family) return false;
  if (rule.protocol !== null && (t.protocol === rule.protocol) === rule.protocolNegated) return false;
  if (rule.source !== null && !addressMatches(rule.source, t.family, t.src0, t.src1, t.src2, t.src3))
    return false;
  if (
    rule.destination !== null &&
    !addressMatches(rule.destination, t.family, t.dst0, t.dst1, t.dst2, t.dst3)
  ) {
    return false;
  }
  // A fragment without ports never matches a port rule; tuples always have them here.
  if (rule.sourcePorts !== null && !portMatches(rule.sourcePorts, t.srcPort)) return false;
  if (rule.destinationPorts !== null && !portMatches(rule.destinationPorts, t.dstPort)) return false;
  if (rule.inInterface !== null && !interfaceMatches(rule.inInterface, context.inInterface)) return false;
  if (rule.outInterface !== null && !interfaceMatches(rule.outInterface, context.outInterface)) return false;
  return true;
}

/** Walks a built-in chain with jumps, gotos and RETURN; the translating rule, or null. */
export function findNatRule(
  rules: NatRuleSet,
  chainName: string,
  t: Tuple,
  context: NatContext,
): NatRule | null {
  // A chain's outcome for this tuple is the same wherever it is reached from: walking each chain once
  // keeps rules that jump to the same chains many times linear, not exponential, in their depth.
  let walked: Map<string, NatRule | null | "return"> | null = null;
  const walkOnce = (name: string, depth: number): NatRule | null | "return" => {
    walked ??= new Map();
    let result = walked.get(name);
    if (result === undefined) {
      result = walk(name, depth);
      walked.set(name, result);
    }
    return result;
  };
  const walk = (name: string, depth: number): NatRule | null | "return" => {
    const chain = rules.chains.get(name);
    if (chain === undefined || depth > 64) return "return";
    for (const rule of chain.rules) {
      if (!ruleMatches(rule, t, context)) continue;
      const target = rule.target;
      switch (target.kind) {
        case "RETURN":
          return "return";
        case "ACCEPT":
          return null;
        case "JUMP": {
          const result = walkOnce(target.chain, depth + 1);
          if (result !== "return") return result;
          break;
        }
        case "GOTO":
          // RETURN in a chain reached by goto returns past the chain that did the goto.
          return walkOnce(target.chain, depth + 1);
        default:
          return rule;
      }
    }
    return "return";
  };
  const result = walk(chainName, 0);
  return result === "return" ? null : result;
}

// ---------------------------------------------------------------- kernel range arithmetic

/** The kernel's range flags, derived once per decision. */
interface KernelRange {
  mapIps: boolean;
  family: number;
  min: [number, number, number, number];
  max: [number, number, number, number];
  protoSpecified: boolean;
  minPort: number;
  maxPort: number;
  randomAll: boolean;
  persistent: boolean;
}

function kernelRange(range: NatRange, address: NatAddress | null): KernelRange {
  const low = address ?? range.minAddress;
  const high = address ?? range.maxAddress;
  return {
    mapIps: low !== null,
    family: low?.family ?? 0,
    min: low === null ? [0, 0, 0, 0] : [low.w0, low.w1, low.w2, low.w3],
    max: high === null ? [0, 0, 0, 0] : [high.w0, high.w1, high.w2, high.w3],
    protoSpecified: range.minPort !== null,
    minPort: range.minPort ?? 0,
    maxPort: range.maxPort ?? 0,
    randomAll: range.random || range.randomFully,
    persistent: range.persistent,
  };
}

function compareWords(a: number[], b: number[]): number {
  for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

const SRC = 0;
const DST = 1;

/** The manipulable key: the port on the manipulated side, the ICMP id on either side. */
function keyOf(t: Tuple, manip: number): number {
  if (t.isIcmp) return t.srcPort;
  return manip === SRC ? t.srcPort : t.dstPort;
}
function setKey(t: Tuple, manip: number, key: number): void {
  if (t.isIcmp || manip === SRC) t.srcPort = key;
  else t.dstPort = key;
}
function hasKey(t: Tuple): boolean {
  return t.isIcmp || protocolHasPorts(t.protocol) || t.protocol === IPPROTO_GRE;
}

/** l4proto_in_range. */
function keyInRange(t: Tuple, manip: number, range: KernelRange): boolean {
  if (!hasKey(t)) return true;
  const key = keyOf(t, manip);
  return key >= range.minPort && key <= range.maxPort;
}

/** nf_in_range, for a source manipulation. */
function sourceInRange(t: Tuple, range: KernelRange): boolean {
  if (range.mapIps) {
    const src = [t.src0, t.src1, t.src2, t.src3];
    if (t.family !== range.family) return false;
    if (compareWords(src, range.min) < 0 || compareWords(src, range.max) > 0) return false;
  }
  if (!range.protoSpecified) return true;
  return keyInRange(t, SRC, range);
}

function rol32(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Bob Jenkins' lookup3 hash over 32-bit words (the kernel's jhash2). */
export function jhash2(words: readonly number[], initval: number): number {
  let length = words.length;
  let a = (0xdeadbeef + (length << 2) + initval) >>> 0;
  let b = a;
  let c = a;
  let k = 0;
  while (length > 3) {
    a = (a + words[k]) >>> 0;
    b = (b + words[k + 1]) >>> 0;
    c = (c + words[k + 2]) >>> 0;
    a = (a - c) >>> 0;
    a = (a ^ rol32(c, 4)) >>> 0;
    c = (c + b) >>> 0;
    b = (b - a) >>> 0;
    b = (b ^ rol32(a, 6)) >>> 0;
    a = (a + c) >>> 0;
    c = (c - b) >>> 0;
    c = (c ^ rol32(b, 8)) >>> 0;
    b = (b + a) >>> 0;
    a = (a - c) >>> 0;
    a = (a ^ rol32(c, 16)) >>> 0;
    c = (c + b) >>> 0;
    b = (b - a) >>> 0;
    b = (b ^ rol32(a, 19)) >>> 0;
    a = (a + c) >>> 0;
    c = (c - b) >>> 0;
    c = (c ^ rol32(b, 4)) >>> 0;
    b = (b + a) >>> 0;
    length -= 3;
    k += 3;
  }
  if (length === 0) return c;
  if (length >= 3) c = (c + words[k + 2]) >>> 0;
  if (length >= 2) b = (b + words[k + 1]) >>> 0;
  a = (a + words[k]) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 14)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rol32(c, 11)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rol32(a, 25)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 16)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rol32(c, 4)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rol32(a, 14)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 24)) >>> 0;
  return c;
}

/** The kernel hashes addresses as they lie in memory: big-endian words read as little-endian (x86). */
function memoryWord(w: number): number {
  return (((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24)) >>> 0;
}

/** reciprocal_scale: maps a 32-bit value onto [0, range). */
function reciprocalScale(value: number, range: number): number {
  return Math.floor((value * range) / 4294967296);
}

/** find_best_ips_proto: the address from a range, a hash of source and destination (exact). */
function chooseAddress(t: Tuple, range: KernelRange, manip: number): void {
  if (!range.mapIps) return;
  const chosen = [0, 0, 0, 0];
  if (compareWords(range.min, range.max) === 0) {
    chosen[0] = range.min[0];
    chosen[1] = range.min[1];
    chosen[2] = range.min[2];
    chosen[3] = range.min[3];
  } else {
    const last = t.family === 4 ? 0 : 3;
    const dst = [t.dst0, t.dst1, t.dst2, t.dst3].map(memoryWord);
    const src = [t.src0, t.src1, t.src2, t.src3].map(memoryWord);
    let j = jhash2(src, range.persistent ? 0 : dst[last]);
    let fullRange = false;
    for (let i = 0; i <= last; i++) {
      let low: number;
      let distance: number;
      if (!fullRange) {
        low = range.min[i];
        distance = (range.max[i] - low + 1) >>> 0;
      } else {
        low = 0;
        distance = 0xffffffff;
      }
      chosen[i] = (low + reciprocalScale(j, distance)) >>> 0;
      if (chosen[i] !== range.max[i]) fullRange = true;
      if (!range.persistent) j = (j ^ dst[i]) >>> 0;
    }
  }
  if (manip === SRC) {
    t.src0 = chosen[0];
    t.src1 = chosen[1];
    t.src2 = chosen[2];
    t.src3 = chosen[3];
  } else {
    t.dst0 = chosen[0];
    t.dst1 = chosen[1];
    t.dst2 = chosen[2];
    t.dst3 = chosen[3];
  }
}

const MAX_ATTEMPTS = 128;

/** Our stand-in for get_random_u16(): a hash of the original tuple and the round, so runs repeat. */
function pseudoRandom16(original: Tuple, round: number): number {
  return (
    jhash2(
      [
        original.src0,
        original.src1,
        original.src2,
        original.src3,
        original.dst0,
        original.dst1,
        original.dst2,
        original.dst3,
        (original.srcPort << 16) | original.dstPort,
        original.protocol,
      ],
      round,
    ) & 0xffff
  );
}

interface Search {
  table: NatTableView;
  original: Tuple;
  scratch: Tuple;
  ownChoice: boolean;
  exhausted: boolean;
}

/** nf_nat_used_tuple: the reply this candidate would have is already someone's tuple. */
function usedTuple(t: Tuple, search: Search): boolean {
  return search.table.isTaken(invertTuple(t, search.scratch), search.original);
}

/** nf_nat_l4proto_unique_tuple: moves the key through the range until the tuple is free. */
function uniqueKey(t: Tuple, range: KernelRange, manip: number, search: Search, isMasterless: boolean): void {
  let min: number;
  let size: number;
  if (t.isIcmp) {
    if (!range.protoSpecified) {
      min = 0;
      size = 65536;
    } else {
      min = range.minPort;
      size = range.maxPort - range.minPort + 1;
    }
  } else if (t.protocol === IPPROTO_GRE) {
    // Only PPTP's GRE (with a master) has keys NAT may change.
    if (isMasterless) return;
    min = range.protoSpecified ? range.minPort : 1;
    size = range.protoSpecified ? range.maxPort - range.minPort + 1 : 65535;
  } else if (protocolHasPorts(t.protocol)) {
    if (!range.protoSpecified) {
      if (manip === DST) return;
      const key = keyOf(t, manip);
      if (key < 1024) {
        min = key < 512 ? 1 : 600;
        size = key < 512 ? 511 : 1023 - 600 + 1;
      } else {
        min = 1024;
        size = 65535 - 1024 + 1;
      }
    } else {
      min = Math.min(range.minPort, range.maxPort);
      size = Math.abs(range.maxPort - range.minPort) + 1;
    }
  } else return;

  const random = range.randomAll || manip !== DST;
  let round = 0;
  let offset = random ? pseudoRandom16(search.original, round) : 0;
  if (random) search.ownChoice = true;
  let attempts = Math.min(size, MAX_ATTEMPTS);
  for (;;) {
    for (let i = 0; i < attempts; i++, offset = (offset + 1) & 0xffff) {
      setKey(t, manip, min + (offset % size));
      if (!usedTuple(t, search)) return;
    }
    if (attempts >= size || attempts < 16) {
      search.exhausted = true;
      return;
    }
    attempts = attempts >>> 1;
    offset = pseudoRandom16(search.original, ++round);
    search.ownChoice = true;
  }
}

/** get_unique_tuple: the whole choice for one manipulation; `t` is changed in place. */
function uniqueTuple(t: Tuple, range: KernelRange, manip: number, search: Search): void {
  if (manip === SRC && !range.randomAll) {
    if (sourceInRange(t, range)) {
      if (!usedTuple(t, search)) return;
    } else if (search.table.sourceMappings !== undefined) {
      // Only the first mapping in range counts: if its tuple is taken the kernel moves on to step 2.
      for (const reply of search.table.sourceMappings(t)) {
        const candidate = invertTuple(reply);
        candidate.dst0 = t.dst0;
        candidate.dst1 = t.dst1;
        candidate.dst2 = t.dst2;
        candidate.dst3 = t.dst3;
        candidate.dstPort = t.dstPort;
        if (!sourceInRange(candidate, range)) continue;
        if (!usedTuple(candidate, search)) {
          t.copyFrom(candidate);
          return;
        }
        break;
      }
    }
  }
  chooseAddress(t, range, manip);
  if (!range.randomAll) {
    if (range.protoSpecified) {
      if (keyInRange(t, manip, range) && (range.minPort === range.maxPort || !usedTuple(t, search))) return;
    } else if (!usedTuple(t, search)) return;
  }
  uniqueKey(t, range, manip, search, true);
}

// ---------------------------------------------------------------- the decision

function interfaceAddress(rules: NatRuleSet, name: string | null, family: number): NatAddress | null {
  if (name === null) return null;
  const entry = rules.interfaceAddresses.get(name) ?? rules.interfaceAddresses.get("+");
  if (entry === undefined) return null;
  return (family === 4 ? entry.v4 : entry.v6) ?? null;
}

function translation(
  rule: NatRule | null,
  t: Tuple,
  manip: number,
  ownChoice: boolean,
  kind: NatTranslation["kind"] = rule === null
    ? "null-binding"
    : (rule.target.kind as NatTranslation["kind"]),
): NatTranslation {
  const src = manip === SRC;
  return {
    rule,
    kind,
    family: t.family,
    address0: src ? t.src0 : t.dst0,
    address1: src ? t.src1 : t.dst1,
    address2: src ? t.src2 : t.dst2,
    address3: src ? t.src3 : t.dst3,
    port: hasKey(t) ? keyOf(t, manip) : 0,
    ownChoice,
  };
}

/**
 * The NAT the device applies to a connection whose first packet has tuple `original`, and the reply
 * tuple it records. `table` answers whether a candidate tuple is taken by another live connection.
 */
export function natDecision(
  rules: NatRuleSet,
  original: Tuple,
  context: NatContext,
  table: NatTableView,
): NatDecision {
  const path = context.path ?? "forward";
  const t = new Tuple();
  t.copyFrom(original);
  const search: Search = { table, original, scratch: new Tuple(), ownChoice: false, exhausted: false };
  let dstNat: NatTranslation | null = null;
  let srcNat: NatTranslation | null = null;
  let note: string | null = null;

  // Destination hook. A null binding here never changes anything (a destination port without a
  // range is never moved), so only a translating rule matters.
  const dstRule = findNatRule(rules, path === "output" ? "OUTPUT" : "PREROUTING", t, context);
  if (dstRule !== null && (dstRule.target.kind === "DNAT" || dstRule.target.kind === "REDIRECT")) {
    let address: NatAddress | null = null;
    if (dstRule.target.kind === "REDIRECT") {
      if (path === "output") {
        address =
          t.family === 4
            ? { family: 4, w0: 0x7f000001, w1: 0, w2: 0, w3: 0 }
            : { family: 6, w0: 0, w1: 0, w2: 0, w3: 1 };
      } else {
        address = interfaceAddress(rules, context.inInterface, t.family);
        if (address === null) {
          // The incoming interface's address is unknown: the packet was most likely addressed to it.
          address = { family: t.family === 6 ? 6 : 4, w0: t.dst0, w1: t.dst1, w2: t.dst2, w3: t.dst3 };
          note = `REDIRECT (${dstRule.origin}): address of interface ${context.inInterface ?? "(unknown)"} unknown, kept the destination address`;
        }
      }
    }
    const range = kernelRange(dstRule.target.range, address);
    if (!range.mapIps || range.family === t.family) {
      uniqueTuple(t, range, DST, search);
      if (!sameDestination(t, original)) dstNat = translation(dstRule, t, DST, search.ownChoice);
    }
  }

  // Source hook.
  search.ownChoice = false;
  const srcRule = findNatRule(rules, path === "input" ? "INPUT" : "POSTROUTING", t, context);
  let dropped: string | null = null;
  if (srcRule !== null && (srcRule.target.kind === "SNAT" || srcRule.target.kind === "MASQUERADE")) {
    let address: NatAddress | null = null;
    if (srcRule.target.kind === "MASQUERADE") {
      address =
        context.outInterface === null
          ? soleInterfaceAddress(rules, t.family)
          : interfaceAddress(rules, context.outInterface, t.family);
      if (address === null) {
        dropped = `MASQUERADE (${srcRule.origin}): no IPv${t.family} address known for interface ${context.outInterface ?? "(unknown)"}`;
      }
    }
    if (dropped === null) {
      const range = kernelRange(srcRule.target.range, address);
      if (!range.mapIps || range.family === t.family) {
        const before = new Tuple();
        before.copyFrom(t);
        uniqueTuple(t, range, SRC, search);
        if (!sameSource(t, before)) srcNat = translation(srcRule, t, SRC, search.ownChoice);
      }
    }
  } else {
    // Null binding: the source address maps onto itself, which moves the port only on a clash.
    const before = new Tuple();
    before.copyFrom(t);
    const self: KernelRange = {
      mapIps: true,
      family: t.family,
      min: [t.src0, t.src1, t.src2, t.src3],
      max: [t.src0, t.src1, t.src2, t.src3],
      protoSpecified: false,
      minPort: 0,
      maxPort: 0,
      randomAll: false,
      persistent: false,
    };
    uniqueTuple(t, self, SRC, search);
    if (!sameSource(t, before)) srcNat = translation(null, t, SRC, search.ownChoice);
  }
  if (search.exhausted && dropped === null)
    dropped = "no free port or id left in the NAT range (the kernel drops the packet at confirmation)";
  return { dstNat, srcNat, reply: invertTuple(t), dropped, note };
}

/**
 * nf_nat_follow_master: an expected (RELATED) connection is translated as its master was, not by the
 * rules. `masterSide` is the master's tuple in the direction opposite the expected connection's
 * (`master->tuplehash[!exp->dir]`): the source goes to that tuple's destination (port kept unless it
 * clashes), the destination to its source and `savedPort` (the NAT helper's `exp->saved_proto`).
 */
export function followMasterDecision(
  original: Tuple,
  masterSide: Tuple,
  savedPort: number,
  table: NatTableView,
): NatDecision {
  const t = new Tuple();
  t.copyFrom(original);
  const search: Search = { table, original, scratch: new Tuple(), ownChoice: false, exhausted: false };
  const source: KernelRange = {
    mapIps: true,
    family: t.family,
    min: [masterSide.dst0, masterSide.dst1, masterSide.dst2, masterSide.dst3],
    max: [masterSide.dst0, masterSide.dst1, masterSide.dst2, masterSide.dst3],
    protoSpecified: false,
    minPort: 0,
    maxPort: 0,
    randomAll: false,
    persistent: false,
  };
  uniqueTuple(t, source, SRC, search);
  const srcNat = sameSource(t, original)
    ? null
    : translation(null, t, SRC, search.ownChoice, "follow-master");
  search.ownChoice = false;
  const beforeDst = new Tuple();
  beforeDst.copyFrom(t);
  const destination: KernelRange = {
    mapIps: true,
    family: t.family,
    min: [masterSide.src0, masterSide.src1, masterSide.src2, masterSide.src3],
    max: [masterSide.src0, masterSide.src1, masterSide.src2, masterSide.src3],
    protoSpecified: true,
    minPort: savedPort,
    maxPort: savedPort,
    randomAll: false,
    persistent: false,
  };
  uniqueTuple(t, destination, DST, search);
  const dstNat = sameDestination(t, beforeDst)
    ? null
    : translation(null, t, DST, search.ownChoice, "follow-master");
  const dropped = search.exhausted
    ? "no free port or id left for the related connection's translation (the kernel drops the packet)"
    : null;
  return { dstNat, srcNat, reply: invertTuple(t), dropped, note: null };
}

/** MASQUERADE with an unknown outgoing interface: the one configured address of that family, if only one. */
function soleInterfaceAddress(rules: NatRuleSet, family: number): NatAddress | null {
  let found: NatAddress | null = null;
  for (const entry of rules.interfaceAddresses.values()) {
    const address = family === 4 ? entry.v4 : entry.v6;
    if (address === undefined) continue;
    if (found !== null) return null;
    found = address;
  }
  return found;
}

function sameSource(a: Tuple, b: Tuple): boolean {
  return (
    a.src0 === b.src0 &&
    a.src1 === b.src1 &&
    a.src2 === b.src2 &&
    a.src3 === b.src3 &&
    a.srcPort === b.srcPort
  );
}
function sameDestination(a: Tuple, b: Tuple): boolean {
  return (
    a.dst0 === b.dst0 &&
    a.dst1 === b.dst1 &&
    a.dst2 === b.dst2 &&
    a.dst3 === b.dst3 &&
    a.dstPort === b.dstPort &&
    a.srcPort === b.srcPort
  );
}
