"""Markdown pieces every document uses: one table writer (so every table has the same shape and a
column's alignment is said once) and free text made safe for a table cell."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def row(cells: Iterable[object]) -> str:
    """One table row: `| a | b |`."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(head: Sequence[str], rows: Iterable[Iterable[object]] = (), align: str = "") -> list[str]:
    """A markdown table: the heading, the alignment row and `rows`. `align`: one letter per column,
    `r` for a right-aligned (numeric) column, `c` for centred, anything else left; columns beyond
    `align` are left-aligned. A column without a heading is written `| |`."""
    marks = {"r": "---:|", "c": ":---:|"}
    return [
        row(head).replace("|  |", "| |"),
        "|" + "".join(marks.get(a, "---|") for a in align.ljust(len(head), "l")),
        *(row(r) for r in rows),
    ]


def cell(text: str, limit: int = 200) -> str:
    """Free text (an error message) for a table cell: one line, at most `limit` characters, pipes
    escaped."""
    return " ".join(text.split())[:limit].replace("|", "\\|")
