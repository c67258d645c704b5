/**
 * pcap-conntrack as a library: capture → decode → conntrack → report, usable without the CLI.
 * Each layer is also importable on its own (`pcap-conntrack/dist/lib/<layer>/index.js`).
 */
export * from "./capture/index.js";
export * from "./decode/index.js";
export * from "./conntrack/index.js";
export {
  emptyRuleSet,
  natRulesFromFlags,
  parseNatRules,
  setInterfaceAddress,
  type FlagNatRules,
  type NatFlags,
  type NatRule,
  type NatRuleError,
  type NatRuleSet,
  type ParsedNatRules,
} from "./conntrack/nat/index.js";
export * from "./report/conntrack-text.js";
export * from "./report/expect-text.js";
export * from "./report/event-formats.js";
export * from "./pipeline/accounting.js";
export * from "./pipeline/inputs.js";
export * from "./pipeline/capture-stats.js";
export * from "./pipeline/replay.js";
export {
  ObservedNatMatcher,
  DEFAULT_NAT_WINDOW_NS,
  type ObservedNatOptions,
  type ObservedNatStats,
} from "./pipeline/observed-nat.js";
export * from "./capture/live.js";
export * from "./pipeline/live.js";
export * from "./pipeline/report.js";
export * from "./report/flows.js";
export * from "./report/orphans.js";
export * from "./report/summary.js";
export * from "./report/run-options.js";
export * from "./report/community-id.js";
export { renderHtmlReport, type HtmlReportInput } from "./report/html.js";
export * from "./check/index.js";
