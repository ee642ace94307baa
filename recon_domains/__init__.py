"""recon_domains: give every RECON PeerTube video one of 18 knowledge domains, safely."""

__version__ = "0.1.0"
