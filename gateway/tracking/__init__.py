"""Message tracking: every inbound message's timeline (received → … → filed / rejected).

events   pure: steps as metadata-only Events (INS masked in free text)
store    the tables' reads and batched writes (record store database)
tracker  the port the service and consumers report to; buffered, never blocks an ingest
consumer reports what record consumers did: filed / retrying / parked / given-up
replay   puts one parked message back on its original destination
"""
