"""What every qtrace HTML page is made of: the document shell and sortable tables.

The dashboard, ``qtrace diff``'s page and the batch fleet page all use these, with the one
style sheet and sort script of ``assets`` and the escaping and formatting rules of
``qtrace.formatting``. Tables are built as polars string expressions, so a table of
thousands of rows is one pass, and every cell is escaped on the way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl
from qtrace.dashboards.assets import SORT_SCRIPT, STYLE

from qtrace.formatting import escape_html, escape_html_column

MAX_TABLE_ROWS = 1_000


def document(title: str, body: str, *, head: str = "", scripts: Iterable[str] = ()) -> str:
    """A whole offline page: ``title`` (escaped here), ``body`` and ``head`` (HTML), scripts.

    The sort script comes first, so any table the body holds is sortable.
    """
    return "".join(document_parts(title, [body], head=[head], scripts=scripts))


def document_parts(
    title: str, body: list[str], *, head: list[str], scripts: Iterable[str] = ()
) -> list[str]:
    """``document`` as the parts that make it, in order, for a page of many MB to be measured
    and written part by part, never joined (``body`` and ``head``: parts of HTML)."""
    tags = "".join(f"<script>{script}</script>\n" for script in (SORT_SCRIPT, *scripts))
    top = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape_html(title)}</title>
<style>{STYLE}</style>
"""
    return [top, *head, "\n</head>\n<body>\n", *body, f"\n{tags}</body>\n</html>\n"]


@dataclass(frozen=True)
class Column:
    """One table column: header, cell text, and a numeric sort key when text would mis-sort.

    ``markup``: ``text`` is HTML already, built from ``escape_html_column`` parts (a link);
    every other cell's text is escaped here.
    """

    header: str
    text: pl.Expr
    sort_key: pl.Expr | None = None
    css: str = ""
    markup: bool = False


def _cell(column: Column) -> pl.Expr:
    text = (column.text if column.markup else escape_html_column(column.text)).fill_null("")
    if column.sort_key is None:
        return pl.format(
            f'<td class="{column.css}">{{}}</td>' if column.css else "<td>{}</td>", text
        )
    key = column.sort_key.cast(pl.String).fill_null("")
    return pl.format('<td class="num" data-v="{}">{}</td>', key, text)


def html_table(
    frame: pl.DataFrame,
    columns: list[Column],
    *,
    table_id: str,
    empty: str,
    what: str,
    row_attributes: dict[str, pl.Expr] | None = None,
) -> str:
    """A sortable table, capped in length, each row tagged with ``data-*`` attributes.

    ``row_attributes`` (name -> value) default to the row's ``lane`` when the frame has one:
    the dashboard's root filter shows the rows of one lane.
    """
    if frame.height == 0:
        return f'<p class="empty" id="{table_id}-empty">{empty}</p>'
    if row_attributes is None:
        row_attributes = {"lane": pl.col("lane").fill_null(-1)} if "lane" in frame.columns else {}
    shown = frame.head(MAX_TABLE_ROWS).rechunk()
    opening = [pl.lit("<tr")]
    for name, value in row_attributes.items():
        opening += [pl.lit(f' data-{name}="'), escape_html_column(value).fill_null(""), pl.lit('"')]
    rows = shown.select(
        pl.concat_str([*opening, pl.lit(">"), *[_cell(c) for c in columns], pl.lit("</tr>")]).alias(
            "row"
        )
    ).get_column("row")
    heads = "".join(
        f'<th scope="col" tabindex="0" class="{"num" if c.sort_key is not None else ""}">'
        f"{escape_html(c.header)}</th>"
        for c in columns
    )
    note = ""
    if frame.height > shown.height:
        note = (
            f'<p class="note">Showing the first {shown.height:,} of {frame.height:,} {what} '
            "(all of them are in the JSON report).</p>"
        )
    return (
        f'{note}<div class="table-wrap"><table class="sortable" id="{table_id}">'
        f"<thead><tr>{heads}</tr></thead><tbody>{''.join(rows.to_list())}</tbody></table></div>"
    )


__all__ = ["MAX_TABLE_ROWS", "Column", "document", "html_table"]
