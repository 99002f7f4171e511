"""HTML building blocks of the report: escaping, tables, data URIs, the page's style and script.

Every string that comes from a file or the command line goes through :func:`esc`; every picture is a
``data:`` URI, so the page needs no other file and no network.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Sequence

MISSING = "–"


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img(data: bytes, alt: str, css_class: str = "") -> str:
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f'<img{cls} alt="{esc(alt)}" src="{png_uri(data)}">'


def number(value: float | None, digits: int = 2, signed: bool = False) -> str:
    """A table cell holding a value: the rounded text, and the exact value in ``data-value`` (for
    sorting, and for checking the page against the result files)."""
    if value is None:
        return f'<td class="num" data-value="">{MISSING}</td>'
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return f'<td class="num" data-value="{value!r}">{text}</td>'


def interval(low_high: tuple[float, float] | None, digits: int = 2) -> str:
    if low_high is None:
        return f'<td class="num ci" data-value="">{MISSING}</td>'
    low, high = low_high
    return f'<td class="num ci" data-value="{low!r}" data-high="{high!r}">{low:.{digits}f} – {high:.{digits}f}</td>'


@dataclass
class HtmlTable:
    """Header cells (plain text, escaped here) and rows of ready-made ``<td>`` cells."""

    headers: Sequence[str]
    rows: list[tuple[str, list[str]]] = field(default_factory=list)  # (row css class, cells)
    sortable: bool = False
    css_class: str = ""

    def add(self, cells: list[str], row_class: str = "") -> None:
        self.rows.append((row_class, cells))

    def render(self) -> str:
        classes = " ".join(c for c in (self.css_class, "sortable" if self.sortable else "") if c)
        head = "".join(f"<th>{esc(h)}</th>" for h in self.headers)
        body = "".join(
            f'<tr class="{esc(cls)}">' + "".join(cells) + "</tr>" if cls else "<tr>" + "".join(cells) + "</tr>"
            for cls, cells in self.rows
        )
        return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def text_cell(text: object, css_class: str = "") -> str:
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f'<td{cls} data-value="{esc(text)}">{esc(text)}</td>'


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2125;max-width:1500px}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:2px solid #d0d7de;padding-bottom:.2em}
h3{margin-bottom:.3em} .muted{color:#57606a} .small{font-size:.85em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.86em}
th,td{border:1px solid #d0d7de;padding:3px 7px} table.table1 td:first-child{white-space:nowrap} th{background:#f3f5f7;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums} td.ci{color:#57606a}
tr.ours td:first-child{font-weight:600;color:#0b5cad} tr.published td{color:#57606a}
tr.delta td{font-style:italic} tr.interval td{color:#57606a;font-size:.92em}
.pos{color:#1a7f37} .neg{color:#cf222e}
table.sortable th{cursor:pointer} table.sortable th:hover{background:#e6ebf1}
.scroll{overflow-x:auto} table.table1 .label{position:sticky;left:0;z-index:1;background:#fff}
table.table1 th.label{background:#f3f5f7;z-index:2} .figure{margin:.6em 0} .figure img{max-width:100%}
.gallery{display:flex;flex-wrap:wrap;gap:18px} .sample{border:1px solid #d0d7de;padding:8px;border-radius:6px}
.triptych{display:flex;gap:6px} .triptych figure{margin:0;text-align:center;font-size:.8em}
.triptych img{height:150px;image-rendering:pixelated;border:1px solid #d0d7de}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:.8em;margin-top:6px;max-width:640px}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #555;margin-right:4px;vertical-align:middle}
nav a{margin-right:10px} section.set{margin-bottom:2em}
"""

# Click a header to sort its table by that column (numbers by data-value, text otherwise); again to reverse.
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var ascending = th.dataset.order !== 'asc';
    th.closest('tr').querySelectorAll('th').forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = ascending ? 'asc' : 'desc';
    var key = function (row) {
      var cell = row.cells[th.cellIndex]; var v = cell ? cell.dataset.value : '';
      var n = parseFloat(v); return v === '' ? null : (isNaN(n) ? v : n);
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null) return 1; if (y === null) return -1;
      var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
      return ascending ? c : -c;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n"
    )
