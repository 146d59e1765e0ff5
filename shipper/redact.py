"""Secrets never shown: whatever the shipper echoes of a configuration is masked.

The settings models keep secrets as ``SecretStr``, but a secret also travels in places a model
does not guard: a password in a URL (``https://elastic:pw@es:9200``, echoed by ``check`` and in
connection errors), a value a validator quotes back in its error, a library's log line. So the
configuration's secrets are remembered when it is loaded (``remember``), and every line that
can echo it goes through ``mask``: each line a command prints (``shipper.cli._echo``: the run's
summary and error lines, ``check``, ``setup``, ``status``, configuration errors), every log
record and its traceback, and the metrics endpoint's output labels (an output's name is its
first URL).

A secret is the value of a setting named ``password``, ``api_key``, ``shared_key``, ``token``,
``secret`` or ``passphrase`` (or ending in one of them, ``_password``...), the content of its
``*_file`` twin, and the password of any URL in the configuration.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["MASK", "mask", "remember", "secret_values"]

MASK = "****"
_NAMES = ("password", "api_key", "shared_key", "token", "secret", "passphrase")
#: scheme://user:password@ in any text
_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)@", re.I)
#: a secret file is read for its content only up to this size (a key, not a database)
_FILE_LIMIT = 64 * 1024
#: shorter values are not masked: "****" in place of every "ab" would garble all output
_SHORTEST = 4

_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()
_factory_installed = False


def _secret_name(key: str) -> bool:
    key = key.lower().replace("-", "_")
    return any(key == n or key.endswith("_" + n) for n in _NAMES)


def secret_values(data: Any) -> set[str]:
    """The secrets in a configuration's data (after ``${VAR}`` interpolation)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                name = str(key)
                if _secret_name(name) and isinstance(value, (str, int, float)):
                    found.add(str(value))
                elif name.lower().endswith("_file") and _secret_name(name[: -len("_file")]):
                    found.update(_file_secret(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            found.update(m.group("pw") for m in _USERINFO.finditer(node))

    walk(data)
    return {s for s in found if len(s) >= _SHORTEST}


def _file_secret(value: Any) -> Iterable[str]:
    if not isinstance(value, (str, Path)):
        return ()
    try:
        with open(value, "rb") as f:
            raw = f.read(_FILE_LIMIT + 1)
    except OSError:
        return ()
    if len(raw) > _FILE_LIMIT:
        return ()
    text = raw.decode("utf-8", "replace")
    return {text, text.strip()} - {""}


def remember(data: Any) -> None:
    """Mask the secrets of this configuration from now on in this process (log lines
    included): those of the configuration loaded last, as a process runs one."""
    global _pattern
    values = secret_values(data)
    with _lock:
        _known.clear()
        _known.update(values)
        _pattern = _compile(values)
    if values:
        _mask_log_records()


def _compile(values: set[str]) -> re.Pattern[str] | None:
    """One pattern for all of them, longest first, each only where it stands alone (not
    inside a longer word: a password "elastic" must not garble "elasticsearch")."""
    if not values:
        return None
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")


def mask(text: str) -> str:
    """``text`` with every remembered secret, and every URL's password, replaced by ``****``."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    return text


def _mask_log_records() -> None:
    """Mask every log record as it is made, whichever logger or handler: a library's message
    (a connection error quoting the URL) as much as ours."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
        make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it, as it would have
            return record
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[0] is not None:
            # a traceback quotes the exception's message (a URL, say): formatted here, masked,
            # and kept in ``exc_text``, which formatters print instead of formatting it again
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
