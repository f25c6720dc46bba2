"""The HTTP API: app.py builds the FastAPI app, routes/ has one module per resource, schemas/ their request
and response models, deps.py the dependencies they declare; errors.py maps domain errors to status codes.

Nothing here loads a model at import: the app's lifespan owns the model, the store and the batch worker.
"""

API_PREFIX = "/v1"  # in each router's own prefix, so route templates (metrics labels) are full paths
