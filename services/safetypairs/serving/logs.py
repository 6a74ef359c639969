"""Service logging: one line per request (the access log) and the services' own messages, as
JSON objects (SAFETYPAIRS_LOG_FORMAT=json, what log collectors parse) or as text.

BentoML configures its own loggers in each worker; the `safetypairs` loggers get a handler of
their own here and do not propagate, so their lines keep one format whatever BentoML does.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from safetypairs.serving.status_labels import Status, status_labels

ACCESS_LOGGER = "safetypairs.access"

access_log = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with a record's `fields` as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        line = super().format(record)
        return line + "".join(f" {k}={v}" for k, v in fields.items())


def configure_logging(log_format: str) -> None:
    """Route the `safetypairs` loggers to stderr in `log_format` (idempotent per process)."""
    root = logging.getLogger("safetypairs")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    # BentoML's logging set-up (dictConfig with disable_existing_loggers) disables every logger
    # that exists when it runs, ours among them when the service module was imported first
    # (serving.one_process loads the service before BentoML's worker configures logging).
    for name, logger in logging.root.manager.loggerDict.items():
        if name.split(".")[0] == "safetypairs" and isinstance(logger, logging.Logger):
            logger.disabled = False


def log_request(
    service: str,
    protocol: str,
    method: str,
    status: Status,
    seconds: float,
    request_id: str,
    path: str = "",
) -> None:
    """The access-log line of one request: `method`, `code` and `grpc_code` as the request
    metrics label it (see status_labels)."""
    code, grpc_code = status_labels(status)
    access_log.info(
        "request",
        extra={
            "fields": {
                "service": service,
                "protocol": protocol,
                "method": method,
                "code": code,
                "grpc_code": grpc_code,
                "duration_ms": round(seconds * 1000, 3),
                "request_id": request_id,
                **({"path": path} if path else {}),
            }
        },
    )
