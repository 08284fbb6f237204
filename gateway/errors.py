"""Faults: things that went wrong with the machinery, never with the content.

Content problems are findings (gateway.findings), returned, not raised. Library exceptions
(pika, SQLAlchemy, lxml, cryptography) are translated into this tree at the module that
talks to the library, so callers only ever catch these:

    GatewayError
    ├── ConfigError            a setting or configuration file is wrong
    ├── BrokerUnavailable      the broker cannot take responsibility for a message now
    │   └── Unroutable         the broker took it but no queue would hold it
    ├── StoreUnavailable       the record store cannot be reached or refused the write
    └── KeystoreError          a signing key or certificate cannot be loaded
"""


class GatewayError(Exception):
    """Root of every fault raised by the gateway."""


class ConfigError(GatewayError):
    """A setting or configuration file is invalid; the message names it."""


class BrokerUnavailable(GatewayError):
    """RabbitMQ did not confirm a publish: the sender must retry later."""


class Unroutable(BrokerUnavailable):
    """RabbitMQ returned a mandatory publish: no queue is bound for its routing key."""


class StoreUnavailable(GatewayError):
    """The record store cannot be written now; the message must stay in its queue."""


class KeystoreError(GatewayError):
    """A signing key, certificate or trust store cannot be loaded."""
