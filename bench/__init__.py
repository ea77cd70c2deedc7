"""kdsweep benchmarks: `make bench` (docs/benchmarks.md) and `make bench-quick` (see bench.__main__)."""
