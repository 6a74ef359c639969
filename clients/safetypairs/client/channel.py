"""gRPC channels for the SDK: message-size limits, retries on UNAVAILABLE only, round-robin.

Retries use gRPC's own retry policy (service config): exponential backoff with jitter, a retry
budget (retryThrottling) so a struggling server is not hammered, and the call's deadline
bounds the whole sequence of attempts. Only UNAVAILABLE is retried: the server did not act
on the call, so retrying is safe for every RPC, idempotent or not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # gRPC caps this at 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    backoff_multiplier: float = 2.0
    # Retry budget: each failure costs 1 token, each success returns token_ratio; retries
    # stop while fewer than half of max_tokens remain.
    max_tokens: int = 10
    token_ratio: float = 0.1

    def service_config(self, services: Sequence[str]) -> dict:
        config: dict = {"loadBalancingConfig": [{"round_robin": {}}]}
        if self.max_attempts > 1:
            config["methodConfig"] = [
                {
                    "name": [{"service": s} for s in services],
                    "retryPolicy": {
                        "maxAttempts": min(self.max_attempts, 5),
                        "initialBackoff": f"{self.initial_backoff_s}s",
                        "maxBackoff": f"{self.max_backoff_s}s",
                        "backoffMultiplier": self.backoff_multiplier,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
            config["retryThrottling"] = {
                "maxTokens": self.max_tokens,
                "tokenRatio": self.token_ratio,
            }
        return config


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class ChannelOptions:
    """Channel settings. A `dns:///host:port` target resolves every address of a headless
    Kubernetes Service and spreads calls over them (round_robin)."""

    max_message_bytes: int = 128 * 1024 * 1024
    retry: RetryPolicy = RetryPolicy()
    keepalive_time_s: float = 30.0
    extra: tuple[tuple[str, int | str], ...] = ()

    def grpc_options(self, services: Sequence[str]) -> list[tuple[str, int | str]]:
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.enable_retries", 1 if self.retry.max_attempts > 1 else 0),
            ("grpc.service_config", json.dumps(self.retry.service_config(services))),
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 0),
            *self.extra,
        ]


def open_channel(
    target: str,
    services: Sequence[str],
    options: ChannelOptions,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    aio: bool = False,
) -> grpc.Channel | grpc.aio.Channel:
    opts = options.grpc_options(services)
    module = grpc.aio if aio else grpc
    if credentials is not None:
        return module.secure_channel(target, credentials, options=opts)
    return module.insecure_channel(target, options=opts)


def tls_credentials(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> grpc.ChannelCredentials:
    """TLS to the server (its CA, or the system roots when None), with a client certificate
    and key for mutual TLS when both are given."""
    from pathlib import Path

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    if bool(cert_file) != bool(key_file):
        raise ValueError("mutual TLS needs both a client certificate and its key")
    return grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))
