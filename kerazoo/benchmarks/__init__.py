"""The benchmarks that `kerazoo bench` runs, one module each (`main(argv)`
parses the script's options and returns its results), and what they share
(`timing`). They ship with the package; the source checkout's
`benchmarks/bench_NAME.py` runs `kerazoo.benchmarks.NAME` as a script, beside the
benchmarks that only a checkout has (`gpu.py`, `compiled_cost.py`, ...)."""
