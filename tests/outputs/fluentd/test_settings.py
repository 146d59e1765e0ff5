"""Settings: what a user gets wrong is a clear error naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipper.errors import ConfigError
from shipper.outputs.fluentd import Settings
from shipper.outputs.fluentd.settings import split_host


def test_defaults_are_packed_forward_with_acks_to_localhost():
    s = Settings()
    assert s.receivers() == [("localhost", 24224)]
    assert (s.mode, s.require_ack, s.tls, s.verify_certs) == ("packed_forward", True, False, True)


@pytest.mark.parametrize(
    ("text", "pair"),
    [("fluentd.example.com", ("fluentd.example.com", 24224)),
     ("10.0.0.5:24225", ("10.0.0.5", 24225)),
     ("[::1]:24224", ("::1", 24224)), ("[fe80::1]", ("fe80::1", 24224))],
)  # fmt: skip
def test_hosts(text, pair):
    assert split_host(text) == pair


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"hosts": ["a:99999"]}, "port out of range"),
        ({"hosts": ["::1:24224"]}, "IPv6"),
        ({"hosts": []}, "at least 1"),
        ({"tag_prefix": "bad prefix"}, "letters, digits"),
        ({"mode": "message"}, "packed_forward"),
        ({"chunk_bytes": "lots"}, "not a size"),
        ({"password": "x", "username": "u", "shared_key": "k"}, None),
        ({"password": "x", "shared_key": "k"}, "password given without username"),
        ({"username": "u", "password": "p"}, "set a shared_key"),
        ({"shared_key": "a", "shared_key_file": "/k"}, "not both"),
        ({"ca_file": "/ca.pem"}, "need tls: true"),
        ({"tls": True, "client_key": "/k.pem"}, "client_key given without client_cert"),
        ({"require_acks": True}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(kw, message):
    if message is None:
        Settings(**kw)
        return
    with pytest.raises(ValidationError, match=message):
        Settings(**kw)


def test_secrets_never_show_and_come_from_files(tmp_path):
    s = Settings(shared_key="hunter2", username="u", password="pw")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    key = tmp_path / "key"
    key.write_text("from-a-file\n")
    assert Settings(shared_key_file=key).resolved_shared_key() == "from-a-file"
    with pytest.raises(ConfigError, match="shared_key_file: cannot read"):
        Settings(shared_key_file=tmp_path / "missing").resolved_shared_key()
