"""Reading and writing, with input checks and clear errors. Nothing here edits an input."""
