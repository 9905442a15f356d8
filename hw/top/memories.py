"""The top's memories ([C3], [H8]), sized from :class:`hw.memmap.MemoryMap`.

* ``act``: n banks of ``act_words`` words of n codes; one tile word is the n banks at one
  address (bank ``i`` = row ``i`` of the tile). Two read ports (ADD reads two operands per
  beat) with one address each for all banks, and one write port with one address for all
  banks and a code-granular enable per bank (``en[bank]``, one bit per lane), so that a
  transposed tile is written one column per cycle.
* ``aux`` (two read ports: the two halves of a span mask beat, or gamma and beta),
  ``desc`` and ``prog`` (one read port each).

The weight memories are the matrix engine's own buffers (written through its ``m_w``,
``v_w`` and ``b_w`` streams). Every memory has a host write port (``valid``, ``addr``,
``data``, ``en``) that the bus loader drives while the sequencer is idle: ``en`` has one bit
per byte of the word (per code of an act word: byte ``i * n + j`` is code ``j`` of bank
``i``), so the AXI4 slave's 32-bit lanes with byte strobes go straight into the word, in any
order, without a read-modify-write. ``init`` images (for tests and memory-init files) come
from :func:`word_images`. The ReRAM store (:class:`hw.reram.ReramStore`) has its own write
port, driven by the top's ``host_reram`` (whole words, ``{addr, data}``; :func:`host_layouts`
gives its payload too).
"""

from types import SimpleNamespace

from amaranth.hdl import Mux, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from hw.memmap import MemoryMap

__all__ = ["host_layouts", "make_memories", "build_memories", "word_images"]


def host_layouts(memmap: MemoryMap, nb):
    """Payload layouts of the host write ports: ``{memory: StructLayout(addr, data, en)}``;
    ``en`` has a bit per byte (act: per code)."""
    n = memmap.n
    widths = {"act": (n * n * nb, n * n), "aux": (8 * memmap.word_bytes("aux"),
                                                   memmap.word_bytes("aux")),
              "desc": (128, 16), "prog": (128, 16)}
    out = {m: data.StructLayout({"addr": range(memmap.depth(m)), "data": w, "en": e})
           for m, (w, e) in widths.items()}
    out["reram"] = data.StructLayout({"addr": range(memmap.depth("reram")),
                                      "data": 8 * memmap.reram_word_bytes})
    return out


def word_images(memmap: MemoryMap, images, act=None):
    """Initial words of ``aux``, ``desc``, ``prog`` (little-endian bytes of a layout image)
    and of the act banks (``act``: ``{word: n x n codes}``), as ``{memory: [int]}`` and
    ``{"act": [[int] per bank]}``; ``"reram"``: the store's bytes
    (:class:`hw.reram.ReramStore` ``init``), if the images hold any."""
    out = {}
    if len(images.get("reram", b"")):
        out["reram"] = bytes(images["reram"])
    for mem in ("aux", "desc", "prog"):
        raw = bytes(images.get(mem, b""))
        wb = memmap.word_bytes(mem)
        out[mem] = [int.from_bytes(raw[i:i + wb], "little") for i in range(0, len(raw), wb)]
    n = memmap.n
    banks = [[0] * memmap.act_words for _ in range(n)]
    for word, tile in (act or {}).items():
        for i in range(n):
            banks[i][word] = sum(int(c) << (8 * j) for j, c in enumerate(tile[i]))
    out["act"] = banks
    return out


def make_memories(memmap: MemoryMap, nb, init=None):
    """The memories (``amaranth.lib.memory.Memory``): ``{"act": [bank ...], "aux": ...,
    "desc": ..., "prog": ...}``; ``init`` comes from :func:`word_images`."""
    n = memmap.n
    init = init or {}
    act = init.get("act") or [[] for _ in range(n)]
    mems = {"act": [Memory(shape=unsigned(n * nb), depth=memmap.act_words, init=act[i])
                    for i in range(n)]}
    for name in ("aux", "desc", "prog"):
        mems[name] = Memory(shape=unsigned(8 * memmap.word_bytes(name)),
                            depth=memmap.depth(name), init=init.get(name, []))
    return mems


def build_memories(m, memmap: MemoryMap, nb, host, busy, memories):
    """Add ``memories`` (:func:`make_memories`) to ``m`` with their ports. ``host`` maps
    memory name to its host write stream (payload :func:`host_layouts`), accepted while
    ``busy`` is low. Returns a namespace with the sequencer's ports: ``act_a``, ``act_b`` (per
    bank read ports), ``act_w`` (per bank write ports, code-granular enables), ``aux_a``,
    ``aux_b``, ``desc_rd``, ``prog_rd``."""
    n = memmap.n
    banks = memories["act"]
    for i, mem in enumerate(banks):
        m.submodules[f"act{i}"] = mem
    mems = {k: memories[k] for k in ("aux", "desc", "prog")}
    for name, mem in mems.items():
        m.submodules[name] = mem
    ns = SimpleNamespace(banks=banks, mems=mems)
    ns.act_a = [b.read_port() for b in banks]
    ns.act_b = [b.read_port() for b in banks]
    ns.act_w = [b.write_port(granularity=nb) for b in banks]
    ns.aux_a = mems["aux"].read_port()
    ns.aux_b = mems["aux"].read_port()
    ns.desc_rd = mems["desc"].read_port()
    ns.prog_rd = mems["prog"].read_port()
    # Host writes: the sequencer's write port of act, a dedicated one elsewhere (the sequencer
    # never writes aux, desc or prog).
    for name, mem in mems.items():
        wp = mem.write_port(granularity=8)
        port = host[name]
        m.d.comb += [port.ready.eq(~busy), wp.addr.eq(port.payload.addr),
                     wp.data.eq(port.payload.data),
                     wp.en.eq(Mux(port.valid & ~busy, port.payload.en, 0))]
    # act: the host's tile writes go through the sequencer's port while it is idle.
    port = host["act"]
    m.d.comb += port.ready.eq(~busy)
    with m.If(~busy):
        for i, wp in enumerate(ns.act_w):
            m.d.comb += [wp.addr.eq(port.payload.addr),
                         wp.data.eq(port.payload.data[i * n * nb:(i + 1) * n * nb]),
                         wp.en.eq(Mux(port.valid, port.payload.en[i * n:(i + 1) * n], 0))]
    return ns
