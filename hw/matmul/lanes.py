"""Stages S1 to S3 of the matrix engine: the n × n lanes, and the bias of a closing tile.

S1 realigns the token's non-zero codes out of the value buffer and selects the X lane, S1b
splits both into sign, exponent and significand, S2 multiplies the significands and adds the
exponents, S3 shifts and signs the exact products ``±sig·sig << (e + e)`` ([F4]). A tile's
last token also reads and aligns the bias of its column block.
"""

from types import SimpleNamespace

from amaranth.hdl import Array, Const, Mux, Signal, signed

from hw.af_mul import af_fields
from hw.matmul.config import DIM_BITS
from hw.matmul.logic import split

__all__ = ["build_lanes"]


def build_lanes(m, cfg, bufs, run, scan):
    """Add S1..S3 and the bias path to ``m``.

    Returns the products ``prod[i][j]`` (S4's input), the token register ``s4`` that arrives
    with them, and the aligned bias magnitudes and signs ``bias_mag``, ``bias_neg`` of the
    tile the last token closes.
    """
    fmt = cfg.fmt
    n, nb = cfg.n, fmt.n_bits
    pw = fmt.product_bits
    s1, s1_win = scan.s1, scan.s1_win
    s1b = {f: Signal.like(s1[f], name=f"s1b_{f}")
           for f in ("valid", "first", "last", "cb", "yaddr")}
    s2 = dict(valid=Signal(), first=Signal(), last=Signal(), yaddr=Signal(DIM_BITS))
    s3 = dict(valid=Signal(), first=Signal(), last=Signal(), yaddr=Signal(DIM_BITS))
    s4 = dict(valid=Signal(), first=Signal(), last=Signal(), yaddr=Signal(DIM_BITS))

    # ---- S1: realign the non-zeros and select the X lane (registered codes); S1b: split
    # both into fields. Two stages keep the X banks' block RAM output time and the 4n-way
    # realignment multiplexer each in a cycle of their own.
    def fields(prefix, k):
        return (Signal(name=f"{prefix}_s{k}"), Signal(fmt.exp_bits, name=f"{prefix}_e{k}"),
                Signal(fmt.sig_bits, name=f"{prefix}_g{k}"))

    wf = [fields("w", j) for j in range(n)]
    xf = [fields("x", i) for i in range(n)]
    w_code = [Signal(nb, name=f"w_code{j}") for j in range(n)]
    x_code = [Signal(nb, name=f"x_code{i}") for i in range(n)]
    # Lane j takes code used + (set mask bits below j) of the buffer, modulo 4n. Done in two
    # parallel halves, neither with an adder: the window of the n codes from `used` on
    # (win[k] = buffer code used + k, a 4n-way multiplexer on its own register), and
    # one-hot counts of the set mask bits below each lane (plain logic), which then pick
    # one of the first j + 1 window codes. (An adder `used + popcount` in front of the
    # 4n-way multiplexer was the critical path at n = 8.)
    vb = Array(scan.vbuf)
    win = []
    for k in range(n):
        w = Signal(nb, name=f"win{k}")
        m.d.comb += w.eq(vb[s1_win[k]])
        win.append(w)
    below = [Const(1)]          # one-hot count of the set bits in mask[:j]
    for j in range(n):
        bit = s1["mask"][j]
        pick = 0
        for k, hot in enumerate(below):
            pick = pick | Mux(hot, win[k], 0)
        m.d.sync += w_code[j].eq(Mux(bit, pick, 0))
        # Named signals per step: as nested expressions each step would copy the previous
        # one twice, and the Verilog would grow as 2^n (1.5 M lines at n = 16).
        nxt = [Signal(name=f"below{j + 1}_{k}") for k in range(len(below) + 1)]
        m.d.comb += [b.eq((below[k] if k < len(below) else 0) & ~bit
                          | (below[k - 1] & bit if k else 0)) for k, b in enumerate(nxt)]
        below = nxt
    for i in range(n):
        m.d.sync += x_code[i].eq(Array(split(bufs.x_rd[i].data, n, nb))[s1["lane"]])
    m.d.sync += [s1b[f].eq(s1[f]) for f in s1b]
    for f, code in [*zip(wf, w_code, strict=True), *zip(xf, x_code, strict=True)]:
        m.d.sync += [r.eq(v) for r, v in zip(f, af_fields(fmt, code), strict=True)]
    m.d.sync += [s2[f].eq(s1b[f]) for f in s2]

    # ---- S2: n × n significand products, exponent sums and signs ------------------------
    sp = [[Signal(2 * fmt.sig_bits, name=f"sp{i}_{j}") for j in range(n)] for i in range(n)]
    es = [[Signal(fmt.exp_bits + 1, name=f"es{i}_{j}") for j in range(n)] for i in range(n)]
    sg = [[Signal(name=f"sg{i}_{j}") for j in range(n)] for i in range(n)]
    for i, (sx, ex, gx) in enumerate(xf):
        for j, (sw_, ew, gw) in enumerate(wf):
            m.d.sync += [sp[i][j].eq(gx * gw), es[i][j].eq(ex + ew), sg[i][j].eq(sx ^ sw_)]
    m.d.sync += s3["valid"].eq(s2["valid"])
    m.d.sync += [s3[f].eq(s2[f]) for f in ("first", "last", "yaddr")]

    # ---- S3: exact signed products ±sig·sig << (e + e) -----------------------------------
    prod = [[Signal(signed(pw), name=f"prod{i}_{j}") for j in range(n)] for i in range(n)]
    for i in range(n):
        for j in range(n):
            mag = (sp[i][j] << es[i][j])[:pw - 1]
            m.d.sync += prod[i][j].eq(Mux(sg[i][j], -mag, mag))
    m.d.sync += s4["valid"].eq(s3["valid"])
    m.d.sync += [s4[f].eq(s3[f]) for f in ("first", "last", "yaddr")]

    # Bias of the tile a closing token ends, aligned to the accumulator unit:
    # sig << (exp + bias_b - bias_x - bias_w - offset + M), never a negative shift
    # (MatmulConfig checks the format). Read at S1b; fields and shift amount registered at
    # S2 (so the block RAM's output time stays off the shifter), shifted at S3, signed at S4.
    b_rd = bufs.b_rd
    m.d.comb += [b_rd.addr.eq(s1b["cb"] + run.bbase), b_rd.en.eq(s1b["valid"] & s1b["last"])]
    base = Signal(range(2 * fmt.bias_max + 1 + cfg.bias_shift_range[1]))
    m.d.sync += base.eq(run.bb + (fmt.man_bits - fmt.offset) - run.bx - run.bw)
    bias_sig = [Signal(fmt.sig_bits, name=f"bias_sig{j}") for j in range(n)]
    bias_sh = [Signal(range(cfg.bias_shift_range[1] + 1), name=f"bias_sh{j}")
               for j in range(n)]
    bias_sg = [Signal(name=f"bias_sg{j}") for j in range(n)]
    bias_mag = [Signal(cfg.bias_width - 1, name=f"bias_mag{j}") for j in range(n)]
    bias_neg = [Signal(name=f"bias_neg{j}") for j in range(n)]
    for j, c in enumerate(split(b_rd.data, n, nb)):
        sb, eb, gb = af_fields(fmt, c)
        with m.If(s2["valid"] & s2["last"]):
            m.d.sync += [bias_sig[j].eq(gb), bias_sh[j].eq(eb + base), bias_sg[j].eq(sb)]
        with m.If(s3["valid"] & s3["last"]):
            m.d.sync += [bias_mag[j].eq(bias_sig[j] << bias_sh[j]),
                         bias_neg[j].eq(bias_sg[j])]
    return SimpleNamespace(prod=prod, s4=s4, bias_mag=bias_mag, bias_neg=bias_neg)
