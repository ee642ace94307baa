"""The CLI's commands (`recon-domains …`) and the exit codes every command follows.

- 0: done as asked;
- 1: a gate failed or refused (for `sandbox conformance`: differences were found);
- 2: the command line itself is wrong (argparse's usage error; argparse exits with it);
- 3: a configuration problem: a setting, a path or a service the command needs is missing
  or wrong (the message names it and what to do).
"""

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_CONFIG = 3
