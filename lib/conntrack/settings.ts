/**
 * The kernel's conntrack tunables, named as `sysctl -a` names them, with their defaults, and the
 * reader for `sysctl -a` output so a capture can be replayed under the settings it was recorded with.
 */

/** Every tunable the engine honours, in seconds for timeouts, 0/1 for switches. */
export interface ConntrackSettings {
  tcpTimeoutSynSent: number;
  tcpTimeoutSynRecv: number;
  tcpTimeoutEstablished: number;
  tcpTimeoutFinWait: number;
  tcpTimeoutCloseWait: number;
  tcpTimeoutLastAck: number;
  tcpTimeoutTimeWait: number;
  tcpTimeoutClose: number;
  tcpTimeoutMaxRetrans: number;
  tcpTimeoutUnacknowledged: number;
  tcpLoose: number;
  tcpBeLiberal: number;
  tcpIgnoreInvalidRst: number;
  tcpMaxRetrans: number;
  udpTimeout: number;
  udpTimeoutStream: number;
  icmpTimeout: number;
  icmpv6Timeout: number;
  genericTimeout: number;
  greTimeout: number;
  greTimeoutStream: number;
  /** nf_conntrack_acct: DESTROY events carry packet and byte counters. */
  acct: number;
  /** nf_conntrack_timestamp: DESTROY events carry delta-time. */
  timestamp: number;
  /** nf_conntrack_checksum (recorded; checksums are not verified by this model). */
  checksum: number;
  /** nf_conntrack_events: 0 none, 1 always, 2 when a listener exists (a replay always has one). */
  events: number;
  /** Kernel tick rate (CONFIG_HZ; 250 on the oracle): printed timeouts are whole ticks / HZ. */
  hz: number;
  /** nf_conntrack_expect_max: most live expectations; helpers' registrations beyond it are refused. */
  expectMax: number;
  /**
   * nf_conntrack_max: most entries; a new one beyond it first tries `early_drop`, else its packet is
   * dropped ("table full"). 0: no limit.
   */
  conntrackMax: number;
  /** nf_conntrack_buckets: the kernel's hash size, which bounds how far `early_drop` looks. */
  buckets: number;
}

/** Kernel defaults (6.17 source, confirmed live on the 6.18 oracle). */
export const DEFAULT_SETTINGS: Readonly<ConntrackSettings> = Object.freeze({
  tcpTimeoutSynSent: 120,
  tcpTimeoutSynRecv: 60,
  tcpTimeoutEstablished: 432000,
  tcpTimeoutFinWait: 120,
  tcpTimeoutCloseWait: 60,
  tcpTimeoutLastAck: 30,
  tcpTimeoutTimeWait: 120,
  tcpTimeoutClose: 10,
  tcpTimeoutMaxRetrans: 300,
  tcpTimeoutUnacknowledged: 300,
  tcpLoose: 1,
  tcpBeLiberal: 0,
  tcpIgnoreInvalidRst: 0,
  tcpMaxRetrans: 3,
  udpTimeout: 30,
  udpTimeoutStream: 120,
  icmpTimeout: 30,
  icmpv6Timeout: 30,
  genericTimeout: 600,
  greTimeout: 30,
  greTimeoutStream: 180,
  acct: 0,
  timestamp: 0,
  checksum: 1,
  events: 2,
  hz: 250,
  expectMax: 4096,
  conntrackMax: 262144,
  buckets: 262144,
});

/** sysctl name → settings field. */
export const SYSCTL_NAMES: Readonly<Record<string, keyof ConntrackSettings>> = Object.freeze({
  "net.netfilter.nf_conntrack_tcp_timeout_syn_sent": "tcpTimeoutSynSent",
  "net.netfilter.nf_conntrack_tcp_timeout_syn_recv": "tcpTimeoutSynRecv",
  "net.netfilter.nf_conntrack_tcp_timeout_established": "tcpTimeoutEstablished",
  "net.netfilter.nf_conntrack_tcp_timeout_fin_wait": "tcpTimeoutFinWait",
  "net.netfilter.nf_conntrack_tcp_timeout_close_wait": "tcpTimeoutCloseWait",
  "net.netfilter.nf_conntrack_tcp_timeout_last_ack": "tcpTimeoutLastAck",
  "net.netfilter.nf_conntrack_tcp_timeout_time_wait": "tcpTimeoutTimeWait",
  "net.netfilter.nf_conntrack_tcp_timeout_close": "tcpTimeoutClose",
  "net.netfilter.nf_conntrack_tcp_timeout_max_retrans": "tcpTimeoutMaxRetrans",
  "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged": "tcpTimeoutUnacknowledged",
  "net.netfilter.nf_conntrack_tcp_loose": "tcpLoose",
  "net.netfilter.nf_conntrack_tcp_be_liberal": "tcpBeLiberal",
  "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst": "tcpIgnoreInvalidRst",
  "net.netfilter.nf_conntrack_tcp_max_retrans": "tcpMaxRetrans",
  "net.netfilter.nf_conntrack_udp_timeout": "udpTimeout",
  "net.netfilter.nf_conntrack_udp_timeout_stream": "udpTimeoutStream",
  "net.netfilter.nf_conntrack_icmp_timeout": "icmpTimeout",
  "net.netfilter.nf_conntrack_icmpv6_timeout": "icmpv6Timeout",
  "net.netfilter.nf_conntrack_generic_timeout": "genericTimeout",
  "net.netfilter.nf_conntrack_gre_timeout": "greTimeout",
  "net.netfilter.nf_conntrack_gre_timeout_stream": "greTimeoutStream",
  "net.netfilter.nf_conntrack_acct": "acct",
  "net.netfilter.nf_conntrack_timestamp": "timestamp",
  "net.netfilter.nf_conntrack_checksum": "checksum",
  "net.netfilter.nf_conntrack_events": "events",
  "net.netfilter.nf_conntrack_expect_max": "expectMax",
  "net.netfilter.nf_conntrack_max": "conntrackMax",
  "net.nf_conntrack_max": "conntrackMax",
  "net.netfilter.nf_conntrack_buckets": "buckets",
});

/**
 * Conntrack sysctls the kernel has but this model does not use (table sizing, other protocols,
 * logging): accepted silently so a full `sysctl -a` dump reports only the truly unknown.
 */
const KNOWN_UNMODELLED = new Set([
  "net.netfilter.nf_conntrack_count",
  "net.netfilter.nf_conntrack_helper",
  "net.netfilter.nf_conntrack_log_invalid",
  "net.netfilter.nf_conntrack_frag6_high_thresh",
  "net.netfilter.nf_conntrack_frag6_low_thresh",
  "net.netfilter.nf_conntrack_frag6_timeout",
  "net.netfilter.nf_hooks_lwtunnel",
]);

export interface SysctlParseResult {
  /** Values found, by settings field. */
  overrides: Partial<ConntrackSettings>;
  /** Conntrack-looking names this model does not know (not silently dropped). */
  unknown: string[];
  /** Lines that name a known setting but carry a value that is not a non-negative integer. */
  invalid: { line: number; text: string }[];
}

function isConntrackName(name: string): boolean {
  return name.startsWith("net.netfilter.") || name.startsWith("net.nf_conntrack");
}

/**
 * Reads `sysctl -a` (or `sysctl name=value` style) text: `name = value` with or without spaces
 * around `=`. Lines that are not conntrack settings are ignored.
 */
export function parseSysctl(text: string): SysctlParseResult {
  const overrides: Partial<ConntrackSettings> = {};
  const unknown: string[] = [];
  const invalid: { line: number; text: string }[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const name = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (!isConntrackName(name)) continue;
    const field = SYSCTL_NAMES[name];
    if (field === undefined) {
      if (!KNOWN_UNMODELLED.has(name) && !isOtherProtocolName(name)) unknown.push(name);
      continue;
    }
    // Digits beyond 2^53 are no value the kernel would take (and past 309 of them, Infinity).
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      invalid.push({ line: i + 1, text: lines[i] });
      continue;
    }
    overrides[field] = Number(value);
  }
  return { overrides, unknown, invalid };
}

/** SCTP/DCCP tunables: real kernel names for protocols this model tracks generically. */
function isOtherProtocolName(name: string): boolean {
  return /^net\.netfilter\.nf_conntrack_(sctp|dccp)_/.test(name);
}

/** Defaults with overrides applied; `overrides` may use sysctl names or settings fields. */
export function makeSettings(
  overrides: Partial<ConntrackSettings> | Record<string, number> = {},
): ConntrackSettings {
  const settings: ConntrackSettings = { ...DEFAULT_SETTINGS };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const field = (SYSCTL_NAMES[key] ?? key) as keyof ConntrackSettings;
    if (!(field in DEFAULT_SETTINGS)) throw new Error(`unknown conntrack setting: ${key}`);
    if (!Number.isFinite(value) || value < 0) throw new Error(`conntrack setting ${key}: bad value ${value}`);
    settings[field] = value;
  }
  return settings;
}
