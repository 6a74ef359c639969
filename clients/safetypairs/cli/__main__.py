"""`python -m safetypairs.cli`, the same as the `safetypairs` command."""

import sys

from safetypairs.cli import main

sys.exit(main())
