"""What a report is made of: sections holding figures, tables and one-line notes, in order."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """A figure embedded as a PNG data URI (`image`, "data:image/png;base64,...")."""

    title: str
    image: str
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A rendered HTML table (`styling.render`: markupsafe.Markup, escaped; a plain str is escaped as text);
    `collapsed` puts it behind a <details> toggle."""

    title: str
    html: str
    caption: str = ""
    collapsed: bool = False


@dataclass(frozen=True)
class Note:
    """One line saying why a piece of the report is left out, or what a reader should know."""

    text: str


@dataclass(frozen=True)
class Lead:
    """The opening of a run's section: what was studied (one line), then one line per answer, each a list of
    (text, mark) parts; a mark is '' or a colour's meaning of the page (styling.MARKS: 'better', 'worse')."""

    study: str
    lines: list = field(default_factory=list)


@dataclass(frozen=True)
class Provenance:
    """Where a run came from (provenance.json), shown collapsed: its headline keys, then the whole of it."""

    provenance: dict


@dataclass(frozen=True)
class Text:
    """Preformatted text (a grid spec), shown collapsed."""

    title: str
    text: str


Block = Figure | Table | Note | Lead | Provenance | Text  # what a section holds, rendered in order


@dataclass
class Section:
    """One run's part of the report: a heading and its blocks (its provenance among them)."""

    title: str
    anchor: str
    kind: str  # "grid" | "bench" (a distributed bench run is styled as a bench run)
    blocks: list[Block] = field(default_factory=list)
