"""genrecast benchmarks: ``python -m benchmarks`` prints a table and writes JSON."""
