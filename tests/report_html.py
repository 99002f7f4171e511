"""Reading a `bench report` page back with html.parser, for the report tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Cell:
    text: str
    value: str | None  # data-value
    high: str | None = None  # data-high: an interval's upper end


@dataclass
class ParsedTable:
    section: str | None  # data-eval-set of the enclosing section
    css_class: str
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)  # (tr class, cells)

    def row(self, first_cell: str) -> list[Cell]:
        return next(cells for _, cells in self.rows if cells and cells[0].text == first_cell)


class ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.image_sources: list[str] = []
        self.links: list[str] = []  # every src and href
        self.sections: list[str] = []
        self.tables: list[ParsedTable] = []
        self._section: str | None = None
        self._row: list[Cell] | None = None
        self._cell: Cell | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in ("src", "href"):
            if name in attributes:
                self.links.append(attributes[name] or "")
        if tag == "img":
            self.image_sources.append(attributes.get("src") or "")
        elif tag == "section" and "set" in (attributes.get("class") or "").split():
            self._section = attributes.get("data-eval-set")
            self.sections.append(self._section)
        elif tag == "table":
            self.tables.append(ParsedTable(self._section, attributes.get("class") or ""))
        elif tag == "tr":
            self._row = []
            self.tables[-1].rows.append((attributes.get("class") or "", self._row))
        elif tag == "td" and self._row is not None:
            self._cell = Cell("", attributes.get("data-value"), attributes.get("data-high"))
            self._row.append(self._cell)

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.text += data


def parse_report(text: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(text)
    parser.close()
    return parser
