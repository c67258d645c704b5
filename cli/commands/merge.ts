import { createReadStream } from "node:fs";
import type { CommandModule } from "yargs";
import { UsageError } from "../errors.js";
import { DASH_TOKEN, withOutputOption } from "../options.js";
import { OutputTarget } from "../output.js";
import { MergeError, mergeEventStreams, type MergeInput } from "../../lib/pipeline/merge-events.js";

interface MergeArguments {
  files: string[];
  output?: string;
}

export const mergeCommand: CommandModule<object, MergeArguments> = {
  command: "merge <files..>",
  describe:
    "Merge event streams written by `events` (text with timestamps, csv or ndjson), for example the shards " +
    "of a `--shard I/N` run, into one in time order",
  builder: (argv) =>
    withOutputOption(
      argv.positional("files", {
        describe: 'event files of one format; "-" is standard input (once)',
        type: "string",
        array: true,
        demandOption: true,
        coerce: (files: string[]) => files.map((file) => (file === DASH_TOKEN ? "-" : file)),
      }),
    ).example([
      [
        "for i in 0 1 2; do pcap-conntrack events big.pcap --shard $i/3 -o shard$i.txt & done; wait",
        "three shards at once",
      ],
      ["pcap-conntrack merge shard0.txt shard1.txt shard2.txt -o events.txt", "the single run's events"],
    ]),
  handler: async (args) => {
    if (args.files.filter((file) => file === "-").length > 1)
      throw new UsageError('merge: "-" (standard input) can be given once');
    const inputs: MergeInput[] = args.files.map((file) => ({
      name: file === "-" ? "standard input" : file,
      stream: file === "-" ? process.stdin : createReadStream(file),
    }));
    const output = new OutputTarget(args.output);
    try {
      await mergeEventStreams(inputs, output.stream);
      await output.commit();
    } catch (error) {
      await output.abandon();
      if (error instanceof MergeError) throw new UsageError(error.message);
      throw error;
    } finally {
      for (const input of inputs) if (input.stream !== process.stdin) input.stream.destroy();
    }
  },
};
