"""AXI4-Lite and AXI4 signatures (seen from the master), and the response codes.

A slave takes them as ``In(...)``: a member ``s_axil`` becomes Verilog ports ``s_axil__awaddr``
and so on, which cocotbext-axi finds with ``bus_separator="__"``. Only the signals the slaves
use are present (no PROT, CACHE, LOCK, QOS, REGION or USER: cocotbext-axi treats them as
optional); data is :data:`hw.regmap.BUS_BYTES` wide.
"""

import enum

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.regmap import BUS_BYTES

__all__ = ["Resp", "Burst", "axi_lite_signature", "axi4_signature"]


class Resp(enum.IntEnum):
    OKAY = 0
    SLVERR = 2


class Burst(enum.IntEnum):
    FIXED = 0
    INCR = 1
    WRAP = 2


def axi_lite_signature(addr_width):
    d = 8 * BUS_BYTES
    return wiring.Signature({
        "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(d), "wstrb": Out(BUS_BYTES), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
        "rdata": In(d), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def axi4_signature(addr_width, id_width):
    d = 8 * BUS_BYTES
    return wiring.Signature({
        "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(d), "wstrb": Out(BUS_BYTES), "wlast": Out(1), "wvalid": Out(1),
        "wready": In(1),
        "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(id_width), "rdata": In(d), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    })
