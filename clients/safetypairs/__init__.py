"""SafetyPairs: counterfactual safety pairs, and the guard, judge and edit services behind them.

This package's client side (`safetypairs.client`, `safetypairs.contract.policy`, `safetypairs.v1`)
imports without torch, onnxruntime or bentoml.
"""

__version__ = "0.1.0"
