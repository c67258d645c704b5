import { createReadStream, statSync } from "node:fs";
import { resolve } from "node:path";
import type { CommandModule } from "yargs";
import { DASH_TOKEN, withOutputOption } from "../options.js";
import { noteOutputPath, UsageError } from "../errors.js";
import { OutputTarget, refuseExistingReport } from "../output.js";
import { MergeError, mergeEventStreams, type MergeInput } from "../../lib/pipeline/merge-events.js";
import { mergeableFiles, mergeReports, ReportMergeError } from "../../lib/pipeline/merge-reports.js";
import { REPORT_FILES, type ReportFileName } from "../../lib/pipeline/report.js";

interface MergeArguments {
  files: string[];
  output?: string;
}

export const mergeCommand: CommandModule<object, MergeArguments> = {
  command: "merge <files..>",
  describe:
    "Merge event streams written by `events` (text with timestamps, csv or ndjson), for example the shards " +
    "of a `--shard I/N` run, into one in time order; or the report directories of the shards of one " +
    "`report --shard I/N` run into the single run's report (-o DIR)",
  builder: (argv) =>
    withOutputOption(
      argv.positional("files", {
        describe:
          'event files of one format ("-" is standard input, once), or the report directories of all shards',
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
      ["pcap-conntrack merge shard0/ shard1/ shard2/ -o report/", "the single run's report directory"],
    ]),
  handler: async (args) => {
    const directories = args.files.filter((file) => file !== "-" && isDirectory(file));
    if (directories.length > 0) {
      await mergeReportDirectories(args.files, directories, args.output);
      return;
    }
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

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
}

/** Inputs that are directories: the shards' reports, merged into the directory `output`. */
async function mergeReportDirectories(
  files: readonly string[],
  directories: readonly string[],
  output: string | undefined,
): Promise<void> {
  const other = files.find((file) => !directories.includes(file));
  if (other !== undefined)
    throw new UsageError(
      `merge: ${other} is not a directory, ${directories[0]} is: give report directories (all shards) or event files`,
    );
  if (output === undefined || output === "-")
    throw new UsageError("merge: report directories merge into a directory: give it with -o DIR");
  const target = resolve(output);
  const input = directories.find((directory) => resolve(directory) === target);
  if (input !== undefined) throw new UsageError(`merge: -o ${output} is one of the shards being merged`);
  // Shards written with --only merge into the files their files make.
  let mergeable: ReportFileName[];
  try {
    mergeable = await mergeableFiles(directories);
  } catch (error) {
    if (error instanceof ReportMergeError) throw new UsageError(`merge: ${error.message}`);
    throw error;
  }
  if (mergeable.length < REPORT_FILES.length)
    process.stderr.write(
      `pcap-conntrack: merge: the shards were written with --only: writing ${mergeable.join(", ")} ` +
        `(not ${REPORT_FILES.filter((name) => !mergeable.includes(name)).join(", ")})\n`,
    );
  if (isDirectory(output)) refuseExistingReport(output, mergeable);
  else if (statSync(output, { throwIfNoEntry: false }) !== undefined)
    throw new UsageError(`${output}: not a directory; merged reports go into a directory`);
  noteOutputPath(output);
  try {
    await mergeReports(directories, { outputDir: output, files: mergeable });
  } catch (error) {
    if (error instanceof ReportMergeError) throw new UsageError(`merge: ${error.message}`);
    throw error;
  }
}
