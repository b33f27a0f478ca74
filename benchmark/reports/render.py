"""Markdown and self-contained HTML renderings of a report (figures embedded as base64 PNG)."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from .figures import Figure
from .tables import to_markdown


@dataclass
class Section:
    """One heading of the report: text, tables (title, frame) and figures."""

    title: str
    anchor: str
    text: str = ""
    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    subsections: list = field(default_factory=list)


def _fmt_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Floats rounded for reading (3 significant decimals; big numbers with 1 decimal)."""
    out = table.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            vals = out[c].dropna()
            whole = len(vals) > 0 and bool((vals == vals.round()).all()) and bool((vals.abs() < 1e15).all())
            out[c] = [("" if pd.isna(v) else f"{int(v)}" if whole else f"{v:.1f}" if abs(v) >= 100 else f"{v:.3f}")
                      for v in out[c]]
        elif pd.api.types.is_bool_dtype(out[c]):
            out[c] = ["yes" if v else "" for v in out[c]]
    return out


def to_md(title: str, meta: list[tuple[str, str]], sections: list[Section], run_dir: Path) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in meta] + [""]
    lines += ["## Contents", ""] + [f"- [{s.title}](#{s.anchor})" for s in sections] + [""]

    def emit(sec: Section, level: int):
        lines.extend([f"{'#' * level} {sec.title}", ""])
        if sec.text:
            lines.extend([sec.text, ""])
        for name, table in sec.tables:
            if name:
                lines.extend([f"**{name}**", ""])
            lines.append(to_markdown(_fmt_frame(table)) if table is not None and not table.empty else "_(none)_\n")
        for fig in sec.figures:
            rel = Path(fig.path).relative_to(run_dir) if Path(fig.path).is_relative_to(run_dir) else fig.path
            lines.extend([f"![{fig.title}]({rel})", "", f"*{fig.title}.* {fig.caption}", ""])
        for sub in sec.subsections:
            emit(sub, level + 1)

    for s in sections:
        emit(s, 2)
    return "\n".join(lines) + "\n"


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #4c72b0;padding-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0 1.2em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:3px 8px;white-space:nowrap}
th{background:#f0f3f8}.num{text-align:right}.txt{text-align:left}
tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;color:#555}.meta td{text-align:left;white-space:normal}
nav ul{columns:2}.note{color:#777;font-size:13px}
"""


def _img_tag(fig: Figure) -> str:
    data = base64.b64encode(Path(fig.path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(fig.title)}.</b> {html.escape(fig.caption)}</figcaption></figure>")


def _table_html(table: Optional[pd.DataFrame]) -> str:
    """An HTML table with numeric columns right-aligned and text left-aligned."""
    if table is None or table.empty:
        return '<p class="note">(none)</p>'
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               for c in table.columns]
    shown = _fmt_frame(table)
    head = "".join(f'<th class="{"num" if n else "txt"}">{html.escape(str(c))}</th>'
                   for c, n in zip(shown.columns, numeric))
    body = []
    for rec in shown.itertuples(index=False):
        cells = "".join(f'<td class="{"num" if n else "txt"}">{html.escape("" if pd.isna(v) else str(v))}</td>'
                        for v, n in zip(rec, numeric))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(title: str, meta: list[tuple[str, str]], sections: list[Section]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>", '<table class="meta">']
    out += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta]
    out += ["</table>", "<nav><h2>Contents</h2><ul>"]
    out += [f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections]
    out.append("</ul></nav>")

    def emit(sec: Section, level: int):
        out.append(f'<h{level} id="{sec.anchor}">{html.escape(sec.title)}</h{level}>')
        if sec.text:
            out.append("".join(f"<p>{html.escape(p)}</p>" for p in sec.text.split("\n\n")))
        for name, table in sec.tables:
            if name:
                out.append(f"<p><b>{html.escape(name)}</b></p>")
            out.append(_table_html(table))
        out.extend(_img_tag(f) for f in sec.figures)
        for sub in sec.subsections:
            emit(sub, min(level + 1, 6))

    for s in sections:
        emit(s, 2)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def slug(text: str) -> str:
    s = "".join(c.lower() if c.isalnum() else "-" for c in text)
    while "--" in s:
        s = s.replace("--", "-")
    return s.strip("-") or "section"


__all__ = ["Section", "to_md", "to_html", "slug"]
