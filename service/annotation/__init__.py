"""The annotation team's day on top of the store: worklist drafting, QA of corrections, correction effort,
agreement between annotators, delivery packages and the batch report. Routes and CLI commands call
these; the pure measures they apply live in service.qa.
"""
