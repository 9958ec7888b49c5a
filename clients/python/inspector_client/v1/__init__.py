"""Generated from protos/inspector/v1 by scripts/gen_protos.py."""
