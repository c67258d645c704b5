/**
 * The helper and NAT settings a replay ran with, as summary.json's `options` names them: which
 * helpers on which ports, and the NAT rules (each in `iptables-save` syntax with where it came from:
 * FILE:LINE or the flag), the capture's vantage and the interface addresses.
 */
import type { EngineNatOptions, HelperName } from "../conntrack/engine.js";
import { HELPER_NAMES } from "../conntrack/engine.js";
import type { AddressMatch, NatAddress, NatRange, NatRule, PortMatch } from "../conntrack/nat/rules.js";
import { formatIpv4, formatIpv6Words } from "../decode/address.js";

export interface HelperSettingsDescription {
  enabled: boolean;
  /** Ports each helper is attached on (an empty list: that helper is off). */
  ports: Record<string, number[]>;
  ftpLoose: boolean;
}

export interface NatRuleDescription {
  chain: string;
  /** The rule as `iptables-save -t nat` prints it (without `-A CHAIN`). */
  rule: string;
  /** "FILE:LINE" or the flag that gave it, e.g. "--masquerade out0=198.51.100.32". */
  origin: string;
}

export interface NatSettingsDescription {
  vantage: "inside" | "arrival";
  rules: NatRuleDescription[];
  /** Interface name → its addresses ("+": the address a MASQUERADE flag gave without an interface). */
  interfaceAddresses: Record<string, string[]>;
}

/** What `helpers`, `helperPorts` and `ftpLoose` amount to, defaults filled in. */
export function describeHelperSettings(
  options: {
    helpers?: boolean;
    helperPorts?: Partial<Record<HelperName, readonly number[]>>;
    ftpLoose?: boolean;
  },
  defaultPorts: Readonly<Record<HelperName, readonly number[]>>,
): HelperSettingsDescription {
  const enabled = options.helpers !== false;
  const ports: Record<string, number[]> = {};
  for (const name of HELPER_NAMES)
    ports[name] = enabled ? [...(options.helperPorts?.[name] ?? defaultPorts[name])] : [];
  return { enabled, ports, ftpLoose: options.ftpLoose === true };
}

/** The NAT device modelled, or null without NAT. */
export function describeNatSettings(nat: EngineNatOptions | null | undefined): NatSettingsDescription | null {
  if (nat === null || nat === undefined) return null;
  const rules: NatRuleDescription[] = [];
  for (const chain of nat.rules.chains.values())
    for (const rule of chain.rules)
      rules.push({ chain: chain.name, rule: formatNatRule(rule), origin: rule.origin });
  const interfaceAddresses: Record<string, string[]> = {};
  for (const [name, addresses] of nat.rules.interfaceAddresses) {
    interfaceAddresses[name] = [addresses.v4, addresses.v6]
      .filter((address): address is NatAddress => address !== undefined)
      .map(formatNatAddress);
  }
  return { vantage: nat.vantage ?? "inside", rules, interfaceAddresses };
}

const PROTOCOL_NAMES: Record<number, string> = {
  1: "icmp",
  6: "tcp",
  17: "udp",
  33: "dccp",
  47: "gre",
  50: "esp",
  51: "ah",
  58: "ipv6-icmp",
  132: "sctp",
  136: "udplite",
};

/** One rule in `iptables-save` syntax, e.g. `-s 10.0.0.0/8 -o out0 -j SNAT --to-source 198.51.100.32`. */
export function formatNatRule(rule: NatRule): string {
  const words: string[] = [];
  const add = (negated: boolean, option: string, value: string): void => {
    if (negated) words.push("!");
    words.push(option, value);
  };
  if (rule.source !== null) add(rule.source.negated, "-s", formatAddressMatch(rule.source));
  if (rule.destination !== null) add(rule.destination.negated, "-d", formatAddressMatch(rule.destination));
  if (rule.inInterface !== null)
    add(rule.inInterface.negated, "-i", rule.inInterface.name + (rule.inInterface.wildcard ? "+" : ""));
  if (rule.outInterface !== null)
    add(rule.outInterface.negated, "-o", rule.outInterface.name + (rule.outInterface.wildcard ? "+" : ""));
  if (rule.protocol !== null)
    add(rule.protocolNegated, "-p", PROTOCOL_NAMES[rule.protocol] ?? String(rule.protocol));
  const ports = (match: PortMatch | null, one: string, many: string): void => {
    if (match === null) return;
    const text = match.ranges.map(([low, high]) => (low === high ? `${low}` : `${low}:${high}`)).join(",");
    if (match.ranges.length === 1) add(match.negated, one, text);
    else {
      words.push("-m", "multiport");
      add(match.negated, many, text);
    }
  };
  ports(rule.sourcePorts, "--sport", "--sports");
  ports(rule.destinationPorts, "--dport", "--dports");
  const target = rule.target;
  switch (target.kind) {
    case "SNAT":
    case "DNAT":
      words.push("-j", target.kind, target.kind === "SNAT" ? "--to-source" : "--to-destination");
      words.push(formatRangeTarget(target.range));
      words.push(...rangeFlags(target.range));
      break;
    case "MASQUERADE":
    case "REDIRECT":
      words.push("-j", target.kind);
      if (target.range.minPort !== null) words.push("--to-ports", portRange(target.range, "-"));
      words.push(...rangeFlags(target.range));
      break;
    case "ACCEPT":
    case "RETURN":
      words.push("-j", target.kind);
      break;
    case "JUMP":
      words.push("-j", target.chain);
      break;
    case "GOTO":
      words.push("-g", target.chain);
      break;
  }
  return words.join(" ");
}

export function formatNatAddress(address: NatAddress): string {
  return address.family === 4
    ? formatIpv4(address.w0)
    : formatIpv6Words(address.w0, address.w1, address.w2, address.w3);
}

function formatAddressMatch(match: AddressMatch): string {
  const words = match.network;
  const address =
    match.family === 4 ? formatIpv4(words[0]) : formatIpv6Words(words[0], words[1], words[2], words[3]);
  const used = match.family === 4 ? [match.mask[0]] : match.mask;
  let prefix = 0;
  let seenZero = false;
  let contiguous = true;
  for (const word of used) {
    for (let bit = 31; bit >= 0; bit--) {
      if (((word >>> bit) & 1) === 0) seenZero = true;
      else if (seenZero) contiguous = false;
      else prefix++;
    }
  }
  // An IPv4 mask that is no prefix (`-s 10.0.0.0/255.0.255.0`) is kept as iptables prints it.
  if (!contiguous && match.family === 4) return `${address}/${formatIpv4(match.mask[0])}`;
  return `${address}/${prefix}`;
}

function portRange(range: NatRange, separator: string): string {
  return range.minPort === range.maxPort
    ? `${range.minPort}`
    : `${range.minPort}${separator}${range.maxPort}`;
}

function formatRangeTarget(range: NatRange): string {
  let text = "";
  if (range.minAddress !== null) {
    const low = formatNatAddress(range.minAddress);
    const high = range.maxAddress === null ? low : formatNatAddress(range.maxAddress);
    text = low === high ? low : `${low}-${high}`;
    if (range.minAddress.family === 6 && range.minPort !== null) text = `[${text}]`;
  }
  if (range.minPort !== null) text += `:${portRange(range, "-")}`;
  return text;
}

function rangeFlags(range: NatRange): string[] {
  const flags: string[] = [];
  if (range.random) flags.push("--random");
  if (range.randomFully) flags.push("--random-fully");
  if (range.persistent) flags.push("--persistent");
  return flags;
}
