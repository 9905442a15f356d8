"""The matrix engine component: ports, and the stages wired in pipeline order.

See :mod:`hw.matmul` for the dataflow and the buffer layouts.
"""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.checks import checked_construction
from hw.matmul.buffers import build_buffers
from hw.matmul.config import COUNTER_BITS, DIM_BITS, NNZ_BITS, MatmulConfig
from hw.matmul.control import MatmulError, build_sequencer, run_registers
from hw.matmul.drain import build_drain
from hw.matmul.lanes import build_lanes
from hw.matmul.scanner import build_scanner
from hw.registry import register_block

__all__ = ["MatrixEngine", "payload_layouts"]


def payload_layouts(config: MatmulConfig):
    """Struct layouts of the stream payloads (fields LSB first), for drivers and testbenches."""
    n, nb = config.n, config.fmt.n_bits
    return {
        "x_w": data.StructLayout({"bank": range(n), "addr": range(config.x_depth),
                                  "data": n * nb}),
        "m_w": data.StructLayout({"addr": range(config.m_depth), "data": n * n}),
        "v_w": data.StructLayout({"addr": range(config.v_depth), "data": n * nb}),
        "b_w": data.StructLayout({"addr": range(config.b_depth), "data": n * nb}),
        "y_req": data.StructLayout({"bank": range(n), "addr": range(config.y_depth)}),
        "y_rsp": data.StructLayout({"data": n * nb}),
    }


class MatrixEngine(wiring.Component):
    """The matrix engine (see :mod:`hw.matmul` for the dataflow and the buffer layouts).

    Parameters
    ----------
    config : MatmulConfig
        Generator parameters.

    Attributes
    ----------
    x_w : stream of {bank, addr, data}, in
        Writes one X word (n codes) into X bank ``bank``; accepted only while idle.
    m_w, v_w, b_w : stream of {addr, data}, in
        Write one mask / value / bias word; accepted only while idle.
    y_req : stream of {bank, addr}, in
        Read request for one Y word; accepted only while idle.
    y_rsp : stream of {data}, out
        The Y words, in request order.
    start : Signal(1), in
        Starts a run with the shape and bias ports below (sampled while idle).
    rows, k, cols : Signal(16), in
        Shape; each must be a positive multiple of n that fits the buffers.
    nnz : Signal(32), in
        Number of packed non-zero codes of W (checked against what the masks consume).
    bias_x, bias_w, bias_b, bias_out : Signal(fmt.bias_bits), in
        Bias registers of X, W, the bias vector and Y.
    relu : Signal(1), in
        Apply ReLU before requantization.
    m_base, v_base, b_base : Signal(range(depth)), in
        First mask / value / bias word of W (sampled with ``start``; 0 by default): the
        buffers may hold several matrices, each run uses the one at these bases.
    busy : Signal(1), out
        A run is in progress.
    done : Signal(1), out
        One-cycle pulse at the end of a run (also after an error).
    err : Signal(MatmulError), out
        Status of the last run (NONE when it succeeded).
    cyc_total, cyc_mac, vec_skipped, cyc_stall : Signal(32), out
        Counters of the last run: busy cycles, cycles that issued a non-zero weight vector,
        all-zero vectors skipped, cycles a tile's last vector waited for the drain.
    """

    def __init__(self, *, config: MatmulConfig = MatmulConfig()):
        with checked_construction(self):
            if not isinstance(config, MatmulConfig):
                raise TypeError(f"config must be a MatmulConfig, not {config!r}")
        self._cfg = config
        bias = config.fmt.bias_bits
        lay = payload_layouts(config)
        super().__init__({
            **{name: In(stream.Signature(lay[name]))
               for name in ("x_w", "m_w", "v_w", "b_w", "y_req")},
            "y_rsp": Out(stream.Signature(lay["y_rsp"])),
            "start": In(1),
            "rows": In(DIM_BITS), "k": In(DIM_BITS), "cols": In(DIM_BITS),
            "nnz": In(NNZ_BITS),
            "bias_x": In(bias), "bias_w": In(bias), "bias_b": In(bias), "bias_out": In(bias),
            "relu": In(1),
            "m_base": In(range(config.m_depth)), "v_base": In(range(config.v_depth)),
            "b_base": In(range(config.b_depth)),
            "busy": Out(1), "done": Out(1), "err": Out(MatmulError),
            "cyc_total": Out(COUNTER_BITS), "cyc_mac": Out(COUNTER_BITS),
            "vec_skipped": Out(COUNTER_BITS), "cyc_stall": Out(COUNTER_BITS),
        })

    @property
    def config(self):
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        # The order matters where two stages assign one register: the sequencer's
        # assignments come last and take precedence over the scanner's.
        bufs = build_buffers(m, cfg, self)
        run = run_registers(m, cfg, self)
        scan = build_scanner(m, cfg, bufs, run)
        lanes = build_lanes(m, cfg, bufs, run, scan)
        build_drain(m, cfg, bufs, run, lanes)
        build_sequencer(m, cfg, self, bufs, run, scan)
        return m


_DEFAULTS = MatmulConfig()


register_block(
    "matmul", "matrix engine: n×n AdaptivFloat MAC array, bitmask-sparse weights, banked SRAMs",
    build=lambda **p: MatrixEngine(config=MatmulConfig.from_params(**p)),
    params={"n": _DEFAULTS.n, "n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3,
            "max_k": _DEFAULTS.max_k, "x_depth": _DEFAULTS.x_depth,
            "y_depth": _DEFAULTS.y_depth, "m_depth": _DEFAULTS.m_depth,
            "v_depth": _DEFAULTS.v_depth},
)
