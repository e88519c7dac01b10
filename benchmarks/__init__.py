"""Side-by-side benchmarks: the service against a raw-driver or bare-framework ceiling,
measured in the same run on the same machine, reported as ratios of medians."""
