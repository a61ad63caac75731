"""``python3 -m albdp --config ... --state ...``."""

from .main import main

main()
