"""Evaluation: metrics (OPE, GOT-10k), the benchmark runner, score reports, plots and threshold sweeps."""
