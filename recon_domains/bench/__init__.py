"""`make bench`: speed and memory, measured (never asserted in tests), apart from the
package's core: `python -m recon_domains.bench.migration` (the migration on 22,000
documents) and `python -m recon_domains.bench.push` (the push against a slow and a
rate-limited sandbox PeerTube)."""
