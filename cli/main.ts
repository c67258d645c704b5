#!/usr/bin/env node
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { statsCommand } from "./commands/stats.js";
import { eventsCommand } from "./commands/events.js";
import { tableCommand } from "./commands/table.js";
import { reportCommand } from "./commands/report.js";
import { liveCommand } from "./commands/live.js";
import { checkCommand } from "./commands/check.js";
import { mergeCommand } from "./commands/merge.js";
import { reportFailure } from "./errors.js";
import { protectDashes } from "./options.js";

await yargs(protectDashes(hideBin(process.argv)))
  .scriptName("pcap-conntrack")
  .usage(
    "$0 <command> [options]\n\nReplays packet captures through a model of Linux netfilter connection tracking.",
  )
  .command(statsCommand)
  .command(eventsCommand)
  .command(tableCommand)
  .command(reportCommand)
  .command(liveCommand)
  .command(checkCommand)
  .command(mergeCommand)
  .demandCommand(1, "Name a command.")
  .strict()
  .help()
  .alias("h", "help")
  .version()
  .wrap(Math.min(110, process.stdout.columns || 110))
  .fail((message, error, cli) => {
    if (error) reportFailure(error);
    else {
      process.stderr.write(`${cli.help()}\n\npcap-conntrack: ${message}\n`);
      process.exit(2);
    }
  })
  .parseAsync();
