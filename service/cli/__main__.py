"""`python -m service.cli` runs the `tailor` command (how `tailor serve` starts its worker child)."""
from service.cli import main

main()
