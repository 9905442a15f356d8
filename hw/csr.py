"""AXI4-Lite control and status registers ([H9]), implementing :class:`hw.regmap.RegisterMap`.

The register map is read, not written here: every register, field, access kind and port comes
from :mod:`hw.regmap`, so the map, this slave and ``docs/accelerator.md`` cannot disagree.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.axi import Resp, axi_lite_signature
from hw.checks import checked_construction
from hw.memmap import MemoryMap
from hw.registry import register_block
from hw.regmap import BUS_BYTES, CSR_ADDR_BITS, Access, RegisterMap, memmap_fields

__all__ = ["Csr", "INTERNAL_FIELDS"]

# The fields the slave drives itself (source "internal" in the register map).
INTERNAL_FIELDS = {("STATUS", "csr_error"), ("IRQ_STATUS", "csr_error"),
                   ("CSR_ERRORS", "count"), ("CSR_ERRORS", "offset")}


def _check_regmap(regmap):
    if not isinstance(regmap, RegisterMap):
        raise TypeError(f"regmap must be a hw.regmap.RegisterMap, not {regmap!r}")
    for r in regmap:
        for f in r.fields:
            if f.source == "internal" and (r.name, f.name) not in INTERNAL_FIELDS:
                raise ValueError(f"register {r.name} field {f.name}: the CSR slave drives no "
                                 f"internal field of that name")


class Csr(wiring.Component):
    """AXI4-Lite slave of the accelerator's control and status registers.

    AW and W are held independently (either may come first, or both at once); a write
    commits once both are held and the B channel is free, so every handshake completes in any
    order and under any back-pressure. A write to an unmapped or read-only offset, or one that
    sets a reserved bit or an RW field above its maximum, answers SLVERR and changes nothing;
    an unmapped read answers SLVERR with data 0. Both are counted in ``CSR_ERRORS`` (the first
    offending offset is kept) and set ``IRQ_STATUS.csr_error``. ``wstrb`` selects the bytes a
    write changes. Address bits 1:0 are ignored.

    Parameters
    ----------
    regmap : RegisterMap
        The register map (default: the default generator parameters).

    Attributes
    ----------
    s_axil : AXI4-Lite slave, :data:`hw.regmap.CSR_ADDR_BITS` address bits, 32-bit data
        (:func:`hw.axi.axi_lite_signature`, flipped).
    irq : Signal(1), out
        ``CTRL.irq_en`` and any ``IRQ_STATUS`` bit set.
    <register> : View(StructLayout), out
        One per writable register (``ctrl``, ``step``, ``prog_base``, ``watchdog``): RW fields
        hold their value, W1S fields pulse for one cycle after a write of 1.
    irq_status : View(StructLayout), out
        The sticky interrupt causes; ``irq_status_set`` (in) sets them (set wins over clear).
    <register> : View(StructLayout), in
        One per read-only register with port fields (``status``, ``error``, ``error_pc``,
        ``pc``, ``exit_layer``, ``dvfs``, ``dvfs_bin``, ``entropy``, ``load_error_addr``).
    <counter> : Signal(64), in
        One per counter (``cycles``, ``mac_cycles``, ..., ``cmd_cycles``): reading its LO
        register snapshots the upper half for HI.
    """

    def __init__(self, *, regmap=None):
        with checked_construction(self):
            regmap = RegisterMap() if regmap is None else regmap
            _check_regmap(regmap)
        self._regmap = regmap
        members = {"s_axil": In(axi_lite_signature(CSR_ADDR_BITS)), "irq": Out(1)}
        for name, (direction, shape) in regmap.ports().items():
            if isinstance(shape, list):
                shape = data.StructLayout(dict(shape))
            if direction == "Out":
                reg = regmap[name.upper()]
                members[name] = Out(shape, init={f.name: f.reset for f in reg.fields})
            else:
                members[name] = In(shape)
        super().__init__(members)

    @property
    def regmap(self):
        return self._regmap

    def elaborate(self, platform):
        m = Module()
        rm, ax = self._regmap, self.s_axil
        word = slice(2, CSR_ADDR_BITS)

        # Write channel: hold AW and W independently; commit when both are held.
        aw_held, w_held = Signal(), Signal()
        aw_addr = Signal(CSR_ADDR_BITS)
        w_data, w_strb = Signal(8 * BUS_BYTES), Signal(BUS_BYTES)
        m.d.comb += [ax.awready.eq(~aw_held), ax.wready.eq(~w_held)]
        with m.If(ax.awvalid & ~aw_held):
            m.d.sync += [aw_held.eq(1), aw_addr.eq(ax.awaddr)]
        with m.If(ax.wvalid & ~w_held):
            m.d.sync += [w_held.eq(1), w_data.eq(ax.wdata), w_strb.eq(ax.wstrb)]
        commit = Signal()
        m.d.comb += commit.eq(aw_held & w_held & ~ax.bvalid)
        bytemask = Signal(8 * BUS_BYTES)
        m.d.comb += bytemask.eq(Cat(b.replicate(8) for b in w_strb))
        wbits = w_data & bytemask

        # Read channel: one read in flight; the response is registered.
        ar_take = Signal()
        m.d.comb += [ax.arready.eq(~ax.rvalid), ar_take.eq(ax.arvalid & ~ax.rvalid)]

        refused_w, refused_r = Signal(), Signal()
        count = Signal(16)
        offset = Signal(CSR_ADDR_BITS)
        internal = {("CSR_ERRORS", "count"): count, ("CSR_ERRORS", "offset"): offset,
                    ("IRQ_STATUS", "csr_error"): refused_w | refused_r}
        if "irq_status" in rm.ports():
            internal[("STATUS", "csr_error")] = self.irq_status.csr_error

        w_oks, mapped_r = [], []
        shadows = {}
        with m.If(ar_take):
            m.d.sync += [ax.rvalid.eq(1), ax.rdata.eq(0), ax.rresp.eq(Resp.SLVERR)]
        with m.Elif(ax.rvalid & ax.rready):
            m.d.sync += ax.rvalid.eq(0)
        for r in rm:
            index = r.offset // BUS_BYTES
            wsel, rsel = Signal(name=f"wsel_{r.name}"), Signal(name=f"rsel_{r.name}")
            m.d.comb += [wsel.eq(aw_addr[word] == index), rsel.eq(ax.araddr[word] == index)]
            mapped_r.append(rsel)
            value = Signal(r.width, name=f"value_{r.name}")
            kinds = {f.access for f in r.fields}
            if r.port is not None:
                port = getattr(self, r.port)
                if r.port_lsb == 0:
                    value_src = port[:r.width]
                    if len(port) > r.width:
                        shadows[r.port] = Signal(len(port) - r.width, name=f"shadow_{r.port}")
                        with m.If(ar_take & rsel):
                            m.d.sync += shadows[r.port].eq(port[r.width:])
                else:
                    value_src = shadows[r.port][r.port_lsb - r.width:r.port_lsb]
                m.d.comb += value[r.fields[0].lsb:].eq(value_src)
            else:
                for f in r.fields:
                    m.d.comb += value[f.lsb:f.msb + 1].eq(self._field_value(r, f, internal))
            with m.If(ar_take & rsel):
                m.d.sync += [ax.rdata.eq(value), ax.rresp.eq(Resp.OKAY)]
            if not r.writable:
                continue
            legal = Signal(name=f"legal_{r.name}")
            reserved = ((1 << r.width) - 1) & ~r.used_mask
            if kinds == {Access.W1C}:
                new = wbits
                m.d.comb += legal.eq((wbits & reserved) == 0)
            else:
                # RW fields keep their bytes outside wstrb; W1S fields see only written bytes.
                old = Signal(r.width, name=f"old_{r.name}")
                for f in r.fields:
                    if f.access is Access.RW:
                        m.d.comb += old[f.lsb:f.msb + 1].eq(getattr(self, r.name.lower())[f.name])
                new = Signal(r.width, name=f"new_{r.name}")
                m.d.comb += new.eq((old & ~bytemask) | wbits)
                checks = [(new & reserved) == 0]
                checks += [new[f.lsb:f.msb + 1] <= f.maximum for f in r.fields
                           if f.maximum is not None]
                m.d.comb += legal.eq(Cat(checks).all())
            fire = Signal(name=f"fire_{r.name}")
            m.d.comb += fire.eq(commit & wsel & legal)
            w_oks.append(wsel & legal)
            self._write_fields(m, r, new, fire, internal)

        w_ok = Signal()
        m.d.comb += w_ok.eq(Cat(w_oks).any())
        with m.If(commit):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), ax.bvalid.eq(1),
                         ax.bresp.eq(Mux(w_ok, Resp.OKAY, Resp.SLVERR))]
        with m.Elif(ax.bvalid & ax.bready):
            m.d.sync += ax.bvalid.eq(0)

        # Refused accesses: counted (saturating), the first offset kept, IRQ_STATUS.csr_error.
        m.d.comb += [refused_w.eq(commit & ~w_ok),
                     refused_r.eq(ar_take & ~Cat(mapped_r).any())]
        total = count + refused_w + refused_r
        m.d.sync += count.eq(Mux(total > 0xFFFF, 0xFFFF, total))
        with m.If((count == 0) & (refused_w | refused_r)):
            m.d.sync += offset.eq(Mux(refused_w, aw_addr, ax.araddr) & ~(BUS_BYTES - 1))

        status_name, (enable_reg, enable_field) = rm.irq_status, rm.irq_enable
        status = getattr(self, status_name.lower())
        m.d.comb += self.irq.eq(getattr(self, enable_reg.lower())[enable_field]
                                & (status.as_value() != 0))
        return m

    def _field_value(self, r, f, internal):
        if f.access is Access.W1S:
            return Const(0, f.width)
        if f.source == "const" and f.access is Access.RO:
            return Const(f.reset, f.width)
        if f.source == "internal" and f.access is Access.RO:
            return internal[(r.name, f.name)]
        # RO port fields read their input, RW and W1C fields their output.
        return getattr(self, r.name.lower())[f.name]

    def _write_fields(self, m, r, new, fire, internal):
        port = getattr(self, r.name.lower())
        for f in r.fields:
            bits = new[f.lsb:f.msb + 1]
            if f.access is Access.RW:
                with m.If(fire):
                    m.d.sync += port[f.name].eq(bits)
            elif f.access is Access.W1S:
                m.d.sync += port[f.name].eq(Mux(fire, bits, 0))
            else:
                setter = (internal[(r.name, f.name)] if f.source == "internal"
                          else getattr(self, f"{r.name.lower()}_set")[f.name])
                clear = Mux(fire, bits, 0)
                m.d.sync += port[f.name].eq((port[f.name] & ~clear) | setter)


def _build(fmt_params, memmap_params):
    from hw.layouts import AFFormat

    return RegisterMap(memmap=MemoryMap(**memmap_params), fmt=AFFormat(**fmt_params))


def _split(params):
    names = memmap_fields()
    return ({k: v for k, v in params.items() if k not in names},
            {k: v for k, v in params.items() if k in names})


_PARAMS = {"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3,
           **{f: getattr(MemoryMap(), f) for f in memmap_fields()}}

register_block(
    "csr", "AXI4-Lite control and status registers (hw.regmap.RegisterMap)",
    build=lambda **p: Csr(regmap=_build(*_split(p))),
    params=_PARAMS,
)
