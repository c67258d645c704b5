import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection, Tuple } from "../../lib/conntrack/connection.js";
import { ConnectionTable, ExpiryHeap } from "../../lib/conntrack/table.js";

function v6Tuple(src: number[], dst: number[], srcPort: number, dstPort: number): Tuple {
  const tuple = new Tuple();
  tuple.setAddresses(6, 0, 0, Uint8Array.from(src), Uint8Array.from(dst));
  tuple.protocol = 6;
  tuple.srcPort = srcPort;
  tuple.dstPort = dstPort;
  return tuple;
}

test("plain connections carry no side object: writing null to a rare field makes none", () => {
  const connection = new Connection();
  connection.helper = null;
  connection.seqAdjust = null;
  connection.natAlias = null;
  assert.equal(connection.extras, null);
  connection.helper = "ftp";
  assert.notEqual(connection.extras, null);
  assert.equal(connection.helper, "ftp");
  assert.equal(connection.master, null);
});

test("the table tells IPv6 tuples apart by words 1 to 3 and finds them from either side", () => {
  const table = new ConnectionTable();
  const heap = new ExpiryHeap();
  const connections: Connection[] = [];
  // More than the initial slots: the by-slot arrays grow (by half) while entries are in them.
  for (let i = 0; i < 2000; i++) {
    const connection = new Connection();
    connection.id = i + 1;
    const src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i >> 8, i & 0xff];
    const dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, i & 1, 0, 0, 0, 0, 0, 0, 1];
    connection.original.copyFrom(v6Tuple(src, dst, 40000, 443));
    connection.reply.copyFrom(v6Tuple(dst, src, 443, 40000));
    connection.expiresAt = 1000 + i;
    table.insert(connection);
    heap.push(connection);
    connections.push(connection);
  }
  for (const connection of connections) {
    const original = table.findNode(connection.original, connection.original.hash());
    const reply = table.findNode(connection.reply, connection.reply.hash());
    assert.equal(table.connectionOf(original), connection);
    assert.equal(table.connectionOf(reply), connection);
    assert.equal(reply, original + 1);
    assert.equal(connection.expiresAt, 1000 + connection.id - 1);
  }
  const other = new Tuple();
  other.copyFrom(connections[2].original);
  other.dstWord2 = 0x01000000;
  assert.equal(table.findNode(other, other.hash()), -1);
  assert.equal(heap.popExpired(1000), connections[0]);
});
