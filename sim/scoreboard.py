"""Helpers shared by cocotb testbenches: parameters from the runner and a counting scoreboard."""

import json
import os

__all__ = ["params", "Scoreboard"]


def params():
    """The parameters :func:`sim.runner.run_cocotb` passed to this testbench."""
    return json.loads(os.environ.get("EB_PARAMS", "{}"))


class Scoreboard:
    """Compares RTL outputs with golden values as integers and counts the comparisons.

    :meth:`check` raises on the first mismatch with the inputs that caused it;
    :meth:`finish` raises unless at least ``minimum`` comparisons were made, so a testbench
    that silently compared nothing fails.
    """

    def __init__(self, what):
        self.what = what
        self.count = 0

    def check(self, got, expected, context=""):
        got, expected = int(got), int(expected)
        if got != expected:
            raise AssertionError(
                f"{self.what}: RTL {got:#x} != golden {expected:#x} after {self.count} "
                f"matching comparisons{'; ' + context if context else ''}")
        self.count += 1

    def check_many(self, got, expected, context=""):
        got, expected = list(got), list(expected)
        if len(got) != len(expected):
            raise AssertionError(f"{self.what}: {len(got)} results for {len(expected)} expected")
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            self.check(g, e, f"{context} element {i}" if context else f"element {i}")

    def finish(self, minimum=1):
        if self.count < minimum:
            raise AssertionError(
                f"{self.what}: only {self.count} comparisons ran, at least {minimum} required")
        return self.count
