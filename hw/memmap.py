"""The accelerator's memories ([C3]): one memory map, read by the compiler and the gateware.

Sizes are generator parameters (:class:`MemoryMap`); every memory has a name, a word width and
a depth. The compiler (:mod:`sw.program.compiler`) allocates within them and refuses a model or
a sentence that does not fit, naming the memory and by how much; the accelerator top builds its
``amaranth.lib.memory.Memory`` instances from the same figures. No Amaranth or PyTorch import.

=========  ==========================================  =========================================
memory     word                                        holds
=========  ==========================================  =========================================
reram      ``reram_word_bytes`` bytes                  the embedding store (read-only to the
                                                       datapath): token table in bitmask format
                                                       with row pointers, position and segment
                                                       tables
desc       128 bits                                    matrix and embedding descriptors
                                                       (:data:`hw.isa.MATRIX_DESC`, ``EMBED_DESC``)
wmask      n masks of n bits                           weight masks ([H2])
wval       n codes                                     packed non-zero weight codes
wbias      n codes                                     matmul bias vectors
act        n banks x n codes (one n x n tile)          activations, scores and probabilities
aux        ``max(n, 4)`` bytes                         LayerNorm blocks, span masks, thresholds,
                                                       DVFS tables, token rows
prog       128 bits                                    the command program
=========  ==========================================  =========================================
"""

from dataclasses import dataclass, fields

from hw.isa import WORD_BYTES

__all__ = ["MemoryMap", "MEMORIES", "DEFAULT_MEMMAP"]

MEMORIES = ("reram", "desc", "wmask", "wval", "wbias", "act", "aux", "prog")


@dataclass(frozen=True)
class MemoryMap:
    """Depths (in words) of the accelerator's memories for vector width ``n``, and the ReRAM
    read latency (cycles from address to data).

    The defaults hold the committed default image (n = 16) and a 64-token sentence.
    """

    n: int = 16
    reram_bytes: int = 2 * 1024 * 1024
    reram_word_bytes: int = 8
    desc_words: int = 64
    wmask_words: int = 2048
    wval_words: int = 16384
    wbias_words: int = 512
    act_words: int = 1024
    aux_words: int = 1024
    prog_words: int = 512
    reram_latency: int = 2

    def __post_init__(self):
        for f in fields(self):
            if f.name == "reram_latency":
                continue
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"memory map {f.name} must be a positive integer, not {v!r}")
        if self.n & (self.n - 1) or not 2 <= self.n <= 64:
            raise ValueError(f"n must be a power of two in 2..64, not {self.n}")
        if self.reram_bytes % self.reram_word_bytes:
            raise ValueError(f"reram_bytes ({self.reram_bytes}) must be a multiple of "
                             f"reram_word_bytes ({self.reram_word_bytes})")
        if not isinstance(self.reram_latency, int) or not 0 <= self.reram_latency <= 64:
            raise ValueError(f"reram_latency must be an integer in 0..64, not "
                             f"{self.reram_latency!r}")
        if self.act_words > 1 << 16 or self.aux_words > 1 << 16:
            raise ValueError("act_words and aux_words must be at most 65536 (16-bit addresses)")

    def word_bytes(self, memory):
        """Bytes per word of ``memory``."""
        n = self.n
        return {"reram": self.reram_word_bytes, "desc": WORD_BYTES,
                "wmask": max(1, n * n // 8), "wval": n, "wbias": n, "act": n * n,
                "aux": max(n, 4), "prog": WORD_BYTES}[self._check(memory)]

    def depth(self, memory):
        """Words of ``memory``."""
        self._check(memory)
        if memory == "reram":
            return self.reram_bytes // self.reram_word_bytes
        return getattr(self, f"{memory}_words")

    def size_bytes(self, memory):
        return self.depth(memory) * self.word_bytes(memory)

    def _check(self, memory):
        if memory not in MEMORIES:
            raise ValueError(f"memory must be one of {MEMORIES}, not {memory!r}")
        return memory

    def table(self):
        """``[(memory, word bytes, depth, bytes)]`` for reports."""
        return [(m, self.word_bytes(m), self.depth(m), self.size_bytes(m)) for m in MEMORIES]

    @staticmethod
    def table_names():
        return MEMORIES


DEFAULT_MEMMAP = MemoryMap()
