"""Settings for every taggerhub process, in one typed place.

Defaults live in the dataclasses below; a TOML file overrides them section by
section, and ``TAGGERHUB_<SECTION>_<FIELD>`` environment variables override the
file (``TAGGERHUB_SERVER_PORT=23001``). The loaded :class:`Settings` object is
passed down explicitly; :func:`trace_settings` also says which of these layers
set each value (``taggerhub config --dump``). No module below reads the environment
on its own. The one exception is the client library's public API: ``client.createProxy()``
fills arguments left out from ``TAGGERHUB_TOKEN``, ``TAGGERHUB_CLIENT_TLS_*`` and
``TAGGERHUB_NS``, all read in :mod:`taggerhub.client.env`.
A TOML value must have the field's type; environment values are text and converted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "TAGGERHUB_"


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong type."""


@dataclass
class ServerSettings:
    host: str = "localhost"
    port: int = 23000
    backend: str = "simulator"  # "simulator" or "hardware"
    object_id: str = "TimeTaggerRPC"
    max_message_bytes: int = 256 * 1024 * 1024
    max_connections: int = 256
    idle_timeout_s: float = 0.0  # 0: never drop idle clients
    handshake_timeout_s: float = 10.0
    shutdown_timeout_s: float = 4.0
    log_level: str = "INFO"
    insecure: bool = False  # allow non-loopback binds without auth and TLS
    # Address clients reach the server at, put in the URIs of returned objects, when it differs
    # from the bind address (a container publishing 0.0.0.0, NAT): "" = the bind address;
    # port 0 = the listening port.
    advertise_host: str = ""
    advertise_port: int = 0
    recordings_dir: str = ""  # per-user folders for TT.FileWriter over RPC ("": recordings are off)


@dataclass
class SimulatorSettings:
    config_file: str = ""  # TOML file describing simulated devices and their signals
    clock: str = "realtime"  # "realtime" or "virtual"
    seed: int = 0  # 0: fresh entropy each start


@dataclass
class AuthSettings:
    enabled: bool = False
    users_file: str = "users.toml"
    audit_log: str = ""
    max_connections_per_user: int = 32


@dataclass
class TlsSettings:
    enabled: bool = False
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    require_client_cert: bool = False


@dataclass
class ExporterSettings:
    listen: str = "localhost:9234"  # loopback by default; a lab PC's role opens it to Prometheus
    # Scrapers allowed to read /metrics, "NAME=sha256:HEX" each (`taggerhub exporter --new-scraper NAME`);
    # empty: anyone who reaches the port. Listed names in show_users_to ("*": all) see user names.
    scrapers: list[str] = field(default_factory=list)
    show_users_to: list[str] = field(default_factory=list)
    cert_file: str = ""  # serve /metrics over HTTPS with this certificate and key
    key_file: str = ""
    client_ca_file: str = ""  # with HTTPS: require a client certificate signed by this CA
    server: str = "localhost:23000"
    channels: list[int] = field(default_factory=list)  # empty: every input of the tagger
    token: str = ""
    serial: str = ""  # which tagger to watch; empty: the one the server has open (or the first)
    timeout_s: float = 2.0  # per RPC; keeps scrapes short when the server is down
    rate_window_s: float = 0.5  # shortest count-rate window; faster scrapes repeat the last rates
    tls_ca: str = ""  # CA file: talk TLS to the server and check its certificate against this CA
    tls_cert: str = ""  # client certificate (servers that require one), with tls_key
    tls_key: str = ""


@dataclass
class WebSettings:
    """``taggerhub web``: the live lab page, a client of one server (docs/web.md)."""

    listen: str = "localhost:8023"  # loopback by default, like the server
    server: str = "localhost:23000"
    tls_ca: str = ""  # CA file: talk TLS to the server (required when the server has TLS on)
    tls_cert: str = ""  # client certificate: the page logs in as its user without a token
    tls_key: str = ""
    cert_file: str = ""  # serve the page over HTTPS with this certificate and key
    key_file: str = ""
    insecure: bool = False  # allow listening beyond loopback without HTTPS
    update_hz: float = 10.0  # count-rate pushes per second to each page
    timeout_s: float = 3.0  # per RPC to the server
    session_idle_s: float = 12 * 3600.0  # a browser's login is forgotten after this long unused


@dataclass
class VpnSettings:
    """WireGuard key material and addresses for `taggerhub vpn` (the tunnel itself runs in a sidecar)."""

    dir: str = "wireguard"  # holds <interface>.conf (server) and peers/<name>.conf (clients)
    interface: str = "wg0"
    address: str = "10.13.13.1/24"  # the server's tunnel address; peers get the next free ones
    listen_port: int = 51820
    endpoint: str = ""  # host:port that peers dial, written into their configs
    keepalive_s: int = 25


@dataclass
class DiscoverySettings:
    """Registration of this server's taggers with the lab's Pyro5 name server (docs/discovery.md)."""

    enabled: bool = False
    ns_host: str = "localhost"  # where the Pyro5 name server runs
    ns_port: int = 9090  # Pyro5's default name server port
    host_name: str = ""  # the <host> in taggerhub.<host>.<serial>; "": this PC's short host name
    aliases: list[str] = field(default_factory=list)  # "ALIAS=SERIAL", e.g. "lab2-ultra=2138000SIM"
    refresh_s: float = 3.0  # how often registrations are renewed (they come back after an NS restart)
    stale_after_s: float = 30.0  # entries not renewed for this long are pruned (server gone)


@dataclass
class ExperimentSettings:
    """Server-side experiment plugins: entry points in group ``taggerhub.experiments`` plus a folder."""

    plugin_dir: str = ""  # folder of *.py plugin files; "" = entry points only
    enabled: list[str] = field(default_factory=list)  # experiment names to serve; empty: every one found


@dataclass
class LimitsSettings:
    """What one client may take from the server (docs/security.md, "Limits"); 0 means no limit.

    ``overrides`` raise or lower a limit for one role or one user:
    ``"role:observer.max_objects=200"``, ``"user:ada.measurement_bytes=4294967296"``
    (a user's entry wins over its role's, which wins over the defaults here).
    """

    max_objects: int = 1000  # live server objects owned by one user
    # Live measurements of one user, and of everyone together: each one is engine work on every
    # chunk of tags while it runs, and ~150 running Countrates slowed every other client 46x.
    max_measurements: int = 32
    measurements_budget: int = 256
    measurement_bytes: int = 256 * 1024 * 1024  # what one measurement may allocate, estimated from its arguments
    memory_budget_bytes: int = 2 * 1024 * 1024 * 1024  # all measurements of all users together
    min_binwidth_ps: int = 1_000_000  # Counter-like time traces: shortest bin (engine work per second)
    oneway_per_connection: int = 4  # one-way calls running at once per connection (more wait in line)
    oneway_per_user: int = 16
    oneway_threads: int = 32  # threads running one-way calls, for the whole server
    receive_bytes_per_connection: int = 64 * 1024 * 1024  # largest request frame buffered per connection
    receive_bytes_total: int = 512 * 1024 * 1024  # request frames being received, all connections together
    pending_handshakes: int = 256  # connections not yet through TLS + the Pyro5 handshake
    pending_per_source: int = 32  # of those, from one source address (oldest dropped first)
    # Sources in these networks ("10.13.13.0/24", "127.0.0.1/32") get the larger per-source cap below,
    # and are dropped only after every pending socket from elsewhere.
    trusted_networks: list[str] = field(default_factory=list)
    pending_per_trusted_source: int = 128
    admin_connections: int = 2  # of server.max_connections, kept for admins (PostgreSQL's reserved slots)
    denied_burst: int = 50  # denied calls a session may make in a burst ...
    denied_per_s: float = 2.0  # ... refilled at this rate; past it its connections are closed
    recording_bytes: int = 10 * 1024**3  # what one user's recording folder may hold
    stream_queue_bytes: int = 256 * 1024 * 1024  # tags queued for one stream subscriber; beyond, loss is marked
    overrides: list[str] = field(default_factory=list)
    # The same as tables: [limits.roles.observer] max_objects = 100; [limits.users.ada] ...
    roles: dict[str, dict[str, int]] = field(default_factory=dict)
    users: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    web: WebSettings = field(default_factory=WebSettings)
    vpn: VpnSettings = field(default_factory=VpnSettings)
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
    experiments: ExperimentSettings = field(default_factory=ExperimentSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert an environment or option value (text, usually) to the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, which only the settings file can hold")
        return _check_toml(value, annotation, where)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if isinstance(value, str):
            value = [v for v in (part.strip() for part in value.split(",")) if v]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item_type, where) for v in value]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: union types are not supported in settings")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float, str):
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: expected {annotation.__name__}, got {value!r}"
            ) from None
    raise ConfigError(f"{where}: unsupported setting type {annotation!r}")


# TOML has types of its own, so a file value must already have the field's type: `port = "23010"`
# is a mistake to point out, not a string to convert (a float field takes an integer too).
_TOML_TYPES: dict[Any, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}
_TOML_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
               dict: "a table"}


def _toml_kind(value: Any) -> str:
    """How TOML spells the type of ``value``, for error messages."""
    kinds = ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), (list, "array"), (dict, "table"))
    kind = next((name for cls, name in kinds if isinstance(value, cls)), type(value).__name__)
    return f"the {kind} {value!r}" if kind != "boolean" else f"the boolean {str(value).lower()}"


def _check_toml(value: Any, annotation: Any, where: str) -> Any:
    """A TOML value of the field's type, unchanged (ints widened to float); anything else is refused."""
    if typing.get_origin(annotation) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected {_TOML_NAMES[dict]}, got {_toml_kind(value)}")
        _key_type, value_type = typing.get_args(annotation)
        return {str(k): _check_toml(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if typing.get_origin(annotation) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {_TOML_NAMES[list]}, got {_toml_kind(value)}")
        (item_type,) = typing.get_args(annotation)
        return [_check_toml(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    allowed = _TOML_TYPES.get(annotation)
    if allowed is None:
        return _coerce(value, annotation, where)  # reports the unsupported type
    if not isinstance(value, allowed) or (isinstance(value, bool) and annotation is not bool):
        hint = ""
        if isinstance(value, str):  # a quoted number or boolean: say how to write it
            with contextlib.suppress(tomllib.TOMLDecodeError, ConfigError):
                _check_toml(tomllib.loads(f"v = {value}")["v"], annotation, where)
                hint = " (remove the quotes)"
        raise ConfigError(f"{where}: expected {_TOML_NAMES[annotation]}, got {_toml_kind(value)}{hint}")
    return annotation(value)


def _apply(section: Any, values: Mapping[str, Any], label: Callable[[str], str],
           convert: Callable[[Any, Any, str], Any] = _coerce) -> None:
    """Set ``values`` on one section; ``label(key)`` names where a value came from, in errors."""
    hints = typing.get_type_hints(type(section))
    known = {f.name for f in dataclasses.fields(section)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{label(key)}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        setattr(section, key, convert(value, hints[key], label(key)))


def env_name(section: str, key: str) -> str:
    """The environment variable that sets ``[section] key``."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def settings_file(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> str | os.PathLike[str] | None:
    """The settings file to read: ``path`` as given, else ``$TAGGERHUB_CONFIG``, else None."""
    env = os.environ if env is None else env
    return path or env.get(ENV_PREFIX + "CONFIG") or None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build settings from defaults, then the TOML file, then env, then explicit overrides."""
    return trace_settings(path, env, overrides)[0]


def trace_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """:func:`load_settings`, plus where each set value came from: ``{"server.port": "TAGGERHUB_SERVER_PORT"}``.

    Sources are the TOML file's path, the environment variable's name or
    ``option``; settings missing from the map are defaults. ``taggerhub config
    --dump`` prints them, so an admin sees which layer won.
    """
    settings = Settings()
    sources: dict[str, str] = {}
    env = os.environ if env is None else env
    path = settings_file(path, env)
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for name, values in data.items():
            section = getattr(settings, name, None)
            if section is None or not dataclasses.is_dataclass(section):
                raise ConfigError(f"{path}: unknown section [{name}]")
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: [{name}] must be a table")
            _apply(section, values, lambda key, name=name: f"{path} [{name}] {key}", _check_toml)
            sources.update({f"{name}.{key}": str(path) for key in values})
    for section_field in dataclasses.fields(settings):
        name = section_field.name
        prefix = f"{ENV_PREFIX}{name.upper()}_"
        variables = {key[len(prefix):].lower(): key for key in env if key.startswith(prefix)}
        _apply(getattr(settings, name), {key: env[var] for key, var in variables.items()},
               lambda key, variables=variables: f"environment variable {variables[key]}")
        sources.update({f"{name}.{key}": var for key, var in variables.items()})
    for name, values in (overrides or {}).items():
        given = {k: v for k, v in values.items() if v is not None}
        _apply(getattr(settings, name), given, lambda key, name=name: f"option [{name}] {key}")
        sources.update({f"{name}.{key}": "option" for key in given})
    validate(settings)
    return settings, sources


def validate(settings: Settings) -> None:
    """Reject combinations that cannot work, naming the setting."""
    if settings.server.backend not in ("simulator", "hardware"):
        raise ConfigError(f"server.backend must be 'simulator' or 'hardware', got {settings.server.backend!r}")
    if not 0 <= settings.server.port <= 65535:
        raise ConfigError(f"server.port must be 0..65535, got {settings.server.port}")
    if settings.simulator.clock not in ("realtime", "virtual"):
        raise ConfigError(f"simulator.clock must be 'realtime' or 'virtual', got {settings.simulator.clock!r}")
    if not 0 <= settings.server.advertise_port <= 65535:
        raise ConfigError(f"server.advertise_port must be 0..65535, got {settings.server.advertise_port}")
    validate_discovery(settings.discovery)
    if settings.server.max_message_bytes < 1024:
        raise ConfigError("server.max_message_bytes must be at least 1024")


def validate_discovery(discovery: DiscoverySettings) -> None:
    """Aliases are ALIAS=SERIAL pairs and the refresh period is positive."""
    for alias in discovery.aliases:
        name, sep, serial = alias.partition("=")
        if not sep or not name.strip() or not serial.strip():
            raise ConfigError(f"discovery.aliases: expected ALIAS=SERIAL, got {alias!r}")
    if discovery.refresh_s <= 0:
        raise ConfigError(f"discovery.refresh_s must be positive, got {discovery.refresh_s}")
    if not 0 < discovery.ns_port <= 65535:
        raise ConfigError(f"discovery.ns_port must be 1..65535, got {discovery.ns_port}")
