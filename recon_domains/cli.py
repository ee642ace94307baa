"""`recon-domains`: the operator's command line. Each command calls the plain core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recon-domains",
        description="RECON domain categorization for PeerTube (see README.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    # status -------------------------------------------------------------------------------
    p = sub.add_parser("status", help="assignment status breakdown, domains, unpushed count")
    p.add_argument("--db", help="path to recon.db (default: $RECON_DB_PATH)")
    p.add_argument("--source", help="stream source (default: $RECON_STREAM_SOURCE)")
    p.set_defaults(handler="recon_domains.commands.status:run")

    # sandbox ------------------------------------------------------------------------------
    sandbox = sub.add_parser("sandbox", help="synthetic RECON corpus and PeerTube server")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    p = sandbox_sub.add_parser("corpus", help="generate a RECON-shaped recon.db + concepts")
    p.add_argument("--out", required=True, help="output folder (recon.db, concepts/)")
    p.add_argument("--docs", type=int, default=3000, help="number of documents")
    p.add_argument("--seed", type=int, default=1, help="random seed (deterministic)")
    p.add_argument("--skewed", action="store_true", help="land far from the benchmarks")
    p.set_defaults(handler="recon_domains.sandbox.corpus:cli_main")
    p = sandbox_sub.add_parser("peertube", help="serve a PeerTube-compatible API")
    p.add_argument("--port", type=int, default=9010)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--db-dsn", help="PostgreSQL DSN (default: an embedded pgserver)")
    p.add_argument("--admin-password", default="sandbox-admin")
    p.add_argument("--videos-from", help="seed a video for every stream row of this recon.db")
    p.add_argument("--source", help="stream source (default: $RECON_STREAM_SOURCE)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")
    p.add_argument("--drop-rate", type=float, default=0.0, help="fraction of dropped connections")
    p.add_argument("--token-lifetime", type=float, default=86400.0, help="access token seconds")
    p.add_argument("--rate-limit", type=int, default=50, help="API requests per window per IP")
    p.add_argument("--rate-window", type=float, default=10.0, help="API rate-limit window (s)")
    p.add_argument("--login-limit", type=int, default=15, help="logins per 5 minutes per IP")
    p.set_defaults(handler="recon_domains.sandbox.peertube_server:cli_main")

    # demo / rehearse ----------------------------------------------------------------------
    p = sub.add_parser("demo", help="the whole migration on a generated sandbox corpus")
    p.add_argument("--docs", type=int, default=3000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default=".demo", help="where everything is written")
    p.set_defaults(handler="recon_domains.rehearsal:demo_main")
    p = sub.add_parser("rehearse", help="the whole migration on a copy of real data")
    p.add_argument("--recon-db", required=True)
    p.add_argument("--concepts", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--then-remove-feature", action="store_true",
                   help="end with a confirmed remove_feature, to rehearse the way out")
    p.set_defaults(handler="recon_domains.rehearsal:rehearse_main")

    # review -------------------------------------------------------------------------------
    p = sub.add_parser("review", help="serve the tied-video review page")
    p.add_argument("--db", help="path to recon.db (default: $RECON_DB_PATH)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; any but loopback needs RECON_REVIEW_TOKEN")
    p.set_defaults(handler="recon_domains.review.server:cli_main")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    module_name, func_name = args.handler.split(":")
    # Import lazily: `status` must not pay for Dagster's import time.
    module = __import__(module_name, fromlist=[func_name])
    return int(getattr(module, func_name)(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
