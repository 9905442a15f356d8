"""Benchmarks behind ``edgebert bench``. Each module defines ``register(sub)`` for one target."""
