"""Bearer-token authentication on both protocols and mutual TLS on the gRPC port."""

import datetime
import ipaddress
import ssl
import time

import grpc
import httpx
import pytest
from conftest import png_bytes, start_guard_service
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from safetypairs.client import GuardClient, tls_credentials
from safetypairs.contract.errors import Unauthenticated, Unavailable

TOKENS = ("first-token-0123456789", "second-token-9876543210")


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key, issuer_cert=None, issuer_key=None, ca=False, server=False):
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path, cert=None, key=None):
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key, rogue_key = _key(), _key()
    ca = _cert("test-ca", ca_key, ca=True)
    rogue = _cert("rogue-ca", rogue_key, ca=True)
    files = {"ca": _write(d / "ca.pem", ca)}
    for name, issuer, issuer_key, server in (
        ("server", ca, ca_key, True),
        ("client", ca, ca_key, False),
        ("rogue_client", rogue, rogue_key, False),
    ):
        key = _key()
        files[name] = _write(d / f"{name}.pem", _cert(name, key, issuer, issuer_key, server=server))
        files[f"{name}_key"] = _write(d / f"{name}.key", key=key)
    return files


@pytest.fixture(scope="module")
def secured(sp_home, pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("secured")
    (d / "tokens").write_text("# accepted tokens\n" + "\n".join(TOKENS) + "\n")
    env = {
        "SAFETYPAIRS_AUTH_TOKENS_FILE": str(d / "tokens"),
        "SAFETYPAIRS_TLS_CERT_FILE": pki["server"],
        "SAFETYPAIRS_TLS_KEY_FILE": pki["server_key"],
        "SAFETYPAIRS_TLS_CLIENT_CA_FILE": pki["ca"],
    }
    creds = tls_credentials(pki["ca"], pki["client"], pki["client_key"])
    service = start_guard_service(
        sp_home, d / "guard.log", env, grpc_credentials=creds, http_tls=http_tls(pki)
    )
    yield service
    assert service.stop() == 0


def http_tls(pki, cert="client"):
    """A client TLS context trusting the test CA, presenting `cert` (None: no certificate)."""
    context = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        context.load_cert_chain(pki[cert], pki[f"{cert}_key"])
    return context


def client(service, pki, token=None, cert="client"):
    creds = tls_credentials(pki["ca"], pki.get(cert), pki.get(f"{cert}_key"))
    return GuardClient(service.grpc_target, timeout=10, credentials=creds, token=token)


def test_tokens_over_grpc(secured, pki):
    for token in TOKENS:
        with client(secured, pki, token) as c:
            assert c.screen(png_bytes()).scores
    with client(secured, pki) as c, pytest.raises(Unauthenticated, match="missing bearer token"):
        c.screen(png_bytes())
    with client(secured, pki, "wrong") as c, pytest.raises(Unauthenticated, match="invalid bearer"):
        c.model_info()


def test_a_refused_grpc_call_is_logged_under_its_request_id(secured, pki):
    with client(secured, pki, "wrong") as c, pytest.raises(Unauthenticated) as refused:
        c.screen(png_bytes())
    rid = refused.value.request_id
    assert rid and len(rid) == 32  # the SDK's id, echoed by the refusal
    deadline = time.monotonic() + 5
    while rid not in secured.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    [line] = [x for x in secured.log().splitlines() if rid in x]
    assert "Screen" in line and "UNAUTHENTICATED" in line


def test_health_is_exempt_but_still_needs_tls(secured, pki):
    creds = tls_credentials(pki["ca"], pki["client"], pki["client_key"])
    with grpc.secure_channel(secured.grpc_target, creds) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_mutual_tls_refuses_other_clients(secured, pki):
    with client(secured, pki, TOKENS[0], cert="rogue_client") as c, pytest.raises(Unavailable):
        c.screen(png_bytes())
    no_cert = GuardClient(
        secured.grpc_target, timeout=5, token=TOKENS[0], credentials=tls_credentials(pki["ca"])
    )
    with no_cert, pytest.raises(Unavailable):
        no_cert.screen(png_bytes())
    plain = GuardClient(secured.grpc_target, timeout=5, token=TOKENS[0])
    with plain, pytest.raises(Unavailable):
        plain.screen(png_bytes())


def test_tokens_over_http(secured, pki):
    files = {"image": ("x.png", png_bytes())}
    with httpx.Client(base_url=secured.http_url, timeout=30, verify=http_tls(pki)) as http:
        missing = http.post("/v1/screen", files=files)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["kind"] == "Unauthenticated"
        wrong = http.post("/v1/screen", files=files, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = http.post("/v1/screen", files=files, headers={"authorization": f"Bearer {TOKENS[1]}"})
        assert ok.status_code == 200 and ok.json()["verdict"]["scores"]
        assert http.get("/v2/health/live").status_code == 401  # OIP REST is protected too
        for probe in ("/readyz", "/livez", "/metrics"):
            assert http.get(probe).status_code == 200, probe
        metrics = http.get("/metrics").text
        assert 'code="401",grpc_code="UNAUTHENTICATED"' in metrics


def test_http_is_served_with_mutual_tls_too(secured, pki):
    """Issue 16 G: with TLS and a client CA configured, the HTTP port answered /v1/screen and
    /v1/model_info in plaintext, with no certificate or token."""
    plain = secured.http_url.replace("https://", "http://")
    with httpx.Client(timeout=10) as http, pytest.raises(httpx.HTTPError):
        http.post(f"{plain}/v1/model_info")
    for cert in (None, "rogue_client"):  # no client certificate, or one the CA did not sign
        with (
            httpx.Client(timeout=10, verify=http_tls(pki, cert)) as http,
            pytest.raises(httpx.HTTPError),
        ):
            http.post(f"{secured.http_url}/v1/model_info")
    with httpx.Client(timeout=10, verify=http_tls(pki)) as http:
        info = http.post(
            f"{secured.http_url}/v1/model_info", headers={"authorization": f"Bearer {TOKENS[0]}"}
        )
        assert info.status_code == 200 and info.json()["name"]
