"""The ReRAM embedding store ([H8]): read-only to the datapath, loaded by the host.

One ``amaranth.lib.memory.Memory`` of ``reram_bytes / reram_word_bytes`` words of
``reram_word_bytes`` bytes (byte ``b`` of the store is byte ``b % word_bytes`` of word
``b // word_bytes``, little-endian, as :func:`sw.program.layout.lay_out` writes the image). The
datapath reads it through a :data:`ReadSignature` port: word-address requests and data
responses, both ``amaranth.lib.stream`` interfaces, ``latency`` cycles apart.

The words live in an ``amaranth.lib.memory.Memory`` (simulable; its contents, zeros included,
are written into the Verilog as one initial assignment per word), or with ``external=True`` in
an instance of the Verilog module :data:`EXTERNAL_MODULE` (:func:`external_verilog` gives its
text): zeroed by a loop and loaded by ``$readmemh`` from the file named by its ``INIT_FILE``
parameter (:func:`hex_image` writes it) and by the host. Amaranth's Verilog backend spells out
every bit of a memory's initial contents, which for the default 2 MiB store dominates the
generation time; the external storage takes none of it.
"""

from amaranth.hdl import ClockSignal, Instance, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.checks import checked_construction
from hw.memmap import DEFAULT_MEMMAP, MemoryMap
from hw.registry import register_block

__all__ = ["ReramStore", "read_signature", "COUNTER_BITS", "EXTERNAL_MODULE", "external_verilog",
           "hex_image"]

EXTERNAL_MODULE = "edgebert_reram_storage"

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
    external : bool
        Keep the words in an instance of :data:`EXTERNAL_MODULE` (Verilog only; its
        ``INIT_FILE`` parameter is ``init_file``) instead of a ``Memory``; ``init`` must then be
        ``None``. The read latency must be at least 1.
    init_file : str
        ``$readmemh`` file of the external storage (``""``: none, the host loads the store).

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

    def __init__(self, *, memmap: MemoryMap = DEFAULT_MEMMAP, init=None, external=False,
                 init_file=""):
        with checked_construction(self):
            if not isinstance(memmap, MemoryMap):
                raise TypeError(f"memmap must be a MemoryMap, not {memmap!r}")
            if external and init is not None:
                raise ValueError("an external ReRAM storage takes its contents from init_file, "
                                 "not init")
            if external and memmap.reram_latency < 1:
                raise ValueError("an external ReRAM storage needs reram_latency >= 1, not 0")
            if not isinstance(init_file, str) or '"' in init_file:
                raise ValueError(f"init_file must be a file name without quotes, not "
                                 f"{init_file!r}")
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
        self._external, self._init_file = bool(external), init_file
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
        req, resp = self.rd.req, self.rd.resp
        if self._external:
            rp = _ExternalReadPort(8 * self._word_bytes, self._depth)
            m.submodules.storage = Instance(
                EXTERNAL_MODULE, p_DEPTH=self._depth, p_WIDTH=8 * self._word_bytes,
                p_ABITS=max(1, (self._depth - 1).bit_length()), p_INIT_FILE=self._init_file,
                i_clk=ClockSignal(), i_we=self.w_en, i_waddr=self.w_addr, i_wdata=self.w_data,
                i_re=rp.en, i_raddr=rp.addr, o_rdata=rp.data)
        else:
            m.submodules.mem = mem = Memory(shape=8 * self._word_bytes, depth=self._depth,
                                            init=self._init)
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data)]
        if self._latency == 0:
            rp = mem.read_port(domain="comb")
            m.d.comb += [rp.addr.eq(req.payload), resp.payload.eq(rp.data),
                         resp.valid.eq(req.valid), req.ready.eq(resp.ready)]
        else:
            # Stage 0 is the memory's own output register; stages 1 .. latency-1 follow it.
            advance = Signal()
            m.d.comb += [advance.eq(~resp.valid | resp.ready), req.ready.eq(advance)]
            if not self._external:
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


class _ExternalReadPort:
    """The signals of the external storage's read port (address, enable, data a cycle later,
    held while the enable is low; a read and a write of one word in a cycle read the old
    word), as ``Memory.read_port(transparent_for=())`` has them."""

    def __init__(self, width, depth):
        self.addr = Signal(range(depth), name="ext_raddr")
        self.en = Signal(name="ext_re")
        self.data = Signal(width, name="ext_rdata")


def external_verilog():
    """The Verilog text of :data:`EXTERNAL_MODULE` (one module; append it to the design's)."""
    return f"""
module {EXTERNAL_MODULE} #(
  parameter DEPTH = 1, parameter WIDTH = 8, parameter ABITS = 1, parameter INIT_FILE = ""
) (
  input clk, input we, input [ABITS-1:0] waddr, input [WIDTH-1:0] wdata,
  input re, input [ABITS-1:0] raddr, output reg [WIDTH-1:0] rdata
);
  reg [WIDTH-1:0] mem [0:DEPTH-1];
  integer i;
  initial begin
    rdata = 0;
    for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
    if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
  end
  always @(posedge clk) begin
    if (we) mem[waddr] <= wdata;
    if (re) rdata <= mem[raddr];
  end
endmodule
"""


def hex_image(image, word_bytes):
    """``$readmemh`` text of a store image (bytes, little-endian words of ``word_bytes``): one
    word per line from word 0; the words past the image stay zero."""
    raw = bytes(image)
    raw += bytes(-len(raw) % word_bytes)
    return "".join(f"{int.from_bytes(raw[i:i + word_bytes], 'little'):0{2 * word_bytes}x}\n"
                   for i in range(0, len(raw), word_bytes))


register_block(
    "reram", "ReRAM embedding store: host write port, pipelined streaming read port, counter",
    build=lambda **p: ReramStore(memmap=MemoryMap(**p)),
    params={"n": 16, "reram_bytes": 2 * 1024 * 1024, "reram_word_bytes": 8, "reram_latency": 2},
)
