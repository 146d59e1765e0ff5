"""Real syslog receivers for the tests: rsyslog and syslog-ng, each on loopback, in its own folder.

Each receiver runs in the foreground with a config written here (no system config, no
/dev/log, no /var/log), and writes every message it receives as one JSON line to
``out.jsonl``: rsyslog with ``%jsonmesg%`` (header fields, ``msg``, and what mmjsonparse /
mmnormalize parsed under ``$!``), syslog-ng with ``format-json`` (header fields, ``MSG`` and
what json-parser parsed). Tests read those lines back and compare them with what was sent.

rsyslog runs with Direct queues, so a message is in the output file before imrelp answers
``rsp 200`` (the RELP promise is then the file's, which is what "nothing lost" checks), and
with control characters kept as received (LEEF's TAB delimiter).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
SYSLOG_NG_ROOT = Path(os.environ.get("SYSLOG_NG_ROOT", REPO / ".pytest_cache/syslog-ng/root"))
SYSLOG_NG_BIN = SYSLOG_NG_ROOT / "usr/sbin/syslog-ng"
START_TIMEOUT = 10.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bound(port: int, kind: int) -> bool:
    """True when something listens on 127.0.0.1:port (we cannot bind it ourselves)."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class Receiver:
    """A receiver process; ``lines()`` are the messages it wrote, parsed."""

    name = "receiver"

    def __init__(self, folder: Path, port: int, udp: bool = False) -> None:
        self.folder = folder
        self.port = port
        self.udp = udp
        self.out = folder / "out.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> Receiver:
        cmd, env = self.command()
        log = open(self.folder / "stderr.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, **env})
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        kind = socket.SOCK_DGRAM if self.udp else socket.SOCK_STREAM
        while not _bound(self.port, kind):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start: {self.stderr()[-2000:]}")
            time.sleep(0.02)
        return self

    def stderr(self) -> str:
        try:
            return (self.folder / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no flushing, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def lines(self) -> list[dict[str, Any]]:
        try:
            data = self.out.read_bytes()
        except FileNotFoundError:
            return []
        # rsyslog may be writing the last line this moment: only whole lines count
        complete = data[: data.rfind(b"\n") + 1]
        return [json.loads(line) for line in complete.split(b"\n") if line.strip()]

    def wait_for(
        self, count: int, timeout: float = 20.0, settle: float = 0.3
    ) -> list[dict[str, Any]]:
        """The received messages once there are ``count`` (or no more arrive for ``settle`` s
        after the deadline)."""
        deadline = time.monotonic() + timeout
        last = -1
        while True:
            size = self.out.stat().st_size if self.out.exists() else 0
            if size == last:
                got = self.lines()
                if len(got) >= count:
                    time.sleep(settle)  # anything beyond count (a duplicate) shows up too
                    return self.lines()
            if time.monotonic() > deadline:
                return self.lines()
            last = size
            time.sleep(0.05)


class Rsyslog(Receiver):
    name = "rsyslog"

    #: input kind -> config lines ({port}, {folder} substituted)
    INPUTS = {
        "imptcp": 'module(load="imptcp")\ninput(type="imptcp" port="{port}" address="127.0.0.1")',
        "imtcp": 'module(load="imtcp")\ninput(type="imtcp" port="{port}" address="127.0.0.1")',
        "tls": (
            'module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"'
            ' streamDriver.authMode="anon")\n'
            'input(type="imtcp" port="{port}" address="127.0.0.1")'
        ),
        "imudp": (
            'module(load="imudp")\n'
            'input(type="imudp" port="{port}" address="127.0.0.1" rcvbufSize="8m")'
        ),
        "imrelp": (
            'module(load="imrelp")\n'
            'input(type="imrelp" port="{port}" address="127.0.0.1" maxDataSize="300k")'
        ),
        "imrelp_tls": (
            'module(load="imrelp")\n'
            'input(type="imrelp" port="{port}" address="127.0.0.1" maxDataSize="300k"'
            ' tls="on" tls.myCert="{cert}" tls.myPrivKey="{key}" tls.caCert="{ca}"'
            ' tls.authMode="certvalid")'
        ),
    }

    def __init__(
        self,
        folder: Path,
        port: int,
        kind: str,
        parse: str = "json",
        tls_files: tuple[Path, Path] | None = None,
        client_ca: Path | None = None,
    ) -> None:
        super().__init__(folder, port, udp=kind == "imudp")
        self.kind = kind
        self.parse = parse
        self.tls_files = tls_files
        work = folder / "work"
        work.mkdir(parents=True, exist_ok=True)
        tls = ""
        cert = key = ""
        if tls_files is not None:
            cert, key = (str(p) for p in tls_files)
            tls = f' defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}"'
        inputs = self.INPUTS[kind].format(
            port=port, folder=folder, cert=cert, key=key, ca=client_ca or ""
        )
        if client_ca is not None:  # clients must show a certificate this CA signed
            tls += f' defaultNetstreamDriverCAFile="{client_ca}"'
            inputs = inputs.replace('authMode="anon"', 'authMode="x509/certvalid"')
        parser = {
            "json": 'action(type="mmjsonparse" cookie="")',
            "cef": f'action(type="mmnormalize" rulebase="{folder}/cef.rb")',
            "none": "",
        }[parse]
        (folder / "cef.rb").write_text("version=2\nrule=:%cef:cef%\n")
        conf = f"""
global(workDirectory="{work}" maxMessageSize="300k" parser.escapeControlCharactersOnReceive="off"
       processInternalMessages="on"{tls})
main_queue(queue.type="Direct")
module(load="mmjsonparse")
module(load="mmnormalize")
{inputs}
template(name="line" type="string" string="%jsonmesg%\\n")
{parser}
if $inputname != "rsyslogd" then action(type="omfile" file="{self.out}" template="line")
"""
        (folder / "rsyslog.conf").write_text(conf)

    def command(self) -> tuple[list[str], dict[str, str]]:
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        return [
            rsyslogd,
            "-n",
            "-f",
            str(self.folder / "rsyslog.conf"),
            "-i",
            str(self.folder / "rsyslogd.pid"),
        ], {}


def rsyslog_available(module: str = "imptcp") -> str | None:
    """None when rsyslogd and the module are installed, else why not."""
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not os.path.exists(rsyslogd):
        return "rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls rsyslog-relp)"
    for d in (
        "/usr/lib/x86_64-linux-gnu/rsyslog",
        "/usr/lib/aarch64-linux-gnu/rsyslog",
        "/usr/lib/rsyslog",
        "/usr/lib64/rsyslog",
    ):
        if os.path.exists(f"{d}/{module}.so"):
            return None
    return f"rsyslog module {module} not installed"


class SyslogNg(Receiver):
    name = "syslog-ng"

    SOURCES = {
        # syslog(): RFC 5424 with RFC 6587 octet counting (and LF framing) over TCP
        "tcp": 'syslog(transport("tcp") ip("127.0.0.1") port({port}) log-msg-size(300000))',
        "udp": (
            'syslog(transport("udp") ip("127.0.0.1") port({port}) log-msg-size(300000)'
            " so-rcvbuf(8388608))"
        ),
        # network() + syslog-protocol: RFC 5424, one per line
        "lf": (
            'network(transport("tcp") ip("127.0.0.1") port({port}) flags(syslog-protocol)'
            " log-msg-size(300000))"
        ),
    }

    def __init__(self, folder: Path, port: int, kind: str = "tcp", parse: str = "json") -> None:
        super().__init__(folder, port, udp=kind == "udp")
        parser = {
            "json": 'parser { json-parser(prefix("json.")); };',
            "none": "",
        }[parse]
        conf = f"""@version: 3.38
options {{ keep-hostname(yes); chain-hostnames(no); use-dns(no); use-fqdn(no);
          stats-freq(0); log-msg-size(300000); keep-timestamp(yes); frac-digits(6); }};
source s_in {{ {self.SOURCES[kind].format(port=port)}; }};
destination d_out {{ file("{self.out}"
    template("$(format-json --scope rfc5424 --scope nv-pairs --key ISODATE --key MSG)\\n")); }};
log {{ source(s_in); {parser} destination(d_out); }};
"""
        (folder / "syslog-ng.conf").write_text(conf)

    def command(self) -> tuple[list[str], dict[str, str]]:
        lib = SYSLOG_NG_ROOT / "usr/lib/syslog-ng"
        return [
            str(SYSLOG_NG_BIN),
            "-F",
            "--no-caps",
            "-f",
            str(self.folder / "syslog-ng.conf"),
            "--module-path",
            str(lib / "3.38"),
            "-R",
            str(self.folder / "syslog-ng.persist"),
            "-p",
            str(self.folder / "syslog-ng.pid"),
            "-c",
            str(self.folder / "syslog-ng.ctl"),
        ], {"LD_LIBRARY_PATH": str(lib)}


def syslog_ng_available() -> str | None:
    if not SYSLOG_NG_BIN.exists():
        return f"syslog-ng not unpacked in {SYSLOG_NG_ROOT} (run .ci/syslog-ng.sh)"
    return None
