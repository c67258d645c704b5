/** What `check` prints: a readable summary, JSON for scripts, JUnit XML for CI systems. */
import type { CheckOutcome, Offender, RuleResult } from "./evaluate.js";
import { tupleText } from "./match.js";

export const CHECK_FORMATS = ["text", "json"] as const;
export type CheckFormat = (typeof CHECK_FORMATS)[number];

function packetsText(offender: Offender): string {
  if (offender.type === "packet") return `packet ${offender.packet} of ${offender.input}`;
  const first = offender.firstPacket;
  const last = offender.lastPacket;
  if (first === null) return "packets unknown";
  if (last === null || (last.input === first.input && last.packet === first.packet))
    return `packet ${first.packet} of ${first.input}`;
  if (last.input === first.input) return `packets ${first.packet}–${last.packet} of ${first.input}`;
  return `packets ${first.packet} of ${first.input} – ${last.packet} of ${last.input}`;
}

/** One line per offender: what it is, where its packets are, why it breaks the rule. */
export function offenderText(offender: Offender): string {
  if (offender.type === "packet") {
    const port = (address: string, value: number | null) =>
      value === null ? address : address.includes(":") ? `[${address}]:${value}` : `${address}:${value}`;
    return (
      `${packetsText(offender)}: ${offender.protocol} ${port(offender.src, offender.sport)} > ` +
      `${port(offender.dst, offender.dport)}: ${offender.why}`
    );
  }
  const reply = offender.nat === "none" ? "" : ` (reply ${tupleText(offender.reply)})`;
  return (
    `connection ${offender.id} ${offender.protocol} ${tupleText(offender.original)}${reply}, ` +
    `${packetsText(offender)}, ${offender.finalState} ${offender.flags.join(" ")}: ${offender.why}`
  );
}

function ruleDetails(rule: RuleResult): string[] {
  const lines = rule.offenders.map(offenderText);
  const unlisted = rule.violations - rule.offenders.length;
  if (unlisted > 0)
    lines.push(rule.offenders.length === 0 ? `(${unlisted} not listed)` : `… and ${unlisted} more`);
  return lines;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

export function formatCheckText(outcome: CheckOutcome): string {
  const out: string[] = [];
  const { totals } = outcome;
  out.push(
    `check ${outcome.policy.file}${outcome.policy.name === null ? "" : ` (${outcome.policy.name})`} over ` +
      `${outcome.inputs.join(", ")}: ${plural(totals.connections, "connection")}, ${plural(totals.orphans, "orphaned packet")} ` +
      `(${totals.invalidPackets} INVALID)`,
  );
  for (const rule of outcome.rules) {
    out.push(`${rule.passed ? "ok  " : "FAIL"}  ${rule.id}: ${rule.name}: ${rule.summary}`);
    if (!rule.passed) for (const line of ruleDetails(rule)) out.push(`        ${line}`);
  }
  const failed = outcome.rules.filter((rule) => !rule.passed).length;
  out.push(
    failed === 0
      ? outcome.rules.length === 1
        ? "the rule holds"
        : `all ${outcome.rules.length} rules hold`
      : `${failed} of ${outcome.rules.length} rules violated: ${outcome.rules
          .filter((rule) => !rule.passed)
          .map((rule) => rule.id)
          .join(", ")}`,
  );
  return `${out.join("\n")}\n`;
}

export function formatCheckJson(outcome: CheckOutcome): string {
  return `${JSON.stringify(outcome, null, 2)}\n`;
}

/** Characters XML 1.0 cannot carry at all (C0 controls but tab, CR, LF; lone surrogates; U+FFFE/F). */
const NOT_XML =
  // eslint-disable-next-line no-control-regex -- finding the characters XML cannot carry is the point
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function escapeXml(text: string): string {
  return text.replace(NOT_XML, "\ufffd").replace(/[&<>"']/g, (character) => XML_ENTITIES[character]);
}

const XML_ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

/**
 * JUnit XML as Jenkins, GitLab and GitHub test reporters read it: one suite for the policy, one test
 * case per rule, a `<failure>` with the offenders for each violated rule.
 */
export function formatCheckJunit(outcome: CheckOutcome, timestamp = new Date()): string {
  const failures = outcome.rules.filter((rule) => !rule.passed).length;
  const tests = outcome.rules.length;
  const suite = outcome.policy.name ?? outcome.policy.file;
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(
    `<testsuites name="pcap-conntrack check" tests="${tests}" failures="${failures}" errors="0" time="0">`,
  );
  out.push(
    `  <testsuite name="${escapeXml(suite)}" tests="${tests}" failures="${failures}" errors="0" skipped="0" ` +
      `time="0" timestamp="${timestamp.toISOString().slice(0, 19)}">`,
  );
  out.push("    <properties>");
  out.push(`      <property name="policy" value="${escapeXml(outcome.policy.file)}"/>`);
  for (const input of outcome.inputs) out.push(`      <property name="input" value="${escapeXml(input)}"/>`);
  out.push("    </properties>");
  for (const rule of outcome.rules) {
    const attributes =
      `name="${escapeXml(`${rule.id}: ${rule.name}`)}" classname="${escapeXml(`pcap-conntrack.check.${rule.kind}`)}" ` +
      `file="${escapeXml(outcome.policy.file)}" line="${rule.location.line}" time="0"`;
    if (rule.passed) {
      out.push(`    <testcase ${attributes}>`);
      out.push(`      <system-out>${escapeXml(rule.summary)}</system-out>`);
      out.push("    </testcase>");
      continue;
    }
    out.push(`    <testcase ${attributes}>`);
    const body = [rule.summary, ...ruleDetails(rule)].join("\n");
    out.push(
      `      <failure message="${escapeXml(rule.summary)}" type="${escapeXml(rule.kind)}">${escapeXml(body)}</failure>`,
    );
    out.push("    </testcase>");
  }
  out.push("  </testsuite>");
  out.push("</testsuites>");
  return `${out.join("\n")}\n`;
}
