/**
 * fast-check generators of structured inputs: frames that are valid down to their transport header
 * (Ethernet with VLAN tags, SLL, SLL2, loopback and raw IP links; IPv4 with options and fragment
 * fields; IPv6 with chains of extension headers; TCP with options, UDP, ICMP echo and errors quoting
 * packets that may be ICMP errors themselves, GRE, SCTP), trains of fragments cut from one datagram
 * and then shuffled, duplicated and overlapped, FTP and TFTP conversations, sysctl, iptables-save and
 * policy text. The mutator then breaks them; these get the parsers past their first checks.
 */
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import {
  ethernet,
  extensionHeader,
  fragmentHeader,
  icmp,
  ipv4,
  ipv6,
  loopback,
  sll,
  sll2,
  tcp,
  udp,
} from "../unit/packet-builders.js";
import { encodeFrames, encodeSegments, type FrameRecord, type Segment } from "./inputs.js";

const byte = fc.integer({ min: 0, max: 255 });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.oneof(fc.constantFrom(21, 53, 69, 80, 443, 1723, 2121), u16);
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Array.from(a));
/** `arbitrary` one time in `1 + absentWeight`, null otherwise (fc.option's `freq` is the other way round). */
function rarely<T>(arbitrary: fc.Arbitrary<T>, absentWeight = 4): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: absentWeight, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });
}

const ipv4Text = fc.oneof(
  fc.constantFrom("10.0.0.1", "10.0.0.2", "192.0.2.1", "0.0.0.0", "255.255.255.255", "224.0.0.1"),
  fc.tuple(byte, byte, byte, byte).map((p) => p.join(".")),
);
const ipv6Text = fc.oneof(
  fc.constantFrom("2001:db8::1", "2001:db8::2", "::", "::1", "ff02::1", "fe80::1"),
  fc.array(u16, { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(":")),
);

function u16Bytes(v: number): number[] {
  return [(v >> 8) & 0xff, v & 0xff];
}

/** A transport segment for `version` (4 or 6); `inner` is an IP packet an ICMP error may quote. */
function transportArb(version: 4 | 6, inner: fc.Arbitrary<Buffer> | null): fc.Arbitrary<[number, number[]]> {
  const tcpArb = fc
    .record({
      srcPort: port,
      dstPort: port,
      seq: u32,
      ack: u32,
      flags: fc.oneof(
        fc.constantFrom(0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x03, 0x06, 0x00, 0xff),
        byte,
      ),
      window: u16,
      options: fc.oneof(
        bytes(40),
        fc.constantFrom(
          [2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0],
          [5, 34, ...Array(32).fill(1)],
          [1, 1, 1, 0],
          [8, 0],
          [2, 255],
        ),
      ),
      payload: bytes(64),
    })
    .map(({ payload, options, ...fields }): [number, number[]] => [
      6,
      tcp({ ...fields, options: options.slice(0, 40) }, payload),
    ]);
  const udpArb = fc
    .tuple(port, port, bytes(64), rarely(u16))
    .map(([s, d, payload, length]): [number, number[]] => [17, udp(s, d, payload, length ?? undefined)]);
  const icmpProtocol = version === 4 ? 1 : 58;
  const echoTypes = version === 4 ? [8, 0, 13, 14, 15, 16, 17, 18] : [128, 129];
  const errorTypes = version === 4 ? [3, 4, 5, 11, 12] : [1, 2, 3, 4];
  const echoArb = fc
    .tuple(fc.oneof(fc.constantFrom(...echoTypes), byte), byte, u16, u16, bytes(32))
    .map(([type, code, id, seq, payload]): [number, number[]] => [
      icmpProtocol,
      icmp(type, code, [...u16Bytes(id), ...u16Bytes(seq)], payload),
    ]);
  const greArb = fc
    .tuple(
      fc.constantFrom(0x0000, 0x2000, 0x3001, 0x2001, 0x8000, 0xffff),
      fc.constantFrom(0x880b, 0x0800, 0x86dd, 0x6558),
      bytes(24),
    )
    .map(([flags, proto, rest]): [number, number[]] => [
      47,
      [...u16Bytes(flags), ...u16Bytes(proto), ...rest],
    ]);
  const sctpArb = fc
    .tuple(port, port, u32, bytes(48))
    .map(([s, d, tag, chunks]): [number, number[]] => [
      132,
      [
        ...u16Bytes(s),
        ...u16Bytes(d),
        (tag >>> 24) & 255,
        (tag >>> 16) & 255,
        (tag >>> 8) & 255,
        tag & 255,
        0,
        0,
        0,
        0,
        ...chunks,
      ],
    ]);
  const otherArb = fc
    .tuple(fc.constantFrom(33, 136, 50, 51, 41, 4, 59, 255, 0), bytes(40))
    .map(([p, b]): [number, number[]] => [p, b]);
  const choices: fc.Arbitrary<[number, number[]]>[] = [tcpArb, udpArb, echoArb, greArb, sctpArb, otherArb];
  if (inner !== null) {
    const errorArb = fc
      .tuple(fc.constantFrom(...errorTypes), byte, inner, fc.integer({ min: 0, max: 600 }))
      .map(([type, code, quoted, keep]): [number, number[]] => [
        icmpProtocol,
        icmp(type, code, [0, 0, 0, 0], quoted.subarray(0, keep)),
      ]);
    choices.push(errorArb, errorArb);
  }
  return fc.oneof(...choices);
}

const ipv6ExtensionTypes = fc.oneof(fc.constantFrom(0, 43, 60, 51, 135, 139, 140, 44, 50, 59), byte);

/** IPv6 extension headers before `protocol`, with the next-header values chained. */
function ipv6ChainArb(): fc.Arbitrary<
  { type: number; length: number; fragment: [number, boolean, number] }[]
> {
  return fc.array(
    fc.record({
      type: ipv6ExtensionTypes,
      length: fc.integer({ min: 0, max: 6 }),
      fragment: fc.tuple(
        fc.integer({ min: 0, max: 8191 }).map((o) => o * 8),
        fc.boolean(),
        u32,
      ),
    }),
    { maxLength: 6 },
  );
}

function ipPacketArb(depth: number): fc.Arbitrary<Buffer> {
  const inner = depth > 0 ? ipPacketArb(depth - 1) : null;
  const v4 = fc
    .record({
      src: ipv4Text,
      dst: ipv4Text,
      id: u16,
      ttl: byte,
      tos: byte,
      dontFragment: fc.boolean(),
      fragment: rarely(
        fc.tuple(
          fc.integer({ min: 0, max: 8191 }).map((o) => o * 8),
          fc.boolean(),
        ),
      ),
      options: rarely(
        fc
          .integer({ min: 1, max: 10 })
          .chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
      ),
      badChecksum: fc.constantFrom(false, false, false, true),
      transport: transportArb(4, inner),
    })
    .map(({ transport: [protocol, segment], fragment, options, ...fields }) =>
      ipv4(
        {
          ...fields,
          protocol,
          fragmentOffset: fragment?.[0] ?? 0,
          moreFragments: fragment?.[1] ?? false,
          options: options === null ? [] : Array.from(options),
        },
        segment,
      ),
    );
  const v6 = fc
    .record({
      src: ipv6Text,
      dst: ipv6Text,
      hopLimit: byte,
      flowLabel: fc.integer({ min: 0, max: 0xfffff }),
      chain: ipv6ChainArb(),
      transport: transportArb(6, inner),
    })
    .map(({ chain, transport: [protocol, segment], ...fields }) => {
      const headers: number[] = [];
      for (let k = 0; k < chain.length; k++) {
        const next = k + 1 < chain.length ? chain[k + 1].type : protocol;
        const { type, length, fragment } = chain[k];
        if (type === 44) headers.push(...fragmentHeader(next, fragment[0], fragment[1], fragment[2]));
        else if (type === 51) headers.push(...extensionHeader(next, length * 2 + 1, (length * 2 + 3) * 4));
        else headers.push(...extensionHeader(next, length, (length + 1) * 8));
      }
      const first = chain.length > 0 ? chain[0].type : protocol;
      return ipv6({ ...fields, nextHeader: first }, [...headers, ...segment]);
    });
  return fc.oneof(v4, v6);
}

/** One IP packet in a frame of a random link type, sometimes cut short or with more on the wire. */
export function frameArb(): fc.Arbitrary<FrameRecord> {
  return fc
    .tuple(
      ipPacketArb(2),
      fc.integer({ min: 0, max: 8 }),
      fc.array(u16, { maxLength: 3 }),
      rarely(fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 0, max: 200 }))),
    )
    .map(([packet, link, vlans, cut]) => {
      const version = packet[0] >> 4;
      const etherType = version === 6 ? 0x86dd : 0x0800;
      let linkType: number;
      let frame: Buffer;
      switch (link) {
        case 0:
          linkType = 1;
          frame = ethernet(
            etherType,
            packet,
            vlans.map((vid) => [0x8100, vid] as [number, number]),
          );
          break;
        case 1:
          linkType = 113;
          frame = sll(0, etherType, packet);
          break;
        case 2:
          linkType = 276;
          frame = sll2(4, etherType, 2, packet);
          break;
        case 3:
          linkType = 0;
          frame = loopback(version === 6 ? 30 : 2, true, packet);
          break;
        case 4:
          linkType = 108;
          frame = loopback(version === 6 ? 24 : 2, false, packet);
          break;
        case 5:
          linkType = version === 6 ? 229 : 228;
          frame = packet;
          break;
        case 6:
          linkType = 101;
          frame = packet;
          break;
        default:
          linkType = 1;
          frame = ethernet(etherType, packet);
      }
      if (cut === null) return { linkType, frame, cut: 0 };
      // Cut the frame as a snaplen would: the wire had `cut` more bytes.
      const keep = Math.max(0, frame.length - cut);
      return { linkType, frame: frame.subarray(0, keep), cut: frame.length - keep };
    });
}

/**
 * A UDP datagram cut into fragments (IPv4 or IPv6), then shuffled, with some fragments duplicated
 * and some moved to overlap their neighbours.
 */
export function fragmentTrainArb(): fc.Arbitrary<FrameRecord[]> {
  return fc
    .record({
      version: fc.constantFrom(4, 6),
      payload: fc.integer({ min: 0, max: 3000 }),
      cuts: fc.array(
        fc.integer({ min: 1, max: 200 }).map((n) => n * 8),
        { minLength: 1, maxLength: 12 },
      ),
      id: u16,
      order: fc.array(fc.nat(), { maxLength: 12 }),
      duplicate: fc.array(fc.nat(), { maxLength: 3 }),
      nudge: fc.array(
        fc.tuple(
          fc.nat(),
          fc.integer({ min: -16, max: 16 }).map((n) => n * 8),
        ),
        { maxLength: 3 },
      ),
    })
    .map(({ version, payload, cuts, id, order, duplicate, nudge }) => {
      const datagram = Buffer.from(
        udp(
          5000,
          53,
          Array.from({ length: payload }, (_, k) => k & 0xff),
        ),
      );
      const pieces: [number, number][] = [];
      let at = 0;
      for (const cut of cuts) {
        if (at >= datagram.length) break;
        const end = Math.min(datagram.length, at + cut);
        pieces.push([at, end]);
        at = end;
      }
      if (at < datagram.length) pieces.push([at, datagram.length]);
      for (const [k, delta] of nudge) {
        const piece = pieces[k % pieces.length];
        piece[0] = Math.max(0, piece[0] + delta);
      }
      for (const k of duplicate) pieces.push([...pieces[k % pieces.length]] as [number, number]);
      for (let k = 0; k < order.length && pieces.length > 1; k++) {
        const i = k % pieces.length;
        const j = order[k] % pieces.length;
        [pieces[i], pieces[j]] = [pieces[j], pieces[i]];
      }
      return pieces.map(([from, to]): FrameRecord => {
        const data = datagram.subarray(from, Math.max(from, to));
        const more = to < datagram.length;
        const packet =
          version === 4
            ? ipv4({ protocol: 17, id, fragmentOffset: from, moreFragments: more }, data)
            : ipv6({ nextHeader: 44 }, [...fragmentHeader(17, from, more, id), ...data]);
        return { linkType: version === 4 ? 228 : 229, frame: packet, cut: 0 };
      });
    });
}

/** A sequence of frames for the `decode` target. */
export function frameSequenceArb(): fc.Arbitrary<Buffer> {
  return fc
    .oneof(
      { weight: 3, arbitrary: fc.array(frameArb(), { minLength: 1, maxLength: 6 }) },
      { weight: 1, arbitrary: fragmentTrainArb() },
    )
    .map(encodeFrames);
}

const number = fc.oneof(
  fc.integer({ min: 0, max: 300 }),
  fc.constantFrom(65535, 65536, 4294967295, 4294967296),
  fc.stringMatching(/^[0-9]{1,40}$/),
);

/** FTP commands and replies the helper parses, with odd numbers, separators and splits. */
export function ftpConversationArb(): fc.Arbitrary<Buffer> {
  const line = fc.oneof(
    fc.array(number, { minLength: 0, maxLength: 8 }).map((n) => `PORT ${n.join(",")}\r\n`),
    fc
      .tuple(number, fc.integer({ min: 0, max: 3000 }))
      .map(([n, k]) => `PORT ${Array(k).fill(n).join(",")}\r\n`),
    fc
      .tuple(
        fc.constantFrom("1", "2", "3", ""),
        fc.oneof(ipv4Text, ipv6Text, fc.string()),
        number,
        fc.constantFrom("|", "!", "\u00ff"),
      )
      .map(([af, addr, p, d]) => `EPRT ${d}${af}${d}${addr}${d}${p}${d}\r\n`),
    fc.array(number, { maxLength: 8 }).map((n) => `227 Entering Passive Mode (${n.join(",")})\r\n`),
    fc.array(number, { maxLength: 8 }).map((n) => `227 ${n.join(",")}\r\n`),
    fc
      .tuple(number, fc.constantFrom("|", "!", ""))
      .map(([p, d]) => `229 Entering Extended Passive Mode (${d}${d}${d}${p}${d})\r\n`),
    fc.constantFrom("USER a\r\n", "PASV\r\n", "EPSV\r\n", "220 hi\r\n", "PORT", "227 ", "\r\n", "\n", ""),
    fc.string({ maxLength: 80 }).map((s) => `${s}\r\n`),
  );
  return fc
    .record({
      config: byte,
      lines: fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), line, rarely(fc.nat())), {
        maxLength: 10,
      }),
    })
    .map(({ config, lines }) => {
      const segments: Segment[] = [
        { direction: 1, payload: Buffer.from("220 ready\r\n") },
        { direction: 0, payload: Buffer.from("USER anonymous\r\n") },
      ];
      for (const [direction, text, split] of lines) {
        const payload = Buffer.from(text, "latin1");
        if (split === null || payload.length < 2) segments.push({ direction, payload });
        else {
          const at = 1 + (split % (payload.length - 1));
          segments.push(
            { direction, payload: payload.subarray(0, at) },
            { direction, payload: payload.subarray(at) },
          );
        }
      }
      return encodeSegments(config, segments);
    });
}

/** TFTP packets: read and write requests, data, and anything. */
export function tftpConversationArb(): fc.Arbitrary<Buffer> {
  const packet = fc.oneof(
    fc
      .tuple(fc.constantFrom(1, 2), fc.string({ maxLength: 40 }))
      .map(([op, name]) => Buffer.concat([Buffer.from([0, op]), Buffer.from(`${name}\0octet\0`, "latin1")])),
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  );
  return fc
    .tuple(byte, fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), packet), { maxLength: 8 }))
    .map(([config, packets]) =>
      encodeSegments(
        config,
        packets.map(([direction, payload]) => ({ direction, payload })),
      ),
    );
}

const sysctlName = fc.oneof(
  fc.constantFrom(
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_max",
    "net.nf_conntrack_max",
    "net.netfilter.nf_conntrack_expect_max",
    "net.netfilter.nf_conntrack_udp_timeout",
    "net.netfilter.nf_conntrack_tcp_loose",
    "net.netfilter.nf_conntrack_events",
    "net.netfilter.nf_conntrack_sctp_timeout_closed",
    "net.netfilter.nf_conntrack_bogus",
    "net.ipv4.ip_forward",
  ),
  fc.string({ maxLength: 30 }).map((s) => `net.netfilter.${s}`),
);

export function sysctlTextArb(): fc.Arbitrary<string> {
  const value = fc.oneof(
    number.map(String),
    fc.string({ maxLength: 12 }),
    fc.constantFrom("-1", "1e9", "0x10", " 7 ", ""),
  );
  const line = fc.oneof(
    fc.tuple(sysctlName, fc.constantFrom(" = ", "=", " =", "= "), value).map((p) => p.join("")),
    fc.string({ maxLength: 40 }),
  );
  return fc
    .tuple(fc.array(line, { maxLength: 20 }), fc.constantFrom("\n", "\r\n"))
    .map(([lines, separator]) => lines.join(separator));
}

export function natRulesTextArb(): fc.Arbitrary<string> {
  const address = fc.oneof(
    ipv4Text,
    ipv6Text,
    fc.constantFrom(
      "10.0.0.0/8",
      "10.1.2.0/255.255.255.0",
      "::/0",
      "1.2.3.4-1.2.3.9",
      "1.2.3.4:1-65535",
      "[2001:db8::1]:80",
      "0/0",
    ),
  );
  const word = fc.oneof(
    fc.constantFrom(
      "-A",
      "-s",
      "-d",
      "-p",
      "tcp",
      "udp",
      "icmp",
      "--sport",
      "--dport",
      "-i",
      "-o",
      "eth+",
      "out0",
      "!",
      "-m",
      "multiport",
      "--dports",
      "comment",
      "--comment",
      "-j",
      "-g",
      "SNAT",
      "DNAT",
      "MASQUERADE",
      "REDIRECT",
      "RETURN",
      "ACCEPT",
      "--to-source",
      "--to-destination",
      "--to-ports",
      "--random",
      "--persistent",
      "POSTROUTING",
      "PREROUTING",
      "LOOP",
      '"quoted \\" word"',
      '"',
    ),
    address,
    number.map(String),
    fc.tuple(number, number).map(([a, b]) => `${a}:${b}`),
    fc.string({ maxLength: 12 }),
  );
  const line = fc.oneof(
    fc.array(word, { minLength: 1, maxLength: 14 }).map((w) => w.join(" ")),
    fc.constantFrom(
      "*nat",
      "COMMIT",
      ":LOOP - [0:0]",
      ":PREROUTING ACCEPT [0:0]",
      ":POSTROUTING ACCEPT [1:2]",
      "-A LOOP -j LOOP",
      "-A POSTROUTING -j LOOP",
      "*filter",
      "# comment",
    ),
  );
  return fc
    .array(line, { maxLength: 16 })
    .map((lines) =>
      ["*nat", ":PREROUTING ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", ...lines, "COMMIT"].join("\n"),
    );
}

export function policyTextArb(): fc.Arbitrary<string> {
  const scalar = fc.oneof(
    number.map(String),
    fc.constantFrom(
      "tcp",
      "udp",
      "icmp",
      "outbound",
      "inbound",
      "deny",
      "allow",
      "seen",
      "assured",
      "10.0.0.0/8",
      "[21, 8000]",
      "{ tcp: 0 }",
      "null",
      "~",
      "*a",
      "&a x",
      "!!binary",
      "'",
      '"',
    ),
    fc.string({ maxLength: 16 }),
  );
  const key = fc.oneof(
    fc.constantFrom(
      "name",
      "inside",
      "limits",
      "firewall",
      "default",
      "allow",
      "deny",
      "protocol",
      "port",
      "direction",
      "require",
      "nat",
      "bounds",
      "orphaned-replies",
      "invalid-packets",
      "open-at-end",
      "to",
      "from",
      "reach",
    ),
    fc.string({ maxLength: 10 }),
  );
  const line = fc
    .tuple(fc.integer({ min: 0, max: 4 }), fc.boolean(), key, scalar)
    .map(([indent, dash, k, v]) => `${"  ".repeat(indent)}${dash ? "- " : ""}${k}: ${v}`);
  return fc.array(line, { maxLength: 20 }).map((lines) => lines.join("\n"));
}

function u32Bytes(value: number, littleEndian: boolean): Buffer {
  const out = Buffer.alloc(4);
  if (littleEndian) out.writeUInt32LE(value >>> 0);
  else out.writeUInt32BE(value >>> 0);
  return out;
}

function u16Buffer(value: number, littleEndian: boolean): Buffer {
  const out = Buffer.alloc(2);
  if (littleEndian) out.writeUInt16LE(value & 0xffff);
  else out.writeUInt16BE(value & 0xffff);
  return out;
}

/** A pcapng block: type, total length, body padded to 4 bytes, total length again. */
function pcapngBlock(type: number, body: Buffer, littleEndian: boolean): Buffer {
  const padding = Buffer.alloc((4 - (body.length % 4)) % 4);
  const length = 12 + body.length + padding.length;
  return Buffer.concat([
    u32Bytes(type, littleEndian),
    u32Bytes(length, littleEndian),
    body,
    padding,
    u32Bytes(length, littleEndian),
  ]);
}

function pcapngOption(code: number, value: Buffer, littleEndian: boolean): Buffer {
  const padding = Buffer.alloc((4 - (value.length % 4)) % 4);
  return Buffer.concat([
    u16Buffer(code, littleEndian),
    u16Buffer(value.length, littleEndian),
    value,
    padding,
  ]);
}

type PcapngItem =
  | { kind: "packet"; frame: FrameRecord; interfaceId: number; ts: [number, number]; block: 2 | 3 | 6 }
  | { kind: "interface"; linkType: number; snaplen: number; tsresol: number | null; tsoffset: number | null }
  | { kind: "statistics"; interfaceId: number; counts: number[] }
  | { kind: "section"; littleEndian: boolean }
  | { kind: "other"; type: number; body: number[] };

const pcapngItemArb: fc.Arbitrary<PcapngItem> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record({
        frame: frameArb(),
        interfaceId: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 3 }), u32),
        ts: fc.tuple(fc.integer({ min: 0, max: 400_000 }), u32),
        block: fc.constantFrom<2 | 3 | 6>(6, 6, 6, 3, 2),
      })
      .map((item) => ({ kind: "packet" as const, ...item })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        linkType: fc.oneof(fc.constantFrom(1, 101, 113, 276, 228, 229, 0, 108), u16),
        snaplen: fc.oneof(fc.constantFrom(0, 65535, 262144), u32),
        tsresol: fc.option(byte),
        tsoffset: fc.option(fc.integer({ min: -2_000_000_000, max: 2_000_000_000 })),
      })
      .map((item) => ({ kind: "interface" as const, ...item })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ interfaceId: fc.integer({ min: 0, max: 3 }), counts: fc.array(u32, { maxLength: 5 }) })
      .map((item) => ({ kind: "statistics" as const, ...item })),
  },
  { weight: 1, arbitrary: fc.boolean().map((littleEndian) => ({ kind: "section" as const, littleEndian })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ type: fc.oneof(fc.constantFrom(4, 7, 8, 9, 10, 0x80000001, 0), u32), body: bytes(24) })
      .map((item) => ({ kind: "other" as const, ...item })),
  },
);

function pcapngFile(littleEndian: boolean, items: readonly PcapngItem[]): Buffer {
  let le = littleEndian;
  const section = (order: boolean): Buffer =>
    pcapngBlock(
      0x0a0d0d0a,
      Buffer.concat([
        u32Bytes(0x1a2b3c4d, order),
        u16Buffer(1, order),
        u16Buffer(0, order),
        Buffer.alloc(8, 0xff),
      ]),
      order,
    );
  const parts: Buffer[] = [section(le)];
  for (const item of items) {
    switch (item.kind) {
      case "section":
        le = item.littleEndian;
        parts.push(section(le));
        break;
      case "interface": {
        const options: Buffer[] = [];
        if (item.tsresol !== null) options.push(pcapngOption(9, Buffer.from([item.tsresol]), le));
        if (item.tsoffset !== null) {
          const value = Buffer.alloc(8);
          if (le) value.writeBigInt64LE(BigInt(item.tsoffset));
          else value.writeBigInt64BE(BigInt(item.tsoffset));
          options.push(pcapngOption(14, value, le));
        }
        if (options.length > 0) options.push(Buffer.alloc(4));
        const body = Buffer.concat([
          u16Buffer(item.linkType, le),
          u16Buffer(0, le),
          u32Bytes(item.snaplen, le),
          ...options,
        ]);
        parts.push(pcapngBlock(1, body, le));
        break;
      }
      case "packet": {
        const { frame, cut } = item.frame;
        const origlen = frame.length + cut;
        if (item.block === 3) parts.push(pcapngBlock(3, Buffer.concat([u32Bytes(origlen, le), frame]), le));
        else {
          const id =
            item.block === 6
              ? u32Bytes(item.interfaceId, le)
              : Buffer.concat([u16Buffer(item.interfaceId, le), u16Buffer(0, le)]);
          const body = Buffer.concat([
            id,
            u32Bytes(item.ts[0], le),
            u32Bytes(item.ts[1], le),
            u32Bytes(frame.length, le),
            u32Bytes(origlen, le),
            frame,
          ]);
          parts.push(pcapngBlock(item.block, body, le));
        }
        break;
      }
      case "statistics": {
        const options = item.counts.map((count, k) => {
          const value = Buffer.alloc(8);
          if (le) value.writeBigUInt64LE(BigInt(count));
          else value.writeBigUInt64BE(BigInt(count));
          return pcapngOption(4 + k, value, le);
        });
        const body = Buffer.concat([
          u32Bytes(item.interfaceId, le),
          Buffer.alloc(8),
          ...options,
          Buffer.alloc(4),
        ]);
        parts.push(pcapngBlock(5, body, le));
        break;
      }
      case "other":
        parts.push(pcapngBlock(item.type, Buffer.from(item.body), le));
        break;
    }
  }
  return Buffer.concat(parts);
}

function pcapFile(
  magic: number,
  littleEndian: boolean,
  snaplen: number,
  linkType: number,
  records: readonly { frame: FrameRecord; ts: [number, number] }[],
): Buffer {
  const modified = magic === 0xa1b2cd34;
  const header = Buffer.concat([
    u32Bytes(magic, littleEndian),
    u16Buffer(2, littleEndian),
    u16Buffer(4, littleEndian),
    Buffer.alloc(8),
    u32Bytes(snaplen, littleEndian),
    u32Bytes(linkType, littleEndian),
  ]);
  const parts: Buffer[] = [header];
  for (const { frame, ts } of records) {
    parts.push(
      u32Bytes(ts[0], littleEndian),
      u32Bytes(ts[1], littleEndian),
      u32Bytes(frame.frame.length, littleEndian),
      u32Bytes(frame.frame.length + frame.cut, littleEndian),
    );
    if (modified) parts.push(Buffer.alloc(8));
    parts.push(frame.frame);
  }
  return Buffer.concat(parts);
}

/**
 * Whole capture files: classic pcap (both byte orders, micro, nano and modified) with one link type,
 * or pcapng with sections, interfaces (tsresol, tsoffset), enhanced, simple and obsolete packet
 * blocks, statistics and unknown blocks; sometimes gzip-compressed.
 */
export function captureFileArb(): fc.Arbitrary<Buffer> {
  const timestamp = fc.tuple(
    fc.integer({ min: 1_600_000_000, max: 1_800_000_000 }),
    fc.integer({ min: 0, max: 1_000_001 }),
  );
  const pcap = fc
    .record({
      magic: fc.constantFrom(0xa1b2c3d4, 0xa1b23c4d, 0xa1b2cd34),
      littleEndian: fc.boolean(),
      snaplen: fc.oneof(fc.constantFrom(65535, 262144, 96), u32),
      linkType: fc.constantFrom(1, 101, 113, 276, 228, 229, 0, 108, 0x10000001),
      records: fc.array(fc.record({ frame: frameArb(), ts: timestamp }), { maxLength: 8 }),
    })
    .map(({ magic, littleEndian, snaplen, linkType, records }) =>
      pcapFile(magic, littleEndian, snaplen, linkType, records),
    );
  const pcapng = fc
    .tuple(fc.boolean(), fc.array(pcapngItemArb, { maxLength: 10 }))
    .map(([littleEndian, items]) =>
      pcapngFile(littleEndian, [
        { kind: "interface", linkType: 1, snaplen: 0, tsresol: null, tsoffset: null },
        ...items,
      ]),
    );
  return fc
    .tuple(fc.oneof(pcap, pcapng), fc.integer({ min: 0, max: 9 }))
    .map(([file, roll]) => (roll === 0 ? gzipSync(file) : file));
}
