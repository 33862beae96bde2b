"""Building blocks shared by several rssr architectures (written once, imported by the archs)."""
