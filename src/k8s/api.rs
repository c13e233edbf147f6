//! A client of the Kubernetes API over any byte stream: TLS (rustls, the server checked
//! against the kubeconfig's CA, the client certificate or bearer token as kubectl sends
//! them) and HTTP/1.1 requests one after another on one kept-alive connection (httparse
//! reads the responses). The stream is a tunnel through the control plane's SSH session,
//! so that many small requests cost neither a kubectl process each nor its client-side
//! throttling.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The credentials, as PEM (certificates, key) or text (token), read from the kubeconfig.
pub struct Credentials {
    pub server_name: String,
    pub ca_pem: Vec<u8>,
    pub auth: Auth,
}

pub enum Auth {
    ClientCert { cert_pem: Vec<u8>, key_pem: Vec<u8> },
    Bearer(String),
}

#[derive(Debug)]
pub enum ApiError {
    /// The connection could not be set up or broke before an answer (TLS, tunnel, I/O).
    Connection(String),
    /// The server answered something that is not HTTP as expected.
    Protocol(String),
    /// An answer other than 2xx, with the message of its Status when it has one.
    Status { code: u16, message: String },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Connection(e) => write!(f, "connection to the API: {e}"),
            ApiError::Protocol(e) => write!(f, "answer of the API: {e}"),
            ApiError::Status { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

impl std::error::Error for ApiError {}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::Protocol(format!("body is not JSON: {e}")))
    }

    /// `Ok(self)` for a 2xx answer, else its status and the Status object's message.
    pub fn success(self) -> Result<Response, ApiError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_string());
        Err(ApiError::Status {
            code: self.status,
            message,
        })
    }
}

fn bad_credentials(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Connection(format!("{what}: {e}"))
}

/// A TLS client configuration that trusts only the kubeconfig's CA.
pub fn tls_config(c: &Credentials) -> Result<Arc<ClientConfig>, ApiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&c.ca_pem) {
        let cert = cert.map_err(|e| bad_credentials("the cluster CA", e))?;
        roots
            .add(cert)
            .map_err(|e| bad_credentials("the cluster CA", e))?;
    }
    if roots.is_empty() {
        return Err(ApiError::Connection(
            "the cluster CA holds no certificate".into(),
        ));
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad_credentials("TLS", e))?
        .with_root_certificates(roots);
    let config = match &c.auth {
        Auth::ClientCert { cert_pem, key_pem } => {
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad_credentials("the client certificate", e))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|e| bad_credentials("the client key", e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad_credentials("the client certificate", e))?
        }
        Auth::Bearer(_) => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// How a response's body ends.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// One kept-alive connection to the API server.
pub struct ApiConn<S: Read + Write> {
    tls: StreamOwned<ClientConnection, S>,
    host: String,
    bearer: Option<String>,
    /// Bytes read past the last response.
    buf: Vec<u8>,
    closed: bool,
}

impl<S: Read + Write> ApiConn<S> {
    pub fn new(stream: S, c: &Credentials, config: Arc<ClientConfig>) -> Result<Self, ApiError> {
        let name = ServerName::try_from(c.server_name.clone())
            .map_err(|e| bad_credentials("the server name", e))?;
        let conn = ClientConnection::new(config, name).map_err(|e| bad_credentials("TLS", e))?;
        Ok(ApiConn {
            tls: StreamOwned::new(conn, stream),
            host: c.server_name.clone(),
            bearer: match &c.auth {
                Auth::Bearer(t) => Some(t.clone()),
                Auth::ClientCert { .. } => None,
            },
            buf: Vec::new(),
            closed: false,
        })
    }

    /// `METHOD path` with a JSON body (or none); the response, whatever its status.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ApiError> {
        self.send(method, path, body)?;
        self.receive()
    }

    /// Send a request without waiting for its answer: requests sent one after another are
    /// answered in order (HTTP/1.1 pipelining), each by one [`ApiConn::receive`]. Not for
    /// HEAD, whose answer has no body to tell where it ends.
    pub fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<(), ApiError> {
        debug_assert_ne!(method, "HEAD");
        if self.closed {
            return Err(ApiError::Connection(
                "the server closed the connection".into(),
            ));
        }
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bootstrapctl/{}\r\nAccept: application/json\r\n",
            self.host,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(t) = &self.bearer {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body.unwrap_or_default());
        self.tls.write_all(&out).map_err(io_error)?;
        self.tls.flush().map_err(io_error)
    }

    /// Read more bytes into `buf`; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, ApiError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = match self.tls.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(io_error(e)),
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn need(&mut self, len: usize) -> Result<(), ApiError> {
        while self.buf.len() < len {
            if !self.fill()? {
                return Err(ApiError::Protocol("the body ends early".into()));
            }
        }
        Ok(())
    }

    /// The answer to the oldest request not yet answered.
    pub fn receive(&mut self) -> Result<Response, ApiError> {
        let (status, framing, close, used) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&self.buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = r.code.unwrap_or(0);
                    let header = |name: &str| {
                        r.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
                    };
                    let close =
                        header("connection").is_some_and(|v| v == "close") || r.version == Some(0);
                    let framing = if status == 204 || status == 304 {
                        Framing::Length(0)
                    } else if header("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
                        Framing::Chunked
                    } else if let Some(n) = header("content-length") {
                        Framing::Length(
                            n.parse()
                                .map_err(|_| ApiError::Protocol(format!("Content-Length {n:?}")))?,
                        )
                    } else {
                        Framing::UntilClose
                    };
                    break (status, framing, close, used);
                }
                Ok(httparse::Status::Partial) => {
                    if !self.fill()? {
                        return Err(ApiError::Connection(
                            "the server closed the connection before answering".into(),
                        ));
                    }
                }
                Err(e) => return Err(ApiError::Protocol(format!("response head: {e}"))),
            }
        };
        self.buf.drain(..used);
        let body = match framing {
            Framing::Length(n) => {
                self.need(n)?;
                self.buf.drain(..n).collect()
            }
            Framing::Chunked => self.chunked_body()?,
            Framing::UntilClose => {
                while self.fill()? {}
                self.closed = true;
                std::mem::take(&mut self.buf)
            }
        };
        if close {
            self.closed = true;
        }
        Ok(Response { status, body })
    }

    fn chunked_body(&mut self) -> Result<Vec<u8>, ApiError> {
        let mut body = Vec::new();
        loop {
            let (used, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((used, size))) => break (used, size as usize),
                    Ok(httparse::Status::Partial) => {
                        if !self.fill()? {
                            return Err(ApiError::Protocol("the body ends early".into()));
                        }
                    }
                    Err(_) => return Err(ApiError::Protocol("bad chunk size".into())),
                }
            };
            self.buf.drain(..used);
            if size == 0 {
                // Trailers, if any, up to the empty line.
                loop {
                    if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        let line_empty = end == 0;
                        self.buf.drain(..end + 2);
                        if line_empty {
                            return Ok(body);
                        }
                    } else if !self.fill()? {
                        return Err(ApiError::Protocol("the body ends early".into()));
                    }
                }
            }
            self.need(size + 2)?;
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}

fn io_error(e: io::Error) -> ApiError {
    ApiError::Connection(e.to_string())
}
