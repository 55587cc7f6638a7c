"""The embedded default: the synthesized stack running on a local moto server, end to end."""
