"""Settings from the environment, read and checked once at start.

Takes the environment as a mapping so tests pass a dict. A bad value fails naming the
variable. docs: the configuration table in README.md lists every variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import ConfigError

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

# Bounds of numeric settings. A value past them is a typo or a misunderstanding, and would
# fail later and far away: AMQP's prefetch count is 16 bits (basic_qos raises struct.error in
# the consumer thread), Event.wait overflows past TIMEOUT_MAX, NaN makes every wait_for time
# out at once and every Event.wait return at once.
MAX_PREFETCH = 65535
MAX_WORKERS = 256  # pipeline processes, record-consumer threads (each has a connection)
MAX_DOCUMENT_BYTES = 1024 * 1024 * 1024  # whole documents are held in memory, several times
MAX_SECONDS = 86400.0  # timeouts and intervals: a day
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
TEST_INS = ("accept", "refuse")


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    http_addr: Address
    mllp_addr: Address
    amqp_url: str
    amqp_prefix: str
    database_url: str
    data_dir: Path
    keys_dir: Path
    routing_file: Path
    conformance_pack: Path | None
    max_document_bytes: int
    mllp_idle_timeout_s: float
    publish_timeout_s: float
    consumer_prefetch: int
    log_level: str
    log_format: str
    # Signing (docs/signing.md). Key: PKCS#12 when set, else PEM key + certificate.
    signing_key: Path | None = None
    signing_cert: Path | None = None
    signing_p12: Path | None = None
    signing_password: bytes | None = field(default=None, repr=False)
    verify_certs: tuple[Path, ...] = ()  # more accepted keys' certificates (keys_dir/previous too)
    trust_store: Path | None = None  # PEM CA bundle for sender signatures
    signed_senders: frozenset[str] = frozenset()  # senders that must sign ("*": all)
    # The envelope seal key (gateway/signing/seal.py), shared by intake and record consumers.
    # None: keys_dir/envelope.key, created when absent; set: that file, which must exist.
    envelope_key_file: Path | None = None
    routing_reload_s: float = 2.0  # how often routing.yaml is checked for changes
    token_secret: str | None = None  # records API tokens; else var/token.secret (api/identity)
    pipeline_workers: int = 0  # worker processes for the pipeline; 0: threads (gateway.workers)
    record_consumers: int = 2  # record-consumer threads (channels) per process
    filing_process: bool = False  # record consumers in a child process (gateway.filing)
    # Security (docs/security.md): all off by default so `make run` stays simple.
    senders_file: Path | None = None  # set: every inbound message must be authenticated
    tls_cert: Path | None = None  # set with tls_key: HTTPS and MLLP over TLS
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: client certificates required (mutual TLS)
    request_timeout_s: float = 30.0  # to receive one HTTP body or one MLLP frame
    # Lab results converted to CR-BIO (docs/cda-validation.md): facts HL7v2 does not carry.
    lab_structure_id: str = ""  # national structure id of the laboratory (1.2.250.1.71.4.2.2)
    lab_director: tuple[str, ...] = ()  # RPPS, family, given, profession code, profession name
    # Patients under a test INS OID (the ANS examples): accepted for development; production
    # refuses them (GATEWAY_TEST_INS=refuse): a real record is no place for a test document.
    accept_test_ins: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, root: Path | None = None) -> Settings:
        env = os.environ if env is None else env
        root = root or Path.cwd()
        data_dir = _path(env.get("GATEWAY_DATA_DIR", "var"), root)
        pack = env.get("GATEWAY_CONFORMANCE_PACK")
        keys_dir = _path(env.get("GATEWAY_KEYS_DIR", str(data_dir / "keys")), root)
        return cls(
            http_addr=_address(env, "GATEWAY_HTTP_ADDR", "127.0.0.1:8080"),
            mllp_addr=_address(env, "GATEWAY_MLLP_ADDR", "127.0.0.1:2575"),
            amqp_url=env.get("GATEWAY_AMQP_URL", DEFAULT_AMQP_URL),
            amqp_prefix=env.get("GATEWAY_AMQP_PREFIX", "passerelle"),
            database_url=env.get("GATEWAY_DATABASE_URL")
            or f"sqlite:///{data_dir / 'records.sqlite3'}",
            data_dir=data_dir,
            keys_dir=keys_dir,
            routing_file=_path(env.get("GATEWAY_ROUTING_FILE", "routing.yaml"), root),
            conformance_pack=_path(pack, root) if pack else None,
            max_document_bytes=_int(
                env, "GATEWAY_MAX_DOCUMENT_BYTES", 20 * 1024 * 1024, maximum=MAX_DOCUMENT_BYTES
            ),
            mllp_idle_timeout_s=_float(env, "GATEWAY_MLLP_IDLE_TIMEOUT", 300.0),
            publish_timeout_s=_float(env, "GATEWAY_PUBLISH_TIMEOUT", 10.0),
            consumer_prefetch=_int(env, "GATEWAY_CONSUMER_PREFETCH", 32, maximum=MAX_PREFETCH),
            record_consumers=_int(
                env, "GATEWAY_RECORD_CONSUMERS", 2, minimum=0, maximum=MAX_WORKERS
            ),
            filing_process=_filing_process(env),
            log_level=_choice(env, "GATEWAY_LOG_LEVEL", "INFO", LOG_LEVELS, str.upper),
            log_format=_choice(env, "GATEWAY_LOG_FORMAT", "json", LOG_FORMATS, str.lower),
            **_signing(env, root, keys_dir),
            routing_reload_s=_float(env, "GATEWAY_ROUTING_RELOAD_INTERVAL", 2.0),
            token_secret=env.get("GATEWAY_TOKEN_SECRET") or None,
            pipeline_workers=_pipeline_workers(env),
            senders_file=_optional_path(env, "GATEWAY_SENDERS_FILE", root),
            tls_cert=_optional_path(env, "GATEWAY_TLS_CERT", root),
            tls_key=_optional_path(env, "GATEWAY_TLS_KEY", root),
            tls_client_ca=_optional_path(env, "GATEWAY_TLS_CLIENT_CA", root),
            request_timeout_s=_float(env, "GATEWAY_REQUEST_TIMEOUT", 30.0),
            lab_structure_id=env.get("GATEWAY_LAB_STRUCTURE_ID", "").strip(),
            lab_director=_lab_director(env),
            accept_test_ins=_choice(env, "GATEWAY_TEST_INS", "accept", TEST_INS, str.lower)
            == "accept",
        )._checked()

    def _checked(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("GATEWAY_TLS_CERT and GATEWAY_TLS_KEY go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("GATEWAY_TLS_CLIENT_CA needs GATEWAY_TLS_CERT and GATEWAY_TLS_KEY")
        if self.envelope_key_file is not None and self.envelope_key_file in (
            self.signing_key,
            self.signing_cert,
            self.signing_p12,
        ):
            raise ConfigError(
                "GATEWAY_ENVELOPE_KEY_FILE: a file of its own, not the signing key or certificate"
            )
        return self


def _lab_director(env: Mapping[str, str]) -> tuple[str, ...]:
    """GATEWAY_LAB_DIRECTOR=RPPS^FAMILY^GIVEN^PROFESSION-CODE^PROFESSION-NAME (ER7-like)."""
    value = env.get("GATEWAY_LAB_DIRECTOR", "").strip()
    if not value:
        return ()
    parts = (value.split("^") + [""] * 5)[:5]
    if not (parts[0] and parts[1] and parts[3]):
        raise ConfigError(
            "GATEWAY_LAB_DIRECTOR needs RPPS^FAMILY^GIVEN^PROFESSION-CODE[^PROFESSION-NAME], "
            "e.g. 10000000001^MARTIN^Louise^G15_10/SM03^Médecin - Biologie médicale (SM)"
        )
    return tuple(parts)


def _signing(env: Mapping[str, str], root: Path, keys_dir: Path) -> dict:
    def optional(name: str) -> Path | None:
        value = env.get(name)
        return _path(value, root) if value else None

    password = env.get("GATEWAY_SIGNING_PASSWORD")
    paths = env.get("GATEWAY_VERIFY_CERTS", "").split(os.pathsep)
    senders = env.get("GATEWAY_SIGNED_SENDERS", "")
    return {
        "signing_key": optional("GATEWAY_SIGNING_KEY") or keys_dir / "signing.key",
        "signing_cert": optional("GATEWAY_SIGNING_CERT") or keys_dir / "signing.pem",
        "signing_p12": optional("GATEWAY_SIGNING_P12"),
        "signing_password": password.encode("utf-8") if password else None,
        "verify_certs": tuple(_path(p, root) for p in paths if p),
        "trust_store": optional("GATEWAY_TRUST_STORE"),
        "signed_senders": frozenset(s.strip() for s in senders.split(",") if s.strip()),
        "envelope_key_file": optional("GATEWAY_ENVELOPE_KEY_FILE"),
    }


def _path(value: str, root: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def _optional_path(env: Mapping[str, str], name: str, root: Path) -> Path | None:
    value = env.get(name)
    return _path(value, root) if value else None


def _address(env: Mapping[str, str], name: str, default: str) -> Address:
    value = env.get(name, default)
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}={value!r}: expected host:port")
    return Address(host or "127.0.0.1", int(port))


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 1, maximum: int | None = None
) -> int:
    value = env.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected an integer") from None
    if number < minimum or (maximum is not None and number > maximum):
        if maximum is not None:
            bound = f"an integer from {minimum} to {maximum}"
        else:
            bound = "positive" if minimum == 1 else f"at least {minimum}"
        raise ConfigError(f"{name}={value!r}: must be {bound}")
    return number


def _float(
    env: Mapping[str, str], name: str, default: float, maximum: float = MAX_SECONDS
) -> float:
    """A positive, finite number of seconds (nan, inf and 0 are refused: see MAX_SECONDS)."""
    value = env.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a number") from None
    if not (math.isfinite(number) and 0 < number <= maximum):
        raise ConfigError(
            f"{name}={value!r}: must be a number of seconds above 0, at most {maximum:g}"
        )
    return number


def _choice(
    env: Mapping[str, str],
    name: str,
    default: str,
    allowed: tuple[str, ...],
    normal: Callable[[str], str],
) -> str:
    value = env.get(name, default)
    if normal(value) not in allowed:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return normal(value)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _filing_process(env: Mapping[str, str]) -> bool:
    """GATEWAY_FILING_PROCESS: "auto" (a child process when there is more than one core), 1, 0."""
    name, value = "GATEWAY_FILING_PROCESS", env.get("GATEWAY_FILING_PROCESS", "auto")
    if value == "auto":
        return available_cores() > 1
    if value not in ("0", "1"):
        raise ConfigError(f"{name}={value!r}: expected auto, 1 (a child process) or 0 (threads)")
    return value == "1"


def _pipeline_workers(env: Mapping[str, str]) -> int:
    """GATEWAY_PIPELINE_WORKERS: "auto" (one per core, none on a single core) or N ≥ 0."""
    name, value = "GATEWAY_PIPELINE_WORKERS", env.get("GATEWAY_PIPELINE_WORKERS", "auto")
    if value == "auto":
        cores = available_cores()
        return cores if cores > 1 else 0
    if not value.isdigit() or int(value) > MAX_WORKERS:
        raise ConfigError(
            f"{name}={value!r}: expected auto or a number of processes from 0 (none) "
            f"to {MAX_WORKERS}"
        )
    return int(value)
