/**
 * pcap-conntrack as a library: capture → decode → conntrack → report, usable without the CLI.
 * Each layer is also importable on its own (`pcap-conntrack/dist/lib/<layer>/index.js`).
 */
export * from "./capture/index.js";
export * from "./decode/index.js";
export * from "./conntrack/index.js";
export * from "./report/conntrack-text.js";
export * from "./report/expect-text.js";
export * from "./report/event-formats.js";
export * from "./pipeline/accounting.js";
export * from "./pipeline/inputs.js";
export * from "./pipeline/capture-stats.js";
export * from "./pipeline/replay.js";
