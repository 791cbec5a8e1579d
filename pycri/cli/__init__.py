"""pycrictl: a crictl-style debug CLI for any CRI endpoint."""
