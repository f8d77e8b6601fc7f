"""Benchmark tables and figures read from ``benchmarks/RESULTS.md``.

``benchmarks/RESULTS.md`` is the only copy of the measured figures: the
performance chapter of the user guide shows its tables with the directives
below, and its figures (``.. plot::`` blocks) read the same tables with
:func:`table_rows`. Updating RESULTS.md updates the documentation; a table
or paragraph that the documentation names but RESULTS.md no longer has
fails the build with a message saying which one.

Directives
----------

``.. results-table:: HEADING``
    The first Markdown table under the RESULTS.md heading whose text starts
    with ``HEADING`` (exactly one heading must match). Options:
    ``:context:`` also shows the lines between the heading and the table
    (load average, JIT warm-up), ``:notes:`` the paragraphs after the table
    (up to the next heading), below it; ``:caption:`` replaces the heading
    text as the table's title.

``.. results-text:: PREFIX``
    The RESULTS.md paragraph that starts with ``PREFIX`` (exactly one).

Markdown inline markup in cells and paragraphs is reduced to what RESULTS.md
uses: ```code```, ``**strong**`` and ``*emphasis*``; everything else is
plain text (never parsed as reStructuredText).
"""

import re
from functools import lru_cache
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\*([^*\s][^*]*?)\*")


@lru_cache(maxsize=4)
def _parse(path, mtime):
    """Blocks of RESULTS.md: ("heading", text), ("table", rows), ("text", lines)."""
    blocks = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("```"):
            in_fence = not in_fence
            i += 1
            continue
        if in_fence or not line.strip():
            i += 1
            continue
        match = _HEADING.match(line)
        if match:
            blocks.append(("heading", match.group(2)))
            i += 1
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip()[1:-1].split("|")]
                if not all(_SEPARATOR_CELL.match(c) for c in cells):
                    rows.append(cells)
                i += 1
            blocks.append(("table", rows))
        else:
            para = []
            while i < len(lines):
                nxt = lines[i].rstrip()
                if (not nxt.strip() or _HEADING.match(nxt) or nxt.lstrip().startswith("|")
                        or nxt.startswith("```")):
                    break
                para.append(nxt.strip())
                i += 1
            blocks.append(("text", para))
    return blocks


def _blocks():
    if not RESULTS.exists():
        raise ExtensionError(f"benchmark results not found: {RESULTS}")
    return _parse(str(RESULTS), RESULTS.stat().st_mtime_ns)


def _section(heading):
    """The heading text and the blocks under the one heading starting with ``heading``."""
    blocks = _blocks()
    starts = [i for i, (kind, value) in enumerate(blocks)
              if kind == "heading" and value.startswith(heading)]
    if len(starts) != 1:
        raise ExtensionError(
            f"{RESULTS.name}: expected one heading starting with {heading!r}, "
            f"found {len(starts)}; update doc/user_guide/performance.rst or doc/_ext/pcct_results_plots.py to match RESULTS.md"
        )
    start = starts[0]
    body = []
    for block in blocks[start + 1:]:
        if block[0] == "heading":
            break
        body.append(block)
    return blocks[start][1], body


def find_table(heading, notes=False):
    """``(title, context, header, rows)`` of the first table under ``heading``.

    ``context`` is the list of paragraphs (each a string) between the
    heading and the table; with ``notes=True`` a fifth item follows: the list
    of paragraphs after the table, up to the next heading.
    """
    title, body = _section(heading)
    context = []
    for i, (kind, value) in enumerate(body):
        if kind == "table":
            found = (title, context, value[0], value[1:])
            if notes:
                found += ([" ".join(v) for k, v in body[i + 1:] if k == "text"],)
            return found
        context.append(" ".join(value))
    raise ExtensionError(f"{RESULTS.name}: no table under the heading {title!r}")


def table_rows(heading):
    """The rows of the table under ``heading``, as dicts keyed by the column names."""
    _, _, header, rows = find_table(heading)
    return [dict(zip(header, row, strict=True)) for row in rows]


def number(cell):
    """A table cell as a float, or None when it is not a number."""
    try:
        return float(cell.replace(",", ""))
    except (AttributeError, ValueError):
        return None


def find_text(prefix):
    """The one RESULTS.md paragraph that starts with ``prefix``, as one string."""
    found = [" ".join(value) for kind, value in _blocks()
             if kind == "text" and " ".join(value).startswith(prefix)]
    if len(found) != 1:
        raise ExtensionError(
            f"{RESULTS.name}: expected one paragraph starting with {prefix!r}, "
            f"found {len(found)}; update doc/user_guide/performance.rst or doc/_ext/pcct_results_plots.py to match RESULTS.md"
        )
    return found[0]


def _inline(text):
    """Docutils inline nodes for RESULTS.md's Markdown inline markup."""
    out, pos = [], 0
    for match in _INLINE.finditer(text):
        if match.start() > pos:
            out.append(nodes.Text(text[pos:match.start()]))
        code, strong, emphasis = match.groups()
        if code is not None:
            out.append(nodes.literal(code, code))
        elif strong is not None:
            out.append(nodes.strong(strong, "", *_inline(strong)))
        else:
            out.append(nodes.emphasis(emphasis, emphasis))
        pos = match.end()
    if pos < len(text):
        out.append(nodes.Text(text[pos:]))
    return out


def _paragraph(text):
    return nodes.paragraph(text, "", *_inline(text))


class _ResultsDirective(SphinxDirective):
    required_arguments = 1
    final_argument_whitespace = True

    def _depend(self):
        """Re-read this page, and redraw its plots, when RESULTS.md changes."""
        self.env.note_dependency(str(RESULTS))
        # matplotlib's plot directive redraws a figure when a file in the
        # document's include log is newer than the figure.
        log = getattr(self.state.document, "include_log", None)
        if log is not None and all(entry[0] != str(RESULTS) for entry in log):
            if not log:
                log.append((self.state.document.current_source, (None, None, "", "")))
            log.append((str(RESULTS), (None, None, "", "")))


class ResultsTable(_ResultsDirective):
    option_spec = {
        "context": directives.flag,
        "notes": directives.flag,
        "caption": directives.unchanged,
    }

    def run(self):
        self._depend()
        try:
            title, context, header, rows, notes = find_table(self.arguments[0], notes=True)
        except ExtensionError as exc:
            return [self.state.document.reporter.error(str(exc), line=self.lineno)]
        numeric = [
            all(number(row[j]) is not None or row[j] in ("–", "-") for row in rows)
            for j in range(len(header))
        ]
        table = nodes.table(classes=["pcct-results"])
        table += nodes.title("", "", *_inline(self.options.get("caption") or title))
        group = nodes.tgroup(cols=len(header))
        table += group
        for _ in header:
            group += nodes.colspec(colwidth=1)
        thead, tbody = nodes.thead(), nodes.tbody()
        group += thead
        group += tbody
        for target, cells in [(thead, header)] + [(tbody, row) for row in rows]:
            row_node = nodes.row()
            for j, cell in enumerate(cells):
                entry = nodes.entry(classes=["text-end"] if numeric[j] else [])
                entry += _paragraph(cell)
                row_node += entry
            target += row_node
        out = [table]
        texts = list(context) if "context" in self.options else []
        texts += notes if "notes" in self.options else []
        if texts:
            note = nodes.container(classes=["pcct-results-notes"])
            for text in texts:
                note += _paragraph(text)
            out.append(note)
        return out


class ResultsText(_ResultsDirective):
    def run(self):
        self._depend()
        try:
            text = find_text(self.arguments[0])
        except ExtensionError as exc:
            return [self.state.document.reporter.error(str(exc), line=self.lineno)]
        return [_paragraph(text)]


def setup(app):
    app.add_directive("results-table", ResultsTable)
    app.add_directive("results-text", ResultsText)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
