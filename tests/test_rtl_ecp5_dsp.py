"""The special-function units as elaborated for an ECP5 board: their chunk products registered in
MULT18X18D output registers (hw/sfu_pipe.py), simulated with the primitive's model
(sim/models/MULT18X18D.v) and held to the golden model bit for bit by the same testbenches."""

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed

from hw.entropy import EntropyExit
from hw.layernorm import LayerNorm
from hw.layouts import AFFormat, FixedFormat
from hw.sfu_pipe import dsp_target, mul, register_cut
from hw.softmax import Softmax
from sim.runner import require_simulator, run_cocotb
from sw.flows.synth import make_platform


def test_dsp_target_follows_the_platform():
    assert dsp_target(None) is None
    assert dsp_target(make_platform("ulx3s-85f")) == "ecp5"
    # --no-dsp: Yosys maps every multiplier to LUTs, so the generator instantiates no DSP.
    assert dsp_target(make_platform("ulx3s-85f", dsp=False)) is None
    assert dsp_target(make_platform("icebreaker")) is None


def _unused_module():
    m = Module()
    m._MustUse__used = True  # only built to be refused: not an elaboratable left unused
    return m


def test_register_cut_refuses_an_unknown_dsp():
    with pytest.raises(ValueError, match="dsp must be one of ecp5"):
        register_cut(_unused_module(), dsp="dsp48e2")


def test_mul_uses_one_mult18x18d_per_chunk_product_but_none_for_a_shift():
    m = Module()
    cut = register_cut(m, dsp="ecp5")
    a, b = Signal(signed(30)), Signal(20)  # 2 x 2 chunks of at most 17 bits
    p, q, r = Signal(signed(50)), Signal(signed(50)), Signal(signed(50))
    # a x b: 4 chunk products; a x 12345: 2 (Yosys maps a product by a constant to a DSP
    # too); a x 4096: a shift, no multiplier.
    m.d.comb += [p.eq(mul(cut, a, b)), q.eq(mul(cut, a, 12345)), r.eq(mul(cut, a, 4096))]
    text = verilog.convert(m, ports=[a, b, p, q, r], emit_src=False)
    assert text.count("MULT18X18D #(") == 6


def test_mult18x18d_refuses_operands_wider_than_the_primitive():
    m = _unused_module()
    cut = register_cut(m, dsp="ecp5")
    with pytest.raises(ValueError, match="18 signed or 17 unsigned bits"):
        cut.products([(Signal(18), Signal(4))])


_FMT, _FIXED = AFFormat(), FixedFormat()
_UNITS = {
    "entropy_exit": (lambda: EntropyExit(fmt=_FMT, n=4, max_classes=64, fixed=_FIXED),
                     "sim.tb_entropy",
                     {"n": 4, "max_classes": 64, "fmt": vars(_FMT), "fixed": vars(_FIXED)}),
    "layernorm": (lambda: LayerNorm(fmt=_FMT, n=4, max_len=64), "sim.tb_layernorm",
                  {"n": 4, "max_len": 64, "fmt": vars(_FMT)}),
    "softmax": (lambda: Softmax(fmt=_FMT, n=4, max_len=64, fixed=_FIXED), "sim.tb_softmax",
                {"n": 4, "max_len": 64, "fmt": vars(_FMT), "fixed": vars(_FIXED)}),
}


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_UNITS))
def test_sfu_with_ecp5_dsp_registers_matches_golden(name):
    require_simulator("icarus")
    make, tb, params = _UNITS[name]
    platform = make_platform("ulx3s-85f")
    text = verilog.convert(make(), name=name, emit_src=False, platform=platform)
    assert text.count("MULT18X18D #(") > 0, "no DSP primitive instantiated: nothing to test"
    res = run_cocotb(make(), name, tb, params=params, platform=platform)
    assert res["tests"] == 3
