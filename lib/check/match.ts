/** Whether a connection's record matches a policy entry's conditions. */
import { parseAddress, type AddressMatch, type NatAddress } from "../conntrack/nat/rules.js";
import type { FlowRecord } from "../report/flows.js";
import type { TupleRecord } from "../report/event-formats.js";
import type { Direction, EndpointExpectation, FlowMatch } from "./policy.js";

/** One direction of a connection as a rule sees it. */
export interface FlowView {
  protocol: number;
  src: NatAddress | null;
  dst: NatAddress | null;
  sport: number | null;
  dport: number | null;
}

/** The connection as its first packet arrived (the original tuple). */
export function originalView(record: FlowRecord): FlowView {
  const tuple = record.original;
  return {
    protocol: record.protocolNumber,
    src: parseAddress(tuple.src),
    dst: parseAddress(tuple.dst),
    sport: tuple.sport ?? null,
    dport: tuple.dport ?? null,
  };
}

/**
 * The connection as the filter table's FORWARD chain judges it: the source as sent, the destination
 * after any DNAT (the reply tuple's source), before SNAT. Without NAT it is the original tuple.
 */
export function forwardView(record: FlowRecord, original: FlowView = originalView(record)): FlowView {
  const reply = record.reply;
  return {
    ...original,
    // Without DNAT the reply's source is the original destination, parsed already.
    dst: reply.src === record.original.dst ? original.dst : parseAddress(reply.src),
    dport: reply.sport ?? null,
  };
}

export function addressMatches(match: AddressMatch, address: NatAddress | null): boolean {
  if (address === null || match.family !== address.family) return false;
  const hit =
    (address.w0 & match.mask[0]) >>> 0 === match.network[0] &&
    (address.w1 & match.mask[1]) >>> 0 === match.network[1] &&
    (address.w2 & match.mask[2]) >>> 0 === match.network[2] &&
    (address.w3 & match.mask[3]) >>> 0 === match.network[3];
  return hit !== match.negated;
}

function anyAddress(matches: readonly AddressMatch[], address: NatAddress | null): boolean {
  for (const match of matches) if (addressMatches(match, address)) return true;
  return false;
}

function inRanges(ranges: readonly [number, number][], port: number | null): boolean {
  if (port === null) return false;
  for (const [low, high] of ranges) if (port >= low && port <= high) return true;
  return false;
}

export function directionOf(view: FlowView, inside: readonly AddressMatch[]): Direction {
  const fromInside = anyAddress(inside, view.src);
  const toInside = anyAddress(inside, view.dst);
  return fromInside ? (toInside ? "internal" : "outbound") : toInside ? "inbound" : "external";
}

export function flowMatches(match: FlowMatch, view: FlowView, inside: readonly AddressMatch[]): boolean {
  if (match.protocols !== null && !match.protocols.includes(view.protocol)) return false;
  if (match.from !== null && !anyAddress(match.from, view.src)) return false;
  if (match.to !== null && !anyAddress(match.to, view.dst)) return false;
  if (match.ports !== null && !inRanges(match.ports, view.dport)) return false;
  if (match.fromPorts !== null && !inRanges(match.fromPorts, view.sport)) return false;
  if (match.direction !== null && directionOf(view, inside) !== match.direction) return false;
  return true;
}

/** Whether an address and port (of a reply tuple) are where a NAT expectation says. */
export function endpointMatches(
  expect: EndpointExpectation,
  address: string,
  port: number | undefined,
): boolean {
  if (!addressMatches(expect.address, parseAddress(address))) return false;
  if (expect.ports === null) return true;
  return port !== undefined && port >= expect.ports[0] && port <= expect.ports[1];
}

/** `10.1.2.3:80`, `[2001:db8::1]:80`, `10.1.2.3` (no ports) */
export function endpointText(address: string, port: number | undefined): string {
  if (port === undefined) return address;
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** `10.1.2.3:49954 > 203.0.113.47:8000`, ICMP with its id. */
export function tupleText(tuple: TupleRecord): string {
  const id = tuple.id !== undefined ? ` id ${tuple.id}` : "";
  return `${endpointText(tuple.src, tuple.sport)} > ${endpointText(tuple.dst, tuple.dport)}${id}`;
}
