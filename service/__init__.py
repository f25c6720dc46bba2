"""Tailor's service side: drafting photos, the store, review, jobs, integrations, the HTTP API and the CLI.

Packages import only the layers below them (docs/architecture.md); the model contract comes from `models`,
training's light modules from `training`. The training loop runs only from the CLI or a job, never inside
a request.
"""
