"""The golden model: one integer-exact function per hardware operation.

Every function here takes and returns integer tensors (AdaptivFloat codes as integers, bias
registers as Python ints, accumulators and fixed-point values as int64) and computes exactly
what the gateware computes. Modules: :mod:`sw.golden.af` (AdaptivFloat arithmetic).
"""
