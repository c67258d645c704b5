/**
 * TCP sequence adjustment after a NAT helper changed a segment's length (nf_conntrack_seqadj.c): per
 * direction, the sequence number of the last resized segment and the total length change before and
 * after it. The device shifts the sequence numbers of later segments in that direction and the
 * acknowledgements coming back by that much; the TCP tracker, which sees packets as they arrive, takes
 * the offset back off acknowledgements (`nf_ct_seq_offset` in `tcp_in_window`).
 */
export class SeqAdjust {
  /** Sequence number (sender's arrival space) of the last resized segment, per direction. */
  readonly correctionPos = new Uint32Array(2);
  readonly offsetBefore = new Int32Array(2);
  readonly offsetAfter = new Int32Array(2);

  /**
   * `nf_ct_seqadj_set`: the segment starting at `seq` in `direction` grew by `delta` bytes (negative:
   * shrank). A segment before the last correction (a retransmission) leaves the record alone once it
   * holds an offset.
   */
  set(direction: number, seq: number, delta: number): void {
    if (delta === 0) return;
    const position = seq >>> 0;
    if (
      this.offsetBefore[direction] === this.offsetAfter[direction] ||
      ((this.correctionPos[direction] - position) | 0) < 0
    ) {
      this.correctionPos[direction] = position;
      this.offsetBefore[direction] = this.offsetAfter[direction];
      this.offsetAfter[direction] += delta;
    }
  }

  /** `nf_ct_seq_offset`: the shift of sequence number `seq` sent in `direction`. */
  offset(direction: number, seq: number): number {
    return (((seq >>> 0) - this.correctionPos[direction]) | 0) > 0
      ? this.offsetAfter[direction]
      : this.offsetBefore[direction];
  }
}
