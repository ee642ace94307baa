"""`make bench`: speed and memory, measured (never asserted in tests), apart from the
package's core: `python -m recon_domains.bench.migration` (the migration on 22,000
documents) and `python -m recon_domains.bench.push` (the push against a slow sandbox
PeerTube, one with a fixed capacity, under a rate cap and a rate limit, and a small
stage's overhead)."""
