"""A small query helper over the report's HTML (stdlib parser): tags with attributes, and the text of
every table cell grouped by the section that holds it, so tests read numbers as a person would.
"""
from __future__ import annotations

from html.parser import HTMLParser


class Doc(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.tables: dict[str, list[list[list[str]]]] = {}   # section id -> tables -> rows -> cells
        self.headings: list[str] = []
        self._section = ""
        self._cell: list[str] | None = None
        self._h2: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self._section = a.get("id", "")
        elif tag == "table":
            self.tables.setdefault(self._section, []).append([])
        elif tag == "tr":
            self.tables[self._section][-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "h2":
            self._h2 = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._section][-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "h2" and self._h2 is not None:
            self.headings.append("".join(self._h2).strip())
            self._h2 = None

    def handle_data(self, data):
        for buf in (self._cell, self._h2):
            if buf is not None:
                buf.append(data)

    def table(self, section: str, index: int = 0) -> dict[str, list[str]]:
        """{first cell: row} of one table in a section (header row included, under its first cell)."""
        return {row[0]: row for row in self.tables[section][index] if row}

    def imgs(self) -> list[dict]:
        return [a for t, a in self.tags if t == "img"]
