"""The HTTP API: routes under /v1, their dependencies, request/response schemas and input handling.

Nothing here loads a model; service.app creates the app and its lifespan owns the model.
"""
