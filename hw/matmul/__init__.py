"""Matrix engine ([H1], [H2], [F4]): n VMACs × n lanes, banked SRAMs, bitmask-sparse weights.

Computes ``Y = requant(act(X·W + bias))`` for AdaptivFloat X (rows × K), W (K × cols) and bias
(cols), ``act`` ∈ {identity, ReLU}; the golden model is :func:`sw.golden.matmul.matmul` and the
cycle model :mod:`sw.perf.matmul`.

Dataflow: output-stationary outer product. A *tile* is n output rows × n output columns
(row tile ``rt``, column block ``cb``). VMAC ``i`` holds the n accumulators of output row
``rt·n + i``; each cycle one decoded weight vector ``W[k, cb·n : cb·n+n]`` is broadcast to every
VMAC and VMAC ``i`` multiplies it by its scalar ``X[rt·n + i, k]`` (n lanes = n MACs). Vectors
whose mask is 0 are never issued: an all-zero vector costs no cycle.

Buffers (all ``amaranth.lib.memory.Memory``; word bit ``t·N`` starts code ``t``):

* **X**: n banks, bank ``i`` holds the rows ``r ≡ i (mod n)``; word ``(r // n)·(K/n) + k // n``
  holds ``X[r, (k//n)·n : (k//n)·n + n]``. One read of every bank at the same address gives the
  column slice ``X[rt·n : rt·n+n, k]`` after a lane select.
* **Y**: the same layout with ``cols`` in place of K, so a Y buffer is the next layer's X
  buffer. The drain writes output row ``i`` of a tile into bank ``i``: one bank per cycle.
* **masks**: word ``cb·(K/n) + j`` holds the n masks of ``k = j·n .. j·n+n-1`` of block
  ``cb`` (mask of ``k = j·n + t`` at bits ``t·n``), as :func:`sw.sparse.pack_bitmask` orders them.
  The engine stores next to them, computed as the host writes the word, which masks are
  non-zero, whether any and more than one are, and each mask's popcount (the host writes only
  the n² mask bits).
* **values**: the packed non-zero codes, n per word, in :func:`sw.sparse.pack_bitmask` order.
* **bias**: word ``cb`` holds ``bias[cb·n : cb·n+n]``.

Pipeline: S0 scans a (registered, read-ahead) mask word per n vectors and issues one vector
(token) per cycle; S1 reads the non-zeros out of a 4n-code realignment buffer and the X lane out
of the X slice, S1b splits the codes into sign, exponent and significand; S2 multiplies the
significands (and adds the exponents); S3 shifts and signs the products; S4 accumulates. The
last token of a tile also copies the sum into a shadow register set that is drained (one output
row per cycle: add the aligned bias, ReLU, requantize with n pipelined
:class:`~hw.af_requant.AFRequantCore`, register the codes, write Y) while the next tile
computes. A tile's last token therefore waits until the previous drain has read its last row
(n cycles between last tokens).

Modules, in pipeline order: :mod:`~hw.matmul.config` (parameters and constants, plain Python),
:mod:`~hw.matmul.buffers` (memories and host ports), :mod:`~hw.matmul.scanner` (S0),
:mod:`~hw.matmul.lanes` (S1..S3 and the bias), :mod:`~hw.matmul.drain` (S4 and the drain),
:mod:`~hw.matmul.control` (run registers, error codes, sequencer) and
:mod:`~hw.matmul.engine` (the component that wires them). The Amaranth-simulator driver and
the self-check are test plumbing: :func:`sim.drivers.run_matmul`, :mod:`sim.selfcheck`.
"""

from hw.matmul.config import (
    CHECK_CYCLES,
    COUNTER_BITS,
    DIM_BITS,
    FLUSH_EXTRA,
    NNZ_BITS,
    PRIME_CYCLES,
    REQUANT_STAGES,
    MatmulConfig,
    bias_shift_range,
)

__all__ = [
    "MatmulConfig", "MatmulError", "MatrixEngine", "payload_layouts", "bias_shift_range",
    "DIM_BITS", "NNZ_BITS", "COUNTER_BITS", "REQUANT_STAGES", "CHECK_CYCLES", "PRIME_CYCLES",
    "FLUSH_EXTRA",
]

# The gateware loads Amaranth; the models import hw.matmul.config alone, so it is loaded on use.
_GATEWARE = {"MatmulError": "hw.matmul.control", "MatrixEngine": "hw.matmul.engine",
             "payload_layouts": "hw.matmul.engine"}


def __getattr__(name):
    if name in _GATEWARE:
        import importlib

        return getattr(importlib.import_module(_GATEWARE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
