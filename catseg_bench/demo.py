"""The demo (`bench run --demo`, `bench train --demo`): which model it runs, named once."""

DEMO_MODEL = "catseg-tiny"
"""The smallest variant: it runs untrained (`run`) or trains in minutes (`train`) on the CPU."""
