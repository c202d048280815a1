"""The read service (`beliefstream serve`): the HTTP API over the reader, and its change feed."""
