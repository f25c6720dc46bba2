"""Tailor's service side: the HTTP app, inference backends, mask formats and the `tailor` CLI.

It imports training's light modules; the training loop itself runs only from the CLI or a job,
never inside a request.
"""
