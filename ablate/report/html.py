"""Render report sections into one self-contained HTML page (inline CSS, embedded PNGs, no scripts).

Every value is escaped: jinja2 autoescapes the page, tables arrive escaped from styling.render, and what HTML text
cannot hold (control characters, lone surrogates) is shown escaped (ablate.escape.html_characters).
"""

import json
from pathlib import Path

import jinja2

from ablate.escape import html_characters
from ablate.report.blocks import Figure, Lead, Note, Provenance, Table, Text

# Provenance keys shown in each section's header, in this order; the rest are behind "Full provenance".
HEADLINE_KEYS = ("started_at", "finished_at", "interrupted", "git_commit", "git_dirty", "host",
                 "device_type", "gpu", "cpu", "cpu_count", "torch", "cuda", "triton", "python", "command")


def headline(provenance: dict) -> list:
    """[(key, value)] of the headline provenance keys that the run recorded."""
    return [(k, provenance[k]) for k in HEADLINE_KEYS if provenance.get(k) not in (None, "")]


def provenance_line(provenance: dict) -> str:
    """The collapsed provenance's one line: 'commit 1a2b3c4d5e6f (dirty), host h, started 2025-01-01T00:00:00'."""
    parts = []
    if provenance.get("git_commit"):
        dirty = " (dirty)" if provenance.get("git_dirty") else ""
        parts.append(f"commit {str(provenance['git_commit'])[:12]}{dirty}")
    parts += [f"{name} {provenance[key]}" for key, name in (("host", "host"), ("started_at", "started"))
              if provenance.get(key) not in (None, "")]
    return ", ".join(parts)


def pretty_json(value) -> str:
    """Indented JSON as plain text (autoescaped where it is inserted, so that its strings show as written)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.tests.update(note=lambda b: isinstance(b, Note), figure=lambda b: isinstance(b, Figure),
                     table=lambda b: isinstance(b, Table), text=lambda b: isinstance(b, Text),
                     lead=lambda b: isinstance(b, Lead), provenance=lambda b: isinstance(b, Provenance))
    env.globals.update(headline=headline, provenance_line=provenance_line)
    env.filters["pretty_json"] = pretty_json
    return env


def render_page(title: str, generated: str, sections: list) -> str:
    """The whole page as a string."""
    page = _environment().get_template("report.html.j2").render(title=title, generated=generated, sections=sections)
    return html_characters(page)
