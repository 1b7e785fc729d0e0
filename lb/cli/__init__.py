"""Command-line entry points: `lb` (lb/cli/main.py) and `lbadm` (lb/cli/ipvsadm.py)."""
