"""`recon-domains`: the operator's command line. Each command calls the plain core.

Before any setting is read, the command reads `.env` in the current directory (see
`load_env_file`); the exit codes every command follows are in `recon_domains.commands`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from recon_domains.commands import EXIT_CONFIG
from recon_domains.settings import ConfigError

ENV_FILE = ".env"

EPILOG = """\
settings: environment variables (README, "Configuration"); a .env file in the current
directory is read first, and a variable already set in the environment wins over it.

exit codes:
  0  done as asked
  1  a gate failed or refused (sandbox conformance: differences found)
  2  usage: the command line is wrong
  3  configuration: a setting, path or service is missing or wrong (the message says which)
"""


def package_version() -> str:
    """This package's installed version (what `--version` prints)."""
    try:
        return version("recon_domains")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


@dataclass(frozen=True)
class EnvFile:
    """What reading a `.env` did."""

    path: Path
    loaded: tuple[str, ...]  # variables set from the file
    kept: tuple[str, ...]  # in the file, but already in the environment, which wins


def load_env_file(path: Path) -> EnvFile | None:
    """Read `path` into the process environment the way `dagster dev` parses its `.env`
    (python-dotenv: `KEY=value` lines, quotes, `${VAR}` references), except that a variable
    already set in the environment keeps its value. None when there is no such file."""
    from dotenv import dotenv_values

    if not path.is_file():
        return None
    loaded: list[str] = []
    kept: list[str] = []
    for name, value in dotenv_values(path).items():
        if value is None:  # a bare `NAME` line sets nothing
            continue
        if name in os.environ:
            kept.append(name)
        else:
            os.environ[name] = value
            loaded.append(name)
    return EnvFile(path, tuple(loaded), tuple(kept))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recon-domains",
        description="RECON domain categorization for PeerTube (see README.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {package_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # check --------------------------------------------------------------------------------
    p = sub.add_parser(
        "check", help="preflight: every setting, DAGSTER_HOME, recon.db, PeerTube",
        description="Check every setting and what it points at (DAGSTER_HOME, recon.db, the "
        "concept folders and their off-site mirror, PeerTube's API, login, plugin and "
        "database). One line each, OK / WARN / FAIL with what to do; exit 3 when any line "
        "FAILs. Logs in to PeerTube at most once (reusing PEERTUBE_TOKEN_CACHE when set); "
        "never prints a secret; runs no dump and installs nothing.",
    )
    p.set_defaults(handler="recon_domains.commands.check:run")

    # status -------------------------------------------------------------------------------
    p = sub.add_parser("status", help="assignment status breakdown, domains, unpushed count")
    p.add_argument("--db", help="path to recon.db (default: $RECON_DB_PATH)")
    p.add_argument("--source", help="stream source (default: $RECON_STREAM_SOURCE)")
    p.set_defaults(handler="recon_domains.commands.status:run")

    # sandbox ------------------------------------------------------------------------------
    sandbox = sub.add_parser("sandbox", help="synthetic RECON corpus and PeerTube server")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True,
                                         metavar="SANDBOX_COMMAND")
    p = sandbox_sub.add_parser("corpus", help="generate a RECON-shaped recon.db + concepts")
    p.add_argument("--out", required=True, help="output folder (recon.db, concepts/)")
    p.add_argument("--docs", type=int, default=3000,
                   help="number of documents, 100 or more (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1,
                   help="random seed; the same seed gives the same corpus (default: %(default)s)")
    p.add_argument("--skewed", action="store_true",
                   help="land far from the benchmarks, so Step 4's distribution gate fails")
    p.set_defaults(handler="recon_domains.sandbox.corpus:cli_main")
    p = sandbox_sub.add_parser("peertube", help="serve a PeerTube-compatible API")
    p.add_argument("--port", type=int, default=9010,
                   help="port to listen on (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s)")
    p.add_argument("--db-dsn", help="PostgreSQL DSN (default: an embedded pgserver)")
    p.add_argument("--admin-password", default="sandbox-admin",
                   help="password of the admin user root (default: %(default)s)")
    p.add_argument("--videos-from", help="seed a video for every stream row of this recon.db")
    p.add_argument("--source", help="stream source (default: $RECON_STREAM_SOURCE)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")
    p.add_argument("--drop-rate", type=float, default=0.0, help="fraction of dropped connections")
    p.add_argument("--token-lifetime", type=float, default=86400.0, help="access token seconds")
    p.add_argument("--rate-limit", type=int, default=50, help="API requests per window per IP")
    p.add_argument("--rate-window", type=float, default=10.0, help="API rate-limit window (s)")
    p.add_argument("--login-limit", type=int, default=15, help="logins per 5 minutes per IP")
    p.add_argument("--serialization-failure-rate", type=float, default=0.0,
                   help="fraction of concurrent video PUTs answered PeerTube's 500")
    p.add_argument("--serialization-conflict-rate", type=float, default=0.0,
                   help="PeerTube's 500 per other video PUT in flight (PeerTube 8.0.1: about "
                   "0.0025)")
    p.add_argument("--capacity", type=int, default=0,
                   help="requests worked on at once, with --service-time (0: unlimited)")
    p.add_argument("--service-time", type=float, default=0.0,
                   help="seconds the server works on each request (with --capacity)")
    p.set_defaults(handler="recon_domains.sandbox.peertube_server:cli_main")
    p = sandbox_sub.add_parser("conformance", help="replay the recorded PeerTube calls, diff")
    p.add_argument("--against", required=True,
                   help="PeerTube base URL (password from $PEERTUBE_PASSWORD), or 'sandbox'")
    p.add_argument("--sequence", help="sequence file (default: PeerTube 8.0.1's record)")
    p.add_argument("--username", default=os.environ.get("PEERTUBE_USERNAME") or "root",
                   help="admin user (default: $PEERTUBE_USERNAME, else root)")
    p.add_argument("--video", help="id or UUID of a private video without a category")
    p.add_argument("--plugin-dir", help="folder the server reads test plugins from")
    p.add_argument("--host-header", help="Host header to send (PeerTube's internal port)")
    p.add_argument("--write", help="also save the answers observed, as a sequence file")
    p.add_argument("--db-dsn", help="with --against sandbox: PostgreSQL (default: embedded)")
    p.set_defaults(handler="recon_domains.sandbox.conformance:cli_main")

    # demo / rehearse ----------------------------------------------------------------------
    p = sub.add_parser("demo", help="the whole migration on a generated sandbox corpus")
    p.add_argument("--docs", type=int, default=3000,
                   help="documents in the generated corpus (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1,
                   help="random seed of the corpus (default: %(default)s)")
    p.add_argument("--workdir", default=".demo",
                   help="where everything is written; a previous demo there is replaced "
                   "(default: %(default)s)")
    p.add_argument("--serve", action="store_true",
                   help="do not run the demo again: start the last demo's sandbox PeerTube "
                   "(it stops with the demo) on its kept data, until Ctrl-C, so the Dagster UI "
                   "and dg launch run from WORKDIR can act on it")
    p.add_argument("--ui", action="store_true",
                   help="like --serve, then run the Dagster UI (dg dev) on the demo's .env and "
                   "instance; Ctrl-C stops both (make ui does this)")
    p.set_defaults(handler="recon_domains.rehearsal:demo_main")
    p = sub.add_parser("rehearse", help="the whole migration on a copy of real data")
    p.add_argument("--recon-db", required=True,
                   help="RECON's recon.db to copy (only read, with SQLite's backup API)")
    p.add_argument("--concepts", required=True, help="RECON's concept folders to copy")
    p.add_argument("--workdir", required=True,
                   help="a new folder for the copy, its PostgreSQL and Dagster instance")
    p.add_argument("--report", help="write the JSON report here (default: WORKDIR/report.json)")
    p.add_argument("--then-remove-feature", action="store_true",
                   help="end with a confirmed remove_feature, to rehearse the way out")
    p.add_argument("--peertube-url",
                   help="rehearse against this PeerTube (a staging instance holding RECON's "
                   "videos) instead of a sandbox; admin from PEERTUBE_USERNAME/"
                   "PEERTUBE_PASSWORD, plugin from PEERTUBE_PLUGIN_PATH, dump from "
                   "PEERTUBE_DB_DUMP_COMMAND or PEERTUBE_DB_DSN (README, 'Rehearsing against "
                   "a staging PeerTube')")
    p.add_argument("--i-understand-this-writes", action="store_true",
                   help="with --peertube-url: confirm the rehearsal may write to that "
                   "PeerTube (without it: refused, exit 1, nothing written)")
    p.set_defaults(handler="recon_domains.rehearsal:rehearse_main")

    # review -------------------------------------------------------------------------------
    p = sub.add_parser("review", help="serve the tied-video review page")
    p.add_argument("--db", help="path to recon.db (default: $RECON_DB_PATH)")
    p.add_argument("--port", type=int, default=8765,
                   help="port to listen on (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; any but loopback needs RECON_REVIEW_TOKEN "
                   "(default: %(default)s)")
    p.set_defaults(handler="recon_domains.review.server:cli_main")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. As the `recon-domains` program (`argv` None) it reads `./.env`
    first; called with `argv` (tests, other Python code) the environment is used as is."""
    try:
        env_file = load_env_file(Path.cwd() / ENV_FILE) if argv is None else None
    except (OSError, UnicodeDecodeError) as exc:
        print(f"recon-domains: cannot read {Path.cwd() / ENV_FILE}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    args = _build_parser().parse_args(argv)
    args.env_file = env_file
    module_name, func_name = args.handler.split(":")
    # Import lazily: `status` must not pay for Dagster's import time.
    module = __import__(module_name, fromlist=[func_name])
    try:
        return int(getattr(module, func_name)(args) or 0)
    except ConfigError as exc:  # a setting read outside a command's own error handling
        command = " ".join(filter(None, (args.command, getattr(args, "sandbox_command", None))))
        print(f"recon-domains {command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
