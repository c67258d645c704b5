/**
 * The packet decoder: one reused DecodedPacket, filled straight from the record's bytes, one
 * PacketClass per record (gopacket's DecodingLayerParser and smoltcp's wire module are the models).
 */
import type { CaptureRecord } from "../capture/source.js";
import { Defragmenter, FragmentOutcome, type DefragmenterOptions } from "./defrag.js";
import { decodeIpv4Header } from "./ipv4.js";
import { decodeIpv6Header, Ipv6HeaderWalk, type Ipv6ExtensionHeaderSet } from "./ipv6.js";
import { CONTINUE, decodeLink, DEFAULT_MAX_VLAN_TAGS, ETHERTYPE_IPV4, malformed } from "./link.js";
import {
  DecodedPacket,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  PACKET_CLASS_NAMES,
  PacketClass,
} from "./packet.js";
import { decodeTransport } from "./transport.js";

export interface DecoderOptions extends DefragmenterOptions {
  /** Reassemble IP fragments (default true); when false every fragment is classed Fragment. */
  reassemble?: boolean;
  /** VLAN tags walked before a frame is Malformed (default 8). */
  maxVlanTags?: number;
  /** IPv6 extension headers walked (default "kernel": what conntrack's ipv6_skip_exthdr walks). */
  ipv6ExtensionHeaders?: Ipv6ExtensionHeaderSet;
}

export class DecoderStats {
  /** Records per PacketClass, indexed by the class. */
  readonly classes = new Float64Array(PACKET_CLASS_NAMES.length);
  /** Malformed and Truncated records by their reason. */
  readonly reasons = new Map<string, number>();
  /** TCP options with an impossible length (walk stopped) or the wrong size for their kind (skipped). */
  tcpOptionErrors = 0;
  /** TCP headers whose options the capture cut short. */
  tcpOptionsCut = 0;
  /** ICMP errors whose quoted packet could not be decoded. */
  embeddedUnusable = 0;
  ipv4ChecksumErrors = 0;
  /** IPv4 total length 0 / IPv6 payload length 0 taken as the frame's length (TSO, BIG TCP captures). */
  ipv4ZeroTotalLength = 0;
  ipv6ZeroPayloadLength = 0;

  constructor(readonly defrag: Defragmenter["stats"]) {}

  get records(): number {
    let total = 0;
    for (const n of this.classes) total += n;
    return total;
  }

  toJSON(): Record<string, unknown> {
    const classes: Record<string, number> = {};
    PACKET_CLASS_NAMES.forEach((name, index) => (classes[name] = this.classes[index]));
    return {
      records: this.records,
      classes,
      reasons: Object.fromEntries([...this.reasons].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
      tcpOptionErrors: this.tcpOptionErrors,
      tcpOptionsCut: this.tcpOptionsCut,
      embeddedUnusable: this.embeddedUnusable,
      ipv4ChecksumErrors: this.ipv4ChecksumErrors,
      ipv4ZeroTotalLength: this.ipv4ZeroTotalLength,
      ipv6ZeroPayloadLength: this.ipv6ZeroPayloadLength,
      fragments: this.defrag.toJSON(),
    };
  }
}

export class PacketDecoder {
  readonly packet = new DecodedPacket();
  readonly stats: DecoderStats;
  readonly defragmenter: Defragmenter;

  private readonly reassemble: boolean;
  private readonly maxVlanTags: number;
  private readonly walkIana: boolean;
  private readonly walk = new Ipv6HeaderWalk();
  private readonly innerWalk = new Ipv6HeaderWalk();
  /** Whether bytes 4..15 of packet.src/dst may hold an earlier IPv6 address (cleared for IPv4). */
  private addressTailDirty = false;

  constructor(options: DecoderOptions = {}) {
    this.defragmenter = new Defragmenter(options);
    this.stats = new DecoderStats(this.defragmenter.stats);
    this.reassemble = options.reassemble ?? true;
    this.maxVlanTags = options.maxVlanTags ?? DEFAULT_MAX_VLAN_TAGS;
    this.walkIana = options.ipv6ExtensionHeaders === "iana";
  }

  decode(record: CaptureRecord): PacketClass {
    const packet = this.packet;
    const buf = record.data;
    resetPacket(packet);
    packet.recordNumber = record.recordNumber;
    packet.inputIndex = record.inputIndex;
    packet.interfaceId = record.interfaceId;
    packet.tsSec = record.tsSec;
    packet.tsNsec = record.tsNsec;
    packet.linkType = record.linkType;
    packet.buf = buf;

    if (this.defragmenter.queueCount > 0) this.defragmenter.expire(record.tsSec + record.tsNsec / 1e9);

    const start = record.offset;
    let capturedEnd = start + record.caplen;
    if (capturedEnd > buf.length) capturedEnd = buf.length;
    const wireEnd = start + (record.origlen > record.caplen ? record.origlen : record.caplen);

    let result = decodeLink(packet, buf, record.linkType, start, capturedEnd, wireEnd, this.maxVlanTags);
    if (result === CONTINUE)
      result = this.decodeNetwork(packet, buf, packet.l3Offset, capturedEnd, wireEnd, record);
    const packetClass = (result === CONTINUE ? PacketClass.Decoded : result) as PacketClass;

    const stats = this.stats;
    stats.classes[packetClass]++;
    if (packetClass === PacketClass.Malformed || packetClass === PacketClass.Truncated) {
      const reasons = stats.reasons;
      reasons.set(packet.reason, (reasons.get(packet.reason) ?? 0) + 1);
    }
    return packetClass;
  }

  /** Drops fragments still waiting for their datagram (call at the end of the input to settle the counters). */
  finish(): void {
    this.defragmenter.expireAll();
  }

  private decodeNetwork(
    packet: DecodedPacket,
    buf: Buffer,
    offset: number,
    capturedEnd: number,
    wireEnd: number,
    record: CaptureRecord,
  ): number {
    if (packet.etherType === ETHERTYPE_IPV4) {
      if (this.addressTailDirty) clearAddressTails(packet);
      this.addressTailDirty = false;
      const result = decodeIpv4Header(packet, buf, offset, capturedEnd, wireEnd, this.stats);
      if (result !== CONTINUE) return result;
      if (packet.moreFragments || packet.fragmentOffset !== 0) {
        if (!this.reassemble) return PacketClass.Fragment;
        // ip_rcv_core() drops a header with a bad checksum before netfilter's defragmenter sees it.
        if (!packet.ipChecksumValid) return malformed(packet, "ipv4 fragment header checksum invalid");
        const outcome = this.defragmenter.addIpv4(packet, buf, record.tsSec + record.tsNsec / 1e9);
        if (outcome === FragmentOutcome.Consumed) return PacketClass.Fragment;
        if (outcome === FragmentOutcome.Malformed) return PacketClass.Malformed;
        return this.decodeReassembledIpv4(packet);
      }
      return this.decodeTransportOf(packet, buf);
    }

    this.addressTailDirty = true;
    const walk = this.walk;
    const result = decodeIpv6Header(
      packet,
      buf,
      offset,
      capturedEnd,
      wireEnd,
      walk,
      this.walkIana,
      this.stats,
    );
    if (result !== CONTINUE) return result;
    if (walk.fragment.offset >= 0) {
      if (!this.reassemble) return PacketClass.Fragment;
      if (!walk.stoppedAtFragment && this.firstFragmentLacksTransport(packet)) {
        return malformed(packet, "ipv6 first fragment lacks the transport header");
      }
      const outcome = this.defragmenter.addIpv6(
        packet,
        buf,
        walk.fragment,
        record.tsSec + record.tsNsec / 1e9,
      );
      if (outcome === FragmentOutcome.Consumed) return PacketClass.Fragment;
      if (outcome === FragmentOutcome.Malformed) return PacketClass.Malformed;
      return this.decodeReassembledIpv6(packet);
    }
    return this.decodeTransportOf(packet, buf);
  }

  /** RFC 8200 §4.5 / ipv6frag_thdr_truncated(): a first fragment must hold the upper-layer header. */
  private firstFragmentLacksTransport(packet: DecodedPacket): boolean {
    const need =
      packet.protocol === IPPROTO_TCP
        ? 20
        : packet.protocol === IPPROTO_UDP || packet.protocol === IPPROTO_ICMPV6
          ? 8
          : 1;
    return packet.ipHeaderLength + need > packet.ipLength;
  }

  private decodeReassembledIpv4(packet: DecodedPacket): number {
    const defrag = this.defragmenter;
    const out = defrag.output;
    packet.buf = out;
    const result = decodeIpv4Header(
      packet,
      out,
      0,
      defrag.outputCapturedEnd,
      defrag.outputLength,
      this.stats,
    );
    packet.reassembled = true;
    if (result !== CONTINUE) return result;
    return this.decodeTransportOf(packet, out);
  }

  private decodeReassembledIpv6(packet: DecodedPacket): number {
    const defrag = this.defragmenter;
    const out = defrag.output;
    const id = packet.ipId;
    packet.buf = out;
    const walk = this.walk;
    const result = decodeIpv6Header(
      packet,
      out,
      0,
      defrag.outputCapturedEnd,
      defrag.outputLength,
      walk,
      this.walkIana,
      this.stats,
    );
    packet.reassembled = true;
    packet.ipId = id;
    packet.fragmentOffset = 0;
    packet.moreFragments = false;
    if (result !== CONTINUE) return result;
    if (walk.fragment.offset >= 0) return malformed(packet, "ipv6 nested fragment header");
    return this.decodeTransportOf(packet, out);
  }

  private decodeTransportOf(packet: DecodedPacket, buf: Buffer): number {
    const l4Offset = packet.l3Offset + packet.ipHeaderLength;
    const end = packet.l3Offset + packet.ipLength;
    return decodeTransport(
      packet,
      buf,
      l4Offset,
      packet.capturedEnd,
      end,
      this.stats,
      this.innerWalk,
      this.walkIana,
    );
  }
}

function clearAddressTails(packet: DecodedPacket): void {
  const src = packet.src;
  const dst = packet.dst;
  for (let i = 4; i < 16; i++) {
    src[i] = 0;
    dst[i] = 0;
  }
}

/** Clears what a previous packet may have left in fields this one might not reach. */
function resetPacket(packet: DecodedPacket): void {
  packet.reason = "";
  packet.etherType = 0;
  packet.vlanCount = 0;
  packet.sllPacketType = -1;
  packet.sllIfIndex = -1;
  packet.ipVersion = 0;
  packet.l3Offset = 0;
  packet.ipLength = 0;
  packet.ipHeaderLength = 0;
  packet.protocol = 0;
  packet.ipId = 0;
  packet.flowLabel = 0;
  packet.dontFragment = false;
  packet.reassembled = false;
  packet.fragmentOffset = 0;
  packet.moreFragments = false;
  packet.ipChecksumValid = true;
  packet.l4Offset = 0;
  packet.l4Length = 0;
  packet.hasPorts = false;
  packet.srcPort = 0;
  packet.dstPort = 0;
  packet.l4Checksum = 0;
  packet.payloadOffset = 0;
  packet.payloadCaptured = 0;
  packet.payloadLength = 0;
  packet.udpLength = 0;
  packet.icmpType = 0;
  packet.icmpCode = 0;
  packet.icmpId = 0;
  packet.icmpSeq = 0;
  packet.embedded.present = false;
  packet.greVersion = 0;
  packet.greProtocol = 0;
  packet.greHasKey = false;
  packet.greKey = 0;
}
