"""Evaluation of guards and judges: datasets in, scorers, metrics, plots, experiments."""
