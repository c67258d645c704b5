/**
 * The model of a configured NAT device: rules as the `nat` table holds them (chains of matches and
 * targets) plus the addresses of the device's interfaces, which MASQUERADE and REDIRECT need and which
 * no capture tells. Built by `parseNatRules` (iptables-save text) or `natRulesFromFlags` (CLI flags);
 * read by `natDecision`.
 */
import {
  IPPROTO_DCCP,
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
} from "../../decode/packet.js";
import { IPPROTO_UDP, IPPROTO_UDPLITE } from "../../decode/packet.js";

/** An IP address as four big-endian 32-bit words, like the engine's Tuple (IPv4 uses w0 only). */
export interface NatAddress {
  family: 4 | 6;
  w0: number;
  w1: number;
  w2: number;
  w3: number;
}

/** `-s` / `-d`: address under a prefix (an arbitrary mask for IPv4 dotted masks). */
export interface AddressMatch {
  family: 4 | 6;
  /** Network words, already masked. */
  network: [number, number, number, number];
  mask: [number, number, number, number];
  negated: boolean;
}

/** `--sport` / `--dport` or a multiport list: inclusive ranges. */
export interface PortMatch {
  ranges: [number, number][];
  negated: boolean;
}

/** `-i` / `-o`: a name, or a prefix when the name ends in `+` (a lone `+` matches every interface). */
export interface InterfaceMatch {
  name: string;
  wildcard: boolean;
  negated: boolean;
}

/** `struct nf_nat_range2` as the targets fill it. Addresses absent: the target keeps the address. */
export interface NatRange {
  minAddress: NatAddress | null;
  maxAddress: NatAddress | null;
  /** Port (or ICMP id) range; null when no ports were given (NF_NAT_RANGE_PROTO_SPECIFIED unset). */
  minPort: number | null;
  maxPort: number | null;
  /** `--random`: NF_NAT_RANGE_PROTO_RANDOM. */
  random: boolean;
  /** `--random-fully`: NF_NAT_RANGE_PROTO_RANDOM_FULLY. */
  randomFully: boolean;
  /** `--persistent`: NF_NAT_RANGE_PERSISTENT (address choice ignores the destination). */
  persistent: boolean;
}

export type NatTarget =
  | { kind: "SNAT"; range: NatRange }
  | { kind: "DNAT"; range: NatRange }
  /** Source becomes the outgoing interface's address (from `interfaceAddresses`). */
  | { kind: "MASQUERADE"; range: NatRange }
  /** Destination becomes the incoming interface's address (127.0.0.1 / ::1 on OUTPUT). */
  | { kind: "REDIRECT"; range: NatRange }
  /** Stops this hook's traversal without translating (the kernel then sets up a null binding). */
  | { kind: "ACCEPT" }
  | { kind: "RETURN" }
  | { kind: "JUMP"; chain: string }
  | { kind: "GOTO"; chain: string };

export interface NatRule {
  /** Where it came from: "FILE:LINE" for iptables-save input, "--snat VALUE" for a flag. */
  origin: string;
  /** 4 or 6 when the rule only applies to that family (its addresses, or the table it was read from); 0 for both. */
  family: 0 | 4 | 6;
  source: AddressMatch | null;
  destination: AddressMatch | null;
  /** IP protocol number; null matches every protocol. */
  protocol: number | null;
  protocolNegated: boolean;
  sourcePorts: PortMatch | null;
  destinationPorts: PortMatch | null;
  inInterface: InterfaceMatch | null;
  outInterface: InterfaceMatch | null;
  target: NatTarget;
}

export interface NatChain {
  name: string;
  /** Built-in chains only; the nat table's policy is always ACCEPT in practice. */
  policy: string | null;
  rules: NatRule[];
}

export const BUILTIN_NAT_CHAINS = ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] as const;

export interface NatRuleSet {
  /** Every chain by name, the four built-in ones always present. */
  chains: Map<string, NatChain>;
  /** Interface name → its primary address per family (MASQUERADE's source, REDIRECT's destination). */
  interfaceAddresses: Map<string, { v4?: NatAddress; v6?: NatAddress }>;
}

/** A problem naming where it is (`origin`: "FILE:LINE" or the flag) and what could not be read. */
export interface NatRuleError {
  origin: string;
  line: number;
  message: string;
}

export function emptyRuleSet(): NatRuleSet {
  const chains = new Map<string, NatChain>();
  for (const name of BUILTIN_NAT_CHAINS) chains.set(name, { name, policy: "ACCEPT", rules: [] });
  return { chains, interfaceAddresses: new Map() };
}

export function emptyRange(): NatRange {
  return {
    minAddress: null,
    maxAddress: null,
    minPort: null,
    maxPort: null,
    random: false,
    randomFully: false,
    persistent: false,
  };
}

/**
 * Appends `extra`'s chains and interface addresses after `base`'s. Rules keep their family, so an
 * `iptables-save` and an `ip6tables-save` set merge into one that serves both families.
 */
export function mergeNatRuleSets(base: NatRuleSet, extra: NatRuleSet): void {
  for (const [name, chain] of extra.chains) {
    const target = base.chains.get(name);
    if (target === undefined) base.chains.set(name, chain);
    else target.rules.push(...chain.rules);
  }
  for (const [name, addresses] of extra.interfaceAddresses) {
    if (addresses.v4 !== undefined) setInterfaceAddress(base, name, addresses.v4);
    if (addresses.v6 !== undefined) setInterfaceAddress(base, name, addresses.v6);
  }
}

export function setInterfaceAddress(rules: NatRuleSet, name: string, address: NatAddress): void {
  const entry = rules.interfaceAddresses.get(name) ?? {};
  if (address.family === 4) entry.v4 = address;
  else entry.v6 = address;
  rules.interfaceAddresses.set(name, entry);
}

const PROTOCOL_NUMBERS: Record<string, number> = {
  tcp: IPPROTO_TCP,
  udp: IPPROTO_UDP,
  udplite: IPPROTO_UDPLITE,
  icmp: IPPROTO_ICMP,
  icmpv6: IPPROTO_ICMPV6,
  "ipv6-icmp": IPPROTO_ICMPV6,
  sctp: IPPROTO_SCTP,
  dccp: IPPROTO_DCCP,
  gre: IPPROTO_GRE,
  esp: 50,
  ah: 51,
};

/** Protocol name or number → number; "all" → null; undefined when unknown. */
export function parseProtocol(text: string): number | null | undefined {
  const lower = text.toLowerCase();
  if (lower === "all" || lower === "0") return null;
  if (/^\d{1,3}$/.test(lower)) {
    const n = Number(lower);
    return n <= 255 ? n : undefined;
  }
  return PROTOCOL_NUMBERS[lower];
}

/** Protocols whose tuples carry ports, as nf_nat_l4proto_unique_tuple treats them. */
export function protocolHasPorts(protocol: number): boolean {
  return (
    protocol === IPPROTO_TCP ||
    protocol === IPPROTO_UDP ||
    protocol === IPPROTO_UDPLITE ||
    protocol === IPPROTO_SCTP ||
    protocol === IPPROTO_DCCP
  );
}

/** Dotted IPv4 → number, or null. */
export function parseIpv4(text: string): number | null {
  // Four dot-separated parts of one to three digits, each at most 255 (`check` reads one per address
  // of every connection: no split or regular expression).
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let at = 0; at <= text.length; at++) {
    const code = at < text.length ? text.charCodeAt(at) : DOT;
    if (code >= DIGIT_0 && code <= DIGIT_0 + 9) {
      if (++digits > 3) return null;
      part = part * 10 + (code - DIGIT_0);
    } else if (code === DOT && digits > 0 && part <= 255 && parts < 4) {
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else return null;
  }
  return parts === 4 ? value : null;
}

const DOT = 0x2e;
const DIGIT_0 = 0x30;

/** IPv6 text (with `::` and an embedded IPv4 tail) → four words, or null. */
export function parseIpv6(text: string): [number, number, number, number] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseIpv4(piece);
        if (v4 === null) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return null;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return null;
  let all: number[];
  if (halves.length === 2) {
    if (head.length + tail.length > 7) return null;
    all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) return null;
    all = head;
  }
  return [0, 1, 2, 3].map((i) => ((all[2 * i] << 16) | all[2 * i + 1]) >>> 0) as [
    number,
    number,
    number,
    number,
  ];
}

/** An IPv4 or IPv6 address (IPv6 optionally in brackets), or null. */
export function parseAddress(text: string): NatAddress | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { family: 4, w0: v4, w1: 0, w2: 0, w3: 0 };
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v6 = parseIpv6(bare);
  if (v6 !== null) return { family: 6, w0: v6[0], w1: v6[1], w2: v6[2], w3: v6[3] };
  return null;
}

export function addressWords(a: NatAddress): [number, number, number, number] {
  return [a.w0, a.w1, a.w2, a.w3];
}

function prefixMask(family: 4 | 6, prefix: number): [number, number, number, number] {
  const words = family === 4 ? 1 : 4;
  const mask: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < words; i++) {
    const bits = Math.max(0, Math.min(32, prefix - 32 * i));
    mask[i] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  }
  return mask;
}

/** `ADDR`, `ADDR/PREFIX` or (IPv4) `ADDR/DOTTED-MASK` → a match, or an error message. */
export function parseAddressMatch(text: string, negated: boolean): AddressMatch | string {
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const address = parseAddress(addressText);
  if (address === null) return `"${addressText}" is not an IPv4 or IPv6 address`;
  const maxPrefix = address.family === 4 ? 32 : 128;
  let mask: [number, number, number, number];
  if (slash < 0) mask = prefixMask(address.family, maxPrefix);
  else {
    const maskText = text.slice(slash + 1);
    if (/^\d{1,3}$/.test(maskText) && Number(maskText) <= maxPrefix) {
      mask = prefixMask(address.family, Number(maskText));
    } else if (address.family === 4 && parseIpv4(maskText) !== null) {
      mask = [parseIpv4(maskText) as number, 0, 0, 0];
    } else return `"${maskText}" is not a prefix length (0-${maxPrefix})`;
  }
  const words = addressWords(address);
  const network = words.map((w, i) => (w & mask[i]) >>> 0) as [number, number, number, number];
  return { family: address.family, network, mask, negated };
}
