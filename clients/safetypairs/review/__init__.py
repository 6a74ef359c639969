"""Human review of a pair dataset: the review page (server.py, queue.py, static/), its log
(safetypairs.contract.review_record) and the agreement figures (stats.py)."""
