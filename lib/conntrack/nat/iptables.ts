/**
 * Reads `iptables-save` output (the `*nat` table; other tables in the same file are skipped): chain
 * declarations, `-A` rules with the matches NAT rules use and the targets SNAT, DNAT, MASQUERADE,
 * REDIRECT, ACCEPT, RETURN, user-chain jumps (`-j`) and gotos (`-g`). Whatever it cannot read is
 * collected as an error naming the line; the caller decides whether to go on with the rest.
 */
import {
  emptyRange,
  emptyRuleSet,
  parseAddress,
  parseAddressMatch,
  parseProtocol,
  type InterfaceMatch,
  type NatAddress,
  type NatRange,
  type NatRule,
  type NatRuleError,
  type NatRuleSet,
  type NatTarget,
  type PortMatch,
} from "./rules.js";

export interface ParseNatRulesOptions {
  /** 4 for `iptables-save`, 6 for `ip6tables-save` (default 4): the family every rule applies to. */
  family?: 4 | 6;
}

export interface ParsedNatRules {
  rules: NatRuleSet;
  errors: NatRuleError[];
}

/** Splits a rule line into words the way iptables-save quotes them (double quotes, `\"` inside). */
export function splitRuleWords(line: string): string[] | string {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && (line[i] === " " || line[i] === "\t")) i++;
    if (i >= line.length) break;
    let word = "";
    while (i < line.length && line[i] !== " " && line[i] !== "\t") {
      if (line[i] === '"') {
        i++;
        while (i < line.length && line[i] !== '"') {
          if (line[i] === "\\" && i + 1 < line.length) i++;
          word += line[i++];
        }
        if (i >= line.length) return "unterminated quoted string";
        i++;
      } else word += line[i++];
    }
    words.push(word);
  }
  return words;
}

/** `PORT`, `A:B`, `:B`, `A:` → an inclusive range, or null. */
function parsePortRange(text: string): [number, number] | null {
  const m = /^(\d{0,5})(?::(\d{0,5}))?$/.exec(text);
  if (m === null || text === "" || text === ":") return null;
  const low = m[1] === "" ? 0 : Number(m[1]);
  const high = m[2] === undefined ? low : m[2] === "" ? 65535 : Number(m[2]);
  if (low > 65535 || high > 65535 || low > high) return null;
  return [low, high];
}

/** A target's `ADDR[-ADDR][:PORT[-PORT]]` (IPv6 addresses in brackets when a port follows). */
export function parseNatRangeText(text: string, range: NatRange): string | null {
  let addressPart = text;
  let portPart: string | null = null;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return `"${text}": missing "]"`;
    addressPart = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest.startsWith("-[")) {
      const close2 = rest.indexOf("]");
      if (close2 < 0) return `"${text}": missing "]"`;
      addressPart += "-" + rest.slice(2, close2);
      const tail = rest.slice(close2 + 1);
      if (tail !== "" && !tail.startsWith(":")) return `"${text}": unexpected "${tail}"`;
      portPart = tail === "" ? null : tail.slice(1);
    } else if (rest !== "") {
      if (!rest.startsWith(":")) return `"${text}": unexpected "${rest}"`;
      portPart = rest.slice(1);
    }
  } else {
    const colons = text.split(":").length - 1;
    // One colon is IPv4 with a port (or a bare `:PORT`); more is an IPv6 address without a port.
    if (colons === 1) {
      const at = text.indexOf(":");
      addressPart = text.slice(0, at);
      portPart = text.slice(at + 1);
    }
  }
  if (addressPart !== "") {
    const dash = addressPart.indexOf("-");
    const lowText = dash < 0 ? addressPart : addressPart.slice(0, dash);
    const highText = dash < 0 ? addressPart : addressPart.slice(dash + 1);
    const low = parseAddress(lowText);
    const high = parseAddress(highText);
    if (low === null) return `"${lowText}" is not an IPv4 or IPv6 address`;
    if (high === null) return `"${highText}" is not an IPv4 or IPv6 address`;
    if (low.family !== high.family) return `"${addressPart}" mixes IPv4 and IPv6`;
    range.minAddress = low;
    range.maxAddress = high;
  }
  if (portPart !== null) {
    const error = parseTargetPorts(portPart, range);
    if (error !== null) return error;
  }
  if (range.minAddress === null && range.minPort === null)
    return `"${text}" names neither an address nor a port`;
  return null;
}

/** `PORT` or `PORT-PORT` (`--to-ports` also accepts `PORT:PORT`). */
function parseTargetPorts(text: string, range: NatRange): string | null {
  const m = /^(\d{1,5})(?:[-:](\d{1,5}))?$/.exec(text);
  if (m === null) return `"${text}" is not a port or port range`;
  const low = Number(m[1]);
  const high = m[2] === undefined ? low : Number(m[2]);
  if (low > 65535 || high > 65535) return `"${text}": ports go up to 65535`;
  if (low > high) return `"${text}": the range is reversed`;
  range.minPort = low;
  range.maxPort = high;
  return null;
}

/** A rule that matches everything and accepts; parsers fill in what they read. */
export function newNatRule(origin: string, family: 0 | 4 | 6): NatRule {
  return {
    origin,
    family,
    source: null,
    destination: null,
    protocol: null,
    protocolNegated: false,
    sourcePorts: null,
    destinationPorts: null,
    inInterface: null,
    outInterface: null,
    target: { kind: "ACCEPT" },
  };
}

const IGNORED_MATCH_MODULES = new Set(["tcp", "udp", "udplite", "sctp", "dccp", "comment", "multiport"]);
const TERMINAL_TARGETS = new Set(["SNAT", "DNAT", "MASQUERADE", "REDIRECT", "ACCEPT", "RETURN"]);

export function parseNatRules(
  text: string,
  sourceName: string,
  options: ParseNatRulesOptions = {},
): ParsedNatRules {
  const family = options.family ?? 4;
  const rules = emptyRuleSet();
  const errors: NatRuleError[] = [];
  const lines = text.split(/\r?\n/);
  let table: string | null = null;
  let sawNat = false;
  /** Jumps to check once every chain is declared: [rule, chain, line]. */
  const jumps: [NatRule, string, number][] = [];
  const fail = (line: number, message: string): void => {
    errors.push({ origin: `${sourceName}:${line}`, line, message });
  };

  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const line = lines[index].trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("*")) {
      if (table !== null)
        fail(lineNumber, `table "${line.slice(1)}" starts before "${table}" ended with COMMIT`);
      table = line.slice(1);
      if (table === "nat") sawNat = true;
      continue;
    }
    if (line === "COMMIT") {
      if (table === null) fail(lineNumber, "COMMIT outside a table");
      table = null;
      continue;
    }
    if (table === null) {
      fail(lineNumber, `"${line}" outside a table (expected "*nat" first)`);
      continue;
    }
    if (table !== "nat") continue;
    if (line.startsWith(":")) {
      const m = /^:(\S+)\s+(\S+)(?:\s+\[\d+:\d+\])?$/.exec(line);
      if (m === null) {
        fail(lineNumber, `cannot read the chain declaration "${line}"`);
        continue;
      }
      const [, name, policy] = m;
      const existing = rules.chains.get(name);
      if (existing !== undefined) existing.policy = policy === "-" ? null : policy;
      else rules.chains.set(name, { name, policy: policy === "-" ? null : policy, rules: [] });
      continue;
    }
    const words = splitRuleWords(line);
    if (typeof words === "string") {
      fail(lineNumber, words);
      continue;
    }
    const parsed = parseRuleWords(words, `${sourceName}:${lineNumber}`, family);
    if (typeof parsed === "string") {
      fail(lineNumber, parsed);
      continue;
    }
    const chain = rules.chains.get(parsed.chain);
    if (chain === undefined) {
      fail(lineNumber, `rule added to chain "${parsed.chain}", which was not declared`);
      continue;
    }
    const hookError = checkHook(parsed.chain, parsed.rule);
    if (hookError !== null) {
      fail(lineNumber, hookError);
      continue;
    }
    chain.rules.push(parsed.rule);
    const t = parsed.rule.target;
    if (t.kind === "JUMP" || t.kind === "GOTO") jumps.push([parsed.rule, t.chain, lineNumber]);
  }
  if (table !== null) fail(lines.length, `table "${table}" has no COMMIT`);
  if (!sawNat && errors.length === 0) fail(0, "no *nat table in the input");
  for (const [, chain, lineNumber] of jumps) {
    if (!rules.chains.has(chain)) fail(lineNumber, `jump to chain "${chain}", which was not declared`);
  }
  const loop = findLoop(rules);
  if (loop !== null) fail(0, `chains jump in a loop: ${loop.join(" -> ")}`);
  return { rules, errors };
}

/** Matches the kernel refuses in a chain: `-o` where no output interface exists, `-i` likewise. */
function checkHook(chain: string, rule: NatRule): string | null {
  if ((chain === "PREROUTING" || chain === "INPUT") && rule.outInterface !== null) {
    return `-o cannot be used in ${chain} (there is no output interface yet)`;
  }
  if ((chain === "POSTROUTING" || chain === "OUTPUT") && rule.inInterface !== null) {
    return `-i cannot be used in ${chain} (there is no input interface)`;
  }
  const kind = rule.target.kind;
  if ((kind === "SNAT" || kind === "MASQUERADE") && (chain === "PREROUTING" || chain === "OUTPUT")) {
    return `${kind} is only valid in POSTROUTING and INPUT (and chains called from there), not ${chain}`;
  }
  if ((kind === "DNAT" || kind === "REDIRECT") && (chain === "POSTROUTING" || chain === "INPUT")) {
    return `${kind} is only valid in PREROUTING and OUTPUT (and chains called from there), not ${chain}`;
  }
  return null;
}

function findLoop(rules: NatRuleSet): string[] | null {
  const state = new Map<string, 1 | 2>();
  const path: string[] = [];
  const visit = (name: string): string[] | null => {
    const s = state.get(name);
    if (s === 2) return null;
    if (s === 1) return [...path.slice(path.indexOf(name)), name];
    state.set(name, 1);
    path.push(name);
    for (const rule of rules.chains.get(name)?.rules ?? []) {
      const t = rule.target;
      if ((t.kind === "JUMP" || t.kind === "GOTO") && rules.chains.has(t.chain)) {
        const found = visit(t.chain);
        if (found !== null) return found;
      }
    }
    path.pop();
    state.set(name, 2);
    return null;
  };
  for (const name of rules.chains.keys()) {
    const found = visit(name);
    if (found !== null) return found;
  }
  return null;
}

/** One `-A CHAIN …` line → its chain and rule, or what could not be read. */
export function parseRuleWords(
  words: string[],
  origin: string,
  family: 4 | 6,
): { chain: string; rule: NatRule } | string {
  if (words[0] !== "-A" && words[0] !== "--append") {
    return `expected "-A CHAIN …", ":CHAIN POLICY", "*table" or "COMMIT", found "${words[0]}"`;
  }
  if (words.length < 2) return `"-A" without a chain name`;
  const chain = words[1];
  const rule = newNatRule(origin, family);
  let targetName: string | null = null;
  let gotoChain = false;
  const range: NatRange = emptyRange();
  let negateNext = false;
  let i = 2;
  const value = (option: string): string | null => (i + 1 < words.length ? words[++i] : (void option, null));

  for (; i < words.length; i++) {
    const word = words[i];
    if (word === "!") {
      if (negateNext) return `"!" twice in a row`;
      negateNext = true;
      continue;
    }
    const negated = negateNext;
    negateNext = false;
    // The old infix form `-s ! ADDR` is accepted too.
    const optionValue = (): { text: string; negated: boolean } | null => {
      let text = value(word);
      let inner = negated;
      if (text === "!") {
        inner = true;
        text = value(word);
      }
      return text === null ? null : { text, negated: inner };
    };
    switch (word) {
      case "-s":
      case "--source":
      case "--src":
      case "-d":
      case "--destination":
      case "--dst": {
        const v = optionValue();
        if (v === null) return `${word} needs an address`;
        if (v.text.includes(","))
          return `${word} "${v.text}": address lists are not supported (iptables-save prints one rule per address)`;
        const match = parseAddressMatch(v.text, v.negated);
        if (typeof match === "string") return `${word}: ${match}`;
        if (match.family !== family) {
          return `${word} ${v.text} is an IPv${match.family} address in an IPv${family} table`;
        }
        if (word.startsWith("-s") || word === "--source" || word === "--src") rule.source = match;
        else rule.destination = match;
        break;
      }
      case "-p":
      case "--protocol": {
        const v = optionValue();
        if (v === null) return `${word} needs a protocol`;
        const protocol = parseProtocol(v.text);
        if (protocol === undefined) return `unknown protocol "${v.text}"`;
        rule.protocol = protocol;
        rule.protocolNegated = v.negated;
        break;
      }
      case "-i":
      case "--in-interface":
      case "-o":
      case "--out-interface": {
        const v = optionValue();
        if (v === null) return `${word} needs an interface name`;
        const match: InterfaceMatch = {
          name: v.text.endsWith("+") ? v.text.slice(0, -1) : v.text,
          wildcard: v.text.endsWith("+"),
          negated: v.negated,
        };
        if (word === "-i" || word === "--in-interface") rule.inInterface = match;
        else rule.outInterface = match;
        break;
      }
      case "-m":
      case "--match": {
        const module = value(word);
        if (module === null) return `${word} needs a module name`;
        if (!IGNORED_MATCH_MODULES.has(module)) return `match module "-m ${module}" is not supported`;
        break;
      }
      case "--comment":
        if (value(word) === null) return "--comment needs a text";
        break;
      case "--sport":
      case "--source-port":
      case "--dport":
      case "--destination-port": {
        const v = optionValue();
        if (v === null) return `${word} needs a port or range`;
        const ports = parsePortRange(v.text);
        if (ports === null) return `${word} "${v.text}" is not a port or range (PORT or FIRST:LAST)`;
        const match: PortMatch = { ranges: [ports], negated: v.negated };
        if (word === "--sport" || word === "--source-port") rule.sourcePorts = match;
        else rule.destinationPorts = match;
        break;
      }
      case "--sports":
      case "--source-ports":
      case "--dports":
      case "--destination-ports":
      case "--ports": {
        if (word === "--ports") return `multiport "--ports" (either direction) is not supported`;
        const v = optionValue();
        if (v === null) return `${word} needs a list of ports`;
        const ranges: [number, number][] = [];
        for (const item of v.text.split(",")) {
          const ports = parsePortRange(item);
          if (ports === null) return `${word} "${item}" is not a port or range`;
          ranges.push(ports);
        }
        const match: PortMatch = { ranges, negated: v.negated };
        if (word === "--sports" || word === "--source-ports") rule.sourcePorts = match;
        else rule.destinationPorts = match;
        break;
      }
      case "-j":
      case "--jump":
      case "-g":
      case "--goto": {
        if (negated) return `"!" cannot negate ${word}`;
        const name = value(word);
        if (name === null) return `${word} needs a target`;
        if (targetName !== null) return `a second target "${name}" after "${targetName}"`;
        targetName = name;
        gotoChain = word === "-g" || word === "--goto";
        break;
      }
      case "--to-source":
      case "--to-destination":
      case "--to": {
        const text = value(word);
        if (text === null) return `${word} needs ADDRESS[-ADDRESS][:PORT[-PORT]]`;
        if (range.minAddress !== null || range.minPort !== null)
          return `a second ${word} (several ranges are not supported)`;
        if (text.includes("/")) return `${word} "${text}": port offsets ("/BASE") are not supported`;
        const error = parseNatRangeText(text, range);
        if (error !== null) return `${word} ${error}`;
        const parsedAddress = range.minAddress as NatAddress | null;
        if (parsedAddress !== null && parsedAddress.family !== family) {
          return `${word} ${text} is an IPv${parsedAddress.family} address in an IPv${family} table`;
        }
        break;
      }
      case "--to-ports": {
        const text = value(word);
        if (text === null) return `${word} needs PORT[-PORT]`;
        const error = parseTargetPorts(text, range);
        if (error !== null) return `${word} ${error}`;
        break;
      }
      case "--random":
        range.random = true;
        break;
      case "--random-fully":
        range.randomFully = true;
        break;
      case "--persistent":
        range.persistent = true;
        break;
      default:
        return `cannot read "${word}"${negated ? ' (after "!")' : ""}`;
    }
    if (
      negated &&
      ![
        "-s",
        "--source",
        "--src",
        "-d",
        "--destination",
        "--dst",
        "-p",
        "--protocol",
        "-i",
        "--in-interface",
        "-o",
        "--out-interface",
        "--sport",
        "--source-port",
        "--dport",
        "--destination-port",
        "--sports",
        "--source-ports",
        "--dports",
        "--destination-ports",
      ].includes(word)
    ) {
      return `"!" cannot negate ${word}`;
    }
  }
  if (negateNext) return `"!" at the end of the rule`;
  if (targetName === null)
    return "rule without a target (-j): it would only count packets, which NAT does not need";
  const target = buildTarget(targetName, gotoChain, range);
  if (typeof target === "string") return target;
  if (
    (rule.sourcePorts !== null || rule.destinationPorts !== null) &&
    !portsAllowed(rule.protocol, rule.protocolNegated)
  ) {
    return "--sport/--dport need -p tcp, udp, udplite, sctp or dccp";
  }
  rule.target = target;
  return { chain, rule };
}

function portsAllowed(protocol: number | null, negated: boolean): boolean {
  return protocol !== null && !negated && [6, 17, 33, 132, 136].includes(protocol);
}

function buildTarget(name: string, gotoChain: boolean, range: NatRange): NatTarget | string {
  const hasAddresses = range.minAddress !== null;
  const hasPorts = range.minPort !== null;
  const hasOptions = hasAddresses || hasPorts || range.random || range.randomFully || range.persistent;
  if (gotoChain && TERMINAL_TARGETS.has(name)) return `-g needs a user chain, not ${name}`;
  switch (name) {
    case "SNAT":
    case "DNAT":
      if (!hasAddresses && !hasPorts) {
        return `${name} needs --to-${name === "SNAT" ? "source" : "destination"}`;
      }
      return { kind: name, range };
    case "MASQUERADE":
    case "REDIRECT":
      if (hasAddresses) return `${name} takes --to-ports, not an address`;
      if (range.persistent) return `${name} has no --persistent option`;
      if (name === "REDIRECT" && range.randomFully) return "REDIRECT has no --random-fully option";
      return { kind: name, range };
    case "ACCEPT":
    case "RETURN":
      if (hasOptions) return `${name} takes no options`;
      return { kind: name };
    case "DROP":
    case "REJECT":
      return `${name} is not valid in the nat table`;
    default:
      if (hasOptions) return `target "${name}" takes no NAT options`;
      if (!/^[A-Za-z0-9_.-]+$/.test(name) || (/^[A-Z]+$/.test(name) && KNOWN_UNSUPPORTED_TARGETS.has(name))) {
        return `target "${name}" is not supported`;
      }
      return gotoChain ? { kind: "GOTO", chain: name } : { kind: "JUMP", chain: name };
  }
}

const KNOWN_UNSUPPORTED_TARGETS = new Set([
  "NETMAP",
  "LOG",
  "MARK",
  "CONNMARK",
  "CT",
  "TPROXY",
  "NFLOG",
  "CLUSTERIP",
]);
