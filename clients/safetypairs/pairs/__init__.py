"""Pair generation: judge and edit services composed into verified counterfactual safety pairs,
written to a resumable dataset on disk."""
