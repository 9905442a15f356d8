"""The DVFS controller's table ([H6], [S4]) from the exit-layer predictor and a latency target.

After layer 1 the accelerator knows the layer-1 entropy; the exit-layer predictor says, per
entropy bin, at which layer the sentence is expected to exit. The remaining layers must finish
within the target latency: for each bin this picks the lowest-voltage operating point (then the
lowest frequency among equal voltages) whose frequency meets

    (predicted_exit_layer - layers_done) * cycles_per_layer / frequency <= target_latency.

Codes: the voltage code of a point is the rank of its voltage among the distinct voltages of
the list (ascending, from 0); the frequency code likewise.
"""

from dataclasses import dataclass

from hw.checks import check_count
from sw.golden.entropy import threshold_units

__all__ = ["OperatingPoint", "DvfsTable", "build_table"]


@dataclass(frozen=True, order=True)
class OperatingPoint:
    """A supply voltage (V) and the clock frequency (Hz) it supports."""

    voltage: float
    frequency: float

    def __post_init__(self):
        for name in ("voltage", "frequency"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or isinstance(v, bool) or not v > 0:
                raise ValueError(f"{name} must be a positive number, not {v!r}")


@dataclass(frozen=True)
class DvfsTable:
    """One entry per bin: the edges (entropy register units), the chosen points and codes."""

    edges: tuple
    points: tuple
    vcodes: tuple
    fcodes: tuple
    latencies: tuple  # seconds for the predicted remaining layers at the chosen point

    @property
    def bins(self):
        return len(self.points)

    def registers(self, vcode_bits=4, fcode_bits=4):
        """``(addr, edge, vcode, fcode)`` writes for :class:`hw.dvfs.DvfsController`."""
        if max(self.vcodes) >= 1 << vcode_bits or max(self.fcodes) >= 1 << fcode_bits:
            raise ValueError(f"codes up to {max(self.vcodes)} (voltage) and {max(self.fcodes)} "
                             f"(frequency) do not fit {vcode_bits} and {fcode_bits} bits")
        edges = list(self.edges) + [0]
        return [(i, edges[i], self.vcodes[i], self.fcodes[i]) for i in range(self.bins)]


def build_table(exit_layers, bin_edges, cycles_per_layer, points, target_latency,
                layers_done=1):
    """The DVFS table for ``len(exit_layers)`` entropy bins.

    Parameters
    ----------
    exit_layers : sequence of int
        Predicted exit layer (1-based) of each bin.
    bin_edges : sequence of float
        ``bins - 1`` ascending entropy edges in nats: bin ``i`` holds ``edges[i-1] <= H <
        edges[i]``.
    cycles_per_layer : int
        Cycles one encoder layer takes (from the cycle model).
    points : sequence of OperatingPoint or (voltage, frequency)
        Available operating points.
    target_latency : float
        Time budget in seconds for the layers after ``layers_done``.
    layers_done : int
        Layers already run when the decision is made (1: after the layer-1 off-ramp).
    """
    pts = [p if isinstance(p, OperatingPoint) else OperatingPoint(*p) for p in points]
    if not pts:
        raise ValueError("points must list at least one operating point")
    check_count("cycles_per_layer", cycles_per_layer)
    if not target_latency > 0:
        raise ValueError(f"target_latency must be positive, not {target_latency!r}")
    if len(bin_edges) != len(exit_layers) - 1:
        raise ValueError(f"need {len(exit_layers) - 1} bin edges for {len(exit_layers)} bins, "
                         f"not {len(bin_edges)}")
    edges = tuple(threshold_units(e) for e in bin_edges)
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"bin_edges must be strictly ascending, not {list(bin_edges)}")
    volts = sorted({p.voltage for p in pts})
    freqs = sorted({p.frequency for p in pts})
    order = sorted(pts, key=lambda p: (p.voltage, p.frequency))
    chosen, lat = [], []
    for b, layer in enumerate(exit_layers):
        check_count(f"exit layer of bin {b}", layer)
        cycles = max(layer - layers_done, 0) * cycles_per_layer
        ok = [p for p in order if cycles / p.frequency <= target_latency]
        if not ok:
            fastest = max(p.frequency for p in pts)
            raise ValueError(
                f"bin {b} (exit layer {layer}) needs {cycles} cycles: "
                f"{cycles / fastest:.3g} s even at the fastest point ({fastest:.3g} Hz), "
                f"above the target latency {target_latency:.3g} s")
        chosen.append(ok[0])
        lat.append(cycles / ok[0].frequency)
    return DvfsTable(edges=edges, points=tuple(chosen),
                     vcodes=tuple(volts.index(p.voltage) for p in chosen),
                     fcodes=tuple(freqs.index(p.frequency) for p in chosen),
                     latencies=tuple(lat))

