/**
 * Moved to lib/pipeline/replay.ts: lib/conntrack is pure (no I/O). This re-export keeps existing
 * imports working until lib/conntrack/index.ts stops exporting it.
 */
export { runEngineOverCapture } from "../pipeline/replay.js";
