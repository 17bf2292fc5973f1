"""``python -m groundinggpt.data.synthetic ROOT [--seed N] ...``"""

from .cli import main

raise SystemExit(main())
