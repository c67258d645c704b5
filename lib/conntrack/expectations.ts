/**
 * The expectation table (nf_conntrack_expect.c): connections a helper announced before they start.
 * Each expectation is a tuple plus a mask (FTP and TFTP leave only the source port open), belongs to
 * its master connection, lives until a new connection matches it, its timer runs out, its master's
 * quota evicts it, an identical one replaces it or its master dies.
 */
import type { Connection } from "./connection.js";
import { Tuple } from "./connection.js";
import { ExpectError, type ExpectPolicy, type ExpectRequest } from "./helpers/helper.js";

/** Why an expectation left the table. */
export type ExpectRemovalCause =
  /** A new connection matched it (it is now that connection's master link). */
  | "used"
  | "expired"
  /** Its master reached `max_expected` in this class and this was the oldest. */
  | "evicted"
  /** The same master registered an identical expectation. */
  | "replaced"
  | "master-destroyed"
  /** End of input: the timer ran out after the last packet. */
  | "drain";

export class Expectation {
  /** Sequential, 1 for the first expectation an engine creates. */
  id = 0;
  /** Expected original tuple of the related connection; wildcard parts hold 0. */
  readonly tuple = new Tuple();
  /** Mask: whether the source address and source port must match (destination always must). */
  srcAddressExact = true;
  srcPortExact = false;
  master!: Connection;
  /** The master's helper name (`helper=` of the expectation). */
  helper = "";
  expectClass = 0;
  /** NF_CT_EXPECT_* flags (PERMANENT 1, INACTIVE 2, USERSPACE 4); helpers here set none. */
  flags = 0;
  /** Engine-relative nanoseconds of insertion and of the timer's end. */
  createdAt = 0;
  expiresAt = 0;
  dead = false;
  /** Set when it leaves the table. */
  removalCause: ExpectRemovalCause | "" = "";
  /** Bucket key (destination address, port, protocol, family). */
  bucketKey = 0;
  /**
   * Set when the master was translated (the kernel's NAT helper then sets `exp->dir` and
   * `exp->expectfn = nf_nat_follow_master`): the direction of the master the expected connection
   * travels in, 0 original, 1 reply; -1 when the master has no NAT.
   */
  natDirection = -1;
  /**
   * `exp->saved_proto`: the port the expected connection is translated to (FTP: the port the command
   * named; TFTP: the client's own port), on the master's `!natDirection` side.
   */
  savedPort = 0;

  /**
   * Whether a packet seen on the device's inside interface with tuple `tuple` is this expectation's
   * connection after `nf_nat_follow_master` translated it: a connection expected in the master's
   * reply direction arrives on the outside and leaves inside addressed to the master's original
   * source and the saved port (active FTP's data connection, TFTP's answer).
   */
  matchesTranslatedInbound(tuple: Tuple): boolean {
    if (this.natDirection !== 1) return false;
    const t = this.tuple;
    const inside = this.master.original;
    if (
      tuple.family !== t.family ||
      tuple.protocol !== t.protocol ||
      tuple.dstPort !== this.savedPort ||
      tuple.dstWord0 !== inside.srcWord0 ||
      tuple.dstWord1 !== inside.srcWord1 ||
      tuple.dstWord2 !== inside.srcWord2 ||
      tuple.dstWord3 !== inside.srcWord3
    ) {
      return false;
    }
    // follow_master moved the source to where the master's original went.
    if (
      this.srcAddressExact &&
      (tuple.srcWord0 !== inside.dstWord0 ||
        tuple.srcWord1 !== inside.dstWord1 ||
        tuple.srcWord2 !== inside.dstWord2 ||
        tuple.srcWord3 !== inside.dstWord3)
    ) {
      return false;
    }
    return !this.srcPortExact || tuple.srcPort === t.srcPort;
  }

  /** Whether `tuple` (a new connection's original tuple) matches under the mask (`nf_ct_tuple_mask_cmp`). */
  matches(tuple: Tuple): boolean {
    const t = this.tuple;
    if (
      tuple.family !== t.family ||
      tuple.protocol !== t.protocol ||
      tuple.dstPort !== t.dstPort ||
      tuple.dst0 !== t.dst0 ||
      tuple.dst1 !== t.dst1 ||
      tuple.dst2 !== t.dst2 ||
      tuple.dst3 !== t.dst3
    ) {
      return false;
    }
    if (
      this.srcAddressExact &&
      (tuple.src0 !== t.src0 || tuple.src1 !== t.src1 || tuple.src2 !== t.src2 || tuple.src3 !== t.src3)
    ) {
      return false;
    }
    return !this.srcPortExact || tuple.srcPort === t.srcPort;
  }

  /** Same tuple and same mask (`expect_matches`). */
  sameAs(other: Expectation): boolean {
    return (
      this.tuple.equals(other.tuple) &&
      this.srcAddressExact === other.srcAddressExact &&
      this.srcPortExact === other.srcPortExact
    );
  }

  /** Whether some connection could match both (`expect_clash`: compare under the masks' intersection). */
  clashesWith(other: Expectation): boolean {
    const a = this.tuple;
    const b = other.tuple;
    if (
      a.family !== b.family ||
      a.protocol !== b.protocol ||
      a.dstPort !== b.dstPort ||
      a.dst0 !== b.dst0 ||
      a.dst1 !== b.dst1 ||
      a.dst2 !== b.dst2 ||
      a.dst3 !== b.dst3
    ) {
      return false;
    }
    if (
      this.srcAddressExact &&
      other.srcAddressExact &&
      (a.src0 !== b.src0 || a.src1 !== b.src1 || a.src2 !== b.src2 || a.src3 !== b.src3)
    ) {
      return false;
    }
    return !(this.srcPortExact && other.srcPortExact && a.srcPort !== b.srcPort);
  }
}

/** Called for every expectation that leaves the table (the engine turns it into a DESTROY event). */
export type ExpectRemovalHandler = (expectation: Expectation, cause: ExpectRemovalCause, at: number) => void;

export class ExpectationTable {
  size = 0;
  /** Expectations by bucket key, oldest first in each bucket. */
  private readonly buckets = new Map<number, Expectation[]>();
  /** Live expectations ordered by (expiresAt, id). */
  private readonly timers: Expectation[] = [];
  private nextId = 1;

  constructor(
    /** nf_conntrack_expect_max: registrations beyond it are refused. */
    readonly maxSize: number,
    private readonly onRemove: ExpectRemovalHandler,
  ) {}

  /**
   * The expectation a new connection with original tuple `tuple` fulfils (`nf_ct_find_expectation`),
   * newest first as the kernel's bucket lists run; null when none. Allocates nothing.
   */
  find(tuple: Tuple): Expectation | null {
    if (this.size === 0) return null;
    const bucket = this.buckets.get(
      bucketKeyOf(tuple.family, tuple.protocol, tuple.dst0, tuple.dst3, tuple.dstPort),
    );
    if (bucket === undefined) return null;
    for (let i = bucket.length - 1; i >= 0; i--) {
      const expectation = bucket[i];
      if ((expectation.flags & EXPECT_INACTIVE) !== 0 || !expectation.matches(tuple)) continue;
      // A master that is not in the table (yet, or any more) cannot have told anyone.
      const master = expectation.master;
      if (master.id === 0 || master.dead) return null;
      return expectation;
    }
    return null;
  }

  /**
   * The expectation (newest first) whose connection, translated by `nf_nat_follow_master`, leaves
   * the device on the inside with tuple `tuple` (`Expectation.matchesTranslatedInbound`); null when
   * none. Allocates nothing.
   */
  findTranslatedInbound(tuple: Tuple): Expectation | null {
    const timers = this.timers;
    let found: Expectation | null = null;
    for (let i = 0; i < timers.length; i++) {
      const expectation = timers[i];
      if ((expectation.flags & EXPECT_INACTIVE) !== 0 || !expectation.matchesTranslatedInbound(tuple))
        continue;
      const master = expectation.master;
      if (master.id === 0 || master.dead) continue;
      if (found === null || expectation.id > found.id) found = expectation;
    }
    return found;
  }

  /**
   * `nf_ct_expect_related`: checks and inserts an expectation for `master` (`__nf_ct_expect_check`,
   * `nf_ct_expect_insert`). Returns the new expectation or an `ExpectError` number.
   */
  register(
    master: Connection,
    helperName: string,
    policy: ExpectPolicy,
    request: ExpectRequest,
    now: number,
  ): Expectation | number {
    const candidate = new Expectation();
    const tuple = candidate.tuple;
    tuple.family = request.family;
    tuple.protocol = request.protocol;
    if (request.srcAddressExact) {
      tuple.src0 = request.src0 >>> 0;
      tuple.src1 = request.src1 >>> 0;
      tuple.src2 = request.src2 >>> 0;
      tuple.src3 = request.src3 >>> 0;
    }
    tuple.dst0 = request.dst0 >>> 0;
    tuple.dst1 = request.dst1 >>> 0;
    tuple.dst2 = request.dst2 >>> 0;
    tuple.dst3 = request.dst3 >>> 0;
    tuple.srcPort = request.srcPort >= 0 ? request.srcPort : 0;
    tuple.dstPort = request.dstPort;
    candidate.srcAddressExact = request.srcAddressExact;
    candidate.srcPortExact = request.srcPort >= 0;
    candidate.master = master;
    candidate.helper = helperName;
    candidate.expectClass = request.expectClass;
    candidate.bucketKey = bucketKeyOf(tuple.family, tuple.protocol, tuple.dst0, tuple.dst3, tuple.dstPort);

    const bucket = this.buckets.get(candidate.bucketKey);
    if (bucket !== undefined) {
      for (let i = bucket.length - 1; i >= 0; i--) {
        const existing = bucket[i];
        if (existing.master === master && existing.sameAs(candidate)) {
          if (existing.expectClass !== candidate.expectClass) return ExpectError.Already;
          this.remove(existing, "replaced", now);
          break;
        }
        if (existing.clashesWith(candidate)) return ExpectError.Busy;
      }
    }
    const own = master.expectations;
    if (policy.maxExpected > 0 && own !== null) {
      let inClass = 0;
      let oldest: Expectation | null = null;
      for (const expectation of own) {
        if (expectation.expectClass !== candidate.expectClass) continue;
        inClass++;
        if (oldest === null) oldest = expectation;
      }
      if (inClass >= policy.maxExpected && oldest !== null) {
        this.remove(oldest, "evicted", now);
        inClass--;
      }
      if (inClass >= policy.maxExpected) return ExpectError.TableFull;
    }
    if (this.size >= this.maxSize) return ExpectError.TableFull;

    candidate.id = this.nextId++;
    candidate.createdAt = now;
    candidate.expiresAt = now + policy.timeout * 1e9;
    this.insert(candidate);
    return candidate;
  }

  /** Unlinks an expectation and reports it (`nf_ct_unlink_expect_report`). */
  remove(expectation: Expectation, cause: ExpectRemovalCause, at: number): void {
    if (expectation.dead) return;
    expectation.dead = true;
    expectation.removalCause = cause;
    this.size--;
    const bucket = this.buckets.get(expectation.bucketKey)!;
    removeItem(bucket, expectation);
    if (bucket.length === 0) this.buckets.delete(expectation.bucketKey);
    removeItem(this.timers, expectation);
    const own = expectation.master.expectations;
    if (own !== null) {
      removeItem(own, expectation);
      if (own.length === 0) expectation.master.expectations = null;
    }
    this.onRemove(expectation, cause, at);
  }

  /** `nf_ct_remove_expectations`: a dying master takes its expectations with it, newest first. */
  removeForMaster(master: Connection, at: number): void {
    const own = master.expectations;
    if (own === null) return;
    while (master.expectations !== null && master.expectations.length > 0) {
      this.remove(master.expectations[master.expectations.length - 1], "master-destroyed", at);
    }
  }

  /** Engine-relative time of the next timer to run out, Infinity when none. */
  nextExpiry(): number {
    return this.timers.length > 0 ? this.timers[0].expiresAt : Infinity;
  }

  /** The first expectation whose timer ran out at or before `t`, or null (still in the table). */
  peekExpired(t: number): Expectation | null {
    const first = this.timers.length > 0 ? this.timers[0] : null;
    return first !== null && first.expiresAt <= t ? first : null;
  }

  /** Live expectations, oldest first. */
  entries(): Expectation[] {
    return [...this.timers].sort((a, b) => a.id - b.id);
  }

  private insert(expectation: Expectation): void {
    let bucket = this.buckets.get(expectation.bucketKey);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(expectation.bucketKey, bucket);
    }
    bucket.push(expectation);
    const timers = this.timers;
    let low = 0;
    let high = timers.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const other = timers[middle];
      if (
        other.expiresAt < expectation.expiresAt ||
        (other.expiresAt === expectation.expiresAt && other.id < expectation.id)
      )
        low = middle + 1;
      else high = middle;
    }
    timers.splice(low, 0, expectation);
    const master = expectation.master;
    if (master.expectations === null) master.expectations = [];
    master.expectations.push(expectation);
    this.size++;
  }
}

export const EXPECT_PERMANENT = 1;
export const EXPECT_INACTIVE = 2;
export const EXPECT_USERSPACE = 4;

function bucketKeyOf(family: number, protocol: number, dst0: number, dst3: number, dstPort: number): number {
  let h = Math.imul((dst0 ^ 0x9e3779b9) >>> 0, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ dst3, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13) ^ ((dstPort << 16) | (protocol << 8) | family), 0x85ebca6b);
  return (h ^ (h >>> 16)) >>> 0;
}

function removeItem(items: Expectation[], item: Expectation): void {
  const index = items.lastIndexOf(item);
  if (index >= 0) items.splice(index, 1);
}

/**
 * Whole seconds left on an expectation's timer at `at`, as the kernel prints them: the timer was set
 * to creation + timeout in ticks, so the value drops below the full timeout once a tick has passed.
 * Ticks are counted from the creation time: the kernel's tick phase is not in the capture, and
 * counting from creation gives what the kernel prints unless a tick boundary happened to fall
 * within the (usually sub-millisecond) gap.
 */
export function expectationRemainingSeconds(expectation: Expectation, at: number, hz: number): number {
  const tick = 1e9 / hz;
  const totalTicks = Math.round((expectation.expiresAt - expectation.createdAt) / tick);
  const elapsedTicks = Math.floor((at - expectation.createdAt) / tick);
  const remaining = Math.floor((totalTicks - elapsedTicks) / hz);
  return remaining > 0 ? remaining : 0;
}

export type ExpectEventType = "NEW" | "DESTROY";

/**
 * One expectation event (`conntrack -E expect`). The engine reuses a single instance: read or copy
 * it inside the callback.
 */
export class ExpectEvent {
  type: ExpectEventType = "NEW";
  tsSec = 0;
  tsNsec = 0;
  expectation!: Expectation;
  /** Remaining whole seconds of the expectation's timer as the kernel prints it (0 once run out). */
  timeout = 0;
  /** Why a DESTROY happened. */
  cause: ExpectRemovalCause | "" = "";
  /**
   * The master's connection id, also before the master is confirmed (a TFTP request announces the
   * reply on the packet that creates its entry: the id is the one its confirmation gives it); 0 for
   * a master that was never confirmed.
   */
  masterId = 0;
}
