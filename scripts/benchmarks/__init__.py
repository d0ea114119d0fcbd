"""Parts of the relay benchmark (``scripts/bench_relay.py`` is the entry point): servers, load generator,
process measurements, report."""
