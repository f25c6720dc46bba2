"""Spreadsheet-safe CSV cells: text that a spreadsheet would run as a formula is prefixed with a quote.

Names, notes and file names come from clients; opened in Excel or LibreOffice, a cell starting with
=, +, -, @, a tab or a carriage return is a formula (OWASP "CSV injection"). Every CSV the service writes uses this.
"""
from __future__ import annotations

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: object) -> str:
    """The value as a CSV cell, with a leading apostrophe when it would start a formula; None is empty.

    Only for text columns: a number written by the service itself ("-0.5") is left to the writer."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
