export * from "./packet.js";
export { PacketDecoder, DecoderStats, type DecoderOptions } from "./decoder.js";
export {
  Defragmenter,
  DefragmenterStats,
  FragmentOutcome,
  type DefragmenterOptions,
  DEFAULT_IPV4_FRAGMENT_TIMEOUT,
  DEFAULT_IPV6_FRAGMENT_TIMEOUT,
  DEFAULT_FRAGMENT_MEMORY_LIMIT,
} from "./defrag.js";
export {
  verifyTransportChecksum,
  ipv4HeaderChecksumValid,
  computeIpv4HeaderChecksum,
  onesComplementSum,
  foldSum,
} from "./checksum.js";
export * from "./address.js";
export {
  LINKTYPE_NULL,
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  LINKTYPE_RAW_DLT12,
  LINKTYPE_RAW_DLT14,
  LINKTYPE_LOOP,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
} from "./link.js";
export { MAX_IPV6_EXTENSION_HEADERS, type Ipv6ExtensionHeaderSet } from "./ipv6.js";
