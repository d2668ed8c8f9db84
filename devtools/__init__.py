"""Development tools the tests and the benchmarks share; no part of the installed package."""
