"""RabbitMQ at the edge: topology, publisher with confirms, consumers with one disposition."""
