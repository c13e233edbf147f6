//! A loopback HTTP server for the tests: serves the files of one directory on 127.0.0.1 (an
//! ephemeral port) to the lab hosts' curl/wget, counts what it served, and stops on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct HttpServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// Requests answered with a file, and the bytes of those files.
    served: Arc<(AtomicU64, AtomicU64)>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serve `dir` until dropped.
    pub fn start(dir: PathBuf) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let (s, c) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let (dir, c) = (dir.clone(), c.clone());
                    std::thread::spawn(move || serve(conn, &dir, &c));
                }
            }
        });
        HttpServer {
            port,
            stop,
            served,
            thread: Some(thread),
        }
    }

    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }

    /// (files served, their bytes) so far.
    pub fn served(&self) -> (u64, u64) {
        (
            self.served.0.load(Ordering::SeqCst),
            self.served.1.load(Ordering::SeqCst),
        )
    }
}

fn serve(mut conn: TcpStream, dir: &std::path::Path, served: &(AtomicU64, AtomicU64)) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Headers until the blank line; none of them matters here.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let name = path.trim_start_matches('/');
    let file = (!name.contains("..") && !name.contains('/'))
        .then(|| dir.join(name))
        .and_then(|p| std::fs::read(p).ok());
    match file {
        Some(body) => {
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if conn.write_all(&body).is_ok() {
                served.0.fetch_add(1, Ordering::SeqCst);
                served.1.fetch_add(body.len() as u64, Ordering::SeqCst);
            }
        }
        None => {
            let _ = conn.write_all(
                b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the stop flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
