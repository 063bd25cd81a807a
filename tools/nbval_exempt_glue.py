"""Exempt the cells that call myst-nb's ``glue`` from strict nbval's output comparison.

The book build moves every glued value out of the executed notebook into
``_build/jupyter_execute/book/<chapter>.glue.json``, so the notebook's copy of such a cell has no
outputs, while a second execution displays one record per ``glue`` call. The values are still
checked: the book's prose quotes them, the tables they come from are compared cell by cell, and
the assertions in the same cells still run (an error fails nbval whatever the tag).

    python tools/nbval_exempt_glue.py NOTEBOOK [NOTEBOOK ...]
"""

from __future__ import annotations

import sys

import nbformat

TAG = "nbval-ignore-output"


def exempt_glue_cells(path: str) -> int:
    """Tag every code cell of ``path`` that calls ``glue(``; returns how many were tagged."""
    notebook = nbformat.read(path, as_version=4)
    tagged = 0
    for cell in notebook.cells:
        if cell.cell_type == "code" and "glue(" in cell.source:
            tags = cell.metadata.setdefault("tags", [])
            if TAG not in tags:
                tags.append(TAG)
                tagged += 1
    nbformat.write(notebook, path)
    return tagged


if __name__ == "__main__":
    for notebook_path in sys.argv[1:]:
        count = exempt_glue_cells(notebook_path)
        if count:
            print(f"{notebook_path}: {count} glue cell(s) exempt from output comparison")
