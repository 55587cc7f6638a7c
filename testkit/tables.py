"""The events table as the synthesized template defines it, for tests and benchmarks that need the table
without the rest of the stack (moto in-process, ``mock_aws``)."""

from __future__ import annotations

from typing import Any

from local.emulator.template import table_arguments


def create_table(client: Any, template: dict, name: str) -> None:
    """The table exactly as ``template`` defines it (keys, ``byDay`` index and its projection, TTL), named ``name``."""
    arguments, ttl_attribute = table_arguments(template, name)
    client.create_table(**arguments)
    if ttl_attribute:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute})
