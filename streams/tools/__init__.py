"""What the demo, benchmarks and tests share: datasets, replay, broker, processes, show."""
