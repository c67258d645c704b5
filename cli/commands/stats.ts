import type { CommandModule } from "yargs";
import { collectCaptureStatistics, type CaptureStatistics } from "../../lib/pipeline/capture-stats.js";
import { expandInputs } from "../../lib/pipeline/inputs.js";
import { PACKET_CLASS_NAMES } from "../../lib/decode/packet.js";
import { withCaptureInputs, withOutputOption, parseDurationNs } from "../options.js";
import { refuseExistingOutputs, writeOutput } from "../output.js";
import { startCommandProgress, withProgressOption } from "../progress.js";
import { printable } from "../../lib/report/escape.js";

interface StatsArguments {
  files: string[];
  "reorder-window": string;
  format: "text" | "json";
  output?: string;
  progress?: boolean;
}

export const statsCommand: CommandModule<object, StatsArguments> = {
  command: "stats <files..>",
  describe:
    "Account for every record read: decoded, fragment, non-IP, unsupported link, truncated, malformed",
  builder: (argv) =>
    withProgressOption(withOutputOption(withCaptureInputs(argv))).option("format", {
      choices: ["text", "json"] as const,
      default: "text" as const,
    }),
  handler: async (args) => {
    refuseExistingOutputs([args.output]);
    const files = await expandInputs(args.files);
    const reorderWindowNs = parseDurationNs(args["reorder-window"], "reorder-window");
    const progress = startCommandProgress(files, { requested: args.progress, outputWhileReading: false });
    const statistics = await collectCaptureStatistics(files, {
      reorderWindowNs,
      onOpened: progress.onOpened,
    }).finally(() => progress.finish());
    const text =
      args.format === "json" ? `${JSON.stringify(statistics, null, 2)}\n` : formatStatisticsText(statistics);
    await writeOutput(args.output, text);
    for (const warning of statistics.warnings) {
      process.stderr.write(
        `pcap-conntrack: warning: ${warning.file}: ${warning.message} (byte offset ${warning.offset}, packet ${warning.recordNumber})\n`,
      );
    }
  },
};

export function formatStatisticsText(statistics: CaptureStatistics): string {
  const lines: string[] = [];
  const row = (label: string, value: string | number) => lines.push(`  ${label.padEnd(22)} ${value}`);
  for (const input of statistics.inputs) {
    lines.push(`${input.file}: ${input.format}${input.compressed ? ", gzip" : ""}`);
    row("records", input.records);
    for (const name of PACKET_CLASS_NAMES) if (input.classes[name] > 0) row(name, input.classes[name]);
    if (input.outOfOrder > 0) row("out of timestamp order", input.outOfOrder);
    if (input.firstPacket) row("first packet", input.firstPacket);
    if (input.lastPacket) row("last packet", input.lastPacket);
    for (const iface of input.interfaces) {
      const label = `interface ${iface.section}/${iface.id}`;
      const named = iface.name ? ` ${printable(iface.name)}` : "";
      row(label, `${iface.linkTypeName} (${iface.linkType}), snaplen ${iface.snaplen}${named}`);
      if (iface.statistics)
        for (const [key, value] of Object.entries(iface.statistics))
          if (key !== "tsSec" && key !== "tsNsec") row(`  ${key}`, value);
    }
    for (const warning of input.warnings)
      lines.push(
        `  warning: ${warning.message} (byte offset ${warning.offset}, packet ${warning.recordNumber})`,
      );
  }
  if (statistics.inputs.length > 1) {
    lines.push("total:");
    row("records", statistics.records);
    for (const name of PACKET_CLASS_NAMES)
      if (statistics.classes[name] > 0) row(name, statistics.classes[name]);
  }
  const reasons = Object.entries(statistics.reasons);
  if (reasons.length > 0) {
    lines.push("reasons:");
    for (const [reason, count] of reasons) row(reason, count);
  }
  return `${lines.join("\n")}\n`;
}
