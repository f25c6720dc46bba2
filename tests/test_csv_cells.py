"""CSV cells from clients' text cannot run as spreadsheet formulas; numbers and plain text pass unchanged.

The one helper (service/csv_cells.py) serves worklist.csv, delivery metadata.csv and summary.csv.
OWASP lists =, +, -, @, tab and carriage return as the characters a formula may start with.
"""
from __future__ import annotations

import pytest

from service.csv_cells import csv_text


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_starts_are_quoted(text):
    assert csv_text(text) == "'" + text


@pytest.mark.parametrize("value,cell", [("anna", "anna"), ("a=b", "a=b"), (None, ""), ("", ""), (3, "3")])
def test_other_text_is_kept(value, cell):
    assert csv_text(value) == cell
