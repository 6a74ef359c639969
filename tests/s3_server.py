"""A real S3-API server on a loopback port for the object-store tests: moto's standalone
server (`moto[server]`, what s3fs's own tests run against) in a process of its own, so that a
test can stop it mid-run. It checks credentials: after the three unauthenticated calls that
make a user with an access key and an s3:* policy, every request must be signed with a key
it issued (a wrong key gets InvalidAccessKeyId, as from AWS)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from safetypairs.serving.launcher import free_port

REGION = "us-east-1"
_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass
class S3Server:
    process: subprocess.Popen[bytes]
    endpoint: str
    key_id: str
    secret: str

    @classmethod
    def start(cls, log: Path, port: int | None = None) -> S3Server:
        port = port or free_port()
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    tail = log.read_text()[-2000:]
                    raise RuntimeError(f"moto server did not start:\n{tail}") from None
                time.sleep(0.1)
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="generator")
        key = iam.create_access_key(UserName="generator")["AccessKey"]
        iam.put_user_policy(
            UserName="generator", PolicyName="s3", PolicyDocument=json.dumps(_POLICY)
        )
        return cls(process, endpoint, key["AccessKeyId"], key["SecretAccessKey"])

    def env(self, **changes: str) -> dict[str, str]:
        """The standard AWS environment a process finds its store and credentials in."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": REGION,
            **changes,
        }

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def serving(folder: Path, bucket: str = "pairs") -> Iterator[S3Server]:
    """A server with `bucket`, and this process's environment pointing at it (as a pod's
    would) for the block; stopped after."""
    server = S3Server.start(folder / "moto.log")
    try:
        server.create_bucket(bucket)
        with pytest.MonkeyPatch.context() as mp:
            for key, value in server.env().items():
                mp.setenv(key, value)
            yield server
    finally:
        server.stop()
