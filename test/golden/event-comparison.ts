/**
 * Compares two `conntrack -E -o timestamp` streams: the kernel's recording and ours. Events are
 * grouped by original tuple, split into connections (NEW … DESTROY) and matched by order of
 * appearance, then compared field by field. The only tolerances are the ones the kernel's own
 * timing explains (see TOLERANCES); everything else must be equal.
 */

export interface ParsedEvent {
  /** Microseconds since the epoch (the `[sec.usec]` prefix). */
  timeUs: number;
  type: string;
  protocol: string;
  timeout: number | null;
  state: string | null;
  /** Tuples as printed, e.g. "src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=21". */
  original: string;
  reply: string;
  originalCounters: string | null;
  replyCounters: string | null;
  unreplied: boolean;
  assured: boolean;
  deltaTime: number | null;
  helper: string | null;
  /** Any other token (mark=, zone=, [USERSPACE] …), in order. */
  other: string[];
  line: string;
}

export const TOLERANCES = {
  /**
   * A NEW/UPDATE (or an explicit kill's DESTROY) is stamped by conntrack -E when userspace reads it;
   * ours carries the capture time of the packet at the inside interface. Reply-direction packets are
   * captured after the router processed them, so the kernel's stamp may precede ours slightly.
   */
  syncEarlyUs: 2_000,
  /**
   * How late `conntrack -E` may read a message. Its `-o timestamp` stamp is taken when userspace
   * reads the message (gettimeofday in conntrack-tools' event callback), not when the kernel sends it.
   * samples/record.sh runs the listeners at real-time priority (`chrt -f 50`); the samples recorded
   * so read every message within 0.53 ms of its packet (worst: ftp-passive, 0.522 ms; the NAT samples
   * alike), where listeners at normal priority on a busy host had stamped a backlog up to 180 ms
   * late. 5 ms keeps a tenfold margin over the worst seen. The kernel never stamps earlier than the
   * packet (syncEarlyUs covers capture skew), so ours being *later* than the kernel's stays a hard
   * failure.
   */
  listenerLagUs: 5_000,
  /**
   * A natural expiry's DESTROY is printed when the GC worker finds the entry: never earlier than
   * the expiry (ours), later by up to one GC period (at most 60 s on a near-empty table).
   */
  gcLateUs: 61_000_000,
} as const;

export function parseEventLine(line: string): ParsedEvent {
  const tab = line.indexOf("\t");
  const stamp = /^\[(\d+)\.(\d+)\s*\]$/.exec(line.slice(0, tab));
  if (tab < 0 || !stamp) throw new Error(`no [sec.usec] prefix: ${line}`);
  const timeUs = Number(stamp[1]) * 1_000_000 + Number(stamp[2].padEnd(6, "0").slice(0, 6));
  const tokens = line
    .slice(tab + 1)
    .trim()
    .split(/\s+/);
  const header = /^\[(NEW|UPDATE|DESTROY)\]$/.exec(tokens[0]);
  if (!header) throw new Error(`no event header: ${line}`);
  const event: ParsedEvent = {
    timeUs,
    type: header[1],
    protocol: `${tokens[1]} ${tokens[2]}`,
    timeout: null,
    state: null,
    original: "",
    reply: "",
    originalCounters: null,
    replyCounters: null,
    unreplied: false,
    assured: false,
    deltaTime: null,
    helper: null,
    other: [],
    line,
  };
  let i = 3;
  if (i < tokens.length && /^\d+$/.test(tokens[i])) event.timeout = Number(tokens[i++]);
  if (i < tokens.length && /^[A-Z_0-9]+$/.test(tokens[i])) event.state = tokens[i++];
  const tuples: string[][] = [];
  const counters: string[][] = [[], []];
  for (; i < tokens.length; i++) {
    const token = tokens[i];
    const key = token.slice(0, token.indexOf("="));
    if (key === "src") tuples.push([token]);
    else if (TUPLE_KEYS.has(key) && tuples.length > 0 && counters[tuples.length - 1].length === 0)
      tuples[tuples.length - 1].push(token);
    else if ((key === "packets" || key === "bytes") && tuples.length > 0)
      counters[tuples.length - 1].push(token);
    else if (token === "[UNREPLIED]") event.unreplied = true;
    else if (token === "[ASSURED]") event.assured = true;
    else if (key === "delta-time") event.deltaTime = Number(token.slice(key.length + 1));
    else if (key === "helper") event.helper = token.slice(key.length + 1);
    else event.other.push(token);
  }
  if (tuples.length !== 2) throw new Error(`expected two tuples: ${line}`);
  event.original = tuples[0].join(" ");
  event.reply = tuples[1].join(" ");
  event.originalCounters = counters[0].length > 0 ? counters[0].join(" ") : null;
  event.replyCounters = counters[1].length > 0 ? counters[1].join(" ") : null;
  return event;
}

const TUPLE_KEYS = new Set(["src", "dst", "sport", "dport", "type", "code", "id", "srckey", "dstkey"]);

export function parseEventText(text: string): ParsedEvent[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map(parseEventLine);
}

export interface ComparisonOptions {
  /** Do not compare `helper=` (a named, temporary exception while the engine has no helpers). */
  ignoreHelper?: boolean;
}

/** How often each tolerance was used, so a report can say what agreement meant. */
export interface Comparison extends ToleranceUse {
  /** One line per disagreement; empty when the streams agree. */
  differences: string[];
  connections: number;
  events: number;
}

/** Connections of one original tuple, in order; each a list of events from NEW to DESTROY. */
function connectionsByTuple(events: ParsedEvent[]): Map<string, ParsedEvent[][]> {
  const byTuple = new Map<string, ParsedEvent[][]>();
  for (const event of events) {
    const key = `${event.protocol.split(" ")[0]} ${event.original}`;
    let connections = byTuple.get(key);
    if (connections === undefined) byTuple.set(key, (connections = []));
    const current = connections[connections.length - 1];
    if (current === undefined || event.type === "NEW" || current[current.length - 1].type === "DESTROY")
      connections.push([event]);
    else current.push(event);
  }
  return byTuple;
}

export function compareEventStreams(
  kernel: ParsedEvent[],
  ours: ParsedEvent[],
  options: ComparisonOptions = {},
): Comparison {
  const result: Comparison = {
    differences: [],
    timeoutOneShort: 0,
    maxGcLateUs: 0,
    maxListenerLagUs: 0,
    connections: 0,
    events: kernel.length,
  };
  const kernelConnections = connectionsByTuple(kernel);
  const ourConnections = connectionsByTuple(ours);
  const keys = [...new Set([...kernelConnections.keys(), ...ourConnections.keys()])];
  for (const key of keys) {
    const theirs = kernelConnections.get(key) ?? [];
    const mine = ourConnections.get(key) ?? [];
    for (let n = 0; n < Math.max(theirs.length, mine.length); n++) {
      const where = `${key} (connection ${n + 1})`;
      const kernelEvents = theirs[n] ?? [];
      const ourEvents = mine[n] ?? [];
      result.connections++;
      for (let e = 0; e < Math.max(kernelEvents.length, ourEvents.length); e++) {
        const k = kernelEvents[e];
        const o = ourEvents[e];
        if (k === undefined) result.differences.push(`${where}: extra event of ours: ${o.line}`);
        else if (o === undefined) result.differences.push(`${where}: missing event, kernel has: ${k.line}`);
        else compareEvent(`${where} event ${e + 1}`, k, o, options, result);
      }
    }
  }
  return result;
}

function compareEvent(
  where: string,
  kernel: ParsedEvent,
  ours: ParsedEvent,
  options: ComparisonOptions,
  result: Comparison,
): void {
  const fields: string[] = [];
  const same = (name: string, a: unknown, b: unknown) => {
    if (a !== b) fields.push(`${name}: kernel ${String(a)}, ours ${String(b)}`);
  };
  same("type", kernel.type, ours.type);
  same("protocol", kernel.protocol, ours.protocol);
  same("state", kernel.state, ours.state);
  same("reply tuple", kernel.reply, ours.reply);
  same("[UNREPLIED]", kernel.unreplied, ours.unreplied);
  same("[ASSURED]", kernel.assured, ours.assured);
  same("original counters", kernel.originalCounters, ours.originalCounters);
  same("reply counters", kernel.replyCounters, ours.replyCounters);
  same("delta-time", kernel.deltaTime, ours.deltaTime);
  same("other fields", kernel.other.join(" "), ours.other.join(" "));
  if (!options.ignoreHelper) same("helper", kernel.helper, ours.helper);
  const timeout = compareTimeout(kernel.timeout, ours.timeout, result);
  if (timeout !== null) fields.push(timeout);
  const naturalExpiry = kernel.type === "DESTROY" && kernel.timeout === null;
  const time = compareTime(kernel.timeUs, ours.timeUs, naturalExpiry, result);
  if (time !== null) fields.push(time);
  if (fields.length > 0)
    result.differences.push(
      `${where}: ${fields.join("; ")}\n    kernel: ${kernel.line}\n    ours:   ${ours.line}`,
    );
}

/** The tolerance counters both comparisons share. */
interface ToleranceUse {
  timeoutOneShort: number;
  maxGcLateUs: number;
  maxListenerLagUs: number;
}

/**
 * The timeout field: equal, or the kernel's one less. The kernel counts in jiffies and prints whole
 * seconds left, so a tick between the refresh and the message prints one second less; that use is
 * counted. Anything else is returned as a difference.
 */
function compareTimeout(kernel: number | null, ours: number | null, use: ToleranceUse): string | null {
  if (kernel === ours) return null;
  if (kernel !== null && ours !== null && kernel === ours - 1) {
    use.timeoutOneShort++;
    return null;
  }
  return `timeout: kernel ${kernel}, ours ${ours}`;
}

/**
 * The stamp: the kernel's may precede ours by capture skew only; it may follow ours by the listener's
 * read lag, or by up to a GC period for what the GC worker found (`byGc`). The largest lateness of
 * each kind is recorded; anything beyond is returned as a difference.
 */
function compareTime(kernelUs: number, ourUs: number, byGc: boolean, use: ToleranceUse): string | null {
  const lateUs = kernelUs - ourUs;
  if (lateUs < -TOLERANCES.syncEarlyUs)
    return `time: ours ${(-lateUs / 1000).toFixed(3)} ms after the kernel's`;
  if (byGc) {
    if (lateUs > TOLERANCES.gcLateUs)
      return `time: kernel ${lateUs / 1e6} s after ours (more than a GC period)`;
    use.maxGcLateUs = Math.max(use.maxGcLateUs, lateUs);
  } else {
    if (lateUs > TOLERANCES.listenerLagUs)
      return `time: kernel ${(lateUs / 1000).toFixed(3)} ms after ours (beyond the listener's read lag)`;
    use.maxListenerLagUs = Math.max(use.maxListenerLagUs, lateUs);
  }
  return null;
}

// ------------------------------------------------------------------ expectation events

/** One `conntrack -E expect -o timestamp` line. */
export interface ExpectLine {
  /** Microseconds since the epoch. */
  timeUs: number;
  /** The line after the `[sec.usec]\t` prefix. */
  text: string;
  /** Ours only: why a DESTROY happened (`master-destroyed`: with its master, found by the GC). */
  cause?: string;
}

/**
 * conntrack 1.4.7 prints an expectation's stamp as `[%-8ld.%-6ld]`: the microseconds are a number
 * left-aligned in six columns, so `[1795616309.87756 ]` is .087756 s (its leading zero is lost).
 */
export function parseExpectLine(line: string): ExpectLine {
  const match = /^\[(\d+) *\.(\d+) *\]\t(.*)$/.exec(line);
  if (!match) throw new Error(`no conntrack -E expect -o timestamp prefix: ${line}`);
  return { timeUs: Number(match[1]) * 1_000_000 + Number(match[2]), text: match[3] };
}

export interface ExpectComparison extends ToleranceUse {
  /** One line per disagreement; empty when the streams agree. */
  differences: string[];
  events: number;
}

/** `    [NEW] 300 proto=6 …`: the header, the timeout and everything after it. */
const EXPECT_TEXT = /^( *\[(?:NEW|DESTROY)\]) (\d+) (.*)$/;

/**
 * Compares expectation events line by line, in order: the text after the timeout exactly, the timeout
 * and the stamp with the connection comparison's tolerances. An expectation that goes with its master
 * (cause `master-destroyed`) may be stamped as late as the GC worker that found the master.
 */
export function compareExpectStreams(kernel: ExpectLine[], ours: ExpectLine[]): ExpectComparison {
  const result: ExpectComparison = {
    differences: [],
    timeoutOneShort: 0,
    maxGcLateUs: 0,
    maxListenerLagUs: 0,
    events: kernel.length,
  };
  for (let i = 0; i < Math.max(kernel.length, ours.length); i++) {
    const k = kernel[i];
    const o = ours[i];
    const where = `expectation event ${i + 1}`;
    if (k === undefined) result.differences.push(`${where}: extra event of ours: ${o.text}`);
    else if (o === undefined) result.differences.push(`${where}: missing event, kernel has: ${k.text}`);
    else {
      const fields: string[] = [];
      const kernelParts = EXPECT_TEXT.exec(k.text);
      const ourParts = EXPECT_TEXT.exec(o.text);
      if (
        kernelParts === null ||
        ourParts === null ||
        kernelParts[1] !== ourParts[1] ||
        kernelParts[3] !== ourParts[3]
      )
        fields.push("the text beside the timeout");
      else {
        const timeout = compareTimeout(Number(kernelParts[2]), Number(ourParts[2]), result);
        if (timeout !== null) fields.push(timeout);
      }
      const time = compareTime(k.timeUs, o.timeUs, o.cause === "master-destroyed", result);
      if (time !== null) fields.push(time);
      if (fields.length > 0)
        result.differences.push(
          `${where}: ${fields.join("; ")}\n    kernel: ${k.text}\n    ours:   ${o.text}`,
        );
    }
  }
  return result;
}
