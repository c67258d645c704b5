/**
 * NAT rules from command-line flags. Each flag value is `MATCH=TARGET[,OPTION…]`:
 *
 *   --snat       [PROTO:]SOURCE[@OUT-IF]=ADDR[-ADDR][:PORT[-PORT]][,random|,random-fully|,persistent]
 *   --masquerade [PROTO:][SOURCE@]OUT-IF=IF-ADDR[:PORT[-PORT]][,random|,random-fully]
 *   --dnat       [PROTO:]DEST[:PORT[-PORT]][@IN-IF]=[ADDR[-ADDR]][:PORT[-PORT]][,random|,persistent]
 *   --redirect   [PROTO:]DEST[:PORT[-PORT]][@IN-IF]=PORT[-PORT][,random]
 *   --interface-address IF=ADDR       (REDIRECT lands on IN-IF's address; MASQUERADE's is given inline)
 *
 * SOURCE / DEST: an address, a CIDR (`10.0.0.0/8`) or `any`; IPv6 in brackets when a port follows
 * (`[2001:db8::1]:8080`). PROTO: tcp, udp, udplite, sctp, dccp, icmp, icmpv6, gre or all (a port in
 * MATCH needs tcp, udp, udplite, sctp or dccp). OUT-IF / IN-IF: an interface name, `NAME+` for a
 * prefix, `+` for any. IF-ADDR: the outgoing interface's address, which MASQUERADE uses (a capture
 * does not tell it). Each flag becomes one rule, in flag order within its chain: --snat and
 * --masquerade append to POSTROUTING, --dnat and --redirect to PREROUTING.
 *
 * Examples: `--snat 10.0.0.0/8=198.51.100.32`, `--masquerade out0=198.51.100.32`,
 * `--masquerade tcp:10.1.2.0/24@eth1=198.51.100.32:20000-29999,random`,
 * `--dnat tcp:198.51.100.32:8080=10.1.2.3:80`, `--redirect tcp:any:80@in0=3128`.
 */
import { newNatRule, parseNatRangeText } from "./iptables.js";
import {
  emptyRange,
  emptyRuleSet,
  parseAddress,
  parseAddressMatch,
  parseProtocol,
  protocolHasPorts,
  setInterfaceAddress,
  type AddressMatch,
  type InterfaceMatch,
  type NatRange,
  type NatRule,
  type NatRuleError,
  type NatRuleSet,
} from "./rules.js";

export interface NatFlags {
  snat?: readonly string[];
  masquerade?: readonly string[];
  dnat?: readonly string[];
  redirect?: readonly string[];
  interfaceAddress?: readonly string[];
}

export interface FlagNatRules {
  rules: NatRuleSet;
  errors: NatRuleError[];
}

type FlagKind = "snat" | "masquerade" | "dnat" | "redirect";

interface MatchPart {
  protocol: number | null;
  address: AddressMatch | null;
  ports: [number, number] | null;
  iface: InterfaceMatch | null;
}

function parseInterface(text: string): InterfaceMatch | string {
  if (text === "") return "empty interface name";
  if (!/^[A-Za-z0-9_.:@-]*\+?$/.test(text)) return `"${text}" is not an interface name`;
  const wildcard = text.endsWith("+");
  return { name: wildcard ? text.slice(0, -1) : text, wildcard, negated: false };
}

/** `PORT` or `PORT-PORT`. */
function parsePorts(text: string): [number, number] | null {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (m === null) return null;
  const low = Number(m[1]);
  const high = m[2] === undefined ? low : Number(m[2]);
  return low <= 65535 && high <= 65535 && low <= high ? [low, high] : null;
}

/** `[PROTO:]ADDR-OR-CIDR[:PORTS]` with `@IF` already removed. */
function parseMatchPart(text: string, allowPorts: boolean): MatchPart | string {
  const part: MatchPart = { protocol: null, address: null, ports: null, iface: null };
  let rest = text;
  const proto = /^([a-z][a-z0-9-]*):/.exec(rest);
  if (proto !== null && parseProtocol(proto[1]) !== undefined && !/^[0-9a-f]+$/.test(proto[1])) {
    part.protocol = parseProtocol(proto[1]) as number | null;
    rest = rest.slice(proto[0].length);
  }
  let addressText = rest;
  let portText: string | null = null;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) return `"${rest}": missing "]"`;
    addressText = rest.slice(1, close);
    const tail = rest.slice(close + 1);
    if (tail !== "") {
      if (!tail.startsWith(":")) return `"${rest}": unexpected "${tail}" after "]"`;
      portText = tail.slice(1);
    }
  } else if (rest.split(":").length === 2) {
    addressText = rest.slice(0, rest.indexOf(":"));
    portText = rest.slice(rest.indexOf(":") + 1);
  }
  if (addressText !== "any" && addressText !== "") {
    const match = parseAddressMatch(addressText, false);
    if (typeof match === "string") return match;
    part.address = match;
  } else if (addressText === "") return `"${text}": missing address (write "any" for every address)`;
  if (portText !== null) {
    if (!allowPorts) return `"${text}": a port is not allowed here`;
    const ports = parsePorts(portText);
    if (ports === null) return `"${portText}" is not a port or PORT-PORT range`;
    if (part.protocol === null || !protocolHasPorts(part.protocol)) {
      return `"${text}": a port needs a protocol with ports first, e.g. "tcp:${text.replace(/^[a-z0-9-]+:/, "")}"`;
    }
    part.ports = ports;
  }
  return part;
}

/** Splits `VALUE,opt,opt` and applies the options to `range`. */
function applyOptions(kind: FlagKind, options: string[], range: NatRange): string | null {
  for (const option of options) {
    if (option === "random") range.random = true;
    else if (option === "random-fully" && (kind === "snat" || kind === "masquerade"))
      range.randomFully = true;
    else if (option === "persistent" && (kind === "snat" || kind === "dnat")) range.persistent = true;
    else return `unknown option ",${option}" for --${kind}`;
  }
  return null;
}

function parseFlag(kind: FlagKind, value: string, rules: NatRuleSet): NatRule | string {
  const origin = `--${kind} ${value}`;
  const equals = value.lastIndexOf("=");
  if (equals < 0) return `expected MATCH=TARGET`;
  const left = value.slice(0, equals);
  const [targetText, ...options] = value.slice(equals + 1).split(",");
  const rule = newNatRule(origin, 0);
  const range = emptyRange();
  const optionError = applyOptions(kind, options, range);
  if (optionError !== null) return optionError;

  let matchText = left;
  let ifaceText: string | null = null;
  const at = left.lastIndexOf("@");
  if (kind === "masquerade") {
    // [PROTO:][SOURCE@]OUT-IF
    ifaceText = at < 0 ? left.replace(/^[a-z][a-z0-9-]*:(?=[^:]*$)/, "") : left.slice(at + 1);
    const proto = /^([a-z][a-z0-9-]*):/.exec(left);
    const protoPrefix = proto !== null && parseProtocol(proto[1]) !== undefined ? proto[0] : "";
    matchText = at < 0 ? `${protoPrefix}any` : left.slice(0, at);
  } else if (at >= 0) {
    matchText = left.slice(0, at);
    ifaceText = left.slice(at + 1);
  }
  const match = parseMatchPart(matchText, kind === "dnat" || kind === "redirect");
  if (typeof match === "string") return match;
  rule.protocol = match.protocol;
  if (match.ports !== null) rule.destinationPorts = { ranges: [match.ports], negated: false };
  if (ifaceText !== null) {
    const iface = parseInterface(ifaceText);
    if (typeof iface === "string") return iface;
    if (!(iface.wildcard && iface.name === "")) {
      if (kind === "snat" || kind === "masquerade") rule.outInterface = iface;
      else rule.inInterface = iface;
    }
  }
  if (kind === "snat" || kind === "masquerade") rule.source = match.address;
  else rule.destination = match.address;

  if (kind === "snat" || kind === "dnat") {
    const error = parseNatRangeText(targetText, range);
    if (error !== null) return error;
    if (kind === "snat" && range.minAddress === null) return `--snat needs an address to translate to`;
    rule.target = kind === "snat" ? { kind: "SNAT", range } : { kind: "DNAT", range };
  } else if (kind === "masquerade") {
    const probe = emptyRange();
    const error = parseNatRangeText(targetText, probe);
    if (error !== null) return error;
    const low = probe.minAddress;
    const high = probe.maxAddress;
    if (
      low === null ||
      high === null ||
      low.w0 !== high.w0 ||
      low.w1 !== high.w1 ||
      low.w2 !== high.w2 ||
      low.w3 !== high.w3
    ) {
      return `--masquerade needs the outgoing interface's one address after "="`;
    }
    if (ifaceText === null || (rule.outInterface === null && ifaceText !== "+"))
      return `--masquerade needs an interface`;
    if (rule.outInterface !== null && rule.outInterface.wildcard) {
      return `--masquerade "${ifaceText}": a wildcard interface cannot have one address; name the interface or use "+"`;
    }
    range.minPort = probe.minPort;
    range.maxPort = probe.maxPort;
    if (rule.outInterface !== null) setInterfaceAddress(rules, rule.outInterface.name, low);
    else setInterfaceAddress(rules, "+", low);
    rule.target = { kind: "MASQUERADE", range };
    rule.family = low.family;
  } else {
    const ports = parsePorts(targetText);
    if (ports === null) return `--redirect needs PORT or PORT-PORT after "=", found "${targetText}"`;
    range.minPort = ports[0];
    range.maxPort = ports[1];
    rule.target = { kind: "REDIRECT", range };
  }
  const families = new Set<number>();
  if (match.address !== null) families.add(match.address.family);
  const t = rule.target;
  if ((t.kind === "SNAT" || t.kind === "DNAT") && t.range.minAddress !== null)
    families.add(t.range.minAddress.family);
  if (rule.family !== 0) families.add(rule.family);
  if (families.size > 1) return "mixes IPv4 and IPv6 addresses";
  if (families.size === 1) rule.family = [...families][0] as 4 | 6;
  return rule;
}

export function natRulesFromFlags(flags: NatFlags): FlagNatRules {
  const rules = emptyRuleSet();
  const errors: NatRuleError[] = [];
  for (const value of flags.interfaceAddress ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(value);
    const address = m === null ? null : parseAddress(m[2]);
    if (m === null || address === null) {
      errors.push({ origin: `--interface-address ${value}`, line: 0, message: "expected INTERFACE=ADDRESS" });
    } else setInterfaceAddress(rules, m[1], address);
  }
  const groups: [FlagKind, readonly string[] | undefined, string][] = [
    ["dnat", flags.dnat, "PREROUTING"],
    ["redirect", flags.redirect, "PREROUTING"],
    ["snat", flags.snat, "POSTROUTING"],
    ["masquerade", flags.masquerade, "POSTROUTING"],
  ];
  for (const [kind, values, chain] of groups) {
    for (const value of values ?? []) {
      const rule = parseFlag(kind, value, rules);
      if (typeof rule === "string") errors.push({ origin: `--${kind} ${value}`, line: 0, message: rule });
      else rules.chains.get(chain)?.rules.push(rule);
    }
  }
  return { rules, errors };
}
