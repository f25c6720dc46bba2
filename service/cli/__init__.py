"""The `tailor` command line: one module per sub-app (model, serve, predict, jobs, db, models, corrections,
worklist), console.py for what they share (one-line failures, settings, the store), tailor.py for the root.

torch is imported only by the commands that train or export, so a CPU-only server never loads it.
"""
from service.cli.tailor import app, main

__all__ = ["app", "main"]
