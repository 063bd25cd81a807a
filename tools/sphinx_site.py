"""Local Sphinx extension of the book (loaded from _config.yml: ``sphinx: local_extensions``).

For the API reference (book/api.md), three small additions to ``sphinx.ext.autodoc`` so that
the reference lists every public name of ``tabresnet_course`` and builds warning-free in
nitpicky mode:

1. Module constants without a ``#:`` doc comment (``PADDING_INDEX = 0``) are documented too.
   Plain autodoc skips them: an ``int`` reports ``__module__ == "builtins"`` and looks imported.
   A name counts as the module's own when a top-level assignment in its source binds it.
2. Class members that another library generates (scikit-learn's ``set_*_request`` methods on
   every estimator subclass) are left out: their docstrings are written for scikit-learn's own
   documentation and carry its cross-references.
3. A cross-reference in a docstring that names a package object by its short name
   (``:class:`InputError``` inside ``artifacts.py``) resolves to that object when exactly one
   object of the package has that name.
4. Napoleon leaves docstrings of constants and attributes alone. It would read their first
   line as Google style ``type: description`` and turn "Default start (a Monday, 00:00 UTC)"
   into a type called "Default start (a Monday, 00"; this package writes types as annotations.

And two fixes for the rendered site, which the browser check (tools/site_check.py) caught:

5. ``sphinx.ext.viewcode`` follows a constant such as ``PADDING_INDEX = 0`` to the module
   ``builtins`` (an ``int`` says it comes from there) and then links a ``_modules/builtins``
   page that it never writes. Names the package assigns stay in their own module.
6. The Jupyter Book 1.x stack (Sphinx 7.4 with sphinx-thebe and sphinx-togglebutton) puts some
   inline scripts twice on every page, and the second ``const THEBE_JS_URL = ...`` is a
   JavaScript error in the console. Identical scripts are kept once.
7. sphinx-book-theme offers the executed notebook (.ipynb) for download only when a launch
   button (Binder, Colab) is configured, and launch buttons need a published repository
   (``_config.yml``: ``repository``; tools/book.sh sets it from ``BOOK_REPOSITORY_URL``). So that
   every chapter stays downloadable as a notebook without one, the executed notebook is copied
   next to the page's sources before the theme builds its download menu.
"""

from __future__ import annotations

import ast
import inspect
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext.autodoc import DataDocumenter, ModuleDocumenter

PACKAGE = "tabresnet_course"


@cache
def assigned_names(modname: str) -> frozenset[str]:
    """Names bound by top-level assignments in a module's source (empty if it has no source)."""
    import importlib

    try:
        tree = ast.parse(inspect.getsource(importlib.import_module(modname)))
    except (ImportError, OSError, TypeError, SyntaxError):
        return frozenset()
    names = set()
    for statement in tree.body:
        targets = []
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, (ast.AnnAssign, ast.AugAssign)):
            targets = [statement.target]
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    names.add(node.id)
    return frozenset(names)


def is_constant(member: Any) -> bool:
    return not (inspect.isclass(member) or inspect.isroutine(member) or inspect.ismodule(member))


class ModuleConstantDocumenter(DataDocumenter):
    """``DataDocumenter`` that also takes the package's undocumented module constants."""

    @classmethod
    def can_document_member(cls, member: Any, membername: str, isattr: bool, parent: Any) -> bool:
        if super().can_document_member(member, membername, isattr, parent):
            return True
        return (
            isinstance(parent, ModuleDocumenter)
            and parent.modname.split(".")[0] == PACKAGE
            and not membername.startswith("_")
            and is_constant(member)
            and membername in assigned_names(parent.modname)
        )

    def get_doc(self) -> list[list[str]] | None:
        """The ``#:`` comment (or string after the assignment), never the value's class docstring."""
        comment = self.get_module_comment(self.objpath[-1])
        if comment:
            return [comment]
        if self.objpath and self.objpath[-1] in assigned_names(self.modname):
            return []  # an undocumented constant: a dict's or an array's __doc__ is not about it
        return super().get_doc()

    def check_module(self) -> bool:
        if self.objpath and self.objpath[-1] in assigned_names(self.modname):
            return True
        return super().check_module()


def skip_foreign_members(app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any):
    """Leave out methods that another package generated on a class of ours."""
    if what == "class" and inspect.isroutine(obj):
        module = getattr(obj, "__module__", None) or ""
        if module and module.split(".")[0] != PACKAGE and module != "builtins":
            return True
    return None


def resolve_short_names(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve ``Name`` or ``module.Name`` to the one package object whose full name ends so."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target or target.startswith(PACKAGE + "."):
        return None
    domain = env.get_domain("py")
    suffix = "." + target.lstrip(".")
    matches = sorted(name for name in domain.objects if name.startswith(PACKAGE + ".") and name.endswith(suffix))
    if len(matches) != 1:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], matches[0], node, contnode)


def follow_imported(app: Sphinx, modname: str, fullname: str) -> str | None:
    """For viewcode: a name defined or assigned in a package module belongs to that module."""
    if not modname or modname.split(".")[0] != PACKAGE or not fullname:
        return None
    import importlib

    first = fullname.split(".")[0]
    if first in assigned_names(modname):
        return modname
    try:
        obj = getattr(importlib.import_module(modname), first)
    except (ImportError, AttributeError):
        return None
    if getattr(obj, "__module__", None) == modname:
        return modname
    return None


def dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Keep each script of a page once (same file or same inline body, same attributes)."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        key = (str(filename), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # In place: the list is the builder's, and handlers after this one (sphinx.ext.mathjax) add to it.
    scripts[:] = unique


def offer_executed_notebook(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Copy a chapter's executed notebook to ``_sources/`` and name it in the page context, as
    sphinx-book-theme does itself only when launch buttons are configured."""
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if "kernelspec" not in app.env.metadata.get(pagename, {}) or not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def napoleon_except_constants(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Napoleon's docstring processing, for everything but constants and attributes."""
    from sphinx.ext import napoleon

    if what not in {"data", "attribute"}:
        napoleon._process_docstring(app, what, name, obj, options, lines)


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(ModuleConstantDocumenter, override=True)
    app.connect("autodoc-skip-member", skip_foreign_members)
    app.setup_extension("sphinx.ext.napoleon")
    from sphinx.ext import napoleon

    listeners = app.events.listeners["autodoc-process-docstring"]
    for index, listener in enumerate(listeners):
        if listener.handler is napoleon._process_docstring:
            listeners[index] = listener._replace(handler=napoleon_except_constants)
    app.connect("missing-reference", resolve_short_names)
    app.setup_extension("sphinx.ext.viewcode")
    app.connect("viewcode-follow-imported", follow_imported)
    app.connect("html-page-context", dedupe_scripts, priority=100)
    app.connect("html-page-context", offer_executed_notebook, priority=500)  # before the theme's 501
    return {"parallel_read_safe": True, "parallel_write_safe": True}
