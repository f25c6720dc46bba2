"""Fixtures for the report tests: a drawn batch with hand-counted answers, and one of real CCP photos."""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest  # noqa: E402

from tests.conftest import CCP  # noqa: E402


@pytest.fixture
def drawn(tax):
    from tests.review.report.drawn import drawn_input

    return drawn_input(tax)


@pytest.fixture(scope="session")
def ccp_input(tax):
    from tests.review.report.ccp_batch import build_input

    assert CCP.is_dir(), f"the CCP dataset is expected at {CCP}"
    return build_input(6, tax)


@pytest.fixture(scope="session")
def ccp_report(ccp_input, tmp_path_factory):
    """report.html of the CCP batch, written once per session by write_report."""
    from service.review.report.build import write_report

    return write_report(ccp_input, tmp_path_factory.mktemp("ccp-report") / "report")
