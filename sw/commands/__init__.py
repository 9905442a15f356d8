"""CLI subcommands. Each module defines ``register(subparsers)``; sw.cli discovers them."""
