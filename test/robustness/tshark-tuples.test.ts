import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { openCapture } from "../../lib/capture/open.js";
import { forEachRecord } from "../../lib/capture/source.js";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { PacketClass, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/decode/packet.js";
import { formatAddress } from "../../lib/decode/address.js";
import { commandAvailable, corpusAvailable, corpusEntries } from "../support/corpus.js";

const run = promisify(execFile);

/** The corpus encapsulations whose IP layer both tools reach directly. */
const COMPARED_ENCAPSULATIONS = new Set(["ether", "linux-sll", "rawip", "rawip4", "rawip6", "null"]);

const TSHARK_FIELDS = [
  "frame.number",
  "frame.protocols",
  "ip.src",
  "ip.dst",
  "ipv6.src",
  "ipv6.dst",
  "tcp.srcport",
  "tcp.dstport",
  "udp.srcport",
  "udp.dstport",
];

interface Tuple {
  src: string;
  dst: string;
  /** The layer tshark puts right above the outer IP header (tcp, udp, icmp …). */
  transport: string;
  sport: string;
  dport: string;
}

/**
 * The outermost IP layer and the transport right above it, as tshark dissects them. Tunnels (GENEVE,
 * VXLAN, sFlow samples) carry inner headers whose fields would otherwise be taken for the outer ones.
 */
function outerLayers(protocols: string): { family: "ip" | "ipv6"; transport: string } | null {
  const layers = protocols.split(":");
  const ipIndex = layers.findIndex((layer) => layer === "ip" || layer === "ipv6");
  if (ipIndex < 0) return null;
  const transport = layers.slice(ipIndex + 1).find((layer) => !layer.startsWith("ipv6.")) ?? "";
  return { family: layers[ipIndex] as "ip" | "ipv6", transport };
}

async function tsharkTuples(path: string): Promise<Map<number, Tuple>> {
  const args = ["-n", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"];
  // Reassembly off: tshark shows each fragment's own headers, and we compare unfragmented packets only.
  args.push("-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE");
  for (const field of TSHARK_FIELDS) args.push("-e", field);
  const { stdout } = await run("tshark", args, { maxBuffer: 64 * 1024 * 1024 });
  const tuples = new Map<number, Tuple>();
  for (const line of stdout.split("\n")) {
    const [frame, protocols, ipSrc, ipDst, ip6Src, ip6Dst, tcpSport, tcpDport, udpSport, udpDport] =
      line.split("\t");
    const outer = protocols ? outerLayers(protocols) : null;
    if (!frame || !outer) continue;
    const [src, dst] = outer.family === "ip" ? [ipSrc, ipDst] : [ip6Src, ip6Dst];
    if (!src || !dst) continue;
    const [sport, dport] =
      outer.transport === "tcp"
        ? [tcpSport, tcpDport]
        : outer.transport === "udp"
          ? [udpSport, udpDport]
          : ["", ""];
    tuples.set(Number(frame), { src, dst, transport: outer.transport, sport, dport });
  }
  return tuples;
}

/** Runs `work` over `items` with at most `limit` at a time (tshark's start-up dominates, so overlap it). */
async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

test("decoded 5-tuples agree with tshark on the corpus's Ethernet, SLL, raw-IP and loopback captures", async (t) => {
  if (!corpusAvailable()) return t.skip("no ../shared/corpus");
  if (!commandAvailable("tshark")) return t.skip("tshark is not installed (CI installs it)");
  const entries = corpusEntries().filter(
    (entry) => COMPARED_ENCAPSULATIONS.has(entry.encapsulation) && entry.packets !== null,
  );
  const disagreements: string[] = [];
  let compared = 0;
  let portsTsharkCouldNotRead = 0;
  await forEachLimited(entries, 4, async (entry) => {
    const reference = await tsharkTuples(entry.path).catch(() => null);
    if (reference === null) return; // tshark refuses the file: nothing to compare against
    const source = await openCapture(entry.path).catch(() => null);
    if (source === null) return;
    const decoder = new PacketDecoder();
    const packet = decoder.packet;
    try {
      await forEachRecord(source, (record) => {
        if (decoder.decode(record) !== PacketClass.Decoded || packet.reassembled) return;
        const theirs = reference.get(record.recordNumber);
        if (!theirs) {
          disagreements.push(`${entry.file}#${record.recordNumber}: we decode IP, tshark shows none`);
          return;
        }
        const src = formatAddress(packet.ipVersion, packet.src);
        const dst = formatAddress(packet.ipVersion, packet.dst);
        let ours = `${src} > ${dst}`;
        let expected = `${theirs.src} > ${theirs.dst}`;
        if ((packet.protocol === IPPROTO_TCP || packet.protocol === IPPROTO_UDP) && packet.hasPorts) {
          const name = packet.protocol === IPPROTO_TCP ? "tcp" : "udp";
          ours += ` ${name} ${packet.srcPort} > ${packet.dstPort}`;
          if (theirs.transport === name && theirs.sport === "") {
            // tshark 4.0 stops at headers it considers malformed (BIG TCP's zero IPv6 payload length).
            portsTsharkCouldNotRead++;
            return;
          }
          expected += ` ${theirs.transport} ${theirs.sport} > ${theirs.dport}`;
        }
        compared++;
        if (ours !== expected)
          disagreements.push(`${entry.file}#${record.recordNumber}: ours ${ours}, tshark ${expected}`);
      });
    } finally {
      await source.close();
    }
  });
  assert.ok(
    portsTsharkCouldNotRead < 10,
    `tshark could not read the ports of ${portsTsharkCouldNotRead} packets`,
  );
  assert.deepEqual(disagreements.slice(0, 50), []);
  assert.ok(compared > 5000, `compared only ${compared} packets`);
});
