"""Federation over NATS JetStream: contracts, schedules, wire format, the agent, the REST facade."""
