"""The fedstats node: statistics engine, project store, federation agent and API facades."""
