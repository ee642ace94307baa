"""The README's Dagster UI screenshots, taken from a finished demo's real sandbox data.

    make demo && make browser
    .venv/bin/python docs/screenshots.py [--workdir .demo] [--out docs]

Starts `dagster-webserver` on a free loopback port in the demo folder (so it reads the
demo's `.env` and instance), opens it in Debian's Chromium (headless, driven through
Playwright as the review page's browser test does; no browser is downloaded), waits for
each page to render and saves:

- dagster-asset-graph.png: the whole asset graph, its groups named in runbook order
  (step0_predeploy ... step7_reprocess);
- dagster-gate-distribution.png: Step 4's gate `distribution_within_benchmarks` with its
  native table (each measure against its benchmark).

The review page's two screenshots come from its browser test (README, "Reviewing tied
videos"). The pages are only read; Dagster itself notes in the instance that its
first-visit dialog was skipped.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("RECON_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"dagster-webserver exited ({process.returncode}) before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"dagster-webserver did not answer at {url} within {timeout_s:.0f}s")


def skip_community_dialog(page) -> None:
    """Dagster's first visit asks for an e-mail address; skip it when it shows."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=3000)
    except Exception:  # playwright's TimeoutError: not shown (skipped before on this instance)
        return
    skip.click()


def shoot(base: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    saved = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})

        # The global asset graph, every group expanded, the navigation folded away.
        page.goto(f"{base}/asset-groups", wait_until="networkidle")
        for name in ("step0_predeploy", "step7_reprocess"):
            page.get_by_text(name, exact=True).first.wait_for(state="visible", timeout=120_000)
        skip_community_dialog(page)
        page.get_by_text("Hide navigation").click()
        page.mouse.click(1000, 750, button="right")  # the graph's background: its menu
        page.get_by_role("menuitem").filter(has_text="Expand all groups").click()
        for name in ("recon_idle", "push_plan", "reprocess_batch"):
            page.get_by_text(name, exact=True).first.wait_for(state="visible", timeout=120_000)
        # Each node's status arrives after the graph (live data, in batches): wait for the
        # requests to settle, then for the last layout pass and edge drawing.
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(5000)
        page.wait_for_load_state("networkidle")
        saved.append(out / "dagster-asset-graph.png")
        page.screenshot(path=saved[-1])

        # Step 4's gate: the check's latest evaluation with its native table.
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(
            f"{base}/assets/pass1_dry_run?view=checks&checkDetail=distribution_within_benchmarks",
            wait_until="networkidle",
        )
        page.get_by_text("needs_reprocess", exact=True).first.wait_for(timeout=120_000)
        skip_community_dialog(page)
        page.get_by_text("needs_reprocess", exact=True).first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        saved.append(out / "dagster-gate-distribution.png")
        page.screenshot(path=saved[-1])
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=str(REPO / ".demo"), help="a finished demo")
    parser.add_argument("--out", default=str(REPO / "docs"), help="where the PNGs go")
    args = parser.parse_args(argv)
    workdir, out = Path(args.workdir).resolve(), Path(args.out).resolve()
    if not (workdir / ".env").is_file():
        print(f"no demo in {workdir}: run `make demo` first", file=sys.stderr)
        return 3
    if not CHROMIUM.exists():
        print(f"Chromium not found at {CHROMIUM}: run `make browser`", file=sys.stderr)
        return 3
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},  # .env says it
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/server_info", process)
        for path in shoot(base, out):
            print(f"saved {path} ({path.stat().st_size // 1024} KB)")
    finally:
        process.terminate()
        process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
