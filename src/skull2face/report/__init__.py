"""Pictures and reports a forensic user can read without a notebook."""
