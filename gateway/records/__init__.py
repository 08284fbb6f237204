"""Patient records: the reference record service that files documents from the queue."""
