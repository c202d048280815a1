"""The two ways the worker consumes interactions: an aiokafka batch consumer, and a Faust agent."""
