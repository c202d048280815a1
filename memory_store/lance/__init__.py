"""LanceDB plumbing shared by every table of the memory (see ``db``)."""
