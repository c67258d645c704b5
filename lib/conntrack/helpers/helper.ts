/**
 * The contract between the engine and a conntrack helper (the kernel's `struct nf_conntrack_helper`):
 * a helper is attached to a connection when it is created, sees that connection's packets at the
 * confirm hook, and may register expectations for related connections or drop the packet.
 */
import type { DecodedPacket } from "../../decode/packet.js";
import type { Connection, Tuple } from "../connection.js";

/** What a helper decided about a packet. */
export const HelperVerdict = {
  Accept: 0,
  /** The kernel's NF_DROP: the packet goes no further and its cached events stay cached. */
  Drop: 1,
} as const;
export type HelperVerdictValue = (typeof HelperVerdict)[keyof typeof HelperVerdict];

/** The helper's expectation policy (`struct nf_conntrack_expect_policy`) for expectation class 0. */
export interface ExpectPolicy {
  /** Most live expectations one master may hold in this class; the oldest is evicted beyond it. */
  maxExpected: number;
  /** Seconds an expectation lives unless a connection uses it first. */
  timeout: number;
}

/** Why an expectation could not be registered (the kernel's errno), 0 on success. */
export const ExpectError = {
  None: 0,
  /** An identical expectation of another class from the same master exists (-EALREADY). */
  Already: 1,
  /** It overlaps an expectation from another master (-EBUSY). */
  Busy: 2,
  /** The expectation table is full, or the master's quota could not be freed (-EMFILE). */
  TableFull: 3,
} as const;

/**
 * An expectation a helper asks for, filled in place (one reused instance, no allocation per
 * packet). Addresses are four 32-bit words as in `Tuple` (IPv4 in word 0).
 */
export class ExpectRequest {
  family = 4;
  protocol = 0;
  /** False: any source address matches (mask 0). */
  srcAddressExact = true;
  src0 = 0;
  src1 = 0;
  src2 = 0;
  src3 = 0;
  dst0 = 0;
  dst1 = 0;
  dst2 = 0;
  dst3 = 0;
  /** -1: any source port matches (mask 0). */
  srcPort = -1;
  dstPort = 0;
  expectClass = 0;
  /**
   * Under NAT, the port the expected connection is translated to on the master's other side (the
   * NAT helper's `exp->saved_proto`); -1: `dstPort` (FTP's PORT/227 port).
   */
  natSavedPort = -1;
  /**
   * Under NAT, a clash with another master's expectation moves it to another port
   * (`nf_nat_exp_find_port`, as nf_nat_ftp does; nf_nat_tftp does not); the engine leaves the port
   * it took in `dstPort`.
   */
  natFindPort = false;

  /**
   * Starts a request between the addresses of `between` (its source → its destination): exact source
   * address, any source port, class 0, no NAT port; the caller sets the destination port.
   */
  reset(protocol: number, between: Tuple): void {
    this.family = between.family;
    this.protocol = protocol;
    this.srcAddressExact = true;
    this.src0 = between.src0;
    this.src1 = between.src1;
    this.src2 = between.src2;
    this.src3 = between.src3;
    this.dst0 = between.dst0;
    this.dst1 = between.dst1;
    this.dst2 = between.dst2;
    this.dst3 = between.dst3;
    this.srcPort = -1;
    this.expectClass = 0;
    this.natSavedPort = -1;
    this.natFindPort = false;
  }
}

/** What a helper may ask of the engine while it looks at a packet. */
export interface HelperHost {
  /** `nf_ct_expect_related`: registers `request` for `master`; returns an `ExpectError` value. */
  expectRelated(master: Connection, request: ExpectRequest): number;
  /**
   * `nf_ct_seqadj_set`: a NAT helper rewrote the data of the packet at hand, which starts at `seq`
   * in `direction`, changing its length by `delta` bytes.
   */
  adjustSequence(connection: Connection, direction: number, seq: number, delta: number): void;
  /** Counters of what helpers saw and did. */
  readonly helperStats: HelperStats;
}

/** Helper counters: attacker-controlled input is never silently ignored. */
export interface HelperStats {
  /** Packets handed to a helper. */
  packets: number;
  /** Commands or replies parsed into an address and port (PORT, EPRT, 227, 229, TFTP RRQ/WRQ). */
  commands: number;
  /** FTP segments not looked into because they do not start right after a remembered line end. */
  outOfSequence: number;
  /** Segments that are a prefix of a command (split across segments): the kernel drops them. */
  partialDrops: number;
  /** Commands whose address or port does not parse: the kernel drops them too. */
  malformedDrops: number;
  /** Announced address differs from the announcer's (no expectation unless ftp `loose`). */
  addressMismatch: number;
  /** Expectations that could not be registered: the kernel drops the packet. */
  refusedDrops: number;
  /** Payload bytes the capture did not keep (snaplen): the helper could not read the segment. */
  payloadNotCaptured: number;
  /** Under NAT: commands and replies the NAT helper rewrote (nf_nat_ftp), and of those, resized. */
  natRewrites: number;
  natResized: number;
}

export function newHelperStats(): HelperStats {
  return {
    packets: 0,
    commands: 0,
    outOfSequence: 0,
    partialDrops: 0,
    malformedDrops: 0,
    addressMismatch: 0,
    refusedDrops: 0,
    payloadNotCaptured: 0,
    natRewrites: 0,
    natResized: 0,
  };
}

export interface ConntrackHelper {
  /** Name as `helper=` prints it. */
  readonly name: string;
  /** Transport protocol the helper is registered for. */
  readonly protocol: number;
  /** Ports its `CT --helper` rules match by default (destination port of a connection's first packet). */
  readonly defaultPorts: readonly number[];
  readonly policy: ExpectPolicy;
  /**
   * Looks at one packet of a connection this helper is attached to, after the protocol tracker
   * accepted it (including the packet that creates the connection). `established` is the kernel's
   * ctinfo ESTABLISHED / ESTABLISHED_REPLY: the packet goes the reply way, or a reply was seen before it.
   */
  help(
    connection: Connection,
    direction: number,
    established: boolean,
    packet: DecodedPacket,
    host: HelperHost,
  ): HelperVerdictValue;
}
