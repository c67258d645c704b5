import { test } from "node:test";
import assert from "node:assert/strict";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { PacketClass } from "../../lib/decode/packet.js";
import { formatIpv6 } from "../../lib/decode/address.js";
import {
  ethernet,
  extensionHeader,
  fragmentHeader,
  icmp,
  ipv4,
  ipv6,
  record,
  tcp,
  udp,
  type RecordOptions,
} from "./packet-builders.js";

function decodeEthernet(etherType: number, payload: Buffer | number[], options: RecordOptions = {}) {
  const decoder = new PacketDecoder();
  const packetClass = decoder.decode(record(1, ethernet(etherType, payload), options));
  return { packetClass, packet: decoder.packet, stats: decoder.stats };
}

const segment = tcp({ srcPort: 1111, dstPort: 2222 }, [1, 2, 3, 4]);

test("IPv4 header fields and checksum", () => {
  const { packetClass, packet, stats } = decodeEthernet(
    0x0800,
    ipv4({ tos: 0xb8, ttl: 33, id: 0xbeef, dontFragment: true }, segment),
  );
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.tos, 0xb8);
  assert.equal(packet.ttl, 33);
  assert.equal(packet.ipId, 0xbeef);
  assert.equal(packet.dontFragment, true);
  assert.equal(packet.ipLength, 20 + 24);
  assert.equal(packet.ipHeaderLength, 20);
  assert.equal(packet.ipChecksumValid, true);
  assert.equal(packet.payloadLength, 4);
  assert.equal(packet.payloadCaptured, 4);
  assert.equal(stats.ipv4ChecksumErrors, 0);

  const bad = decodeEthernet(0x0800, ipv4({ badChecksum: true }, segment));
  assert.equal(bad.packetClass, PacketClass.Decoded);
  assert.equal(bad.packet.ipChecksumValid, false);
  assert.equal(bad.stats.ipv4ChecksumErrors, 1);
});

test("IPv4 options move the transport header", () => {
  const options = [0x07, 0x07, 0x04, 0, 0, 0, 0, 0x01]; // record route + NOP
  const { packetClass, packet } = decodeEthernet(0x0800, ipv4({ options }, segment));
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.ipHeaderLength, 28);
  assert.equal(packet.l4Offset, packet.l3Offset + 28);
  assert.equal(packet.srcPort, 1111);
  assert.equal(packet.ipChecksumValid, true);
});

test("IPv4 malformed headers", () => {
  const cases: [Buffer, string][] = [
    [ipv4({ version: 5 }, segment), "ipv4 version is not 4"],
    [ipv4({ ihl: 4 }, segment), "ipv4 header length below 20"],
    [ipv4({ totalLength: 16 }, segment), "ipv4 total length below header length"],
    [ipv4({ totalLength: 200 }, segment), "ipv4 total length exceeds the frame"],
  ];
  for (const [bytes, reason] of cases) {
    const { packetClass, packet } = decodeEthernet(0x0800, bytes);
    assert.equal(packetClass, PacketClass.Malformed, reason);
    assert.equal(packet.reason, reason);
  }
  const short = decodeEthernet(0x0800, ipv4({}, segment).subarray(0, 12));
  assert.equal(short.packetClass, PacketClass.Malformed);
  assert.equal(short.packet.reason, "ipv4 header beyond the frame");
});

test("IPv4 truncation by the capture: headers cut vs payload cut", () => {
  const frame = ipv4({}, segment);
  const headerCut = decodeEthernet(0x0800, frame, { caplen: 14 + 10 });
  assert.equal(headerCut.packetClass, PacketClass.Truncated);
  assert.equal(headerCut.packet.reason, "ipv4 header truncated");

  const optionsCut = decodeEthernet(0x0800, ipv4({ options: [1, 1, 1, 1] }, segment), { caplen: 14 + 22 });
  assert.equal(optionsCut.packetClass, PacketClass.Truncated);
  assert.equal(optionsCut.packet.reason, "ipv4 options truncated");

  const tcpCut = decodeEthernet(0x0800, frame, { caplen: 14 + 30 });
  assert.equal(tcpCut.packetClass, PacketClass.Truncated);
  assert.equal(tcpCut.packet.reason, "tcp header truncated");

  const payloadCut = decodeEthernet(0x0800, frame, { caplen: 14 + 20 + 20 + 1 });
  assert.equal(payloadCut.packetClass, PacketClass.Decoded);
  assert.equal(payloadCut.packet.payloadLength, 4);
  assert.equal(payloadCut.packet.payloadCaptured, 1);
  assert.equal(payloadCut.packet.ipLength, 44);
  assert.equal(payloadCut.packet.capturedEnd, payloadCut.packet.l3Offset + 41);
});

test("Ethernet padding after the IP packet is ignored", () => {
  const small = ipv4({ protocol: 17 }, udp(1, 2, [9]));
  const padded = Buffer.concat([small, Buffer.alloc(60 - 14 - small.length, 0xaa)]);
  const { packetClass, packet } = decodeEthernet(0x0800, padded);
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.ipLength, 29);
  assert.equal(packet.payloadLength, 1);
  assert.equal(packet.capturedEnd, packet.l3Offset + 29);
});

test("IPv4 total length 0 (TSO capture) is taken from the frame", () => {
  const { packetClass, packet, stats } = decodeEthernet(0x0800, ipv4({ totalLength: 0 }, segment));
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.ipLength, 44);
  assert.equal(stats.ipv4ZeroTotalLength, 1);
});

test("IPv6 header fields", () => {
  const { packetClass, packet } = decodeEthernet(
    0x86dd,
    ipv6({ trafficClass: 0xa3, flowLabel: 0xabcde, hopLimit: 9, src: "fe80::1", dst: "ff02::fb" }, segment),
  );
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.tos, 0xa3);
  assert.equal(packet.flowLabel, 0xabcde);
  assert.equal(packet.ttl, 9);
  assert.equal(formatIpv6(packet.src), "fe80::1");
  assert.equal(formatIpv6(packet.dst), "ff02::fb");
  assert.equal(packet.ipLength, 40 + 24);
  assert.equal(packet.srcV4, 0);
});

test("IPv6 extension header chain: hop-by-hop, routing, destination, AH", () => {
  const chain = [
    ...extensionHeader(43, 0, 8), // hop-by-hop -> routing
    ...extensionHeader(60, 1, 16), // routing -> destination options (16 bytes)
    ...extensionHeader(51, 0, 8), // destination -> AH
    ...extensionHeader(6, 4, 24), // AH, length (4+2)*4 = 24 -> TCP
  ];
  const { packetClass, packet } = decodeEthernet(0x86dd, ipv6({ nextHeader: 0 }, [...chain, ...segment]));
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.protocol, 6);
  assert.equal(packet.ipHeaderLength, 40 + 56);
  assert.equal(packet.dstPort, 2222);
});

test("IPv6 chain ends at ESP and no-next-header", () => {
  const esp = decodeEthernet(
    0x86dd,
    ipv6({ nextHeader: 60 }, [...extensionHeader(50, 0, 8), 0, 0, 0, 1, 0, 0, 0, 1]),
  );
  assert.equal(esp.packetClass, PacketClass.Decoded);
  assert.equal(esp.packet.protocol, 50);
  assert.equal(esp.packet.ipHeaderLength, 48);
  const none = decodeEthernet(0x86dd, ipv6({ nextHeader: 59 }, []));
  assert.equal(none.packetClass, PacketClass.Decoded);
  assert.equal(none.packet.protocol, 59);
  assert.equal(none.packet.hasPorts, false);
});

test("mobility is the protocol by default (as the kernel) and walked with the iana set", () => {
  const bytes = ethernet(0x86dd, ipv6({ nextHeader: 135 }, [...extensionHeader(17, 0, 8), ...udp(7, 8)]));
  const kernel = new PacketDecoder();
  assert.equal(kernel.decode(record(1, bytes)), PacketClass.Decoded);
  assert.equal(kernel.packet.protocol, 135);
  const iana = new PacketDecoder({ ipv6ExtensionHeaders: "iana" });
  assert.equal(iana.decode(record(1, bytes)), PacketClass.Decoded);
  assert.equal(iana.packet.protocol, 17);
  assert.equal(iana.packet.dstPort, 8);
});

test("an overlong IPv6 chain stops at the bound; a header past the payload is malformed", () => {
  const chain: number[] = [];
  for (let i = 0; i < 20; i++) chain.push(...extensionHeader(60, 0, 8));
  const long = decodeEthernet(0x86dd, ipv6({ nextHeader: 60 }, chain));
  assert.equal(long.packetClass, PacketClass.Malformed);
  assert.equal(long.packet.reason, "ipv6 extension header chain too long");

  const past = decodeEthernet(0x86dd, ipv6({ nextHeader: 0 }, extensionHeader(6, 5, 8)));
  assert.equal(past.packetClass, PacketClass.Malformed);
  assert.equal(past.packet.reason, "ipv6 extension header beyond the payload");

  const frame = ipv6({ nextHeader: 0 }, [
    ...extensionHeader(60, 0, 8),
    ...extensionHeader(6, 0, 8),
    ...segment,
  ]);
  const cut = decodeEthernet(0x86dd, frame, { caplen: 14 + 40 + 8 + 1 });
  assert.equal(cut.packetClass, PacketClass.Truncated);
  assert.equal(cut.packet.reason, "ipv6 extension header truncated");
});

test("IPv6 malformed and truncated headers", () => {
  const v = decodeEthernet(0x86dd, ipv6({ version: 4 }, segment));
  assert.equal(v.packetClass, PacketClass.Malformed);
  assert.equal(v.packet.reason, "ipv6 version is not 6");
  const long = decodeEthernet(0x86dd, ipv6({ payloadLength: 500 }, segment));
  assert.equal(long.packetClass, PacketClass.Malformed);
  assert.equal(long.packet.reason, "ipv6 payload length exceeds the frame");
  const cut = decodeEthernet(0x86dd, ipv6({}, segment), { caplen: 14 + 30 });
  assert.equal(cut.packetClass, PacketClass.Truncated);
  assert.equal(cut.packet.reason, "ipv6 header truncated");
});

test("IPv4 after IPv6 leaves no stale address bytes", () => {
  const decoder = new PacketDecoder();
  decoder.decode(record(1, ethernet(0x86dd, ipv6({ src: "2001:db8:ffff::1" }, segment))));
  decoder.decode(record(1, ethernet(0x0800, ipv4({ src: "1.2.3.4" }, segment))));
  assert.deepEqual([...decoder.packet.src], [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test("IPv6 fragment header fields on a first fragment", () => {
  const payload = [
    ...fragmentHeader(58, 0, true, 0xdeadbeef),
    ...icmp(128, 0, [0, 1, 0, 2], Buffer.alloc(16)),
  ];
  const { packetClass, packet } = decodeEthernet(0x86dd, ipv6({ nextHeader: 44 }, payload));
  assert.equal(packetClass, PacketClass.Fragment);
  assert.equal(packet.ipId, 0xdeadbeef);
  assert.equal(packet.moreFragments, true);
  assert.equal(packet.fragmentOffset, 0);
  assert.equal(packet.protocol, 58);
});
