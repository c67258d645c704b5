/**
 * The TFTP helper as nf_conntrack_tftp.c behaves: a read or write request (opcode 1 or 2), in any
 * packet of the connection including the one that creates it, expects the server's answer from a
 * fresh port back to the client's port.
 */
import { IPPROTO_UDP, type DecodedPacket } from "../../decode/packet.js";
import type { Connection } from "../connection.js";
import {
  ExpectError,
  ExpectRequest,
  HelperVerdict,
  type ConntrackHelper,
  type ExpectPolicy,
  type HelperHost,
  type HelperVerdictValue,
} from "./helper.js";

const TFTP_OPCODE_READ = 1;
const TFTP_OPCODE_WRITE = 2;

export class TftpHelper implements ConntrackHelper {
  readonly name = "tftp";
  readonly protocol = IPPROTO_UDP;
  readonly defaultPorts: readonly number[];
  readonly policy: ExpectPolicy = { maxExpected: 1, timeout: 300 };
  private readonly request = new ExpectRequest();

  constructor(options: { ports?: readonly number[] } = {}) {
    this.defaultPorts = options.ports ?? [69];
  }

  help(
    connection: Connection,
    _direction: number,
    _established: boolean,
    packet: DecodedPacket,
    host: HelperHost,
  ): HelperVerdictValue {
    const stats = host.helperStats;
    if (packet.payloadLength < 2) return HelperVerdict.Accept;
    stats.packets++;
    if (packet.payloadCaptured < 2) {
      stats.payloadNotCaptured++;
      return HelperVerdict.Accept;
    }
    const opcode = packet.buf.readUInt16BE(packet.payloadOffset);
    if (opcode !== TFTP_OPCODE_READ && opcode !== TFTP_OPCODE_WRITE) return HelperVerdict.Accept;
    stats.commands++;
    // The answer comes from the server's address (any port) to the client's address and port.
    const reply = connection.reply;
    const request = this.request;
    request.reset(IPPROTO_UDP, reply);
    request.dstPort = reply.dstPort;
    // nf_nat_tftp: the answer is translated back to the client's own port.
    request.natSavedPort = connection.original.srcPort;
    if (host.expectRelated(connection, request) !== ExpectError.None) {
      stats.refusedDrops++;
      return HelperVerdict.Drop;
    }
    return HelperVerdict.Accept;
  }
}
