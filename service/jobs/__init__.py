"""Background jobs on the database queue (service/store/queue.py): the worker, its supervisor and the kinds.

batch_predict drafts a folder or an upload (what /v1/batches shows), evaluate scores a model version,
retrain fine-tunes on approved corrections and lets the promotion gate decide. Jobs run in `tailor worker`
processes (retraining never in the server), and batch drafting also in a thread of the server.
"""
