"""Schema fuzzing: requests generated from the OpenAPI schema, valid and not, get no 500 and answers that
match the schema they declare (schemathesis, in-process against the app with its lifespan running).

FUZZ_EXAMPLES (default 8) sets the cases per operation: the default run stays about a minute on two
cores; a deeper pass is e.g. FUZZ_EXAMPLES=200 pytest tests/api/test_fuzz_schema.py.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, reject, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from tests.conftest import make_settings

from service.api.app import create_app

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def api(tmp_path_factory, predictor, batch_root):
    settings = make_settings(tmp_path_factory.mktemp("fuzz"), warmup=False, batch_root=batch_root,
                             model_poll_s=0, max_batch_files=50)
    with TestClient(create_app(settings, predictor=predictor), raise_server_exceptions=False) as client:
        yield client


# The schema does not depend on settings: one app without a lifespan gives it at collection time.
schema = schemathesis.openapi.from_dict(create_app(make_settings(Path(tempfile.gettempdir()))).openapi())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_match_the_schema(case, api):
    response = api.request(**case.as_transport_kwargs())
    try:
        response.request.read()  # a multipart or binary body was streamed; the checks read it back
    except (AttributeError, TypeError):
        reject()  # a "file" the HTTP client cannot encode (a number, say): no request to judge
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance,
                                             content_type_conformance])
