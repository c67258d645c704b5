/**
 * Community ID against the spec's published baseline (corelight/community-id-spec, baseline/README.md
 * tables: default seed, seed 1 and hex; baseline_deflt.json for real-capture port tuples).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isIPv4 } from "node:net";
import { communityId, tupleCommunityId } from "../../lib/report/community-id.js";
import { Tuple } from "../../lib/conntrack/connection.js";

function addressBytes(text: string): Uint8Array {
  if (isIPv4(text)) return Uint8Array.from(text.split(".").map(Number));
  const [head, tail = ""] = text.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const groups = text.includes("::")
    ? [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups]
    : headGroups;
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  return bytes;
}

const V4 = ["1.2.3.4", "5.6.7.8"] as const;
const V6 = ["fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D"] as const;

/** [protocol, src, dst, sport, dport, default, seed=1, hex] from the spec's README tables. */
const TABLE: [number, string, string, number, number, string, string, string][] = [
  [
    6,
    V4[0],
    V4[1],
    1122,
    3344,
    "wCb3OG7yAFWelaUydu0D+125CLM=",
    "HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
    "c026f7386ef200559e95a53276ed03fb5db908b3",
  ],
  [
    6,
    V4[1],
    V4[0],
    3344,
    1122,
    "wCb3OG7yAFWelaUydu0D+125CLM=",
    "HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
    "c026f7386ef200559e95a53276ed03fb5db908b3",
  ],
  [
    17,
    V4[0],
    V4[1],
    1122,
    3344,
    "0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
    "OShq+iKDAMVouh/4bMxB9Sz4amw=",
    "d0cbbd227431eb3e1988264cffb1d78b658c84e8",
  ],
  [
    17,
    V4[1],
    V4[0],
    3344,
    1122,
    "0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
    "OShq+iKDAMVouh/4bMxB9Sz4amw=",
    "d0cbbd227431eb3e1988264cffb1d78b658c84e8",
  ],
  [
    132,
    V4[0],
    V4[1],
    1122,
    3344,
    "EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
    "uitchpn5MMGAQKBJh7bIr/bAr7s=",
    "10ab7832cc6ec9a13a98bfa19ab12443d72c0c3f",
  ],
  [
    132,
    V4[1],
    V4[0],
    3344,
    1122,
    "EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
    "uitchpn5MMGAQKBJh7bIr/bAr7s=",
    "10ab7832cc6ec9a13a98bfa19ab12443d72c0c3f",
  ],
  [
    1,
    V4[0],
    V4[1],
    8,
    0,
    "crodRHL2FEsHjbv3UkRrfbs4bZ0=",
    "9pr4ZGTICiuZoIh90RRYE2RyXpU=",
    "72ba1d4472f6144b078dbbf752446b7dbb386d9d",
  ],
  [
    1,
    V4[1],
    V4[0],
    0,
    0,
    "crodRHL2FEsHjbv3UkRrfbs4bZ0=",
    "9pr4ZGTICiuZoIh90RRYE2RyXpU=",
    "72ba1d4472f6144b078dbbf752446b7dbb386d9d",
  ],
  [
    1,
    V4[0],
    V4[1],
    11,
    0,
    "f/YiSyWqczrTgfUCZlBUnvHRcPk=",
    "1DD7cWGC/Yg91YGsQeni8du3pIA=",
    "7ff6224b25aa733ad381f5026650549ef1d170f9",
  ],
  [
    58,
    V6[0],
    V6[1],
    128,
    0,
    "0bf7hyMJUwt3fMED7z8LIfRpBeo=",
    "IO27GQzPuCtNnwFvjWALMHu5tJE=",
    "d1b7fb872309530b777cc103ef3f0b21f46905ea",
  ],
  [
    58,
    V6[1],
    V6[0],
    129,
    0,
    "0bf7hyMJUwt3fMED7z8LIfRpBeo=",
    "IO27GQzPuCtNnwFvjWALMHu5tJE=",
    "d1b7fb872309530b777cc103ef3f0b21f46905ea",
  ],
  [
    58,
    V6[0],
    V6[1],
    146,
    0,
    "fYC8+pz24E+EhANP1EZhpX0Dw10=",
    "Cv4IKJe56BNkF0MBW2YxQ3Nwc3s=",
    "7d80bcfa9cf6e04f8484034fd44661a57d03c35d",
  ],
  [
    46,
    V4[0],
    V4[1],
    0,
    0,
    "ikv3kmf89luf73WPz1jOs49S768=",
    "/buhqeOmaRCopOZFy9HnoJd5XW8=",
    "8a4bf79267fcf65b9fef758fcf58ceb38f52efaf",
  ],
  [
    46,
    V4[1],
    V4[0],
    0,
    0,
    "ikv3kmf89luf73WPz1jOs49S768=",
    "/buhqeOmaRCopOZFy9HnoJd5XW8=",
    "8a4bf79267fcf65b9fef758fcf58ceb38f52efaf",
  ],
  [
    46,
    V6[0],
    V6[1],
    0,
    0,
    "wQ/2mwrnXP4lmJcHdGL5ePjR+e0=",
    "j6EyyfBzL4vWKHFXgUqb5Az3OxM=",
    "c10ff69b0ae75cfe259897077462f978f8d1f9ed",
  ],
  [
    46,
    V6[1],
    V6[0],
    0,
    0,
    "wQ/2mwrnXP4lmJcHdGL5ePjR+e0=",
    "j6EyyfBzL4vWKHFXgUqb5Az3OxM=",
    "c10ff69b0ae75cfe259897077462f978f8d1f9ed",
  ],
];

test("community ID: the spec's tables (default seed, seed 1, hex)", () => {
  for (const [protocol, src, dst, sport, dport, plain, seeded, hex] of TABLE) {
    const args = [protocol, addressBytes(src), addressBytes(dst), sport, dport] as const;
    const label = `${protocol} ${src}/${sport} -> ${dst}/${dport}`;
    assert.equal(communityId(...args), `1:${plain}`, label);
    assert.equal(communityId(...args, { seed: 1 }), `1:${seeded}`, label);
    assert.equal(communityId(...args, { base64: false }), `1:${hex}`, label);
  }
});

/** Port-tuples from the spec's baseline_deflt.json (real captures). */
const CAPTURED: [number, string, string, number, number, string][] = [
  [
    6,
    "2001:470:e5bf:dead:4957:2174:e82c:4887",
    "2607:f8b0:400c:c03::1a",
    63943,
    25,
    "/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
  ],
  [
    6,
    "2607:f8b0:400c:c03::1a",
    "2001:470:e5bf:dead:4957:2174:e82c:4887",
    25,
    63943,
    "/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
  ],
  [132, "192.168.170.8", "192.168.170.56", 7, 7, "MP2EtRCAUIZvTw6MxJHLV7N7JDs="],
  [132, "192.168.170.56", "192.168.170.8", 7, 7, "MP2EtRCAUIZvTw6MxJHLV7N7JDs="],
  [6, "128.232.110.120", "66.35.250.204", 34855, 80, "LQU9qZlK+B5F3KDmev6m5PMibrg="],
  [17, "192.168.1.52", "8.8.8.8", 54585, 53, "d/FP5EW3wiY1vCndhwleRRKHowQ="],
  [17, "8.8.8.8", "192.168.1.52", 53, 54585, "d/FP5EW3wiY1vCndhwleRRKHowQ="],
  [46, "10.1.12.1", "10.1.12.2", 0, 0, "KHlLkgoJW7ifUTyTSgyVfkFHzKw="],
];

test("community ID: the spec's captured baseline", () => {
  for (const [protocol, src, dst, sport, dport, expected] of CAPTURED)
    assert.equal(communityId(protocol, addressBytes(src), addressBytes(dst), sport, dport), `1:${expected}`);
});

test("community ID of an engine tuple: ICMP echo uses the type and code kept in dstPort", () => {
  const tuple = new Tuple();
  tuple.family = 4;
  tuple.protocol = 1;
  tuple.src0 = 0x01020304;
  tuple.dst0 = 0x05060708;
  tuple.srcPort = 0x1234; // echo id: not part of the hash
  tuple.dstPort = 8 << 8;
  assert.equal(tupleCommunityId(tuple), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=");
  tuple.protocol = 6;
  tuple.srcPort = 1122;
  tuple.dstPort = 3344;
  assert.equal(tupleCommunityId(tuple), "1:wCb3OG7yAFWelaUydu0D+125CLM=");
  tuple.family = 6;
  tuple.protocol = 46;
  [tuple.src0, tuple.src1, tuple.src2, tuple.src3] = [0xfe800001, 0x02030405, 0x06070809, 0x0a0b0c0d];
  [tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3] = [0xfe801011, 0x12131415, 0x16171819, 0x1a1b1c1d];
  assert.equal(tupleCommunityId(tuple), "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=");
});

test("community ID of an engine tuple equals communityId of its address bytes, for random tuples", () => {
  let state = 7;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 4) % n;
  };
  // Few distinct words, so equal addresses (where ports decide the order) come up often.
  const word = (): number => [0, 1, 0x7f000001, 0xc0a80001, 0xfe800000, 0xffffffff][random(6)];
  const wordBytes = (words: number[]): Uint8Array => {
    const bytes = Buffer.alloc(words.length * 4);
    words.forEach((value, i) => bytes.writeUInt32BE(value >>> 0, i * 4));
    return bytes;
  };
  for (let i = 0; i < 3000; i++) {
    const tuple = new Tuple();
    tuple.family = random(2) === 0 ? 4 : 6;
    tuple.protocol = [1, 6, 17, 47, 58, 132, 50][random(7)];
    const src = tuple.family === 4 ? [word()] : [word(), word(), word(), word()];
    const dst = tuple.family === 4 ? [word()] : [word(), word(), word(), word()];
    [tuple.src0, tuple.src1, tuple.src2, tuple.src3] = [...src, 0, 0, 0];
    [tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3] = [...dst, 0, 0, 0];
    tuple.srcPort = [0, 1, 80, 65535][random(4)];
    tuple.dstPort =
      random(2) === 0 ? [0, 1, 80, 65535][random(4)] : ([0, 8, 13, 128, 135, 3][random(6)] << 8) | random(3);
    const icmp = tuple.protocol === 1 || tuple.protocol === 58;
    const seed = [0, 1, 65535][random(3)];
    const base64 = random(2) === 0;
    const expected = communityId(
      tuple.protocol,
      wordBytes(src),
      wordBytes(dst),
      icmp ? tuple.icmpType : tuple.srcPort,
      icmp ? tuple.icmpCode : tuple.dstPort,
      { seed, base64 },
    );
    assert.equal(tupleCommunityId(tuple, { seed, base64 }), expected, JSON.stringify({ src, dst, i }));
  }
});
