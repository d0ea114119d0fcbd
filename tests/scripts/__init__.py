"""Tests of the scripts under scripts/ (benchmarks, fuzzers): tiny real runs that keep them working."""
