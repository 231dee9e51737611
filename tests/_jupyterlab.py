"""JupyterLab in Debian's chromium, for ``test_jupyterlab.py`` and ``benchmarks/slider_latency.py``.

:func:`serve_lab` sets up a scratch copy of the lessons with ``scripts/setup_lab.py`` (its settings
go to a scratch prefix, never into the environment) and serves it on 127.0.0.1: a free port, a
token, scratch Jupyter folders (config, data, runtime, settings, workspaces, IPython), and an
unreachable proxy for the server and its kernels, so nothing but 127.0.0.1 answers them.
:func:`open_browser` launches chromium with requests to other hosts refused and recorded. The rest
drives JupyterLab the way a student does: a double click on a lesson, Run All from the menu, an
arrow key on a slider.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO_DIR / "scripts" / "setup_lab.py"
CHROMIUM = os.environ.get("METALEARN_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
INSTALL_CHROMIUM = (f"chromium not found at {CHROMIUM}: install Debian's build with `apt-get install -y chromium`"
                    " (never `playwright install`), or point METALEARN_LAB_CHROMIUM at one")
INSTALL_PLAYWRIGHT = "playwright is missing: `pip install -e '.[test]'` (the Python package only)"
# The cells of the notebook in the current tab.
CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"


def missing_browser() -> str | None:
    """Why the browser cannot run (the command that installs what is missing), or None."""
    if not Path(CHROMIUM).exists():
        return INSTALL_CHROMIUM
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return INSTALL_PLAYWRIGHT
    return None


@dataclass
class Lab:
    base: str
    token: str
    notebooks: Path
    log: Path

    @property
    def url(self) -> str:
        return f"{self.base}/lab?token={self.token}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_lab(lessons: list[Path], root: Path, *, quick: bool = True, start_timeout: float = 90):
    """Copy ``lessons`` (and their ``jupytext.toml``) into ``root/notebooks``, set them up, serve them.

    Yields a :class:`Lab`; the server and its kernels stop on exit. Raises ``RuntimeError`` with
    the end of the server's log if the set-up fails or the server does not answer in time.
    """
    notebooks, prefix = root / "notebooks", root / "prefix"
    notebooks.mkdir(parents=True)
    for path in list(lessons) + [Path(lessons[0]).parent / "jupytext.toml"]:
        shutil.copy2(path, notebooks / Path(path).name)
    setup = subprocess.run([sys.executable, str(SETUP_SCRIPT), "--prefix", str(prefix), "--notebooks", str(notebooks)],
                           capture_output=True, text=True, timeout=300)
    if setup.returncode != 0:
        raise RuntimeError(f"scripts/setup_lab.py failed:\n{setup.stdout}{setup.stderr}")

    port, token = _free_port(), secrets.token_hex(16)
    dirs = {name: root / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for folder in dirs.values():
        folder.mkdir()
    dead_proxy = "http://127.0.0.1:9"  # nothing listens there: a request for another host fails at once
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTER_CONFIG_PATH": str(prefix / "etc" / "jupyter"),
        "http_proxy": dead_proxy, "https_proxy": dead_proxy, "HTTP_PROXY": dead_proxy, "HTTPS_PROXY": dead_proxy,
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, as a student has it
    env.pop("METALEARN_LAB_QUICK", None)
    if quick:
        env["METALEARN_LAB_QUICK"] = "1"
    log_path = root / "server.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebooks}", f"--IdentityProvider.token={token}",
               f"--LabApp.app_settings_dir={prefix / 'share' / 'jupyter' / 'lab' / 'settings'}"]
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    lab = Lab(f"http://127.0.0.1:{port}", token, notebooks, log_path)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{lab.base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer within {start_timeout:.0f} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield lab
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def open_browser(viewport=(1400, 1000)):
    """A chromium page; requests to hosts other than 127.0.0.1 are refused and listed in ``page.outside_requests``."""
    from playwright.sync_api import sync_playwright

    outside = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})

            def refuse(route):
                outside.append(route.request.url)
                route.abort()

            page.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]|data:|blob:|about:)"), refuse)
            page.set_default_timeout(60_000)
            page.outside_requests = outside
            yield page
        finally:
            browser.close()


def load_lab(page, lab: Lab) -> list[dict]:
    """Open JupyterLab; returns the file browser's entries ``[{"name", "cut"}]`` (``cut``: name cut off)."""
    page.goto(lab.url)
    page.wait_for_selector(".jp-DirListing-item")
    return page.locator(".jp-DirListing-itemText").evaluate_all(
        "els => els.map(e => ({name: e.textContent, cut: e.scrollWidth > e.clientWidth + 1}))")


def open_lesson(page, name: str, n_cells: int) -> dict:
    """Double-click ``name`` in the file browser and wait for its notebook, all ``n_cells`` cells and an idle kernel.

    Returns ``{"seconds", "dialogs", "kernel", "tab"}``: what a student sees (no dialog should ask
    for a kernel; ``kernel`` is the name in the notebook's toolbar).
    """
    start = time.perf_counter()
    page.locator(".jp-DirListing-item", has_text=name).dblclick()
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook")
    try:  # the kernel starts by itself: wait until the toolbar names it and it is idle (or a dialog asks)
        page.wait_for_function(
            """() => { const name = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName');
                       const state = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
                       return (name && !/No Kernel/.test(name.textContent) && state
                               && state.getAttribute('data-status') === 'idle') || document.querySelector('.jp-Dialog'); }""")
    except Exception:
        pass  # the caller sees "No Kernel" or the dialog
    if not page.locator(".jp-Dialog").count():
        page.wait_for_function(f"n => document.querySelectorAll('{CELLS}').length === n", arg=n_cells)
    return {
        "seconds": time.perf_counter() - start,
        "dialogs": page.locator(".jp-Dialog").all_text_contents(),
        "kernel": page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName").first.text_content().strip(),
        "tab": page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current").text_content().strip(),
    }


def run_all(page, timeout: float = 300) -> float:
    """Run All Cells from the Run menu; returns the seconds until no cell is queued and the kernel is idle."""
    start = time.perf_counter()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # Run All queues every cell at once ([*]); it is done when none is left and the kernel is idle.
    # Whether every cell ran is read from the saved notebook, not from here.
    page.wait_for_function(
        f"""() => {{
            const prompts = [...document.querySelectorAll('{CELLS}.jp-CodeCell .jp-InputPrompt')];
            const state = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
            return prompts.some(p => /\\[\\d+\\]/.test(p.textContent)) && !prompts.some(p => p.textContent.includes('*'))
                   && state && state.getAttribute('data-status') === 'idle';
        }}""",
        timeout=timeout * 1000)
    return time.perf_counter() - start


def close_all_tabs(page) -> None:
    """Close every open document (File > Close All Tabs), discarding unsaved changes, and shut the kernels down."""
    page.get_by_role("menuitem", name="File", exact=True).click()
    page.get_by_role("menuitem", name="Close All Tabs", exact=True).click()
    for _ in range(20):  # one "unsaved changes" dialog per dirty notebook
        dialog = page.locator(".jp-Dialog")
        try:
            dialog.wait_for(timeout=1500)
        except Exception:
            break
        dialog.get_by_role("button", name=re.compile("Discard|Don't Save", re.I)).click()
    page.get_by_role("menuitem", name="Kernel", exact=True).click()
    page.get_by_role("menuitem", name=re.compile("Shut Down All Kernels")).click()
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=3000)
        dialog.get_by_role("button", name=re.compile("Shut Down All", re.I)).click()
    except Exception:
        pass


# The sliders of Try-it widgets: those that share their cell's output with a figure.
TRY_IT_SLIDERS = ".jp-OutputArea:has(.widget-output img) .widget-slider"

_START_WATCH = """slider => {
    const area = slider.closest('.jp-OutputArea');
    const image = () => { const img = area.querySelector('.widget-output img'); return img ? img.src : ''; };
    const old = image();
    window.__redraw = {start: null, seconds: null};
    const observer = new MutationObserver(() => {
        const now = image();
        if (window.__redraw.start !== null && now && now !== old) {
            window.__redraw.seconds = (performance.now() - window.__redraw.start) / 1000;
            observer.disconnect();
        }
    });
    observer.observe(area, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
    document.addEventListener('keydown', () => { if (window.__redraw.start === null) window.__redraw.start = performance.now(); },
                              {capture: true, once: true});
}"""


def figure_png(slider) -> bytes:
    """The PNG next to a Try-it slider, as bytes."""
    import base64

    src = slider.evaluate("""s => { const img = s.closest('.jp-OutputArea').querySelector('.widget-output img');
                                    return img ? img.src : ''; }""")
    if not src.startswith("data:image/png;base64,"):
        raise AssertionError(f"no PNG figure next to the slider (found {src[:40]!r})")
    return base64.b64decode(src.split(",", 1)[1])


def press_and_time_redraw(page, slider, key: str | None = None, timeout: float = 30) -> tuple[str, float]:
    """Focus the slider's handle, press an arrow key, and time key press to redrawn figure (in the page's clock).

    ``key`` defaults to ArrowRight, or ArrowLeft when the slider is at its maximum. Returns
    ``(key, seconds)``; raises if the figure does not change within ``timeout`` seconds.
    """
    handle = slider.locator(".noUi-handle")
    if key is None:
        at_max = handle.evaluate("h => Number(h.getAttribute('aria-valuenow')) >= Number(h.getAttribute('aria-valuemax'))")
        key = "ArrowLeft" if at_max else "ArrowRight"
    slider.evaluate(_START_WATCH)
    handle.focus()
    page.keyboard.press(key)
    page.wait_for_function("() => window.__redraw && window.__redraw.seconds !== null", timeout=timeout * 1000)
    return key, page.evaluate("() => window.__redraw.seconds")


def slider_labels(slider) -> list[dict]:
    """The labels of every control in the slider's widget: ``[{"text", "cut"}]``."""
    return slider.evaluate("""s => [...s.closest('.jp-OutputArea').querySelectorAll('.widget-label')]
        .filter(l => l.textContent).map(l => ({text: l.textContent, cut: l.scrollWidth > l.clientWidth + 1}))""")
