"""Timing of the command sequencer and the embedding unit ([P1]): the constants the cycle model
(:mod:`sw.program.cycles`) prices a program with and the accelerator top will be held to.

The units' own timing is defined with the units (the matrix engine's ``CHECK_CYCLES``,
``PRIME_CYCLES``, ``FLUSH_EXTRA``; the SFU row periods in :mod:`sw.perf.sfu`). No Amaranth or
PyTorch import.
"""

__all__ = ["FETCH_CYCLES", "EMBED_ROW_OVERHEAD", "DVFS_CYCLES", "END_CYCLES"]

# Every command: read the program word (1) and decode it into the unit's registers (1) before
# the unit starts; the sequencer issues the next fetch when the unit reports done.
FETCH_CYCLES = 2
# Embedding unit, per token row: one cycle to read the row pointer before the row's E / n beats
# (one mask and its non-zero codes per beat; the ReRAM read port is wide enough for a beat).
EMBED_ROW_OVERHEAD = 1
# DVFS: the bin search over the edges (registered compare tree) and the table read.
DVFS_CYCLES = 2
# END: the fetch only.
END_CYCLES = 0
