"""The HTTP API's request and response models, one module per resource; /docs shows every one of them.

Requests forbid unknown fields, so a misspelt option is a 422 naming it rather than silently ignored.
Responses are built from the store's rows and the domain's results by each model's `of` constructor.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Every free-text field is bounded, so a client cannot store a novel in a name column (VARCHAR(200)) or
# fill the database through notes. Names match the store's columns; notes and reasons are prose.
MAX_NAME, MAX_NOTE = 200, 10_000
Name = Annotated[str, Field(max_length=MAX_NAME)]
Note = Annotated[str, Field(max_length=MAX_NOTE)]
Version = Annotated[str, Field(max_length=100)]
