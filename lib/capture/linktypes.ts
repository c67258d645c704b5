/** Names of the link types users meet most, as tcpdump.org's registry spells them. */
const LINK_TYPE_NAMES: Record<number, string> = {
  0: "NULL",
  1: "ETHERNET",
  6: "IEEE802_5",
  8: "SLIP",
  9: "PPP",
  10: "FDDI",
  12: "RAW",
  14: "RAW",
  101: "RAW",
  104: "C_HDLC",
  105: "IEEE802_11",
  107: "FRELAY",
  108: "LOOP",
  113: "LINUX_SLL",
  119: "PRISM_HEADER",
  127: "IEEE802_11_RADIOTAP",
  141: "MTP3",
  143: "DOCSIS",
  147: "USER0",
  195: "IEEE802_15_4_WITHFCS",
  201: "BLUETOOTH_HCI_H4_WITH_PHDR",
  220: "USB_LINUX_MMAPPED",
  228: "IPV4",
  229: "IPV6",
  239: "NFLOG",
  249: "USBPCAP",
  276: "LINUX_SLL2",
};

export function linkTypeName(linkType: number): string {
  return LINK_TYPE_NAMES[linkType] ?? `LINKTYPE_${linkType}`;
}
