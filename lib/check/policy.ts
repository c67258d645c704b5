/**
 * Policies for `pcap-conntrack check`: what a policy file can say, read from YAML or JSON (JSON is
 * read by the same YAML 1.2 parser, so both give line and column). Every problem found is collected,
 * each naming the file, line, column and field path, before the policy is refused as a whole.
 */
import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  type Document,
  type Node,
  type ParsedNode,
} from "yaml";
import { parseAddressMatch, parseProtocol, type AddressMatch } from "../conntrack/nat/rules.js";
import { protocolName } from "../report/event-formats.js";
import { printable } from "../report/escape.js";

/** Where a policy field is: 1-based line and column. */
export interface PolicyLocation {
  line: number;
  column: number;
}

export interface PolicyProblem extends PolicyLocation {
  /** Field path in the policy, e.g. `firewall.allow[2].port` ("" for the document itself). */
  path: string;
  message: string;
}

/** A policy that cannot be used: every problem found, each with its line and field. */
export class PolicyError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly PolicyProblem[],
  ) {
    super(
      problems
        .map(
          (problem) =>
            // Messages quote the policy's own text: one line each, no control characters sent.
            `${file}:${problem.line}:${problem.column}: ${printable(problem.path || "policy")}: ${printable(problem.message)}`,
        )
        .join("\n"),
    );
    this.name = "PolicyError";
  }
}

export const DIRECTIONS = ["outbound", "inbound", "internal", "external"] as const;
export type Direction = (typeof DIRECTIONS)[number];

/** Which connections an entry is about; absent conditions match everything. */
export interface FlowMatch {
  /** Protocol numbers, any of; null: every protocol. */
  protocols: number[] | null;
  /** Source addresses (any of), null: any. */
  from: AddressMatch[] | null;
  /** Destination addresses (any of), null: any. */
  to: AddressMatch[] | null;
  /** Destination port ranges (inclusive), null: any port; a condition on ports never matches ICMP. */
  ports: [number, number][] | null;
  /** Source port ranges, null: any. */
  fromPorts: [number, number][] | null;
  direction: Direction | null;
  /** The conditions in words, for output. */
  text: string;
}

export const LIMIT_METRICS = [
  "orphans",
  "orphaned-replies",
  "invalid-packets",
  "unreplied-connections",
  "rst-ended-connections",
  "open-at-end",
] as const;
export type LimitMetric = (typeof LIMIT_METRICS)[number];

export const REACH_LEVELS = ["seen", "replied", "established", "assured"] as const;
export type Reach = (typeof REACH_LEVELS)[number];

interface RuleBase {
  /** Where the rule is in the policy: `limits.invalid-packets.tcp`, `firewall.deny[0]` … */
  id: string;
  /** The policy's `name`, else the rule in words. */
  name: string;
  location: PolicyLocation;
}

export interface LimitRule extends RuleBase {
  kind: "limit";
  metric: LimitMetric;
  /** Protocol name the limit counts, null for all protocols together. */
  protocol: string | null;
  max: number;
}

/** No NEW connection may match. */
export interface DenyRule extends RuleBase {
  kind: "deny";
  match: FlowMatch;
}

/** `firewall.default: deny`: every NEW connection must match an allow entry (and no deny entry). */
export interface DefaultDenyRule extends RuleBase {
  kind: "default-deny";
  allow: FlowMatch[];
  deny: FlowMatch[];
}

export interface RequireRule extends RuleBase {
  kind: "require";
  match: FlowMatch;
  reach: Reach;
  atLeast: number;
}

/** Where a translated endpoint must end up: an address (or network) and optionally ports. */
export interface EndpointExpectation {
  address: AddressMatch;
  ports: [number, number] | null;
  text: string;
}

export interface NatRule extends RuleBase {
  kind: "nat";
  match: FlowMatch;
  /** `source`: `leaves-as` (SNAT, the reply tuple's destination); `destination`: `forwarded-to` (DNAT). */
  side: "source" | "destination";
  expect: EndpointExpectation;
  atLeast: number;
}

export interface BoundsRule extends RuleBase {
  kind: "bounds";
  match: FlowMatch;
  /** Seconds, bytes and packets (both directions together); null: no bound. */
  minDuration: number | null;
  maxDuration: number | null;
  minBytes: number | null;
  maxBytes: number | null;
  minPackets: number | null;
  maxPackets: number | null;
}

export type PolicyRule = LimitRule | DenyRule | DefaultDenyRule | RequireRule | NatRule | BoundsRule;

export interface Policy {
  file: string;
  name: string | null;
  /** Networks that count as inside for `direction`. */
  inside: AddressMatch[];
  rules: PolicyRule[];
}

/** Reads a policy; a PolicyError lists every problem with its line, column and field. */
export function parsePolicy(text: string, file: string): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const reader = new PolicyReader(doc, lineCounter);
  for (const error of doc.errors) {
    const position = reader.position(error.pos[0]);
    reader.problems.push({ ...position, path: "(syntax)", message: error.message.split("\n")[0] });
  }
  // YAML would take a JSON file's slips (trailing commas, comments, single quotes): hold JSON to JSON.
  if (reader.problems.length === 0 && /\.json$/i.test(file)) {
    try {
      JSON.parse(text);
    } catch (error) {
      const message = (error as Error).message;
      const offset = /position (\d+)/.exec(message);
      const position = reader.position(offset === null ? 0 : Number(offset[1]));
      reader.problems.push({
        ...position,
        path: "(syntax)",
        message: `not JSON: ${message.replace(/ \(line.*$/s, "")}`,
      });
    }
  }
  if (reader.problems.length > 0) throw new PolicyError(file, reader.problems);
  const policy = readPolicy(reader, doc.contents, file);
  if (reader.problems.length > 0)
    throw new PolicyError(
      file,
      reader.problems.sort((a, b) => a.line - b.line || a.column - b.column),
    );
  return policy;
}

const TOP_KEYS = [
  "version",
  "name",
  "description",
  "inside",
  "limits",
  "firewall",
  "require",
  "nat",
  "bounds",
];
const MATCH_KEYS = ["protocol", "from", "to", "port", "from-port", "direction"];

function readPolicy(reader: PolicyReader, root: Node | null, file: string): Policy {
  const policy: Policy = { file, name: null, inside: [], rules: [] };
  if (root === null || (isScalar(root) && root.value === null)) {
    reader.fail(
      root,
      "",
      "the policy is empty (give at least one of limits, firewall, require, nat, bounds)",
    );
    return policy;
  }
  const top = reader.map(root, "", TOP_KEYS);
  if (top === null) return policy;
  const version = top.get("version");
  if (version !== undefined) {
    const value = reader.integer(version.value, "version", 1);
    if (value !== null && value !== 1)
      reader.fail(version.value, "version", `version ${value} is not known (1 is)`);
  }
  const name = top.get("name");
  if (name !== undefined) policy.name = reader.string(name.value, "name");
  const description = top.get("description");
  if (description !== undefined) reader.string(description.value, "description");
  const inside = top.get("inside");
  if (inside !== undefined) policy.inside = reader.addresses(inside.value, "inside") ?? [];
  const context: MatchContext = { hasInside: inside !== undefined };
  if (!["limits", "firewall", "require", "nat", "bounds"].some((key) => top.has(key)))
    reader.fail(
      root,
      "",
      "the policy asserts nothing (give at least one of limits, firewall, require, nat, bounds)",
    );

  const limits = top.get("limits");
  if (limits !== undefined) readLimits(reader, limits.value, policy.rules);
  const firewall = top.get("firewall");
  if (firewall !== undefined) readFirewall(reader, firewall.value, context, policy.rules);
  const require = top.get("require");
  if (require !== undefined) readRequire(reader, require.value, context, policy.rules);
  const nat = top.get("nat");
  if (nat !== undefined) readNat(reader, nat.value, context, policy.rules);
  const bounds = top.get("bounds");
  if (bounds !== undefined) readBounds(reader, bounds.value, context, policy.rules);
  // Results come in the order the rules are written.
  policy.rules.sort((a, b) => a.location.line - b.location.line || a.location.column - b.location.column);
  return policy;
}

const METRIC_WORDS: Record<LimitMetric, string> = {
  orphans: "orphaned packets (every packet no connection explains)",
  "orphaned-replies": "orphaned replies (answers to a connection the table does not have)",
  "invalid-packets": "INVALID packets",
  "unreplied-connections": "unreplied connections",
  "rst-ended-connections": "connections ended by a RST",
  "open-at-end": "connections still open at the end of the input",
};

const PROTOCOL_KEYS = ["tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "dccp", "gre"];

function readLimits(reader: PolicyReader, node: Node | null, rules: PolicyRule[]): void {
  const limits = reader.map(node, "limits", LIMIT_METRICS);
  if (limits === null) return;
  for (const [metricKey, entry] of limits) {
    const metric = metricKey as LimitMetric;
    const path = `limits.${metric}`;
    const add = (protocol: string | null, valueNode: Node | null, at: string): void => {
      const max = reader.integer(valueNode, at, 0);
      if (max === null) return;
      rules.push({
        kind: "limit",
        id: protocol === null ? path : `${path}.${protocol}`,
        name: `at most ${max} ${METRIC_WORDS[metric]}${protocol === null ? "" : `, ${protocol}`}`,
        location: reader.location(entry.key),
        metric,
        protocol,
        max,
      });
    };
    if (isMap(reader.resolve(entry.value))) {
      const perProtocol = reader.map(entry.value, path, ["all", ...PROTOCOL_KEYS]);
      if (perProtocol === null) continue;
      if (perProtocol.size === 0) reader.fail(entry.value, path, "give a number, or protocols with numbers");
      for (const [protocol, value] of perProtocol)
        add(protocol === "all" ? null : protocol, value.value, `${path}.${protocol}`);
    } else add(null, entry.value, path);
  }
}

function readFirewall(
  reader: PolicyReader,
  node: Node | null,
  context: MatchContext,
  rules: PolicyRule[],
): void {
  const firewall = reader.map(node, "firewall", ["default", "allow", "deny"]);
  if (firewall === null) return;
  let defaultDeny = false;
  const defaultEntry = firewall.get("default");
  if (defaultEntry !== undefined) {
    const value = reader.choice(defaultEntry.value, "firewall.default", ["allow", "deny"]);
    defaultDeny = value === "deny";
  }
  const allow: FlowMatch[] = [];
  const deny: FlowMatch[] = [];
  const allowEntry = firewall.get("allow");
  if (allowEntry !== undefined) {
    reader.list(allowEntry.value, "firewall.allow", (item, path) => {
      const entry = reader.map(item, path, ["name", ...MATCH_KEYS]);
      if (entry === null) return;
      reader.optionalString(entry, "name", path);
      allow.push(readMatch(reader, entry, path, context));
    });
    if (!defaultDeny)
      reader.fail(
        allowEntry.key,
        "firewall.allow",
        "allow entries only matter with `default: deny` (add it, or turn them into deny entries)",
      );
  }
  const denyEntry = firewall.get("deny");
  if (denyEntry !== undefined) {
    reader.list(denyEntry.value, "firewall.deny", (item, path) => {
      const entry = reader.map(item, path, ["name", ...MATCH_KEYS]);
      if (entry === null) return;
      const name = reader.optionalString(entry, "name", path);
      const match = readMatch(reader, entry, path, context);
      deny.push(match);
      rules.push({
        kind: "deny",
        id: path,
        name: name ?? `no connection ${match.text}`,
        location: reader.location(item),
        match,
      });
    });
  }
  if (defaultDeny) {
    rules.push({
      kind: "default-deny",
      id: "firewall.default",
      name: "every new connection matches an allow entry",
      location: reader.location(defaultEntry!.key),
      allow,
      deny,
    });
  } else if (denyEntry === undefined) {
    reader.fail(node, "firewall", "give deny entries, or `default: deny` with allow entries");
  }
}

function readRequire(
  reader: PolicyReader,
  node: Node | null,
  context: MatchContext,
  rules: PolicyRule[],
): void {
  reader.list(node, "require", (item, path) => {
    const entry = reader.map(item, path, ["name", "reach", "at-least", ...MATCH_KEYS]);
    if (entry === null) return;
    const name = reader.optionalString(entry, "name", path);
    const match = readMatch(reader, entry, path, context);
    const reachEntry = entry.get("reach");
    const reach =
      reachEntry === undefined
        ? "established"
        : reader.choice(reachEntry.value, `${path}.reach`, REACH_LEVELS);
    const atLeast = readAtLeast(reader, entry, path);
    if (reach === null || atLeast === null) return;
    rules.push({
      kind: "require",
      id: path,
      name:
        name ??
        `${atLeast === 1 ? "a connection" : `${atLeast} connections`} ${match.text} ${REACH_WORDS[reach]}`,
      location: reader.location(item),
      match,
      reach,
      atLeast,
    });
  });
}

export const REACH_WORDS: Record<Reach, string> = {
  seen: "seen",
  replied: "replied to",
  established: "established",
  assured: "assured",
};

function readAtLeast(reader: PolicyReader, entry: EntryMap, path: string): number | null {
  const atLeast = entry.get("at-least");
  return atLeast === undefined ? 1 : reader.integer(atLeast.value, `${path}.at-least`, 0);
}

function readNat(reader: PolicyReader, node: Node | null, context: MatchContext, rules: PolicyRule[]): void {
  reader.list(node, "nat", (item, path) => {
    const entry = reader.map(item, path, ["name", "leaves-as", "forwarded-to", "at-least", ...MATCH_KEYS]);
    if (entry === null) return;
    const name = reader.optionalString(entry, "name", path);
    const match = readMatch(reader, entry, path, context);
    const leavesAs = entry.get("leaves-as");
    const forwardedTo = entry.get("forwarded-to");
    if ((leavesAs === undefined) === (forwardedTo === undefined)) {
      reader.fail(item, path, "give one of leaves-as (source NAT) and forwarded-to (destination NAT)");
      return;
    }
    const side = leavesAs !== undefined ? "source" : "destination";
    const field = side === "source" ? "leaves-as" : "forwarded-to";
    if (side === "source" && match.from === null)
      reader.fail(item, path, "say which inside endpoint leaves as that address: from");
    if (side === "destination" && match.to === null)
      reader.fail(item, path, "say which outside address is forwarded: to");
    const expect = reader.endpoint((leavesAs ?? forwardedTo)!.value, `${path}.${field}`);
    const atLeast = readAtLeast(reader, entry, path);
    if (expect === null || atLeast === null) return;
    rules.push({
      kind: "nat",
      id: path,
      name:
        name ??
        (side === "source"
          ? `connections ${match.text} leave as ${expect.text}`
          : `connections ${match.text} are forwarded to ${expect.text}`),
      location: reader.location(item),
      match,
      side,
      expect,
      atLeast,
    });
  });
}

const BOUND_KEYS = ["min-duration", "max-duration", "min-bytes", "max-bytes", "min-packets", "max-packets"];

function readBounds(
  reader: PolicyReader,
  node: Node | null,
  context: MatchContext,
  rules: PolicyRule[],
): void {
  reader.list(node, "bounds", (item, path) => {
    const entry = reader.map(item, path, ["name", ...BOUND_KEYS, ...MATCH_KEYS]);
    if (entry === null) return;
    const name = reader.optionalString(entry, "name", path);
    const match = readMatch(reader, entry, path, context);
    const value = (key: string, read: (node: Node | null, path: string) => number | null): number | null => {
      const field = entry.get(key);
      return field === undefined ? null : read(field.value, `${path}.${key}`);
    };
    const duration = (node: Node | null, at: string) => reader.duration(node, at);
    const size = (node: Node | null, at: string) => reader.size(node, at);
    const count = (node: Node | null, at: string) => reader.integer(node, at, 0);
    const rule: BoundsRule = {
      kind: "bounds",
      id: path,
      name: "",
      location: reader.location(item),
      match,
      minDuration: value("min-duration", duration),
      maxDuration: value("max-duration", duration),
      minBytes: value("min-bytes", size),
      maxBytes: value("max-bytes", size),
      minPackets: value("min-packets", count),
      maxPackets: value("max-packets", count),
    };
    if (!BOUND_KEYS.some((key) => entry.has(key))) {
      reader.fail(item, path, `give at least one bound: ${BOUND_KEYS.join(", ")}`);
      return;
    }
    for (const [low, high, what] of [
      [rule.minDuration, rule.maxDuration, "duration"],
      [rule.minBytes, rule.maxBytes, "bytes"],
      [rule.minPackets, rule.maxPackets, "packets"],
    ] as const) {
      if (low !== null && high !== null && low > high)
        reader.fail(entry.get(`min-${what}`)!.value, `${path}.min-${what}`, `is more than max-${what}`);
    }
    rule.name = name ?? `connections ${match.text} within ${boundsText(rule)}`;
    rules.push(rule);
  });
}

/** "duration ≤ 5 s, bytes ≥ 100" */
export function boundsText(rule: BoundsRule): string {
  const parts: string[] = [];
  const add = (what: string, low: number | null, high: number | null, unit: string): void => {
    if (low !== null && high !== null) parts.push(`${low}–${high}${unit} ${what}`);
    else if (low !== null) parts.push(`at least ${low}${unit} ${what}`);
    else if (high !== null) parts.push(`at most ${high}${unit} ${what}`);
  };
  add("duration", rule.minDuration, rule.maxDuration, " s");
  add("bytes", rule.minBytes, rule.maxBytes, "");
  add("packets", rule.minPackets, rule.maxPackets, "");
  return parts.join(", ");
}

interface MatchContext {
  hasInside: boolean;
}

function readMatch(reader: PolicyReader, entry: EntryMap, path: string, context: MatchContext): FlowMatch {
  const match: FlowMatch = {
    protocols: null,
    from: null,
    to: null,
    ports: null,
    fromPorts: null,
    direction: null,
    text: "",
  };
  const words: string[] = [];
  const protocol = entry.get("protocol");
  if (protocol !== undefined) {
    match.protocols = reader.protocols(protocol.value, `${path}.protocol`);
    if (match.protocols !== null) words.push(match.protocols.map(protocolLabel).join("/"));
  }
  const from = entry.get("from");
  if (from !== undefined) {
    match.from = reader.addresses(from.value, `${path}.from`);
    words.push(`from ${reader.text(from.value)}`);
  }
  const fromPort = entry.get("from-port");
  if (fromPort !== undefined) {
    match.fromPorts = reader.ports(fromPort.value, `${path}.from-port`);
    words.push(`from port ${reader.text(fromPort.value)}`);
  }
  const to = entry.get("to");
  if (to !== undefined) {
    match.to = reader.addresses(to.value, `${path}.to`);
    words.push(`to ${reader.text(to.value)}`);
  }
  const port = entry.get("port");
  if (port !== undefined) {
    match.ports = reader.ports(port.value, `${path}.port`);
    words.push(`port ${reader.text(port.value)}`);
  }
  const direction = entry.get("direction");
  if (direction !== undefined) {
    match.direction = reader.choice(direction.value, `${path}.direction`, DIRECTIONS);
    if (match.direction !== null) words.push(match.direction);
    if (!context.hasInside)
      reader.fail(
        direction.value,
        `${path}.direction`,
        "needs `inside:` (the networks that are inside) at the top",
      );
  }
  if ((match.ports !== null || match.fromPorts !== null) && match.protocols !== null) {
    const portless = match.protocols.filter((number) => !PORTED_PROTOCOLS.has(number));
    if (portless.length > 0)
      reader.fail(
        (port ?? fromPort)!.value,
        `${path}.${port !== undefined ? "port" : "from-port"}`,
        `${portless.map(protocolLabel).join(", ")} has no ports`,
      );
  }
  match.text = words.length === 0 ? "of any kind" : words.join(" ");
  return match;
}

/** Protocols whose tuples have ports in the flow records. */
const PORTED_PROTOCOLS = new Set([6, 17, 136, 132, 33]);

function protocolLabel(number: number): string {
  const name = protocolName(number);
  return name === "unknown" ? `protocol ${number}` : name;
}

type EntryMap = Map<string, { key: Node | null; value: Node | null }>;

/** Typed reads of YAML nodes; each failure is recorded with its position and path, and gives null. */
class PolicyReader {
  readonly problems: PolicyProblem[] = [];
  constructor(
    private readonly doc: Document.Parsed,
    private readonly lineCounter: LineCounter,
  ) {}

  position(offset: number): PolicyLocation {
    const { line, col } = this.lineCounter.linePos(offset);
    return line === 0 ? { line: 1, column: offset + 1 } : { line, column: col };
  }

  location(node: Node | null): PolicyLocation {
    const range = node?.range;
    return range ? this.position(range[0]) : { line: 1, column: 1 };
  }

  fail(node: Node | null, path: string, message: string): void {
    this.problems.push({ ...this.location(node), path, message });
  }

  resolve(node: Node | null): Node | null {
    if (node !== null && isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? null;
    return node;
  }

  /** The node's text as written (for output). */
  text(node: Node | null): string {
    const resolved = this.resolve(node);
    if (isSeq(resolved)) return resolved.items.map((item) => this.text(item as Node)).join(", ");
    if (isScalar(resolved)) return String(resolved.source ?? resolved.value);
    return "";
  }

  map(node: Node | null, path: string, allowed: readonly string[]): EntryMap | null {
    const resolved = this.resolve(node);
    if (!isMap(resolved)) {
      this.fail(node, path, `is ${describe(resolved)}, expected a mapping (keys: ${allowed.join(", ")})`);
      return null;
    }
    const entries: EntryMap = new Map();
    for (const pair of resolved.items) {
      const key = pair.key as ParsedNode | null;
      const name = isScalar(key) ? String(key.value) : null;
      const at = path === "" ? (name ?? "?") : `${path}.${name ?? "?"}`;
      if (name === null) {
        this.fail(key, path, "keys must be plain words");
        continue;
      }
      if (!allowed.includes(name)) {
        const near = nearest(name, allowed);
        this.fail(
          key,
          at,
          `unknown field${near === null ? "" : ` (did you mean ${near}?)`}; known here: ${allowed.join(", ")}`,
        );
        continue;
      }
      entries.set(name, { key, value: (pair.value as Node | null) ?? null });
    }
    return entries;
  }

  list(node: Node | null, path: string, each: (item: Node | null, path: string) => void): void {
    const resolved = this.resolve(node);
    if (!isSeq(resolved)) {
      this.fail(node, path, `is ${describe(resolved)}, expected a list`);
      return;
    }
    resolved.items.forEach((item, index) => each(item as Node | null, `${path}[${index}]`));
  }

  /** A scalar or a list of scalars, each read by `read`. */
  private oneOrMany<T>(
    node: Node | null,
    path: string,
    read: (value: unknown, item: Node | null, at: string) => T | null,
  ): T[] | null {
    const resolved = this.resolve(node);
    const items = isSeq(resolved) ? (resolved.items as (Node | null)[]) : [node];
    if (items.length === 0) {
      this.fail(node, path, "is an empty list");
      return null;
    }
    const out: T[] = [];
    let failed = false;
    items.forEach((item, index) => {
      const at = isSeq(resolved) ? `${path}[${index}]` : path;
      const scalar = this.resolve(item);
      if (!isScalar(scalar) || scalar.value === null) {
        this.fail(item, at, `is ${describe(scalar)}, expected a value`);
        failed = true;
        return;
      }
      const value = read(scalar.value, item, at);
      if (value === null) failed = true;
      else out.push(value);
    });
    return failed ? null : out;
  }

  string(node: Node | null, path: string): string | null {
    const resolved = this.resolve(node);
    if (!isScalar(resolved) || typeof resolved.value !== "string") {
      this.fail(node, path, `is ${describe(resolved)}, expected text`);
      return null;
    }
    return resolved.value;
  }

  optionalString(entry: EntryMap, key: string, path: string): string | null {
    const field = entry.get(key);
    return field === undefined ? null : this.string(field.value, `${path}.${key}`);
  }

  integer(node: Node | null, path: string, minimum: number): number | null {
    const resolved = this.resolve(node);
    const value = isScalar(resolved) ? resolved.value : undefined;
    if (typeof value !== "number" || !Number.isInteger(value) || value < minimum) {
      this.fail(node, path, `is ${describe(resolved)}, expected a whole number of at least ${minimum}`);
      return null;
    }
    return value;
  }

  choice<T extends string>(node: Node | null, path: string, choices: readonly T[]): T | null {
    const resolved = this.resolve(node);
    const value = isScalar(resolved) ? resolved.value : undefined;
    if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
      this.fail(node, path, `is ${describe(resolved)}, expected one of ${choices.join(", ")}`);
      return null;
    }
    return value as T;
  }

  protocols(node: Node | null, path: string): number[] | null {
    return this.oneOrMany(node, path, (value, item, at) => {
      const number = parseProtocol(String(value));
      if (number === null || number === undefined) {
        this.fail(
          item,
          at,
          `"${value}" is not a protocol (tcp, udp, icmp, icmpv6, sctp, dccp, gre, or a number 1-255)`,
        );
        return null;
      }
      return number;
    });
  }

  addresses(node: Node | null, path: string): AddressMatch[] | null {
    return this.oneOrMany(node, path, (value, item, at) => {
      const text = String(value).trim();
      if (text === "any") return parseAddressMatch("0.0.0.0/0", false) as AddressMatch;
      if (text === "any6") return parseAddressMatch("::/0", false) as AddressMatch;
      const match = parseAddressMatch(text, false);
      if (typeof match === "string") {
        this.fail(item, at, `${match} (expected ADDRESS or ADDRESS/PREFIX, IPv4 or IPv6, or any)`);
        return null;
      }
      return match;
    });
  }

  ports(node: Node | null, path: string): [number, number][] | null {
    return this.oneOrMany(node, path, (value, item, at) => {
      const range = parsePortRange(String(value));
      if (range === null)
        this.fail(item, at, `"${value}" is not a port or range (0-65535, e.g. 443 or 8000-8099)`);
      return range;
    });
  }

  /** `ADDR[/PREFIX]`, `ADDR:PORT[-PORT]`, `[IPV6]:PORT[-PORT]`. */
  endpoint(node: Node | null, path: string): EndpointExpectation | null {
    const resolved = this.resolve(node);
    if (!isScalar(resolved) || (typeof resolved.value !== "string" && typeof resolved.value !== "number")) {
      this.fail(node, path, `is ${describe(resolved)}, expected ADDRESS[/PREFIX] or ADDRESS:PORT[-PORT]`);
      return null;
    }
    const text = String(resolved.value).trim();
    let addressText = text;
    let portText: string | null = null;
    const bracket = /^\[([^\]]+)\](?::(.+))?$/.exec(text);
    if (bracket) {
      addressText = bracket[1];
      portText = bracket[2] ?? null;
    } else if (text.split(":").length === 2) {
      [addressText, portText] = text.split(":");
    }
    const address = parseAddressMatch(addressText, false);
    if (typeof address === "string") {
      this.fail(node, path, `${address} (expected ADDRESS[/PREFIX] or ADDRESS:PORT[-PORT])`);
      return null;
    }
    let ports: [number, number] | null = null;
    if (portText !== null) {
      ports = parsePortRange(portText);
      if (ports === null) {
        this.fail(node, path, `"${portText}" is not a port or range (0-65535)`);
        return null;
      }
    }
    return { address, ports, text };
  }

  /** Seconds: a number, or text with a unit (ms, s, m, h). */
  duration(node: Node | null, path: string): number | null {
    const resolved = this.resolve(node);
    const value = isScalar(resolved) ? resolved.value : undefined;
    if (typeof value === "number" && value >= 0) return value;
    const match =
      typeof value === "string" ? /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|min|h)?\s*$/.exec(value) : null;
    if (match === null) {
      this.fail(
        node,
        path,
        `is ${describe(resolved)}, expected a duration (seconds, or e.g. 500ms, 30s, 5m, 1h)`,
      );
      return null;
    }
    return Number(match[1]) * DURATION_UNITS[match[2] ?? "s"];
  }

  /** Bytes: a whole number, or text with a unit (B, kB, KiB, MB, MiB, GB, GiB). */
  size(node: Node | null, path: string): number | null {
    const resolved = this.resolve(node);
    const value = isScalar(resolved) ? resolved.value : undefined;
    if (typeof value === "number" && Number.isInteger(value) && value >= 0) return value;
    const match = typeof value === "string" ? /^\s*(\d+(?:\.\d+)?)\s*([kKMG]i?B|B)?\s*$/.exec(value) : null;
    const unit = match === null ? undefined : SIZE_UNITS[match[2] ?? "B"];
    if (match === null || unit === undefined) {
      this.fail(node, path, `is ${describe(resolved)}, expected a size in bytes (e.g. 1500, 64kB, 10MiB)`);
      return null;
    }
    return Math.round(Number(match[1]) * unit);
  }
}

const DURATION_UNITS: Record<string, number> = {
  us: 1e-6,
  µs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  min: 60,
  h: 3600,
};
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  kB: 1e3,
  KB: 1e3,
  KiB: 1024,
  kiB: 1024,
  MB: 1e6,
  MiB: 1024 ** 2,
  GB: 1e9,
  GiB: 1024 ** 3,
};

export function parsePortRange(text: string): [number, number] | null {
  const match = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  if (match === null) return null;
  const low = Number(match[1]);
  const high = match[2] === undefined ? low : Number(match[2]);
  return low <= high && high <= 0xffff ? [low, high] : null;
}

/** What a node is, for messages: `"abc"`, `42`, `a list`, `a mapping`, `empty`. */
function describe(node: Node | null): string {
  if (node === null || node === undefined) return "empty";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    if (node.value === null) return "empty";
    if (typeof node.value === "string") return `"${node.value}"`;
    return String(node.value);
  }
  return "not a value";
}

/** The allowed word closest to `word` when it is a plausible typo (edit distance ≤ 2), else null. */
function nearest(word: string, allowed: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const candidate of allowed) {
    const distance = editDistance(word.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = current;
  }
  return previous[b.length];
}
