"""Allocation failures and odd exceptions reach every client as clear, deserializable errors."""

from __future__ import annotations

import pytest
from hostile import connect, tls_env

from taggerhub.server.callpath import client_safe


def test_counter_with_10_10_values_answers_a_clear_memory_error_and_server_serves(start_auth_process, lab_pki):
    # Quotas off, so the allocation itself is attempted and fails (320 GB of int64).
    server = start_auth_process(**tls_env(lab_pki, TAGGERHUB_LIMITS_MEASUREMENT_BYTES=0,
                                         TAGGERHUB_LIMITS_MEMORY_BUDGET_BYTES=0))
    TT = connect(server, lab_pki, "oscar")
    tagger = TT.createTimeTagger()
    with pytest.raises(MemoryError, match=r"Counter\(\): the server could not allocate .*Unable to allocate"):
        TT.Counter(tagger, [1, 2, 3, 4], binwidth=10**9, n_values=10**10)
    assert tagger.getSerial()
    assert TT.Countrate(tagger, [1]).getData() is not None
    assert server.server.proc.poll() is None


class _Odd(Exception):
    pass


def test_exceptions_become_builtin_with_text_args():
    import numpy as np

    replaced = client_safe(ValueError(np.dtype("int64")), "Counter")
    assert type(replaced) is ValueError and replaced.args == ("Counter(): int64",)
    assert type(client_safe(_Odd("boom"), "m")) is Exception
    assert client_safe(KeyError("plain"), "m") is None
    assert "could not allocate" in str(client_safe(MemoryError(), "Histogram"))
