"""An in-memory fake Google Cloud Storage for tests: no network, no credentials.

``with FakeGCS() as gcs:`` makes every gs:// client this project uses talk to a local
emulator, in this process and in child processes started with ``gcs.env``:

* Apache Beam's gcsio (google-cloud-storage) honours ``STORAGE_EMULATOR_HOST`` and
  talks plain HTTP to the emulator (``gcp-storage-emulator``, in-memory mode).
  It still fetches OAuth credentials with google.auth, so ``GOOGLE_APPLICATION_CREDENTIALS``
  names a throwaway service account whose ``token_uri`` is a local fake token endpoint
  (otherwise google.auth probes the GCE metadata server with ~20 s of back-off).
* TensorFlow's own gs:// filesystem (C++, libcurl) has hard-coded https endpoints
  (www.googleapis.com, storage.googleapis.com) but its libcurl honours ``https_proxy``
  and ``CURL_CA_BUNDLE``. A local proxy accepts CONNECT for those two hosts (and one
  google-auth host, see _IAM_HOST), terminates TLS with a throwaway self-signed
  certificate and forwards the plain HTTP requests to the emulator. ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` makes TF skip OAuth.
  tf.io.gfile, tf.data, SavedModel and ``tfx.dsl.io.fileio`` all go through it.

Every other HTTPS host is refused by the proxy, so nothing reaches the network.
All servers run in one helper process (threads on 127.0.0.1, free ports) that lives
as long as the ``with`` block, so child processes must finish inside it.
Set ``FAKE_GCS_DEBUG=1`` before entering to log every request TensorFlow makes.

Differences from real GCS worth knowing (emulator limits): no preconditions
(``ifGenerationMatch`` is ignored), listings are never paginated, and objects ``x`` and
``x/`` share storage in the emulator, so a file and a directory marker of the same name
overwrite each other.

Self-check (no pytest):  cd /work/main && .venv/bin/python -m tests.support.fake_gcs
"""
import datetime
import http.client
import json
import logging
import os
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# The only hosts TensorFlow's GCS client talks to (tsl/platform/cloud/gcs_file_system.cc).
GCS_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
# google-auth (>= 2.4x) asks this host for the service account's "regional access boundary"
# in a background thread after the first token refresh; refused, it logs urllib3 retry
# warnings in every process. The proxy answers it locally with "no restriction".
_IAM_HOST = "iamcredentials.googleapis.com"
_NO_ACCESS_BOUNDARY = {"encodedLocations": "0x0", "locations": []}

_LOCALHOST = "127.0.0.1"
_FAKE_TOKEN = {"access_token": "fake-token", "expires_in": 3600, "token_type": "Bearer"}
# Headers that describe one HTTP hop; the proxy sets its own.
_HOP_HEADERS = {
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "expect", "content-length",
    "server", "date",
}


# --------------------------------------------------------------------------- servers


def _start_http_server(handler_class, **attributes) -> ThreadingHTTPServer:
    """Serves handler_class on a free loopback port from a daemon thread."""
    server = ThreadingHTTPServer((_LOCALHOST, 0), handler_class)  # daemon thread per connection
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, name=handler_class.__name__, daemon=True).start()
    return server


def _start_emulator():
    """Starts gcp-storage-emulator in memory on a free port; returns (server, port)."""
    from gcp_storage_emulator import server as emulator_server

    # It answers with two small writes (headers, then body); with Nagle's algorithm on,
    # the second waits for the client's delayed ACK: 40 ms per request.
    emulator_server.RequestHandler.disable_nagle_algorithm = True
    # Its per-request logging (every 404 probe is an ERROR) would drown test output;
    # handler exceptions still reach stderr through socketserver.
    for name in ("gcp_storage_emulator", "api.object", "api.bucket"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    emulator = emulator_server.create_server(_LOCALHOST, 0, in_memory=True)
    # After every write and delete it re-serialises the metadata of the whole store into a
    # ".meta" blob that in-memory mode never reads back (only a constructor does): each
    # request costs O(objects stored), e.g. 50 ms per write at 1000 objects. Skip it.
    emulator._storage._write_config_to_file = lambda: None
    emulator._api.daemon = True  # its thread is non-daemon by default and would block exit
    emulator.start()
    # Port 0 lets the OS choose; the emulator keeps its HTTPServer private.
    return emulator, emulator._api._httpd.server_address[1]


def _create_bucket(emulator_port: int, bucket: str) -> None:
    """Creates the bucket with soft delete off, so deleted objects are really freed."""
    _emulator_request(emulator_port, "POST", "/storage/v1/b?project=fake-project", {"name": bucket})
    # The emulator ignores metadata on insert but applies it on patch.
    _emulator_request(
        emulator_port, "PATCH", f"/storage/v1/b/{bucket}",
        {"softDeletePolicy": {"retentionDurationSeconds": "0"}},
    )


def _emulator_request(port: int, method: str, path: str, body: dict) -> None:
    connection = http.client.HTTPConnection(_LOCALHOST, port, timeout=10)
    try:
        connection.request(method, path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"fake GCS: {method} {path} -> {response.status}")
    finally:
        connection.close()


class _TokenHandler(BaseHTTPRequestHandler):
    """Answers any POST (google.auth's token refresh) with a fake access token."""

    disable_nagle_algorithm = True  # headers and body are separate writes (see _start_emulator)

    def do_POST(self):
        _read_body(self)
        body = json.dumps(_FAKE_TOKEN).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _ProxyHandler(BaseHTTPRequestHandler):
    """An https proxy that knows only Google: CONNECT to GCS_HOSTS and _IAM_HOST is served here, the rest refused.

    Server attributes: ``tls_context`` (our certificate) and ``emulator_port``.
    """

    disable_nagle_algorithm = True  # also applies inside the tunnel: same socket

    def do_CONNECT(self):
        host, _, port = self.path.partition(":")
        if host not in (*GCS_HOSTS, _IAM_HOST) or port not in ("", "443"):
            self.send_error(403, f"fake GCS proxy: no network access to {self.path}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True  # the tunnel owns the socket from now on
        try:
            tls_socket = self.server.tls_context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            return  # client gave up or rejected the certificate; nothing to serve
        try:
            _TunnelHandler(tls_socket, self.client_address, self.server)
        finally:
            tls_socket.close()

    def log_message(self, *args):
        pass


class _TunnelHandler(BaseHTTPRequestHandler):
    """Reads the HTTP requests inside a CONNECT tunnel and replays them on the emulator."""

    # HTTP/1.1: keep-alive (curl reuses the tunnel) and automatic "100 Continue"
    # answers to "Expect: 100-continue" (curl sends it for uploads over 1 KiB).
    protocol_version = "HTTP/1.1"

    def _handle(self):
        body = _read_body(self)
        if self.headers.get("Host", "").split(":")[0] == _IAM_HOST:
            body = json.dumps(_NO_ACCESS_BOUNDARY).encode()
            self._respond(200, "OK", [("Content-Type", "application/json")], body)
            return
        # The emulator stores the links it builds (an object's mediaLink) from the Host it sees:
        # give it its own address, so that Beam's client, which talks to it directly and follows
        # mediaLink, can use them; Location answers for TF are turned back into the Google host.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS | {"host"}}
        headers["Host"] = f"{_LOCALHOST}:{self.server.emulator_port}"
        path, headers, body = _fix_empty_media_upload(self.path, headers, body)
        self._respond(*_send_to_emulator(self.server.emulator_port, self.command, path, headers, body))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_request(self, code="-", size="-"):
        if os.environ.get("FAKE_GCS_DEBUG"):  # inherited from the process that started FakeGCS
            sys.stderr.write(f"fake GCS: {self.command} https://{self.headers.get('Host')}{self.path} -> {code}\n")

    def _respond(self, status: int, reason: str, headers: list, body: bytes):
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() == "location":
                value = _https_location(value, self.server.emulator_port, self.headers.get("Host", ""))
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, sent with Content-Length or chunked (the emulator only knows Content-Length)."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()  # CRLF after each chunk
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _fix_empty_media_upload(path: str, headers: dict, body: bytes):
    """Rewrites an empty ``uploadType=media`` upload as an equivalent multipart upload.

    TF creates directories as zero-byte marker objects (``dir/``) with an empty media
    upload; the emulator reads an empty body as None and crashes (len(None)), so the
    client gets a dropped connection. A multipart upload with an empty part is the
    same object for GCS and the emulator handles it.
    """
    query = parse_qs(urlsplit(path).query)
    if body or query.get("uploadType") != ["media"]:
        return path, headers, body
    boundary = "fake-gcs-empty-upload"
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    headers["Content-Type"] = f"multipart/related; boundary={boundary}"
    return path.replace("uploadType=media", "uploadType=multipart"), headers, body


def _send_to_emulator(port: int, method: str, path: str, headers: dict, body: bytes):
    """One plain-HTTP request to the emulator (it closes every connection: HTTP/1.0)."""
    connection = http.client.HTTPConnection(_LOCALHOST, port, timeout=60)
    try:
        connection.request(method, path, body, {**headers, "Content-Length": str(len(body))})
        response = connection.getresponse()
        response_body = response.read()
        response_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS]
        return response.status, response.reason, response_headers, response_body
    finally:
        connection.close()


def _https_location(url: str, emulator_port: int, client_host: str) -> str:
    """The emulator answers with http:// URLs on its own address; TF must come back over https,
    to the Google host it asked (through the proxy)."""
    emulator = f"http://{_LOCALHOST}:{emulator_port}/"
    if url.startswith(emulator) and client_host.split(":")[0] in GCS_HOSTS:
        return f"https://{client_host.split(':')[0]}/" + url[len(emulator):]
    return url


# --------------------------------------------------------------------------- key material


def _write_tls_certificate(directory: str):
    """A self-signed certificate for the hosts the proxy serves; returns (cert_path, key_path).

    The certificate is its own CA: CURL_CA_BUNDLE points at it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())  # fast, unlike RSA
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-gcs")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in (*GCS_HOSTS, _IAM_HOST)]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "gcs-cert.pem"), os.path.join(directory, "gcs-key.pem")
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
    return cert_path, key_path


def _write_service_account(directory: str, token_uri: str) -> str:
    """A throwaway service-account JSON whose token_uri is our fake token endpoint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    # google.auth signs the token request (RS256), so the key must be a real RSA key.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = os.path.join(directory, "service-account.json")
    with open(path, "w") as f:
        json.dump({
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": "fake",
            "private_key": pem,
            "client_email": "fake@fake-project.iam.gserviceaccount.com",
            "client_id": "0",
            "token_uri": token_uri,
        }, f)
    return path


# --------------------------------------------------------------------------- FakeGCS


class FakeGCS:
    """Context manager: an in-memory GCS with one bucket, for this process and its children.

    The servers run in a helper process, not in threads of this one: several TensorFlow
    calls (e.g. TFRecordWriter.close) hold the GIL while their C++ code waits on HTTP,
    so a proxy thread in the same interpreter could never answer them (deadlock).
    """

    def __init__(self, bucket: str = "test-bucket"):
        self.bucket = bucket
        self.env: dict = {}
        self._saved_environ: dict = {}
        self._helper = None

    def url(self, *parts) -> str:
        """gs://<bucket>/<parts joined by '/'>."""
        return "/".join([f"gs://{self.bucket}", *(str(p).strip("/") for p in parts)])

    def __enter__(self) -> "FakeGCS":
        self._helper = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", self.bucket],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            self.env = _read_helper_environment(self._helper)
        except BaseException:
            self._stop_helper()
            raise
        self._saved_environ = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        return self

    def __exit__(self, *exc_info):
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ = {}
        self._stop_helper()

    def _stop_helper(self):
        """Closing its stdin tells the helper to exit (it also does if this process dies)."""
        if self._helper is None:
            return
        self._helper.stdin.close()
        try:
            self._helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._helper.kill()
            self._helper.wait()
        self._helper.stdout.close()
        self._helper = None


def _read_helper_environment(helper: subprocess.Popen, timeout: float = 30) -> dict:
    """The helper prints the environment as one JSON line once every server is up."""
    ready, _, _ = select.select([helper.stdout], [], [], timeout)
    line = helper.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError("the fake GCS helper process did not start; see its error output above")
    return json.loads(line)


def _serve(bucket: str) -> None:
    """Helper-process main: starts every server, prints the environment, serves until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then closes stdin
    tmpdir = tempfile.mkdtemp(prefix="fake-gcs-")
    try:
        emulator, emulator_port = _start_emulator()  # noqa: F841  (kept alive while serving)
        _create_bucket(emulator_port, bucket)
        token = _start_http_server(_TokenHandler)
        token_address = f"{_LOCALHOST}:{token.server_address[1]}"
        cert_path, key_path = _write_tls_certificate(tmpdir)
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(cert_path, key_path)
        proxy = _start_http_server(_ProxyHandler, tls_context=tls_context, emulator_port=emulator_port)
        env = _environment(
            emulator_port=emulator_port,
            proxy_port=proxy.server_address[1],
            ca_bundle=cert_path,
            token_address=token_address,
            credentials=_write_service_account(tmpdir, f"http://{token_address}/token"),
        )
        print(json.dumps(env), flush=True)
        sys.stdin.read()  # EOF: the parent left the with-block or died; daemon threads end with us
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _environment(emulator_port: int, proxy_port: int, ca_bundle: str, token_address: str, credentials: str):
    """The variables that route every GCS client to the fake (see the module docstring)."""
    proxy = f"http://{_LOCALHOST}:{proxy_port}"
    local = f"{_LOCALHOST},localhost"
    return {
        # google-cloud-storage (Beam's gcsio): plain HTTP straight to the emulator.
        "STORAGE_EMULATOR_HOST": f"http://{_LOCALHOST}:{emulator_port}",
        # google.auth: a service account whose token_uri is the fake token server.
        "GOOGLE_APPLICATION_CREDENTIALS": credentials,
        # google.auth code still probing the GCE metadata server asks the token server,
        # which lacks the "Metadata-Flavor: Google" answer: "not on GCE" at once, instead
        # of timeouts against 169.254.169.254.
        "GCE_METADATA_HOST": token_address,
        "GCE_METADATA_IP": token_address,
        # TensorFlow: fixed bearer token (no OAuth, no metadata server) ...
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake-token",
        "NO_GCE_CHECK": "true",
        # ... and its libcurl reaches the hard-coded Google hosts through our TLS proxy.
        "https_proxy": proxy,
        "HTTPS_PROXY": proxy,
        "CURL_CA_BUNDLE": ca_bundle,
        # Python's requests (google-auth) reaches _IAM_HOST the same way; it prefers this
        # variable over CURL_CA_BUNDLE, and machines often set it to the system bundle.
        "REQUESTS_CA_BUNDLE": ca_bundle,
        # Clients talking to the emulator / token server directly must not use the proxy.
        "no_proxy": local,
        "NO_PROXY": local,
        # TF retries failed GCS calls 10 times from 1 s up to 32 s apart (minutes of silence
        # when something is wrong); against a local fake, retry fast and fail fast.
        # Read when TF registers its filesystem, i.e. by processes that import TF later.
        "GCS_RETRY_CONFIG_INIT_DELAY_TIME_US": "20000",
        "GCS_RETRY_CONFIG_MAX_DELAY_TIME_US": "500000",
    }


# --------------------------------------------------------------------------- self-check
# ``python -m tests.support.fake_gcs``: every check runs in this process, then again in a
# child process that only gets ``gcs.env``; all from an empty temporary working directory.


def _check_tf_gfile(root):
    import tensorflow as tf

    gfile = tf.io.gfile
    gfile.makedirs(f"{root}/a/b")
    assert gfile.isdir(f"{root}/a/b") and gfile.isdir(f"{root}/a")
    with gfile.GFile(f"{root}/a/b/x.txt", "w") as f:
        f.write("hello")
    with gfile.GFile(f"{root}/a/b/x.txt") as f:
        assert f.read() == "hello"
    assert gfile.exists(f"{root}/a/b/x.txt") and not gfile.isdir(f"{root}/a/b/x.txt")
    assert not gfile.exists(f"{root}/a/missing")
    assert sorted(gfile.listdir(f"{root}/a")) == ["b/"], gfile.listdir(f"{root}/a")
    assert gfile.listdir(f"{root}/a/b") == ["x.txt"], gfile.listdir(f"{root}/a/b")
    assert gfile.glob(f"{root}/a/*/*.txt") == [f"{root}/a/b/x.txt"]
    gfile.copy(f"{root}/a/b/x.txt", f"{root}/a/y.txt")
    gfile.rename(f"{root}/a/y.txt", f"{root}/a/z.txt")
    assert not gfile.exists(f"{root}/a/y.txt")
    with gfile.GFile(f"{root}/a/z.txt", "rb") as f:
        assert f.read() == b"hello"
    assert gfile.stat(f"{root}/a/z.txt").length == 5
    gfile.rename(f"{root}/a/b", f"{root}/c")  # a directory: every object is moved
    assert gfile.exists(f"{root}/c/x.txt") and not gfile.exists(f"{root}/a/b/x.txt")
    gfile.rmtree(f"{root}/a")
    gfile.rmtree(f"{root}/c")
    assert not gfile.exists(f"{root}/a") and not gfile.exists(f"{root}/c")


def _check_tfrecord_gzip(root):
    import tensorflow as tf

    path = f"{root}/records.tfrecord.gz"
    records = [f"record-{i}".encode() * 50 for i in range(200)]
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)
    read = [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    assert read == records


def _check_saved_model(root):
    import tensorflow as tf

    class Doubler(tf.Module):
        def __init__(self):
            super().__init__()
            self.factor = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return x * self.factor

    path = f"{root}/saved_model"
    tf.saved_model.save(Doubler(), path, signatures=None)
    assert tf.io.gfile.exists(f"{path}/saved_model.pb")
    loaded = tf.saved_model.load(path)
    assert loaded(tf.constant([1.0, 2.5])).numpy().tolist() == [2.0, 5.0]
    serving = loaded.signatures["serving_default"]
    assert list(serving(x=tf.constant([3.0])).values())[0].numpy().tolist() == [6.0]


def _check_tfx_fileio(root):
    from tfx.dsl.io import fileio

    fileio.makedirs(f"{root}/d/e")
    assert fileio.isdir(f"{root}/d/e")
    with fileio.open(f"{root}/d/e/f.txt", "w") as f:
        f.write("tfx")
    with fileio.open(f"{root}/d/e/f.txt") as f:
        assert f.read() == "tfx"
    assert fileio.exists(f"{root}/d/e/f.txt")
    assert fileio.listdir(f"{root}/d/e") == ["f.txt"]
    fileio.copy(f"{root}/d/e/f.txt", f"{root}/d/g.txt")
    fileio.rename(f"{root}/d/g.txt", f"{root}/d/h.txt")
    assert fileio.glob(f"{root}/d/*.txt") == [f"{root}/d/h.txt"]
    fileio.rmtree(f"{root}/d")
    assert not fileio.exists(f"{root}/d")


def _check_tfx_copy_dir(root):
    from tfx.dsl.io import fileio
    from tfx.utils import io_utils

    for name in ("src/1.txt", "src/sub/2.txt"):
        with fileio.open(f"{root}/{name}", "w") as f:
            f.write(name)
    io_utils.copy_dir(f"{root}/src", f"{root}/dst")
    with fileio.open(f"{root}/dst/sub/2.txt") as f:
        assert f.read() == "src/sub/2.txt"
    assert fileio.exists(f"{root}/dst/1.txt")


def _beam_options():
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory"])


def _check_beam_tfrecord(root):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    records = [f"beam-{i}".encode() for i in range(100)]
    with beam.Pipeline(options=_beam_options()) as p:
        _ = p | beam.Create(records) | beam.io.WriteToTFRecord(f"{root}/out", file_name_suffix=".tfrecord")
    with beam.Pipeline(options=_beam_options()) as p:
        assert_that(p | beam.io.ReadFromTFRecord(f"{root}/out*.tfrecord"), equal_to(records))


def _check_tf_writes_beam_reads(root):
    """A file TF uploads (through the proxy) is one Beam downloads (directly, by its mediaLink)."""
    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.testing.util import assert_that, equal_to

    records = [f"tf-{i}".encode() for i in range(10)]
    with tf.io.TFRecordWriter(f"{root}/from-tf.tfrecord") as writer:
        for record in records:
            writer.write(record)
    with beam.Pipeline(options=_beam_options()) as p:
        assert_that(p | beam.io.ReadFromTFRecord(f"{root}/from-tf.tfrecord"), equal_to(records))


def _check_beam_filesystems(root):
    from apache_beam.io.filesystems import FileSystems

    for name in ("a", "b"):
        with FileSystems.create(f"{root}/{name}.bin") as f:
            f.write(name.encode() * 1000)
    FileSystems.rename([f"{root}/a.bin", f"{root}/b.bin"], [f"{root}/sub/a2.bin", f"{root}/sub/b2.bin"])
    matched = sorted(m.path for m in FileSystems.match([f"{root}/**"])[0].metadata_list)
    assert matched == [f"{root}/sub/a2.bin", f"{root}/sub/b2.bin"], matched
    with FileSystems.open(f"{root}/sub/b2.bin") as f:
        assert f.read() == b"b" * 1000
    FileSystems.delete([f"{root}/sub/a2.bin"])
    assert not FileSystems.exists(f"{root}/sub/a2.bin") and FileSystems.exists(f"{root}/sub/b2.bin")
    FileSystems.delete([f"{root}/sub/"])  # a directory: everything under it
    assert FileSystems.match([f"{root}/**"])[0].metadata_list == []


def _check_other_hosts_refused(_root):
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen("https://example.com/", timeout=5)
    except (urllib.error.URLError, OSError) as e:
        assert "403" in str(e) or "Tunnel" in str(e), e
    else:
        raise AssertionError("the proxy let a request through to the network")


CHECKS = [
    ("tf.io.gfile", _check_tf_gfile),
    ("TFRecord GZIP + tf.data", _check_tfrecord_gzip),
    ("SavedModel save/load", _check_saved_model),
    ("tfx fileio", _check_tfx_fileio),
    ("tfx io_utils.copy_dir", _check_tfx_copy_dir),
    ("Beam Write/ReadFromTFRecord", _check_beam_tfrecord),
    ("TF writes, Beam reads", _check_tf_writes_beam_reads),
    ("Beam FileSystems", _check_beam_filesystems),
    ("other https hosts refused", _check_other_hosts_refused),
]


def _run_checks(root: str, label: str) -> list:
    """Runs CHECKS under root; returns [(label, name, seconds)]."""
    timings = []
    for name, check in CHECKS:
        start = time.perf_counter()
        check(f"{root}/{check.__name__.lstrip('_')}")
        timings.append((label, name, time.perf_counter() - start))
        print(f"  ok  {label:6} {name:30} {timings[-1][2]:6.2f} s", flush=True)
    return timings


def _import_heavy_modules() -> float:
    start = time.perf_counter()
    import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
    import apache_beam  # noqa: F401
    import tensorflow  # noqa: F401
    import tfx.dsl.io.fileio  # noqa: F401

    return time.perf_counter() - start


def _local_gs_entries(directory: str) -> list:
    """Paths named like ``gs:`` under directory: what TF/Python create when gs:// is unhandled."""
    return [
        os.path.join(dirpath, name)
        for dirpath, dirnames, filenames in os.walk(directory)
        for name in dirnames + filenames
        if name.startswith("gs:")
    ]


def _child_main(root: str, timings_path: str) -> None:
    print(f"child imports {_import_heavy_modules():.1f} s", flush=True)
    with open(timings_path, "w") as f:
        json.dump(_run_checks(root, "child"), f)


def _parent_main() -> None:
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, repo_root)
    work_dir = tempfile.mkdtemp(prefix="fake-gcs-selfcheck-")
    os.chdir(work_dir)  # anything written to ./gs:/... would land here
    try:
        print(f"imports {_import_heavy_modules():.1f} s (TensorFlow is loaded before FakeGCS)", flush=True)
        environ_before = dict(os.environ)
        start = time.perf_counter()
        with FakeGCS() as gcs:
            startup = time.perf_counter() - start
            print(f"FakeGCS startup {startup:.2f} s", flush=True)
            timings = _run_checks(gcs.url("parent"), "parent")
            # The child gets the environment from before FakeGCS plus gcs.env, nothing else.
            start = time.perf_counter()
            command = [sys.executable, "-m", "tests.support.fake_gcs", "--child", gcs.url("child"), "timings.json"]
            env = {**environ_before, **gcs.env, "PYTHONPATH": repo_root}
            subprocess.run(command, env=env, cwd=work_dir, check=True)
            child_seconds = time.perf_counter() - start
            with open("timings.json") as f:
                timings += json.load(f)
        restored = {k: os.environ.get(k) for k in gcs.env} == {k: environ_before.get(k) for k in gcs.env}
        assert restored, "FakeGCS did not restore os.environ"
        gs_entries = _local_gs_entries(work_dir)
        assert not gs_entries, f"gs:// paths were written to local disk: {gs_entries}"
    finally:
        os.chdir(repo_root)
        shutil.rmtree(work_dir, ignore_errors=True)
    print("\nsummary (seconds)")
    print(f"  FakeGCS startup                       {startup:6.2f}")
    print(f"  child process, total with imports     {child_seconds:6.2f}")
    for label, name, seconds in timings:
        print(f"  {label:6} {name:30} {seconds:6.2f}")
    print("all checks passed; no ./gs: entries in the working directory")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(sys.argv[2])
    elif sys.argv[1:2] == ["--child"]:
        _child_main(*sys.argv[2:4])
    else:
        _parent_main()
