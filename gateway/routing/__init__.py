"""Routing: routing.yaml decides where each document goes; RabbitMQ carries it there."""
