import { test } from "node:test";
import assert from "node:assert/strict";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { PacketClass, TCP_ACK, TCP_SYN } from "../../lib/decode/packet.js";
import { verifyTransportChecksum, onesComplementSum, foldSum } from "../../lib/decode/checksum.js";
import { formatAddress } from "../../lib/decode/address.js";
import {
  echoRest,
  ethernet,
  extensionHeader,
  icmp,
  ipv4,
  ipv6,
  record,
  tcp,
  udp,
  type RecordOptions,
} from "./packet-builders.js";

function decodeV4(protocol: number, l4: number[], options: RecordOptions = {}) {
  const decoder = new PacketDecoder();
  const packetClass = decoder.decode(
    record(1, ethernet(0x0800, ipv4({ protocol, src: "10.1.1.1", dst: "10.2.2.2" }, l4)), options),
  );
  return { packetClass, packet: decoder.packet, stats: decoder.stats };
}

function decodeV6(nextHeader: number, l4: number[], options: RecordOptions = {}) {
  const decoder = new PacketDecoder();
  const packetClass = decoder.decode(record(1, ethernet(0x86dd, ipv6({ nextHeader }, l4)), options));
  return { packetClass, packet: decoder.packet, stats: decoder.stats };
}

test("TCP header fields", () => {
  const { packetClass, packet } = decodeV4(
    6,
    tcp(
      {
        srcPort: 0xfffe,
        dstPort: 22,
        seq: 0xfedcba98,
        ack: 0x80000001,
        flags: TCP_SYN | TCP_ACK,
        window: 29200,
        urgent: 7,
        checksum: 0xabcd,
      },
      [5, 6],
    ),
  );
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.srcPort, 0xfffe);
  assert.equal(packet.tcpSeq, 0xfedcba98);
  assert.equal(packet.tcpAck, 0x80000001);
  assert.equal(packet.tcpFlags, TCP_SYN | TCP_ACK);
  assert.equal(packet.tcpWindow, 29200);
  assert.equal(packet.tcpUrgent, 7);
  assert.equal(packet.l4Checksum, 0xabcd);
  assert.equal(packet.tcpDataOffset, 20);
  assert.equal(packet.payloadOffset, packet.l4Offset + 20);
  assert.equal(packet.payloadLength, 2);
  assert.equal(packet.tcpMss, -1);
  assert.equal(packet.tcpWindowScale, -1);
  assert.equal(packet.hasPorts, true);
});

test("TCP options: MSS, window scale, SACK-permitted, SACK blocks, timestamps", () => {
  const options = [
    2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20,
    0, 0, 0, 30, 0, 0, 0, 40,
  ];
  const { packetClass, packet, stats } = decodeV4(6, tcp({ options }));
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.tcpDataOffset, 60);
  assert.equal(packet.tcpMss, 1460);
  assert.equal(packet.tcpWindowScale, 7);
  assert.equal(packet.tcpSackPermitted, true);
  assert.equal(packet.tcpHasTimestamp, true);
  assert.equal(packet.tcpTsVal, 1);
  assert.equal(packet.tcpTsEcr, 2);
  assert.equal(packet.tcpSackCount, 2);
  assert.deepEqual([...packet.tcpSackBlocks.slice(0, 4)], [10, 20, 30, 40]);
  assert.equal(stats.tcpOptionErrors, 0);
  assert.equal(packet.tcpOptionsComplete, true);
});

test("TCP SACK with four blocks", () => {
  const blocks = [1, 2, 3, 4, 5, 6, 7, 8].flatMap((v) => [0, 0, 0, v]);
  const { packet } = decodeV4(6, tcp({ options: [1, 1, 5, 34, ...blocks] }));
  assert.equal(packet.tcpSackCount, 4);
  assert.deepEqual([...packet.tcpSackBlocks], [1, 2, 3, 4, 5, 6, 7, 8]);
});

test("malformed TCP option lengths stop the walk without failing the packet", () => {
  const zeroLength = decodeV4(6, tcp({ options: [2, 4, 0x05, 0xb4, 3, 0, 7, 0] }));
  assert.equal(zeroLength.packetClass, PacketClass.Decoded);
  assert.equal(zeroLength.packet.tcpMss, 1460);
  assert.equal(zeroLength.packet.tcpWindowScale, -1);
  assert.equal(zeroLength.stats.tcpOptionErrors, 1);

  const overlong = decodeV4(6, tcp({ options: [8, 40, 0, 0] }));
  assert.equal(overlong.packetClass, PacketClass.Decoded);
  assert.equal(overlong.packet.tcpHasTimestamp, false);
  assert.equal(overlong.stats.tcpOptionErrors, 1);

  // A known kind with the wrong size is skipped and the walk goes on.
  const wrongSize = decodeV4(6, tcp({ options: [2, 3, 0, 3, 3, 9] }));
  assert.equal(wrongSize.packet.tcpMss, -1);
  assert.equal(wrongSize.packet.tcpWindowScale, 9);
  assert.equal(wrongSize.stats.tcpOptionErrors, 1);
});

test("TCP options cut by the capture are decoded as far as captured", () => {
  const frame = tcp({ options: [2, 4, 0x05, 0xb4, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2] });
  const { packetClass, packet, stats } = decodeV4(6, frame, { caplen: 14 + 20 + 20 + 6 });
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.tcpMss, 1460);
  assert.equal(packet.tcpHasTimestamp, false);
  assert.equal(packet.tcpOptionsComplete, false);
  assert.equal(stats.tcpOptionsCut, 1);
  assert.equal(stats.tcpOptionErrors, 0);
});

test("TCP data offset errors", () => {
  const low = decodeV4(6, tcp({ dataOffset: 4 }));
  assert.equal(low.packetClass, PacketClass.Malformed);
  assert.equal(low.packet.reason, "tcp data offset below 5");
  const beyond = decodeV4(6, tcp({ dataOffset: 15 }, [1, 2, 3]));
  assert.equal(beyond.packetClass, PacketClass.Malformed);
  assert.equal(beyond.packet.reason, "tcp data offset beyond segment");
  const short = decodeV4(6, [0, 1, 0, 2, 0, 0, 0, 0]);
  assert.equal(short.packetClass, PacketClass.Malformed);
  assert.equal(short.packet.reason, "tcp header beyond the ip payload");
});

test("UDP length checks (udp_error)", () => {
  const ok = decodeV4(17, udp(53, 5353, [1, 2, 3, 4]));
  assert.equal(ok.packetClass, PacketClass.Decoded);
  assert.equal(ok.packet.udpLength, 12);
  assert.equal(ok.packet.payloadLength, 4);
  // A UDP length shorter than the IP payload is allowed: the rest is trailing bytes.
  const shorter = decodeV4(17, udp(53, 5353, [1, 2, 3, 4], 10));
  assert.equal(shorter.packetClass, PacketClass.Decoded);
  assert.equal(shorter.packet.payloadLength, 2);
  const below = decodeV4(17, udp(53, 5353, [1, 2], 7));
  assert.equal(below.packetClass, PacketClass.Malformed);
  assert.equal(below.packet.reason, "udp length below 8");
  const above = decodeV4(17, udp(53, 5353, [1, 2], 11));
  assert.equal(above.packetClass, PacketClass.Malformed);
  assert.equal(above.packet.reason, "udp length exceeds the ip payload");
  const header = decodeV4(17, [0, 53, 0, 53]);
  assert.equal(header.packetClass, PacketClass.Malformed);
  assert.equal(header.packet.reason, "udp header beyond the ip payload");
});

test("UDP-Lite coverage, DCCP, SCTP ports", () => {
  const lite = decodeV4(136, udp(1000, 2000, [1, 2, 3, 4], 0));
  assert.equal(lite.packetClass, PacketClass.Decoded);
  assert.equal(lite.packet.dstPort, 2000);
  const badCoverage = decodeV4(136, udp(1000, 2000, [], 4));
  assert.equal(badCoverage.packetClass, PacketClass.Malformed);
  assert.equal(badCoverage.packet.reason, "udplite checksum coverage invalid");

  const dccp = decodeV4(33, [0x13, 0x88, 0x00, 0x50, 3, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(dccp.packetClass, PacketClass.Decoded);
  assert.equal(dccp.packet.srcPort, 5000);
  assert.equal(dccp.packet.dstPort, 80);
  assert.equal(dccp.packet.hasPorts, true);

  const sctp = decodeV6(132, [0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 1, 0, 0, 0, 0]);
  assert.equal(sctp.packetClass, PacketClass.Decoded);
  assert.equal(sctp.packet.srcPort, 2905);
  assert.equal(sctp.packet.dstPort, 2906);
});

test("GRE version, protocol and key", () => {
  const v0 = decodeV4(47, [0x20, 0x00, 0x08, 0x00, 0, 0, 0x30, 0x39, 0x45]);
  assert.equal(v0.packetClass, PacketClass.Decoded);
  assert.equal(v0.packet.greVersion, 0);
  assert.equal(v0.packet.greProtocol, 0x0800);
  assert.equal(v0.packet.greHasKey, true);
  assert.equal(v0.packet.greKey, 12345);
  assert.equal(v0.packet.payloadOffset, v0.packet.l4Offset + 8);
  assert.equal(v0.packet.hasPorts, false);
  // PPTP: version 1, key = payload length + call ID, sequence present.
  const v1 = decodeV4(47, [0x30, 0x81, 0x88, 0x0b, 0, 4, 0x12, 0x34, 0, 0, 0, 9, 0, 0, 0, 1, 1, 2, 3, 4]);
  assert.equal(v1.packet.greVersion, 1);
  assert.equal(v1.packet.greProtocol, 0x880b);
  assert.equal(v1.packet.greKey & 0xffff, 0x1234);
  assert.equal(v1.packet.payloadOffset, v1.packet.l4Offset + 16);
  const noKey = decodeV4(47, [0x00, 0x00, 0x86, 0xdd]);
  assert.equal(noKey.packet.greHasKey, false);
  const cutKey = decodeV4(47, [0x20, 0x00, 0x08, 0x00, 0, 0]);
  assert.equal(cutKey.packetClass, PacketClass.Malformed);
  assert.equal(cutKey.packet.reason, "gre key beyond the ip payload");
});

test("other protocols: protocol number only", () => {
  const { packetClass, packet } = decodeV4(50, [0, 0, 1, 0, 0, 0, 0, 5]);
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.protocol, 50);
  assert.equal(packet.hasPorts, false);
  assert.equal(packet.payloadLength, 8);
});

test("ICMP echo, timestamp, information and address-mask carry id and sequence", () => {
  for (const type of [8, 0, 13, 14, 15, 16, 17, 18]) {
    const { packetClass, packet } = decodeV4(1, icmp(type, 0, echoRest(0x4242, 7), [1, 2]));
    assert.equal(packetClass, PacketClass.Decoded);
    assert.equal(packet.icmpType, type);
    assert.equal(packet.icmpId, 0x4242);
    assert.equal(packet.icmpSeq, 7);
    assert.equal(packet.embedded.present, false);
  }
  const redirectless = decodeV4(1, icmp(9, 0, echoRest(1, 2)));
  assert.equal(redirectless.packet.icmpId, 0);
  const short = decodeV4(1, [8, 0, 0, 0]);
  assert.equal(short.packetClass, PacketClass.Malformed);
  assert.equal(short.packet.reason, "icmp header beyond the ip payload");
});

test("ICMP errors quote TCP, UDP and ICMP", () => {
  const innerTcp = ipv4(
    { src: "10.2.2.2", dst: "10.9.9.9", protocol: 6, totalLength: 1500 },
    tcp({ srcPort: 4444, dstPort: 80 }).slice(0, 8),
  );
  const unreachable = decodeV4(1, icmp(3, 4, [0, 0, 0x05, 0xdc], innerTcp));
  assert.equal(unreachable.packetClass, PacketClass.Decoded);
  const e = unreachable.packet.embedded;
  assert.equal(unreachable.packet.icmpType, 3);
  assert.equal(unreachable.packet.icmpCode, 4);
  assert.equal(e.present, true);
  assert.equal(e.ipVersion, 4);
  assert.equal(formatAddress(4, e.src), "10.2.2.2");
  assert.equal(e.dstV4, 0x0a090909);
  assert.equal(e.protocol, 6);
  assert.equal(e.hasPorts, true);
  assert.equal(e.srcPort, 4444);
  assert.equal(e.dstPort, 80);
  assert.equal(e.totalLength, 1500);

  const innerUdp = ipv4({ protocol: 17 }, udp(53, 33434));
  const exceeded = decodeV4(1, icmp(11, 0, [0, 0, 0, 0], innerUdp));
  assert.equal(exceeded.packet.embedded.protocol, 17);
  assert.equal(exceeded.packet.embedded.dstPort, 33434);

  const innerEcho = ipv4({ protocol: 1 }, icmp(8, 0, echoRest(99, 1)));
  const echoQuoted = decodeV4(1, icmp(3, 1, [0, 0, 0, 0], innerEcho));
  assert.equal(echoQuoted.packet.embedded.icmpType, 8);
  assert.equal(echoQuoted.packet.embedded.icmpId, 99);
  assert.equal(echoQuoted.packet.embedded.hasPorts, true);

  const innerError = ipv4({ protocol: 1 }, icmp(3, 3, echoRest(5, 5)));
  const errorQuoted = decodeV4(1, icmp(11, 0, [0, 0, 0, 0], innerError));
  assert.equal(errorQuoted.packet.embedded.icmpType, 3);
  assert.equal(errorQuoted.packet.embedded.icmpCode, 3);
  assert.equal(errorQuoted.packet.embedded.icmpId, 0);

  const headerOnly = decodeV4(1, icmp(3, 0, [0, 0, 0, 0], ipv4({ protocol: 6 }, [])));
  assert.equal(headerOnly.packet.embedded.present, true);
  assert.equal(headerOnly.packet.embedded.hasPorts, false);

  const unusable = decodeV4(1, icmp(3, 0, [0, 0, 0, 0], [0x45, 0, 0]));
  assert.equal(unusable.packetClass, PacketClass.Decoded);
  assert.equal(unusable.packet.embedded.present, false);
  assert.equal(unusable.stats.embeddedUnusable, 1);
  assert.equal(unusable.packet.reason, "");

  const fragmentQuoted = decodeV4(
    1,
    icmp(3, 0, [0, 0, 0, 0], ipv4({ fragmentOffset: 64, protocol: 6 }, tcp({}))),
  );
  assert.equal(fragmentQuoted.packet.embedded.present, false);
});

test("ICMPv6 echo, node information and errors with the quoted IPv6 chain", () => {
  for (const type of [128, 129, 139, 140]) {
    const { packetClass, packet } = decodeV6(58, icmp(type, 0, echoRest(0x1111, 0x2222), [0, 0, 0, 0]));
    assert.equal(packetClass, PacketClass.Decoded);
    assert.equal(packet.icmpId, 0x1111);
    assert.equal(packet.icmpSeq, 0x2222);
  }
  const inner = ipv6({ src: "2001:db8::5", dst: "2001:db8::6", nextHeader: 60 }, [
    ...extensionHeader(17, 0, 8),
    ...udp(1234, 53),
  ]);
  const tooBig = decodeV6(58, icmp(2, 0, [0, 0, 0x05, 0x00], inner));
  assert.equal(tooBig.packetClass, PacketClass.Decoded);
  const e = tooBig.packet.embedded;
  assert.equal(e.present, true);
  assert.equal(e.ipVersion, 6);
  assert.equal(formatAddress(6, e.dst), "2001:db8::6");
  assert.equal(e.protocol, 17);
  assert.equal(e.srcPort, 1234);
  assert.equal(e.dstPort, 53);
  const quotedEcho = decodeV6(
    58,
    icmp(1, 4, [0, 0, 0, 0], ipv6({ nextHeader: 58 }, icmp(128, 0, echoRest(77, 1)))),
  );
  assert.equal(quotedEcho.packet.embedded.icmpType, 128);
  assert.equal(quotedEcho.packet.embedded.icmpId, 77);
  // ICMP (v4) quoted by ICMPv6 is not a usable quote; an IPv4 packet neither.
  const v4Inside = decodeV6(58, icmp(1, 0, [0, 0, 0, 0], ipv4({}, tcp({}))));
  assert.equal(v4Inside.packet.embedded.present, false);
  // ICMP type 1 over IPv6 is not ICMPv6: protocol number only.
  const wrongFamily = decodeV6(1, icmp(8, 0, echoRest(1, 1)));
  assert.equal(wrongFamily.packet.hasPorts, false);
});

test("transport checksums are recorded and verified on demand", () => {
  const decoder = new PacketDecoder();
  const segment = tcp({ srcPort: 1, dstPort: 2 }, [1, 2, 3]);
  const frame = ethernet(0x0800, ipv4({ protocol: 6 }, segment));
  decoder.decode(record(1, frame));
  const packet = decoder.packet;
  assert.equal(verifyTransportChecksum(packet), false);
  // Fill in the right checksum and try again.
  const l4 = packet.l4Offset;
  const pseudo = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + packet.l4Length;
  const sum = foldSum(onesComplementSum(packet.buf, l4, l4 + packet.l4Length, pseudo));
  const checksum = ~sum & 0xffff;
  packet.buf[l4 + 16] = checksum >> 8;
  packet.buf[l4 + 17] = checksum & 0xff;
  const again = new PacketDecoder();
  const rec = record(1, frame);
  rec.data = packet.buf;
  again.decode(rec);
  assert.equal(again.packet.l4Checksum, checksum);
  assert.equal(verifyTransportChecksum(again.packet), true);
  // Not fully captured: cannot tell.
  const cut = new PacketDecoder();
  cut.decode(record(1, frame, { caplen: 14 + 20 + 21 }));
  assert.equal(verifyTransportChecksum(cut.packet), null);
  // UDP over IPv4 with checksum 0 means no checksum.
  const udpDecoder = new PacketDecoder();
  udpDecoder.decode(record(1, ethernet(0x0800, ipv4({ protocol: 17 }, udp(1, 2, [3])))));
  assert.equal(verifyTransportChecksum(udpDecoder.packet), true);
});
