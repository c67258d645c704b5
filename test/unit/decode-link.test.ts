import { test } from "node:test";
import assert from "node:assert/strict";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { PacketClass } from "../../lib/decode/packet.js";
import { formatAddress } from "../../lib/decode/address.js";
import { ethernet, ipv4, ipv6, loopback, record, sll, sll2, tcp, udp } from "./packet-builders.js";

const tcpSegment = tcp({ srcPort: 40000, dstPort: 443 });
const ipv4Packet = ipv4({ src: "192.0.2.1", dst: "198.51.100.7", protocol: 6 }, tcpSegment);
const ipv6Packet = ipv6({ src: "2001:db8::a", dst: "2001:db8::b", nextHeader: 17 }, udp(5353, 53, [1, 2, 3]));

function decode(linkType: number, frame: Buffer) {
  const decoder = new PacketDecoder();
  const packetClass = decoder.decode(record(linkType, frame));
  return { packetClass, packet: decoder.packet, decoder };
}

test("ethernet IPv4/TCP: addresses, ports and offsets", () => {
  const { packetClass, packet } = decode(1, ethernet(0x0800, ipv4Packet));
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.etherType, 0x0800);
  assert.equal(packet.l3Offset, 3 + 14);
  assert.equal(packet.ipVersion, 4);
  assert.equal(formatAddress(4, packet.src), "192.0.2.1");
  assert.equal(formatAddress(4, packet.dst), "198.51.100.7");
  assert.equal(packet.srcV4, 0xc0000201);
  assert.equal(packet.protocol, 6);
  assert.equal(packet.srcPort, 40000);
  assert.equal(packet.dstPort, 443);
  assert.equal(packet.l4Offset, 3 + 14 + 20);
  assert.equal(packet.vlanCount, 0);
  assert.equal(packet.sllPacketType, -1);
  assert.equal(packet.reason, "");
});

test("ethernet IPv6/UDP", () => {
  const { packetClass, packet } = decode(1, ethernet(0x86dd, ipv6Packet));
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.ipVersion, 6);
  assert.equal(formatAddress(6, packet.src), "2001:db8::a");
  assert.equal(packet.protocol, 17);
  assert.equal(packet.srcPort, 5353);
  assert.equal(packet.dstPort, 53);
  assert.equal(packet.payloadLength, 3);
});

test("VLAN stacks: 802.1Q, 802.1ad + 802.1Q, old QinQ 0x9100 / 0x9200", () => {
  const cases: [number, number][][] = [
    [[0x8100, 100]],
    [
      [0x88a8, 200],
      [0x8100, 300],
    ],
    [
      [0x9100, 7],
      [0x9200, 8],
      [0x8100, 0x2009],
    ],
  ];
  for (const vlans of cases) {
    const { packetClass, packet } = decode(1, ethernet(0x0800, ipv4Packet, vlans));
    assert.equal(packetClass, PacketClass.Decoded);
    assert.equal(packet.vlanCount, vlans.length);
    assert.deepEqual(
      [...packet.vlanIds.slice(0, vlans.length)],
      vlans.map(([, tci]) => tci & 0x0fff),
    );
    assert.equal(packet.l3Offset, 3 + 14 + 4 * vlans.length);
    assert.equal(packet.dstPort, 443);
  }
});

test("a VLAN stack deeper than the bound is malformed; a cut tag is truncated", () => {
  const deep: [number, number][] = Array.from({ length: 9 }, (_, i) => [0x8100, i + 1]);
  const { packetClass, packet } = decode(1, ethernet(0x0800, ipv4Packet, deep));
  assert.equal(packetClass, PacketClass.Malformed);
  assert.equal(packet.reason, "vlan tag stack too deep");

  const decoder = new PacketDecoder({ maxVlanTags: 16 });
  assert.equal(decoder.decode(record(1, ethernet(0x0800, ipv4Packet, deep))), PacketClass.Decoded);
  assert.equal(decoder.packet.vlanCount, 9);

  const frame = ethernet(0x0800, ipv4Packet, [[0x8100, 5]]);
  const cut = new PacketDecoder();
  assert.equal(cut.decode(record(1, frame, { caplen: 16 })), PacketClass.Truncated);
  assert.equal(cut.packet.reason, "vlan tag truncated");
});

test("non-IP ethernet frames: ARP, LLDP, 802.3 length frames", () => {
  assert.equal(decode(1, ethernet(0x0806, Buffer.alloc(28))).packetClass, PacketClass.NonIp);
  assert.equal(decode(1, ethernet(0x88cc, Buffer.alloc(30))).packetClass, PacketClass.NonIp);
  // 802.3 with LLC/SNAP carrying an IP EtherType is still not IP to Linux.
  const snap = [0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00, ...ipv4Packet];
  assert.equal(decode(1, ethernet(snap.length, snap)).packetClass, PacketClass.NonIp);
  assert.equal(
    decode(1, ethernet(0x8100, [0, 5, 0x08, 0x06, ...Buffer.alloc(28)])).packetClass,
    PacketClass.NonIp,
  );
});

test("short ethernet frames", () => {
  const cut = decode(1, Buffer.alloc(10));
  assert.equal(cut.packetClass, PacketClass.Malformed);
  assert.equal(cut.packet.reason, "frame shorter than an ethernet header");
  const decoder = new PacketDecoder();
  assert.equal(
    decoder.decode(record(1, ethernet(0x0800, ipv4Packet), { caplen: 10 })),
    PacketClass.Truncated,
  );
  assert.equal(decoder.packet.reason, "ethernet header truncated");
});

test("Linux SLL: packet type and protocol", () => {
  const { packetClass, packet } = decode(113, sll(4, 0x0800, ipv4Packet));
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.sllPacketType, 4);
  assert.equal(packet.sllIfIndex, -1);
  assert.equal(packet.l3Offset, 3 + 16);
  assert.equal(packet.dstPort, 443);
  assert.equal(decode(113, sll(0, 0x0806, Buffer.alloc(28))).packetClass, PacketClass.NonIp);
  // ETH_P_802_2 (4): LLC frames.
  assert.equal(decode(113, sll(0, 4, Buffer.alloc(28))).packetClass, PacketClass.NonIp);
  const vlan = decode(113, sll(0, 0x8100, [0, 42, 0x86, 0xdd, ...ipv6Packet]));
  assert.equal(vlan.packetClass, PacketClass.Decoded);
  assert.equal(vlan.packet.vlanIds[0], 42);
  assert.equal(vlan.packet.ipVersion, 6);
});

test("Linux SLL2: interface index, packet type, protocol", () => {
  const { packetClass, packet } = decode(276, sll2(3, 0x86dd, 7, ipv6Packet));
  assert.equal(packetClass, PacketClass.Decoded);
  assert.equal(packet.sllPacketType, 3);
  assert.equal(packet.sllIfIndex, 7);
  assert.equal(packet.l3Offset, 3 + 20);
  assert.equal(packet.dstPort, 53);
  const short = decode(276, Buffer.alloc(12));
  assert.equal(short.packetClass, PacketClass.Malformed);
  assert.equal(short.packet.reason, "frame shorter than a linux sll2 header");
});

test("raw IP link types: the version nibble decides", () => {
  for (const linkType of [101, 12, 14]) {
    assert.equal(decode(linkType, ipv4Packet).packet.ipVersion, 4);
    assert.equal(decode(linkType, ipv6Packet).packet.ipVersion, 6);
    assert.equal(decode(linkType, ipv6Packet).packet.l3Offset, 3);
  }
  const bad = decode(101, Buffer.from([0x50, 0, 0, 0]));
  assert.equal(bad.packetClass, PacketClass.Malformed);
  assert.equal(bad.packet.reason, "raw ip version is neither 4 nor 6");
  assert.equal(decode(228, ipv4Packet).packet.srcPort, 40000);
  assert.equal(decode(229, ipv6Packet).packet.srcPort, 5353);
  // LINKTYPE_IPV4 trusts the link: an IPv6 packet there is a malformed IPv4 header.
  const wrong = decode(228, ipv6Packet);
  assert.equal(wrong.packetClass, PacketClass.Malformed);
  assert.equal(wrong.packet.reason, "ipv4 version is not 4");
});

test("BSD NULL in either byte order and LOOP in network order", () => {
  assert.equal(decode(0, loopback(2, true, ipv4Packet)).packet.ipVersion, 4);
  assert.equal(decode(0, loopback(2, false, ipv4Packet)).packet.ipVersion, 4);
  for (const family of [10, 24, 28, 30]) {
    const le = decode(0, loopback(family, true, ipv6Packet));
    assert.equal(le.packetClass, PacketClass.Decoded);
    assert.equal(le.packet.ipVersion, 6);
    assert.equal(decode(0, loopback(family, false, ipv6Packet)).packet.ipVersion, 6);
    assert.equal(decode(108, loopback(family, false, ipv6Packet)).packet.ipVersion, 6);
  }
  assert.equal(decode(108, loopback(2, false, ipv4Packet)).packet.l3Offset, 3 + 4);
  assert.equal(decode(0, loopback(7, true, ipv4Packet)).packetClass, PacketClass.NonIp);
});

test("unsupported link types", () => {
  for (const linkType of [9, 105, 127, 239, 1000]) {
    assert.equal(decode(linkType, ipv4Packet).packetClass, PacketClass.UnsupportedLink);
  }
});

test("stats count classes and reasons", () => {
  const decoder = new PacketDecoder();
  decoder.decode(record(1, ethernet(0x0800, ipv4Packet)));
  decoder.decode(record(1, ethernet(0x0806, Buffer.alloc(28))));
  decoder.decode(record(1, Buffer.alloc(5)));
  decoder.decode(record(1, Buffer.alloc(5)));
  decoder.decode(record(147, ipv4Packet));
  assert.deepEqual([...decoder.stats.classes], [1, 0, 1, 1, 0, 2]);
  assert.equal(decoder.stats.reasons.get("frame shorter than an ethernet header"), 2);
  const json = decoder.stats.toJSON() as { records: number; classes: Record<string, number> };
  assert.equal(json.records, 5);
  assert.equal(json.classes["non-ip"], 1);
});
