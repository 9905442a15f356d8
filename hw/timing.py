"""Timing of the command sequencer and the embedding unit ([P1]): the constants the cycle model
(:mod:`sw.program.cycles`) prices a program with and the accelerator top will be held to.

The units' own timing is defined with the units (the matrix engine's ``CHECK_CYCLES``,
``PRIME_CYCLES``, ``FLUSH_EXTRA``; the SFU row periods in :mod:`sw.perf.sfu`). No Amaranth or
PyTorch import.
"""

__all__ = ["FETCH_CYCLES", "EMBED_ROW_OVERHEAD", "EMBED_SUM_LATENCY", "DVFS_CYCLES", "END_CYCLES",
           "MATMUL_OVERHEAD", "SFU_PROLOGUE", "matmul_copy_cycles", "embed_words",
           "embed_cycles", "embed_reram_reads"]

# Every command: read the program word (1), latch it and read the matrix descriptor (1), check
# it and set up the unit (1); the sequencer fetches the next command in the cycle after the
# command's last one (hw.top.sequencer, hw.top.status).
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


# Embedding unit (hw/embed_unit.py), per token row: read the token entry from the aux memory,
# decode it into addresses, check them; then the row's ReRAM reads (embed_words).
EMBED_ROW_OVERHEAD = 3
# Embedding unit: the sum pipeline (sum register, requantizer stages, output register).
EMBED_SUM_LATENCY = 5
# DVFS: read the layer / voltage code words, the frequency code word, write ``bins`` table
# entries (one per cycle, edges read a cycle ahead), feed H, take the decision: 4 + bins.
DVFS_CYCLES = 4
# END: the fetch only.
END_CYCLES = 0


def embed_words(n, cols, word_bytes):
    """ReRAM words the embedding unit reads for a row of ``cols`` vectors of ``n`` codes from a
    store of ``word_bytes``-byte words: ``(rowptr, masks)`` once per token row, ``(pos, seg,
    values)`` per vector. Every count is fixed (data-independent): the row's masks start at any
    multiple of ``gcd(cols * mask_bytes, word_bytes)`` in a word, a vector's packed values at
    any byte, so the unit reads the most words either can span."""
    mb = max(1, -(-n // 8))
    x = cols * mb
    g = min(word_bytes, x & -x)
    rowptr = max(1, 4 // word_bytes)
    masks = -(-(x + word_bytes - g) // word_bytes)
    vec = max(1, n // word_bytes)
    values = -(-(n + word_bytes - 1) // word_bytes)
    return rowptr, masks, vec, vec, values


def embed_cycles(rows, cols, tokens, n, word_bytes, latency):
    """Cycles of the embedding unit from ``start`` to ``done`` (the cycle ``start`` is high is
    cycle 0) for ``rows`` x ``cols`` tiles and ``tokens`` tokens, without output back-pressure.

    Per token row: :data:`EMBED_ROW_OVERHEAD`, the header reads (row pointer and masks), the
    ReRAM latency plus one cycle for the header to arrive, then ``pos + seg + values`` reads per
    vector, back to back (:func:`embed_words`). The ``(rows * n - tokens) * cols`` code-0 beats
    follow the last row's, one per cycle, and the last beat leaves the sum pipeline
    :data:`EMBED_SUM_LATENCY` cycles later."""
    rowptr, masks, pos, seg, values = embed_words(n, cols, word_bytes)
    pad = (rows * n - tokens) * cols
    if tokens == 0:
        return pad + EMBED_SUM_LATENCY + 1
    row = EMBED_ROW_OVERHEAD + rowptr + masks + latency + 1 + cols * (pos + seg + values)
    return 2 + tokens * row + latency + pad + EMBED_SUM_LATENCY


def embed_reram_reads(cols, tokens, n, word_bytes):
    """ReRAM word reads of one EMBED command (the store's read counter)."""
    rowptr, masks, pos, seg, values = embed_words(n, cols, word_bytes)
    return tokens * (rowptr + masks + cols * (pos + seg + values))
