"""Energy and latency model ([P2]): the cycle model's action counts priced per action.

Every constant is a published figure (:data:`CONSTANTS`, each with its source), moved to one
technology node, **45 nm at 0.9 V** (the node and voltage of Horowitz's ISSCC 2014 figures, so
most constants need no scaling). The rules:

* a dynamic-energy figure from another node is scaled by the feature-size ratio (switched
  capacitance proportional to the feature size at equal voltage: the first-order classical
  rule; Stillmaker and Baas 2017 show how far it drifts below 45 nm, which is why nearly every
  figure here is taken at 45 nm already); leakage figures have no such rule (they depend on the
  threshold voltage and the device flavour more than on the node) and are taken as published;
* dynamic energy at supply V is the 0.9 V figure times ``(V / 0.9 V)^2`` (E = C V^2);
* leakage power at V is the 0.9 V figure times ``V / 0.9 V`` (P = I_leak V, I_leak held
  constant: drain-induced barrier lowering makes it fall faster, so low points are priced
  conservatively); leakage energy is that power times the time spent at V;
* SRAM energy per access grows with the square root of the array's capacity, fitted to
  Horowitz's three points (64-bit access: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ); a memory of n
  banks (the activation memory) is priced by one bank.

An action count comes from :func:`sw.program.cycles.summarize` (or one
:class:`~sw.program.cycles.Cost`): MACs issued, SFU elements per unit, bytes read and written per
memory, cycles. :meth:`EnergyModel.dynamic_pj` prices them at 0.9 V; :meth:`EnergyModel.run`
prices a run split into phases at operating points, with the DVFS switch between them.
"""

import math
from dataclasses import dataclass, field

from hw.memmap import DEFAULT_MEMMAP, MemoryMap
from sw.dvfs import OperatingPoint

__all__ = ["Constant", "CONSTANTS", "EnergyModel", "OperatingPoint", "Phase", "constants_table",
           "operating_points", "NODE_NM", "V_REF"]

NODE_NM = 45
V_REF = 0.9

_HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm, 0.9 V"
_NVMX = ("NVMExplorer (Pentecost et al., HPCA 2022), lpentecost/NVMExplorer "
         "AE_dnn_output/{}_1BPC-combined.csv, 22 nm, 2 MB, 64-bit word")


@dataclass(frozen=True)
class Constant:
    """One priced action: value at 45 nm and 0.9 V, its unit, the published figure and node it
    came from, and the source."""

    name: str
    value: float
    unit: str
    published: str
    source: str


def _scale(value, node_nm):
    return value * NODE_NM / node_nm


# 8-bit integer multiply 0.2 pJ bounds the 5 x 5-bit significand product of AdaptivFloat<8,3>
# (plus its 3-bit exponent add); the 32-bit add is the wide exact accumulator ([F4]).
MAC_PJ = 0.2 + 0.1
# One fixed-point element of softmax, LayerNorm or entropy ([F5]): a 32-bit multiply and two
# 32-bit adds per element (the exp / inverse-square-root tables are priced as the multiply).
SFU_PJ = 3.1 + 2 * 0.1
# Residual add and embedding sum: two 32-bit adds per element (three operands, or two and the
# requantizer's rounding add).
ADD_PJ = 2 * 0.1
SRAM_8KB_64BIT_PJ = 10.0
RERAM_READ_PJ = _scale(1.118, 22)               # per 64-bit access
RERAM_LEAK_MW = 1.316                           # the 2 MB array (as published)
SRAM_LEAK_MW_PER_KB = 66.9 / 2048               # 2 MB SRAM array, per KB (as published)
REGISTER_PJ_PER_BIT = _scale(0.009, 40)
# The sequencer clocks its command register and the decoded fields of the unit it drives
# (two 128-bit registers) every cycle.
CONTROL_BITS = 2 * 128
CONTROL_PJ = CONTROL_BITS * REGISTER_PJ_PER_BIT
# DVFS switch: the digital LDO settles in 25.2 ns (65 nm); the datapath waits that long.
DVFS_SWITCH_S = 25.2e-9

CONSTANTS = (
    Constant("mac", MAC_PJ, "pJ per MAC issued", "8-bit mult 0.2 pJ + 32-bit add 0.1 pJ, 45 nm",
             _HOROWITZ),
    Constant("sfu_element", SFU_PJ, "pJ per element (softmax, LayerNorm, entropy)",
             "32-bit mult 3.1 pJ + 2 x 32-bit add 0.1 pJ, 45 nm", _HOROWITZ),
    Constant("add_element", ADD_PJ, "pJ per element (residual add, embedding sum)",
             "2 x 32-bit add 0.1 pJ, 45 nm", _HOROWITZ),
    Constant("sram_access", SRAM_8KB_64BIT_PJ, "pJ per 64-bit access of an 8 KB array "
             "(x sqrt(capacity / 8 KB); reads and writes alike)",
             "8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ, 45 nm", _HOROWITZ),
    Constant("reram_read", RERAM_READ_PJ, "pJ per 64-bit ReRAM read",
             "1.118 pJ at 22 nm (read-energy-optimised, 13.7 ns)", _NVMX.format("RRAM")),
    Constant("control", CONTROL_PJ, "pJ per cycle (sequencer: 256 register bits clocked)",
             "register 0.009 pJ/bit, 40 nm",
             "Accelergy-Project hwcomponents-library library/aladdin.py (Aladdin 40 nm)"),
    Constant("sram_leakage", SRAM_LEAK_MW_PER_KB, "mW per KB of SRAM",
             "66.9 mW for 2 MB at 22 nm (not scaled)", _NVMX.format("SRAM")),
    Constant("reram_leakage", RERAM_LEAK_MW, "mW (the 2 MB ReRAM store)",
             "1.316 mW at 22 nm (not scaled)", _NVMX.format("RRAM")),
    Constant("dvfs_switch", DVFS_SWITCH_S * 1e9, "ns per voltage change (datapath waits, "
             "leaking at the higher voltage)", "digital LDO settling 25.2 ns, 65 nm",
             "Zhang et al., 'A Fast Transient Response Digital LDO with a TDC-Based Signal "
             "Converter', Electronics 9(1):132, 2020"),
)


def constants_table():
    """Markdown table of :data:`CONSTANTS` (for ``docs/energy.md``)."""
    rows = ["| action | value (45 nm, 0.9 V) | unit | published figure | source |",
            "|---|---|---|---|---|"]
    for c in CONSTANTS:
        rows.append(f"| {c.name} | {c.value:.4g} | {c.unit} | {c.published} | {c.source} |")
    return "\n".join(rows)


def operating_points(meta_dvfs):
    """The image's operating points (``meta["dvfs"]``: ``mv`` and ``mhz`` lists, ascending),
    lowest first; the last is the nominal point."""
    mv, mhz = list(meta_dvfs["mv"]), list(meta_dvfs["mhz"])
    if not mv or len(mv) != len(mhz):
        raise ValueError(f"dvfs mv and mhz must be non-empty lists of one length, not {mv!r} "
                         f"and {mhz!r}")
    if sorted(mv) != mv or sorted(mhz) != mhz:
        raise ValueError(f"dvfs mv and mhz must be ascending, not {mv!r} and {mhz!r}")
    return [OperatingPoint(v / 1000, f * 1e6) for v, f in zip(mv, mhz, strict=True)]


@dataclass(frozen=True)
class Phase:
    """Part of a run at one operating point: its dynamic energy at 0.9 V (pJ) and cycles."""

    dynamic_pj: float
    cycles: int
    point: OperatingPoint


@dataclass
class EnergyModel:
    """Prices action counts for the memories of ``memmap`` (see the module docstring)."""

    memmap: MemoryMap = field(default_factory=lambda: DEFAULT_MEMMAP)
    mac_pj: float = MAC_PJ
    sfu_pj: float = SFU_PJ
    add_pj: float = ADD_PJ
    control_pj: float = CONTROL_PJ
    reram_read_pj: float = RERAM_READ_PJ
    switch_s: float = DVFS_SWITCH_S

    def sram_byte_pj(self, memory):
        """pJ per byte read or written in ``memory`` (SRAM square-root rule, per bank)."""
        if memory == "reram":
            return self.reram_read_pj / 8
        size = self.memmap.size_bytes(memory)
        if memory == "act":
            size //= self.memmap.n
        return SRAM_8KB_64BIT_PJ / 8 * math.sqrt(size / 8192)

    @property
    def leakage_mw(self):
        """Leakage power at 0.9 V: every SRAM of the memory map and the ReRAM store."""
        sram_kb = sum(self.memmap.size_bytes(m) for m in self.memmap_memories if m != "reram")
        kb = sram_kb / 1024
        return kb * SRAM_LEAK_MW_PER_KB + RERAM_LEAK_MW * self.memmap.reram_bytes / (2 << 20)

    @property
    def memmap_memories(self):
        return [m for m, *_ in self.memmap.table()]

    def dynamic_breakdown(self, summary):
        """pJ at 0.9 V per action class of a :func:`~sw.program.cycles.summarize` result (or a
        :class:`~sw.program.cycles.Cost`): ``mac``, ``sfu``, ``add``, ``memory:<name>``,
        ``control``."""
        s = _as_summary(summary)
        out = {"mac": s["issued_macs"] * self.mac_pj,
               "sfu": s["sfu_sfu"] * self.sfu_pj,
               "add": s["sfu_add"] * self.add_pj,
               "control": s["cycles"] * self.control_pj}
        for kind in ("reads", "writes"):
            for mem, b in s[kind].items():
                key = f"memory:{mem}"
                out[key] = out.get(key, 0.0) + b * self.sram_byte_pj(mem)
        return out

    def dynamic_pj(self, summary):
        """Dynamic energy (pJ) at 0.9 V of the actions in ``summary``."""
        return sum(self.dynamic_breakdown(summary).values())

    def leakage_pj(self, seconds, point):
        """Leakage energy (pJ) of ``seconds`` at ``point``."""
        return self.leakage_mw * 1e-3 * point.voltage / V_REF * seconds * 1e12

    def run(self, phases):
        """``(energy_pj, latency_s)`` of consecutive :class:`Phase` s; a change of voltage
        between two phases costs :attr:`switch_s` of waiting (leaking at the higher voltage)."""
        energy, t, prev = 0.0, 0.0, None
        for ph in phases:
            if prev is not None and prev.voltage != ph.point.voltage:
                hi = max(prev, ph.point)
                t += self.switch_s
                energy += self.leakage_pj(self.switch_s, hi)
            dt = ph.cycles / ph.point.frequency
            energy += ph.dynamic_pj * (ph.point.voltage / V_REF) ** 2
            energy += self.leakage_pj(dt, ph.point)
            t += dt
            prev = ph.point
        return energy, t


_SFU_UNITS = ("softmax", "layernorm", "entropy")
_ADD_UNITS = ("add", "embed")


def _as_summary(x):
    """A summary with SFU elements split into priced classes, from a summary dict or a Cost."""
    if isinstance(x, dict):
        if "sfu_sfu" not in x:
            raise ValueError("a summary must come from sw.perf.energy.summarize_actions (it "
                             "needs the SFU elements split by unit)")
        return x
    unit = x.unit
    return {"issued_macs": x.issued_macs, "cycles": x.cycles,
            "sfu_sfu": x.sfu_elements if unit in _SFU_UNITS else 0,
            "sfu_add": x.sfu_elements if unit in _ADD_UNITS else 0,
            "reads": dict(x.reads), "writes": dict(x.writes)}


def summarize_actions(costs, indices):
    """Action counts of the commands ``indices`` of ``costs`` (a list of
    :class:`~sw.program.cycles.Cost`), SFU elements split by the unit that computes them."""
    out = {"issued_macs": 0, "cycles": 0, "sfu_sfu": 0, "sfu_add": 0, "reads": {},
           "writes": {}}
    for i in indices:
        c = _as_summary(costs[i])
        for k in ("issued_macs", "cycles", "sfu_sfu", "sfu_add"):
            out[k] += c[k]
        for k in ("reads", "writes"):
            for mem, b in c[k].items():
                out[k][mem] = out[k].get(mem, 0) + b
    return out


__all__.append("summarize_actions")
