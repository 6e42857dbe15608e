"""Each Pyro5 internal named in wire.pyro_compat still exists and behaves as assumed, on the installed Pyro5."""

from __future__ import annotations

import inspect
import re
import selectors
import socket
import threading
import tomllib

import Pyro5.api
import Pyro5.client
import Pyro5.errors
import pytest
from Pyro5 import protocol

from helpers import REPO
from taggerhub.client import explain
from taggerhub.client import proxy as client_proxy
from taggerhub.wire import codecs, pyro_compat
from taggerhub.wire.connection import FastConnection, speed_up

codecs.install()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _parameters(function: object) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]  # type: ignore[arg-type]


def test_installed_pyro5_is_in_the_tested_range_pinned_in_pyproject() -> None:
    lower, upper = (bound.lstrip("<>=") for bound in pyro_compat.TESTED_RANGE)
    assert _version(lower) <= _version(pyro_compat.PYRO5_VERSION) < _version(upper)
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"Pyro5{','.join(pyro_compat.TESTED_RANGE)}" in dependencies


def test_header_struct_is_the_40_byte_header_pyro5_sends() -> None:
    assert pyro_compat.HEADER.size == 40
    message = pyro_compat.SendingMessage(protocol.MSG_INVOKE, 0, 7, 84, b"xyz")
    fields = pyro_compat.HEADER.unpack(message.data[:40])
    assert len(fields) == 11
    assert fields[pyro_compat.F_TAG] == pyro_compat.HEADER_TAG
    assert fields[pyro_compat.F_VERSION] == pyro_compat.PROTOCOL_VERSION
    assert fields[pyro_compat.F_TYPE] == protocol.MSG_INVOKE
    assert fields[pyro_compat.F_SERIALIZER] == 84
    assert fields[pyro_compat.F_SEQ] == 7
    assert fields[pyro_compat.F_DATA_SIZE] == 3
    assert fields[pyro_compat.F_ANNOTATIONS_SIZE] == 0
    assert fields[pyro_compat.F_MAGIC] == pyro_compat.MAGIC_NUMBER
    assert message.data[40:] == b"xyz"


def test_a_header_packed_by_taggerhub_is_accepted_by_pyro5() -> None:
    header = pyro_compat.HEADER.pack(pyro_compat.HEADER_TAG, pyro_compat.PROTOCOL_VERSION, protocol.MSG_RESULT, 4,
                                     protocol.FLAGS_CORR_ID, 9, 2, 0, b"c" * 16, 0, pyro_compat.MAGIC_NUMBER)
    message = pyro_compat.ReceivingMessage(header, b"ok")
    assert (message.type, message.serializer_id, message.seq, message.data) == (protocol.MSG_RESULT, 4, 9, b"ok")
    assert bytes(message.corr_id) == b"c" * 16


class _RecordingConnection:
    def __init__(self, data: bytes):
        self.data, self.sizes = data, []

    def recv(self, size: int) -> bytes:
        self.sizes.append(size)
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def test_pyro5_reads_a_message_in_6_then_34_bytes_then_the_rest() -> None:
    message = pyro_compat.SendingMessage(protocol.MSG_RESULT, 0, 1, 4, b"payload")
    connection = _RecordingConnection(message.data)
    received = pyro_compat.recv_message(connection, [protocol.MSG_RESULT])
    assert connection.sizes == [pyro_compat.HEADER_FIRST_READ, pyro_compat.HEADER_REST_READ, len(b"payload")]
    assert (pyro_compat.HEADER_FIRST_READ, pyro_compat.HEADER_REST_READ) == (6, 34)
    assert received.data == b"payload"


def test_the_flags_are_found_in_the_second_part_of_the_header() -> None:
    header = pyro_compat.HEADER.pack(pyro_compat.HEADER_TAG, pyro_compat.PROTOCOL_VERSION, protocol.MSG_INVOKE, 4,
                                     protocol.FLAGS_COMPRESSED | protocol.FLAGS_ONEWAY, 1, 0, 0,
                                     pyro_compat.NO_CORRELATION, 0, pyro_compat.MAGIC_NUMBER)
    rest = header[pyro_compat.HEADER_FIRST_READ:]
    assert pyro_compat.flags_in_header_rest(rest) == protocol.FLAGS_COMPRESSED | protocol.FLAGS_ONEWAY


def test_sending_message_keeps_a_gather_payload_unjoined() -> None:
    payload = codecs.Gather([b"ab", memoryview(b"cdef")])
    data = pyro_compat.SendingMessage(protocol.MSG_RESULT, 0, 1, 84, payload).data
    assert isinstance(data, codecs.Gather)
    assert b"".join(bytes(memoryview(p)) for p in data.parts)[40:] == b"abcdef"
    assert pyro_compat.HEADER.unpack(bytes(data.parts[0])[:40])[pyro_compat.F_DATA_SIZE] == 6


def test_serializer_registry_is_pyro5s_own_and_used_on_both_sides() -> None:
    from Pyro5 import serializers

    assert pyro_compat.SERIALIZERS is serializers.serializers
    assert pyro_compat.SERIALIZERS_BY_ID is serializers.serializers_by_id
    taggerhub = pyro_compat.serializer_named("taggerhub")
    assert isinstance(taggerhub, codecs.TaggerhubSerializer)
    assert pyro_compat.serializer_by_id(codecs.TAGGERHUB_SERIALIZER_ID) is taggerhub

    class Echo:
        @Pyro5.api.expose
        def echo(self, value: object) -> object:
            return value

    with Pyro5.api.Daemon(host="127.0.0.1", port=0) as daemon:
        uri = daemon.register(Echo())
        loop = threading.Thread(target=daemon.requestLoop, daemon=True)
        loop.start()
        with Pyro5.client.Proxy(uri) as proxy:
            proxy._pyroSerializer = "taggerhub"  # a serializer Pyro5 only knows from the registry
            assert proxy.echo([1, "two"]) == [1, "two"]
        daemon.shutdown()
        loop.join(5)


@pytest.mark.parametrize(("base", "hooks"), [
    (pyro_compat.MsgpackSerializer, ("default", "object_hook", "ext_hook")),
    (pyro_compat.JsonSerializer, ("default",)),
    (pyro_compat.MarshalSerializer, ()),
])
def test_serializer_base_classes_have_the_overridden_methods(base: type, hooks: tuple[str, ...]) -> None:
    for name in (*hooks, "dumps", "dumpsCall", "loads", "loadsCall"):
        assert callable(getattr(base, name)), name
    assert isinstance(base.serializer_id, int)
    assert callable(pyro_compat.SerializerBase.register_class_to_dict)
    assert callable(pyro_compat.SerpentSerializer.register_type_replacement)


def test_socket_connection_keeps_sock_and_object_id_and_can_be_sped_up() -> None:
    assert _parameters(pyro_compat.SocketConnection.__init__) == [
        ("self", inspect.Parameter.empty), ("sock", inspect.Parameter.empty), ("objectId", None), ("keep_open", False)]
    assert "__slots__" not in vars(pyro_compat.SocketConnection)
    left, right = socket.socketpair()
    try:
        connection = pyro_compat.SocketConnection(left, "obj")
        assert (connection.sock, connection.objectId) == (left, "obj")
        speed_up(connection)
        assert type(connection) is FastConnection
        right.sendall(b"hello")
        assert connection.recv(5) == b"hello"
    finally:
        left.close()
        right.close()


def test_pyro5s_thread_pool_jobs_make_plain_socket_connections() -> None:
    left, right = socket.socketpair()
    try:
        job = pyro_compat.ConnectionJob(left, ("127.0.0.1", 1), None)
        assert type(job.csock) is pyro_compat.SocketConnection
        assert (job.caddr, job.daemon) == (("127.0.0.1", 1), None)
        assert callable(job.handleConnection)
    finally:
        left.close()
        right.close()


def test_create_socket_takes_the_keywords_used() -> None:
    names = {name for name, _ in _parameters(pyro_compat.create_socket)}
    assert {"connect", "timeout", "nodelay", "sslContext"} <= names


def test_proxy_name_mangled_methods_exist_with_their_signatures() -> None:
    base = Pyro5.client.Proxy
    assert _parameters(getattr(base, pyro_compat.PROXY_CREATE_CONNECTION)) == [
        ("self", inspect.Parameter.empty), ("replaceUri", False), ("connected_socket", None)]
    assert _parameters(getattr(base, pyro_compat.PROXY_CHECK_OWNER)) == [("self", inspect.Parameter.empty)]
    assert _parameters(getattr(base, pyro_compat.PROXY_PROCESS_METADATA)) == [
        ("self", inspect.Parameter.empty), ("metadata", inspect.Parameter.empty)]


def test_pyro5_checks_the_owner_thread_through_the_mangled_method() -> None:
    proxy = Pyro5.client.Proxy("PYRO:obj@127.0.0.1:1")
    errors: list[Exception] = []

    def other_thread() -> None:
        try:
            getattr(proxy, pyro_compat.PROXY_CHECK_OWNER)()
        except Pyro5.errors.PyroError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert errors and "owner" in str(errors[0])


def test_taggerhub_proxy_replaces_the_mangled_methods() -> None:
    cls = client_proxy.Proxy
    assert getattr(cls, pyro_compat.PROXY_CREATE_CONNECTION) is explain.create_connection_explained
    assert getattr(cls, pyro_compat.PROXY_CHECK_OWNER) is cls._any_thread_is_owner
    assert getattr(client_proxy.LibraryProxy, pyro_compat.PROXY_CHECK_OWNER) is cls._any_thread_is_owner


def test_process_metadata_stores_methods_attributes_and_oneway() -> None:
    proxy = Pyro5.client.Proxy("PYRO:obj@127.0.0.1:1")
    pyro_compat.process_metadata(proxy, {"methods": ["a", "b"], "attrs": ["x"], "oneway": ["b"]})
    assert (proxy._pyroMethods, proxy._pyroAttrs, proxy._pyroOneway) == ({"a", "b"}, {"x"}, {"b"})


def test_proxy_attributes_are_pyro5s_special_attributes() -> None:
    proxy = Pyro5.client.Proxy("PYRO:obj@127.0.0.1:1")
    special = Pyro5.client.Proxy._Proxy__pyroAttributes
    for name in pyro_compat.PROXY_ATTRIBUTES:
        assert name in special, name
    for name in ("_pyroConnection", "_pyroSeq", "_pyroRawWireResponse", "_pyroMethods", "_pyroAttrs", "_pyroOneway"):
        assert name in vars(proxy), name
    assert proxy._pyroConnection is None and proxy._pyroSeq == 0 and proxy._pyroRawWireResponse is False


def test_set_proxy_seq_is_what_the_proxy_reads() -> None:
    proxy = Pyro5.client.Proxy("PYRO:obj@127.0.0.1:1")
    pyro_compat.set_proxy_seq(proxy, 41)
    assert proxy._pyroSeq == 41


def test_proxy_methods_have_their_signatures() -> None:
    base = Pyro5.client.Proxy
    assert _parameters(base._pyroInvoke)[1:] == [
        ("methodname", inspect.Parameter.empty), ("vargs", inspect.Parameter.empty),
        ("kwargs", inspect.Parameter.empty), ("flags", 0), ("objectId", None)]
    assert _parameters(base._pyroGetMetadata)[1:] == [("objectId", None), ("known_metadata", None)]
    assert set(pyro_compat.PROXY_METHODS) <= set(dir(base))


def test_retrying_remote_method_retries_a_lost_connection() -> None:
    calls: list[str] = []

    def send(name: str, args: tuple, kwargs: dict) -> object:
        calls.append(name)
        if len(calls) == 1:
            raise Pyro5.errors.ConnectionClosedError("lost")
        return args

    assert pyro_compat.RetryingRemoteMethod(send, "getX", 1)(3) == (3,)
    assert calls == ["getX", "getX"]


def test_daemon_internals_used_by_the_server() -> None:
    daemon_cls = pyro_compat.Daemon
    assert _parameters(getattr(daemon_cls, pyro_compat.DAEMON_HANDSHAKE))[1:] == [
        ("conn", inspect.Parameter.empty), ("denied_reason", None)]
    assert [n for n, _ in _parameters(daemon_cls._sendExceptionResponse)][1:6] == [
        "connection", "seq", "serializer_id", "exc_value", "tbinfo"]
    assert [n for n, _ in _parameters(daemon_cls._clientDisconnect)][1:] == ["conn"]
    from Pyro5 import config

    servertype, config.SERVERTYPE = config.SERVERTYPE, "thread"
    try:
        with pyro_compat.Daemon(host="127.0.0.1", port=0) as daemon:
            server = getattr(daemon, pyro_compat.DAEMON_TRANSPORT_SERVER)
            assert type(server) is pyro_compat.ThreadPoolServer
            assert isinstance(pyro_compat.server_selector(server), selectors.BaseSelector)
            assert isinstance(server.sock, socket.socket) and server.daemon is daemon
            assert server.pool is not None and server.shutting_down is False
            assert callable(server.events)
            assert pyro_compat.transport_server(daemon) is server
            objects = getattr(daemon, pyro_compat.DAEMON_OBJECTS)
            assert pyro_compat.registered_objects(daemon) is objects
            uri = daemon.register(type("Served", (), {})())
            assert uri.object in objects
            assert pyro_compat.object_id_of(objects[uri.object]) == uri.object
    finally:
        config.SERVERTYPE = servertype
    assert issubclass(pyro_compat.NoFreeWorkersError, Exception)


def test_expose_sets_the_flag_the_server_reads() -> None:
    @Pyro5.api.expose
    def exposed() -> None: ...

    def hidden() -> None: ...

    assert pyro_compat.is_exposed(exposed) and not pyro_compat.is_exposed(hidden)
    assert pyro_compat.object_id_of(object(), "?") == "?"


def test_the_daemon_starts_oneway_calls_with_the_installed_class() -> None:
    """A one-way call is started as ``cls(method, vargs, kwargs, daemon, client_sock).start()``, looked up per call."""
    started: list[tuple] = []

    class Recorded:
        def __init__(self, pyro_method: object, vargs: object, kwargs: object, pyro_daemon: object,
                     pyro_client_sock: object):
            self.call = (pyro_method, vargs, kwargs, pyro_daemon)

        def start(self) -> None:
            method, vargs, kwargs, _daemon = self.call
            started.append((method.__name__, vargs, kwargs, method(*vargs, **kwargs)))  # type: ignore[attr-defined]

    class Served:
        @Pyro5.api.expose
        @Pyro5.api.oneway
        def tick(self, n: int) -> int:
            return n + 1

    original = pyro_compat.oneway_call_class()
    assert [name for name, _ in _parameters(original.__init__)] == [
        "self", "pyro_method", "vargs", "kwargs", "pyro_daemon", "pyro_client_sock"]
    pyro_compat.install_oneway_call_class(Recorded)
    try:
        with Pyro5.api.Daemon(host="127.0.0.1", port=0) as daemon:
            uri = daemon.register(Served())
            loop = threading.Thread(target=daemon.requestLoop, daemon=True)
            loop.start()
            with Pyro5.client.Proxy(uri) as proxy:
                proxy.tick(4)
                proxy._pyroBind()
                proxy._pyroGetMetadata()  # a round trip after the one-way call: it has been started
            daemon.shutdown()
            loop.join(5)
    finally:
        pyro_compat.install_oneway_call_class(original)
    assert started == [("tick", (4,), {}, 5)]


# Names of Pyro5 internals; outside wire/ each must be reached through pyro_compat.
INTERNALS = re.compile(r"\b(_sendExceptionResponse|_clientDisconnect|objectsById|transportServer|_selector"
                       r"|_OnewayCallThread|serializers_by_id|_magic_number|_header_format|recv_stub|_pyroId"
                       r"|_pyroExposed|svr_threads|socketutil|SocketServer_Threadpool|ClientConnectionJob"
                       r"|_RemoteMethod|_Proxy__\w+)\b")


def internals_named(text: str) -> list[str]:
    """The Pyro5 internals a module's code names (comments and docstrings included: they would be stale)."""
    return sorted(set(INTERNALS.findall(text)))


def test_no_module_outside_wire_names_a_pyro5_internal() -> None:
    source = REPO / "src" / "taggerhub"
    found = {str(path.relative_to(source)): internals_named(path.read_text())
             for path in source.rglob("*.py") if path.parent.name != "wire" and "sim" not in path.parts}
    assert {path: names for path, names in found.items() if names} == {}
    assert internals_named("self.daemon._clientDisconnect(conn)") == ["_clientDisconnect"]  # the check can fail
