"""The frame every report page shares: ``html_page`` (header, section links, the style sheet ``style.css``
inlined) and the small helpers the pages build their HTML with (attributes, notes, numbers, embedded pictures).

Pages are self-contained: the style sheet is inlined and pictures are data URIs, so a page opens in any
browser with no network and no server, and can be mailed as it is.
"""

from __future__ import annotations

import base64
import datetime
import functools
import html
import io
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.runs.files import write_text_atomically
from ganforge.runs.metrics_log import is_number

REPORT_NAME = "report.html"  # written into the run (or experiment) folder when no --out is given
STYLE_SHEET = "style.css"  # beside this module, shipped as package data
PAGE_MARK = '<meta name="generator" content="ganforge">'  # how a page is known to be ganforge's to replace
_OLDER_PAGE_MARK = re.compile(r'<p class="generated">generated [^<]* by ganforge</p>')  # pages before PAGE_MARK


@functools.cache
def style_sheet() -> str:
    """The pages' CSS, read once from ``ganforge/report/style.css``."""
    return resources.files("ganforge.report").joinpath(STYLE_SHEET).read_text(encoding="utf-8")


def html_page(title: str, header: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """A self-contained page in the report's style: a header (``header`` is HTML) with links to the sections,
    then one ``<section id=key>`` per (key, heading, HTML body)."""
    esc = html.escape
    nav = "".join(f'<a href="#{key}">{esc(name)}</a>' for key, name, _ in sections)
    parts = "\n".join(f'<section id="{key}"><h2>{esc(name)}</h2>\n{body}\n</section>' for key, name, body in sections)
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{PAGE_MARK}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>
{style_sheet()}</style>
</head>
<body>
<header><div>
<h1>{esc(title)}</h1>
<p class="generated">generated {esc(generated)} by ganforge</p>
{header}
<nav>{nav}</nav>
</div></header>
<main>
{parts}
</main>
</body>
</html>
"""


def write_page(out: Path, page: str) -> Path:
    """Write a page to ``out`` (a folder receives ``report.html``), replacing only a page ganforge wrote there."""
    if out.is_dir():
        out = out / REPORT_NAME
    if out.exists() and not written_by_ganforge(out):
        raise GanforgeError(f"{out} already exists and is not a page ganforge wrote, so it is left alone: "
                            "choose another --out (a report replaces only an earlier report)")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, page)
    return out


def written_by_ganforge(path: Path) -> bool:
    """Whether the file at ``path`` is a report page (its head names ganforge as the generator)."""
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        start = handle.read(256 * 1024).decode("utf-8", errors="replace")
    return PAGE_MARK in start[:4096] or _OLDER_PAGE_MARK.search(start) is not None


def attributes(**values: str | None) -> str:
    """' name="value"' for each value given (escaped; underscores in names become dashes)."""
    return "".join(f' {name.replace("_", "-")}="{html.escape(value)}"'
                   for name, value in values.items() if value is not None)


def note_html(text: str) -> str:
    """A muted paragraph of plain text; nothing for no text."""
    return f'<p class="note">{html.escape(text)}</p>' if text else ""


def show_value(value: Any) -> str:
    """A config or result value as YAML would write it (null, true, false)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def format_number(value: Any) -> str:
    """Four significant digits for floats, whole numbers as they are, a dash for nothing."""
    if value is None:
        return "\u2014"
    if not is_number(value):
        return show_value(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def file_data_uri(path: Path) -> str:
    """A PNG file embedded in the page."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def image_data_uri(image: Image.Image) -> str:
    """A picture embedded in the page, as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
