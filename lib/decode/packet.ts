/**
 * The decoder's output: one reused structure per decoder, overwritten by every packet, so decoding
 * allocates nothing per packet (gopacket's DecodingLayerParser is the model). Numbers, not objects:
 * addresses are kept as bytes in fixed arrays plus, for IPv4, as a 32-bit number.
 */

/** Exactly one of these classes is given to every record read (the accounting adds up). */
export const enum PacketClass {
  /** An IP packet (or a datagram reassembled from fragments) decoded down to its transport header. */
  Decoded = 0,
  /** A fragment taken into reassembly; the datagram, once whole, is reported with its last fragment. */
  Fragment = 1,
  /** A link-layer frame that carries no IP (ARP, LLDP, STP …). */
  NonIp = 2,
  /** A link type this tool does not decode. */
  UnsupportedLink = 3,
  /** The capture holds fewer bytes than the headers need (snaplen or a cut file). */
  Truncated = 4,
  /** Headers that contradict themselves or the record; `malformedReason` says how. */
  Malformed = 5,
}

export const PACKET_CLASS_NAMES = [
  "decoded",
  "fragment",
  "non-ip",
  "unsupported-link",
  "truncated",
  "malformed",
] as const;
export type PacketClassName = (typeof PACKET_CLASS_NAMES)[number];

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_GRE = 47;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** Most SACK blocks a TCP header can carry (40 option bytes). */
export const MAX_SACK_BLOCKS = 4;
/** Most VLAN tags kept; deeper stacks are still walked but only the outer ones are kept. */
export const MAX_VLAN_TAGS = 4;

/** The header of the packet that an ICMP/ICMPv6 error quotes (what conntrack relates the error to). */
export class EmbeddedPacket {
  /** False when the error carried no usable inner header. */
  present = false;
  /** 4 or 6. */
  ipVersion = 0;
  src = new Uint8Array(16);
  dst = new Uint8Array(16);
  srcV4 = 0;
  dstV4 = 0;
  protocol = 0;
  /** Whether the quoted bytes reached the transport ports (or ICMP type/code/id). */
  hasPorts = false;
  srcPort = 0;
  dstPort = 0;
  icmpType = 0;
  icmpCode = 0;
  icmpId = 0;
  /** Inner IP total length as the quoted header states it. */
  totalLength = 0;
}

export class DecodedPacket {
  // ---- capture ----
  /** Record number within its input and input index, copied from the record for messages. */
  recordNumber = 0;
  inputIndex = 0;
  interfaceId = 0;
  tsSec = 0;
  tsNsec = 0;

  // ---- link ----
  linkType = 0;
  /** EtherType (or SLL protocol) of the network layer. */
  etherType = 0;
  vlanCount = 0;
  vlanIds = new Uint16Array(MAX_VLAN_TAGS);
  /** SLL/SLL2 packet type (0 to us, 4 sent by us …), -1 when the link has none. */
  sllPacketType = -1;
  /** SLL2 interface index, -1 when the link has none. */
  sllIfIndex = -1;

  // ---- network ----
  /** Buffer the network-layer offsets below refer to: the record's, or the reassembly buffer. */
  buf: Buffer = Buffer.alloc(0);
  ipVersion = 0;
  l3Offset = 0;
  /** Bytes of the IP packet as the kernel's accounting counts them (IPv4 total length, IPv6 40 + payload length). */
  ipLength = 0;
  /** IPv4 header length or IPv6 40 + extension headers: where the transport header starts, from l3Offset. */
  ipHeaderLength = 0;
  src = new Uint8Array(16);
  dst = new Uint8Array(16);
  /** IPv4 addresses as unsigned 32-bit numbers (0 for IPv6). */
  srcV4 = 0;
  dstV4 = 0;
  /** Transport protocol after IPv6 extension headers. */
  protocol = 0;
  ttl = 0;
  /** IPv4 identification, or the IPv6 fragment header's identification (0 if none). */
  ipId = 0;
  /** IPv6 flow label. */
  flowLabel = 0;
  tos = 0;
  dontFragment = false;
  /** True when this packet is a datagram the defragmenter put together. */
  reassembled = false;
  /** Fragment offset in bytes and the more-fragments flag (IPv4 header, or the IPv6 fragment header). */
  fragmentOffset = 0;
  moreFragments = false;
  /** End (exclusive) in `buf` of the captured bytes of the IP packet: never beyond l3Offset + ipLength. */
  capturedEnd = 0;
  /** IPv4 header checksum as recorded, and whether it verified (checksums are recorded, not required). */
  ipChecksum = 0;
  ipChecksumValid = true;

  // ---- transport ----
  l4Offset = 0;
  /** Bytes of the transport segment on the wire (from the IP length). */
  l4Length = 0;
  /** Whether ports (or ICMP type/code/id) were decoded. */
  hasPorts = false;
  srcPort = 0;
  dstPort = 0;
  l4Checksum = 0;

  /** Where the payload starts in `buf`, how many payload bytes are captured and how many were on the wire. */
  payloadOffset = 0;
  payloadCaptured = 0;
  payloadLength = 0;

  // TCP
  tcpSeq = 0;
  tcpAck = 0;
  tcpFlags = 0;
  tcpWindow = 0;
  tcpDataOffset = 0;
  tcpUrgent = 0;
  /** -1 when the option was absent. */
  tcpMss = -1;
  tcpWindowScale = -1;
  tcpSackPermitted = false;
  tcpSackCount = 0;
  /** Left and right edges, two entries per block. */
  tcpSackBlocks = new Uint32Array(MAX_SACK_BLOCKS * 2);
  tcpHasTimestamp = false;
  /** False when the capture cut the TCP options short (the options that were captured are decoded). */
  tcpOptionsComplete = true;
  tcpTsVal = 0;
  tcpTsEcr = 0;

  // UDP
  udpLength = 0;

  // ICMP / ICMPv6
  icmpType = 0;
  icmpCode = 0;
  /** Echo (and timestamp, information, address-mask) identifier and sequence. */
  icmpId = 0;
  icmpSeq = 0;
  /** The quoted packet of an ICMP error. */
  embedded = new EmbeddedPacket();

  // GRE
  greVersion = 0;
  greProtocol = 0;
  greHasKey = false;
  greKey = 0;

  /** Set when the class is Malformed or Truncated: a constant string naming what was wrong. */
  reason = "";
}
