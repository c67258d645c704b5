/** Hand-built FTP/TFTP conversations for the helper and expectation tests. */
import { DecodedPacket } from "../../lib/decode/packet.js";
import { ConntrackEngine, type EngineOptions, type PacketVerdict } from "../../lib/conntrack/engine.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { formatExpectEvent } from "../../lib/report/expect-text.js";
import { makeTcp, makeUdp } from "./conntrack-fixtures.js";

/** Puts `payload` into the packet's buffer as the decoder would (payload at `payloadOffset`). */
export function withPayload(packet: DecodedPacket, payload: Buffer | string): DecodedPacket {
  const bytes = typeof payload === "string" ? Buffer.from(payload, "latin1") : payload;
  const padding = 7;
  packet.buf = Buffer.concat([Buffer.alloc(padding, 0xee), bytes, Buffer.alloc(3, 0xee)]);
  packet.payloadOffset = padding;
  packet.payloadLength = bytes.length;
  packet.payloadCaptured = bytes.length;
  return packet;
}

/**
 * An engine whose connection and expectation events go, formatted without the timestamp prefix,
 * into one ordered list (`ct: …` and `exp: …`), so tests can check their interleaving.
 */
export function helperEngine(options: EngineOptions = {}): { engine: ConntrackEngine; log: string[] } {
  const log: string[] = [];
  const engine = new ConntrackEngine({
    ...options,
    onEvent: (event) => log.push(`ct: ${formatConntrackEvent(event, { timestamp: false })}`),
    onExpectEvent: (event) =>
      log.push(`exp: ${formatExpectEvent(event, { timestamp: false })} <${event.cause}>`),
  });
  return { engine, log };
}

/** A TCP conversation with consistent sequence numbers, driven one segment at a time. */
export class TcpConversation {
  clientSeq = 1000;
  serverSeq = 50000;
  constructor(
    readonly engine: ConntrackEngine,
    readonly client: string,
    readonly server: string,
    readonly clientPort: number,
    readonly serverPort: number,
    public time = 100,
  ) {}

  private step(): number {
    this.time += 0.001;
    return this.time;
  }

  handshake(): PacketVerdict[] {
    const { client, server, clientPort, serverPort } = this;
    const verdicts: PacketVerdict[] = [];
    const syn = makeTcp({
      src: client,
      dst: server,
      sport: clientPort,
      dport: serverPort,
      flags: "S",
      seq: this.clientSeq,
      ts: this.step(),
    });
    verdicts.push(this.engine.process(syn));
    this.clientSeq++;
    const synAck = makeTcp({
      src: server,
      dst: client,
      sport: serverPort,
      dport: clientPort,
      flags: "SA",
      seq: this.serverSeq,
      ack: this.clientSeq,
      ts: this.step(),
    });
    verdicts.push(this.engine.process(synAck));
    this.serverSeq++;
    const ack = makeTcp({
      src: client,
      dst: server,
      sport: clientPort,
      dport: serverPort,
      flags: "A",
      seq: this.clientSeq,
      ack: this.serverSeq,
      ts: this.step(),
    });
    verdicts.push(this.engine.process(ack));
    return verdicts;
  }

  /** The client sends `payload`; `seq` overrides the sequence number (retransmissions). */
  fromClient(payload: Buffer | string, seq?: number, advance = true): PacketVerdict {
    const length = typeof payload === "string" ? payload.length : payload.length;
    const packet = makeTcp({
      src: this.client,
      dst: this.server,
      sport: this.clientPort,
      dport: this.serverPort,
      flags: "PA",
      seq: seq ?? this.clientSeq,
      ack: this.serverSeq,
      len: length,
      ts: this.step(),
    });
    withPayload(packet, payload);
    const verdict = this.engine.process(packet);
    if (seq === undefined && advance) this.clientSeq = (this.clientSeq + length) >>> 0;
    return verdict;
  }

  fromServer(payload: Buffer | string, seq?: number, advance = true): PacketVerdict {
    const length = payload.length;
    const packet = makeTcp({
      src: this.server,
      dst: this.client,
      sport: this.serverPort,
      dport: this.clientPort,
      flags: "PA",
      seq: seq ?? this.serverSeq,
      ack: this.clientSeq,
      len: length,
      ts: this.step(),
    });
    withPayload(packet, payload);
    const verdict = this.engine.process(packet);
    if (seq === undefined && advance) this.serverSeq = (this.serverSeq + length) >>> 0;
    return verdict;
  }

  /** Banner and USER: each direction's first data segment, which the FTP helper never parses. */
  login(): void {
    this.fromServer("220 ready\r\n");
    this.fromClient("USER anonymous\r\n");
    this.fromServer("331 password please\r\n");
  }
}

export function tftpRequest(
  client: string,
  server: string,
  clientPort: number,
  opcode: number,
  ts: number,
  serverPort = 69,
): DecodedPacket {
  const payload = Buffer.concat([Buffer.from([0, opcode]), Buffer.from("boot.img\0octet\0", "latin1")]);
  const packet = makeUdp({
    src: client,
    dst: server,
    sport: clientPort,
    dport: serverPort,
    len: payload.length,
    ts,
  });
  return withPayload(packet, payload);
}

export function udpPacket(
  src: string,
  dst: string,
  sport: number,
  dport: number,
  payload: Buffer,
  ts: number,
): DecodedPacket {
  const packet = makeUdp({ src, dst, sport, dport, len: payload.length, ts });
  return withPayload(packet, payload);
}
