"""Serve every script the book needs from the site itself, never from a CDN.

* MathJax 2.7 comes from the ``jupyter-server-mathjax`` wheel (the ``book`` extra). Only what a
  page typesets with is copied into ``_build/html/_static/mathjax``: the loader, the combined
  ``TeX-AMS-MML_HTMLorMML-full`` configuration, the TeX/MathML input, the HTML-CSS output with its
  STIX web fonts, the extensions it asks for and the English messages (about 6 MB; the SVG output,
  the speech-rule maps and 50 translations are left out).
* The ipywidgets manager (``@jupyter-widgets/html-manager``) is vendored in
  ``_static/vendor/html-manager`` (see the README there), so Sphinx copies it like any static file.

If a page still points at a remote host after all that, the build fails: see ``check_no_cdn``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

# Relative to jupyter_server_mathjax/static; folders are copied whole.
MATHJAX_PARTS = (
    "MathJax.js",
    "LICENSE",
    "config/TeX-AMS-MML_HTMLorMML-full.js",
    "jax/input",
    "jax/element",
    "jax/output/HTML-CSS",
    "fonts/HTML-CSS/STIX-Web/woff",
    "localization/en",
)
MATHJAX_EXTENSION_SKIP = ("mathmaps",)  # the a11y speech maps: 3.5 MB, loaded only on request

REMOTE_ASSET = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["'](?:https?:)?//""", re.I)


def mathjax_source() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as error:  # pragma: no cover - a broken install
        raise ExtensionError(
            "the book serves MathJax locally from the 'jupyter-server-mathjax' package; "
            "install it with: pip install -e '.[book]'"
        ) from error
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def copy_mathjax(destination: Path) -> None:
    """Copy the MathJax subset into ``destination`` (a no-op when it is already there)."""
    source = mathjax_source()
    stamp = destination / ".copied-from"
    if stamp.exists() and stamp.read_text() == str(source):
        return
    for part in MATHJAX_PARTS:
        src, dst = source / part, destination / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    shutil.copytree(
        source / "extensions",
        destination / "extensions",
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(*MATHJAX_EXTENSION_SKIP),
    )
    stamp.write_text(str(source))


def check_no_cdn(outdir: Path) -> None:
    """Fail if any built page loads a script, stylesheet, image or frame from another host."""
    offenders = []
    for page in sorted(outdir.rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        for match in REMOTE_ASSET.finditer(text):
            tag = text[match.start() : text.find(">", match.start()) + 1]
            offenders.append(f"{page.relative_to(outdir)}: {tag[:160]}")
    if offenders:
        raise ExtensionError(
            "built pages load assets from remote hosts (the site must work offline):\n  "
            + "\n  ".join(offenders[:20])
        )


WIDGET_STATE_TYPE = "application/vnd.jupyter.widget-state+json"
WIDGET_MANAGER = "vendor/html-manager/embed.js"


def tidy_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Load the widget manager once, and only on pages that carry widget state.

    myst-nb registers its widget scripts with ``app.add_js_file`` while a page is rendered, which
    adds them to every page written after it, twice on the next widget page.
    """
    scripts = context.get("script_files")
    if not scripts:
        return
    has_state = any(getattr(js, "attributes", {}).get("type") == WIDGET_STATE_TYPE for js in scripts)
    kept, seen = [], set()
    for js in scripts:
        filename = getattr(js, "filename", js)
        filename = str(filename) if filename else ""
        if filename:
            if filename.endswith(WIDGET_MANAGER) and not has_state:
                continue
            if filename in seen:
                continue
            seen.add(filename)
        kept.append(js)
    context["script_files"] = kept


def on_build_finished(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    copy_mathjax(outdir / "_static" / "mathjax")
    check_no_cdn(outdir)


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", tidy_scripts, priority=900)
    app.connect("build-finished", on_build_finished)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
