"""The ReRAM embedding store ([H8]): read-only to the datapath, loaded by the host.

One ``amaranth.lib.memory.Memory`` of ``reram_bytes / reram_word_bytes`` words of
``reram_word_bytes`` bytes (byte ``b`` of the store is byte ``b % word_bytes`` of word
``b // word_bytes``, little-endian, as :func:`sw.program.layout.lay_out` writes the image). The
datapath reads it through a :data:`ReadSignature` port: word-address requests and data
responses, both ``amaranth.lib.stream`` interfaces, ``latency`` cycles apart.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.checks import checked_construction
from hw.memmap import DEFAULT_MEMMAP, MemoryMap
from hw.registry import register_block

__all__ = ["ReramStore", "read_signature", "COUNTER_BITS"]

# Width of the read counter (wraps; 2^32 reads are far more than one inference makes).
COUNTER_BITS = 32


def read_signature(depth, word_bytes):
    """The datapath's read port, seen from the reader: ``req`` (out, payload the word address)
    and ``resp`` (in, payload the word)."""
    return wiring.Signature({
        "req": Out(stream.Signature(range(depth))),
        "resp": In(stream.Signature(8 * word_bytes)),
    })


class ReramStore(wiring.Component):
    """The embedding store: a host write port and a pipelined, stallable streaming read port.

    A request accepted on ``rd.req`` (``valid & ready``) returns its word on ``rd.resp``
    ``latency`` cycles later when ``rd.resp.ready`` stays high: one word per cycle, in order.
    The pipeline advances only in cycles with ``~rd.resp.valid | rd.resp.ready``, so holding
    ``rd.resp.ready`` low stalls it (and ``rd.req.ready`` with it) without losing a word. With
    ``latency`` 0 the read is combinational (``rd.resp`` follows ``rd.req`` in the same cycle).
    The host writes only while the datapath does not read (a write and a read of one word in
    one cycle return the old word).

    Parameters
    ----------
    memmap : MemoryMap
        Gives the size (``reram_bytes``), word (``reram_word_bytes``) and read latency
        (``reram_latency``).
    init : bytes-like or None
        Initial contents (e.g. ``lay_out(img).images["reram"]``), at most ``reram_bytes``
        bytes; the rest is zero.

    Attributes
    ----------
    w_en : Signal(1), in
        Host write strobe.
    w_addr : Signal(range(depth)), in
        Host write word address.
    w_data : Signal(8 * reram_word_bytes), in
        Host write data (byte 0 in the low bits).
    rd : In(read_signature(depth, word_bytes))
        ``rd.req``: stream in, payload the word address; ``rd.resp``: stream out, payload the
        word.
    reads : Signal(COUNTER_BITS), out
        Read requests accepted since reset or ``clear`` (the energy model's ReRAM accesses).
    clear : Signal(1), in
        Zeroes ``reads`` (a read accepted in the same cycle counts as the first).
    """

    def __init__(self, *, memmap: MemoryMap = DEFAULT_MEMMAP, init=None):
        with checked_construction(self):
            if not isinstance(memmap, MemoryMap):
                raise TypeError(f"memmap must be a MemoryMap, not {memmap!r}")
            words = None
            if init is not None:
                raw = bytes(init)
                if len(raw) > memmap.reram_bytes:
                    raise ValueError(f"init must be at most reram_bytes ({memmap.reram_bytes}) "
                                     f"bytes, not {len(raw)}")
                wb = memmap.reram_word_bytes
                raw += bytes(-len(raw) % wb)
                words = [int.from_bytes(raw[i:i + wb], "little") for i in range(0, len(raw), wb)]
        self._memmap = memmap
        self._init = words or []
        self._depth = memmap.depth("reram")
        self._word_bytes = memmap.reram_word_bytes
        self._latency = memmap.reram_latency
        super().__init__({
            "w_en": In(1),
            "w_addr": In(range(self._depth)),
            "w_data": In(8 * self._word_bytes),
            "rd": In(read_signature(self._depth, self._word_bytes)),
            "reads": Out(COUNTER_BITS),
            "clear": In(1),
        })

    @property
    def depth(self):
        """Words of the store."""
        return self._depth

    @property
    def word_bytes(self):
        return self._word_bytes

    @property
    def latency(self):
        """Cycles from an accepted request to its word on ``rd.resp`` (no stalls)."""
        return self._latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=8 * self._word_bytes, depth=self._depth,
                                        init=self._init)
        wp = mem.write_port()
        m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data)]
        req, resp = self.rd.req, self.rd.resp
        if self._latency == 0:
            rp = mem.read_port(domain="comb")
            m.d.comb += [rp.addr.eq(req.payload), resp.payload.eq(rp.data),
                         resp.valid.eq(req.valid), req.ready.eq(resp.ready)]
        else:
            # Stage 0 is the memory's own output register; stages 1 .. latency-1 follow it.
            advance = Signal()
            m.d.comb += [advance.eq(~resp.valid | resp.ready), req.ready.eq(advance)]
            rp = mem.read_port(transparent_for=())
            m.d.comb += [rp.addr.eq(req.payload), rp.en.eq(advance)]
            valid, data = Signal(name="valid0"), rp.data
            with m.If(advance):
                m.d.sync += valid.eq(req.valid)
            for k in range(1, self._latency):
                nv, nd = Signal(name=f"valid{k}"), Signal(len(data), name=f"data{k}")
                with m.If(advance):
                    m.d.sync += [nv.eq(valid), nd.eq(data)]
                valid, data = nv, nd
            m.d.comb += [resp.valid.eq(valid), resp.payload.eq(data)]
        took = req.valid & req.ready
        with m.If(self.clear):
            m.d.sync += self.reads.eq(took)
        with m.Elif(took):
            m.d.sync += self.reads.eq(self.reads + 1)
        return m


register_block(
    "reram", "ReRAM embedding store: host write port, pipelined streaming read port, counter",
    build=lambda **p: ReramStore(memmap=MemoryMap(**p)),
    params={"n": 16, "reram_bytes": 2 * 1024 * 1024, "reram_word_bytes": 8, "reram_latency": 2},
)
