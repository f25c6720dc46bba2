"""The HTTP API's request and response models, one module per resource; /docs shows every one of them.

Requests forbid unknown fields, so a misspelt option is a 422 naming it rather than silently ignored.
Responses are built from the store's rows and the domain's results by each model's `of` constructor.
"""
