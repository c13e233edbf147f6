//! A small blocking HTTP/1.1 server over rustls: one thread per connection, keep-alive,
//! Content-Length and chunked request bodies, fixed-length responses and chunked streaming
//! (watch). No HTTP/2 is offered in ALPN, so Go clients (kubectl) speak HTTP/1.1.
//!
//! Why not hyper: the stand-in serves a handful of clients, needs no async, and this keeps the
//! dependency set to rustls (already used by the lab's clients) and the build small.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

pub(crate) type Tls = StreamOwned<ServerConnection, TcpStream>;

/// One parsed request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// DER of the verified client certificate chain's leaf, when one was presented.
    pub(crate) client_cert: Option<Vec<u8>>,
    pub(crate) remote: String,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler returns.
pub(crate) enum Response {
    Full {
        code: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A chunked stream: the function writes chunks through the writer until it returns.
    Stream {
        content_type: &'static str,
        run: Box<dyn FnOnce(&mut ChunkWriter<'_>) + Send>,
    },
}

impl Response {
    pub(crate) fn json(code: u16, v: &serde_json::Value) -> Response {
        Response::Full {
            code,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }
    pub(crate) fn text(code: u16, s: &str) -> Response {
        Response::Full {
            code,
            content_type: "text/plain; charset=utf-8",
            body: s.as_bytes().to_vec(),
        }
    }
    pub(crate) fn code(&self) -> u16 {
        match self {
            Response::Full { code, .. } => *code,
            Response::Stream { .. } => 200,
        }
    }
}

/// Writes HTTP/1.1 chunks; a failed write means the client went away.
pub(crate) struct ChunkWriter<'a> {
    out: &'a mut Tls,
    pub(crate) broken: bool,
}

impl ChunkWriter<'_> {
    pub(crate) fn chunk(&mut self, data: &[u8]) -> bool {
        if self.broken || data.is_empty() {
            return !self.broken;
        }
        let mut buf = format!("{:x}\r\n", data.len()).into_bytes();
        buf.extend_from_slice(data);
        buf.extend_from_slice(b"\r\n");
        if self
            .out
            .write_all(&buf)
            .and_then(|_| self.out.flush())
            .is_err()
        {
            self.broken = true;
        }
        !self.broken
    }
}

/// The TLS configuration: serving cert/key, optional client CA (client certs optional, as the
/// real apiserver requests but does not require them).
pub(crate) fn tls_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = pem_certs(cert_pem)?;
    if certs.is_empty() {
        return Err("no certificate in --tls-cert-file".into());
    }
    let key = pem_key(key_pem)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca_pem {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in pem_certs(ca)? {
                roots.add(c).map_err(|e| format!("--client-ca-file: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("--client-ca-file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert-file/--tls-private-key-file: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn pem_blocks(pem: &str) -> Vec<(String, Vec<u8>)> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|p| (p.label, p.contents))
        .collect()
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    Ok(pem_blocks(pem)
        .into_iter()
        .filter(|(l, _)| l == "CERTIFICATE")
        .map(|(_, d)| CertificateDer::from(d))
        .collect())
}

fn pem_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    for (label, der) in pem_blocks(pem) {
        let key = match label.as_str() {
            "PRIVATE KEY" => PrivateKeyDer::Pkcs8(der.into()),
            "EC PRIVATE KEY" => PrivateKeyDer::Sec1(der.into()),
            "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(der.into()),
            _ => continue,
        };
        return Ok(key);
    }
    Err("no private key in --tls-private-key-file".into())
}

/// Accept connections forever, one thread each.
pub(crate) fn serve<H>(listener: TcpListener, tls: Arc<ServerConfig>, handler: Arc<H>)
where
    H: Fn(Request) -> Response + Send + Sync + 'static,
{
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let tls = tls.clone();
        let handler = handler.clone();
        std::thread::spawn(move || {
            let _ = connection(stream, tls, &*handler);
        });
    }
}

fn connection<H>(stream: TcpStream, tls: Arc<ServerConfig>, handler: &H) -> std::io::Result<()>
where
    H: Fn(Request) -> Response,
{
    let remote = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    // An idle keep-alive connection is closed after 5 minutes.
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let _ = stream.set_nodelay(true);
    let conn = ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, stream);
    // Complete the handshake to learn the client certificate.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    let client_cert = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    // One reader for the connection's life: a client may send its next requests before the
    // answer to the first (pipelining, which Go's server also serves, one after another), and
    // what the reader holds of them must not be lost between requests.
    let mut reader = BufReader::new(tls);
    loop {
        let Some(mut req) = read_request(&mut reader)? else {
            return Ok(());
        };
        let tls = reader.get_mut();
        req.client_cert = client_cert.clone();
        req.remote = remote.clone();
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let is_head = req.method == "HEAD";
        match handler(req) {
            Response::Full {
                code,
                content_type,
                body,
            } => {
                let mut out = format!(
                    "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache, private\r\n",
                    reason(code),
                    body.len()
                );
                if close {
                    out.push_str("Connection: close\r\n");
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                if !is_head {
                    bytes.extend_from_slice(&body);
                }
                tls.write_all(&bytes)?;
                tls.flush()?;
            }
            Response::Stream { content_type, run } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\n\r\n"
                );
                tls.write_all(head.as_bytes())?;
                tls.flush()?;
                let mut w = ChunkWriter {
                    out: tls,
                    broken: false,
                };
                run(&mut w);
                if w.broken {
                    return Ok(());
                }
                tls.write_all(b"0\r\n\r\n")?;
                tls.flush()?;
            }
        }
        if close {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return Ok(());
        }
    }
}

const MAX_BODY: usize = 8 << 20;

fn read_request(reader: &mut BufReader<Tls>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    // Skip empty lines between requests.
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    let mut head_size = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        head_size += h.len();
        if head_size > 1 << 20 {
            return Err(std::io::Error::other("request head too large"));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(std::io::Error::other)?;
            if n == 0 {
                // trailers
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + n > MAX_BODY {
                return Err(std::io::Error::other("body too large"));
            }
            let start = body.len();
            body.resize(start + n, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = get("content-length") {
        let n: usize = len.parse().map_err(std::io::Error::other)?;
        if n > MAX_BODY {
            return Err(std::io::Error::other("body too large"));
        }
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    }
    let (path, qs) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let query = qs
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Ok(Some(Request {
        method,
        path: percent_decode(&path),
        query,
        headers,
        body,
        client_cert: None,
        remote: String::new(),
    }))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        _ => "",
    }
}
