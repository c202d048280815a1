"""Benchmarks (`beliefstream bench ...`): each writes a JSON of what it measured."""
