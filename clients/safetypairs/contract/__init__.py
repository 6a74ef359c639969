"""The contract both sides build on: wire messages live in `safetypairs.v1`; here are the typed
errors and their status mapping, the policy taxonomy, request ids, the image input rules, and
the result and model-card types the SDK returns and the services fill in, and the data formats
(the pair record, labelled training data, the one JSONL reader).

Nothing in this package imports the SDK, the services or a model runtime.
"""
