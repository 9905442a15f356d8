"""Timing of the command sequencer and the embedding unit ([P1]): the constants the cycle model
(:mod:`sw.program.cycles`) prices a program with and the accelerator top will be held to.

The units' own timing is defined with the units (the matrix engine's ``CHECK_CYCLES``,
``PRIME_CYCLES``, ``FLUSH_EXTRA``; the SFU row periods in :mod:`sw.perf.sfu`). No Amaranth or
PyTorch import.
"""

__all__ = ["FETCH_CYCLES", "EMBED_ROW_OVERHEAD", "DVFS_CYCLES", "END_CYCLES",
           "MATMUL_OVERHEAD", "SFU_PROLOGUE", "matmul_copy_cycles"]

# Every command: read the program word (1), latch it and read the matrix descriptor (1), check
# it and set up the unit (1); the sequencer fetches the next command in the cycle after the
# command's last one (hw.top.top).
FETCH_CYCLES = 3
# MATMUL and MATMUL_ACT besides the copies and the engine's own cycles (its cyc_total): the
# start cycle, the cycle the engine's done is seen, the last Y word's read latency.
MATMUL_OVERHEAD = 3
# SOFTMAX, LAYERNORM, ADD, ENTROPY before the unit's first beat: the scalar operand's aux read
# (eps, threshold; every SFU command pays it) and the first beat's act read.
SFU_PROLOGUE = 2


def matmul_copy_cycles(x_tiles, w_tiles, y_tiles, n):
    """Cycles of a matmul's copies: X (and for MATMUL_ACT w) from act into the engine, one bank
    word per cycle; Y back into act, one bank word per cycle."""
    return n * (x_tiles + w_tiles + y_tiles)


# Embedding unit, per token row: one cycle to read the row pointer before the row's E / n beats
# (one mask and its non-zero codes per beat; the ReRAM read port is wide enough for a beat).
EMBED_ROW_OVERHEAD = 1
# DVFS: read the layer / voltage code words, the frequency code word, write ``bins`` table
# entries (one per cycle, edges read a cycle ahead), feed H, take the decision: 4 + bins.
DVFS_CYCLES = 4
# END: the fetch only.
END_CYCLES = 0
