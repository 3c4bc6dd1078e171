"""Benchmarks (`make bench`): each runs the product for real and prints JSON figures (contract §8)."""
