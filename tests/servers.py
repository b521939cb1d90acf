"""Real servers on 127.0.0.1 for the sharing tests: sshd, an S3-compatible server, MLflow.

Each is a context manager that starts its server on a free port with every file it needs
(keys, config, stores) under a folder the test gives, yields what a client needs, and
stops it on exit. Nothing of the machine's own configuration is read or changed, with one
exception: sshd run as root insists on its privilege-separation folder, ``/run/sshd``,
which Debian creates at boot; it is created (empty, as Debian would) when missing. A
server that cannot start here raises ``ServerUnavailable`` with the reason; the test
fixtures turn that into a skip, never a pass.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import requests

HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
T = TypeVar("T")
PRIVSEP_DIR = Path("/run/sshd")


class ServerUnavailable(RuntimeError):
    """A server could not start on this machine; the message says why."""


def serve(start: Callable[[Path], AbstractContextManager[T]], workdir: Path) -> Iterator[T]:
    """For a fixture: ``yield from serve(sshd, folder)`` yields the started server and stops
    it after the tests, or skips them, saying why, if it cannot start here."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(start(workdir))
        except ServerUnavailable as exc:
            pytest.skip(f"server unavailable: {exc}")
        yield server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def _process(
    args: list[str],
    log: Path,
    ready_url: str | None,
    port: int,
    timeout: float,
    what: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Start ``args`` in its own process group, wait until it answers on ``port`` (and
    ``ready_url`` with a 200 if given), and stop the whole group on exit."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise ServerUnavailable(
                    f"{what} exited with {process.returncode} at start:\n{_tail(log)}"
                )
            if _answers(port, ready_url):
                break
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"{what} did not answer in {timeout:.0f} s:\n{_tail(log)}")
            time.sleep(0.2)
        yield process
    finally:
        _stop(process)


def _answers(port: int, ready_url: str | None) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            pass
        if ready_url is not None:
            return requests.get(ready_url, timeout=2).status_code == 200
    except (OSError, requests.RequestException):
        return False
    return True


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (a server's own workers included), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


# --- SSH ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SSHServer:
    port: int
    user: str
    keyfile: Path  # the client's private key (its public half is the only authorized key)
    host: str = HOST

    def url(self, path: Path) -> str:
        """A DVC ssh remote URL for an absolute ``path`` on the server."""
        return f"ssh://{self.user}@{self.host}:{self.port}{path}"


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


@contextmanager
def sshd(workdir: Path) -> Iterator[SSHServer]:
    """Debian's OpenSSH server on a free port of 127.0.0.1 with a host key and one user key
    made here, public-key logins only, for the current user; run with ``-f`` its own config
    (the machine's /etc/ssh is not read) and ``-D`` (in the foreground, stopped on exit)."""
    if not Path(SSHD).is_file():
        raise ServerUnavailable(
            f"{SSHD} is missing: install Debian's openssh-server (.ci/run does)"
        )
    if shutil.which("ssh-keygen") is None:
        raise ServerUnavailable("ssh-keygen is missing: install openssh-client")
    workdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        try:
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
        except OSError as exc:
            raise ServerUnavailable(f"sshd as root needs {PRIVSEP_DIR}: {exc}") from exc
    host_key, user_key = workdir / "host_ed25519", workdir / "user_ed25519"
    _keygen(host_key, "nextframe test host")
    _keygen(user_key, "nextframe test user")
    authorized = workdir / "authorized_keys"
    shutil.copy(user_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {HOST}",
                f"HostKey {host_key}",
                f"PidFile {workdir / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",  # the keys live in a temporary folder
                "UsePAM no",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise ServerUnavailable(f"sshd rejects its test config: {check.stderr.strip()}")
    user = _current_user()
    args = [SSHD, "-D", "-e", "-f", str(config)]
    with _process(args, workdir / "sshd.log", None, port, 20, "sshd"):
        yield SSHServer(port=port, user=user, keyfile=user_key)


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


# --- S3 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    bucket: str
    region: str = "us-east-1"

    def client(self, secret: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=secret or self.secret_access_key,
        )

    def stored_bytes(self, prefix: str = "") -> tuple[int, int]:
        """(objects, bytes) under ``prefix`` in the bucket."""
        count = size = 0
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                count += 1
                size += item["Size"]
        return count, size


# Requests the server answers before it checks signatures: exactly the three IAM calls
# below that make the user whose key DVC gets; everything after them must be signed with it.
_UNSIGNED_SETUP_CALLS = 3


@contextmanager
def s3_server(workdir: Path, bucket: str = "team") -> Iterator[S3Server]:
    """moto's S3-compatible server on a free port of 127.0.0.1 that checks credentials:
    an IAM user with an S3 policy and an access key is made first, and every later request
    must be signed with that key (a wrong secret gets SignatureDoesNotMatch)."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise ServerUnavailable("moto[server] is not installed (bash scripts/setup.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint = f"http://{HOST}:{port}"
    args = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(_UNSIGNED_SETUP_CALLS)}
    with _process(args, workdir / "moto.log", f"{endpoint}/moto-api/", port, 60, "moto", env):
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="nextframe")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="nextframe", PolicyName="s3", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName="nextframe")["AccessKey"]
        server = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], bucket)
        server.client().create_bucket(Bucket=bucket)
        yield server


# --- MLflow ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlflowServer:
    url: str
    artifacts: Path  # the server's --artifacts-destination

    def api(self, method: str, endpoint: str, **payload) -> dict:
        """Call the REST API (``runs/search``, ``runs/get``, ...) and return its JSON."""
        url = f"{self.url}/api/2.0/mlflow/{endpoint}"
        if method == "GET":
            response = requests.get(url, params=payload, timeout=30)
        else:
            response = requests.post(url, json=payload, timeout=30)
        response.raise_for_status()
        return response.json()


@contextmanager
def mlflow_server(workdir: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free port of 127.0.0.1 with its own sqlite backend store and
    ``--serve-artifacts`` into ``workdir/artifacts`` (clients upload through the server)."""
    if importlib.util.find_spec("mlflow") is None:
        raise ServerUnavailable("mlflow is not installed (bash scripts/setup.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    artifacts = workdir / "artifacts"
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = [
        sys.executable, "-m", "mlflow", "server",
        "--host", HOST,
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    with _process(args, workdir / "mlflow.log", f"{url}/health", port, 120, "mlflow server"):
        yield MlflowServer(url=url, artifacts=artifacts)
