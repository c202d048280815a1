"""The writer process, sole writer of a worker's memory: decode, store, absorb, rounds, codebook."""
