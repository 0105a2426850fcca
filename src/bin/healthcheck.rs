//! `max-mnist-healthcheck`: the container image's `HEALTHCHECK`.
//!
//! Docker runs a health check as a command inside the container, and the runtime image
//! (debian:bookworm-slim) has no curl or wget. This binary asks the server in the same container
//! whether it is ready, `GET /health/ready` on `127.0.0.1:$PORT` (5000 when `PORT` is unset),
//! and exits 0 on a 200 and 1 otherwise, printing one line that says why. It uses only std, so
//! it adds no dependency and needs no libtorch.
//!
//! Kubernetes does not use it: its probes call `/health/ready` and `/health/live` themselves.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// The port the server listens on when `PORT` is unset, as in the server's own settings.
const DEFAULT_PORT: u16 = 5000;

/// Limit of each step (connect, send, read): a ready server answers in microseconds, and
/// Docker gives the whole check 3 s (`--timeout=3s`) before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The request, with the server's own `API_KEY` (the container's environment) when it has one,
/// for servers that also guard their probes (`AUTH_HEALTH=true`).
fn request() -> String {
    let authorization = match std::env::var("API_KEY") {
        Ok(key) if !key.trim().is_empty() => format!("Authorization: Bearer {}\r\n", key.trim()),
        _ => String::new(),
    };
    format!("GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n{authorization}Connection: close\r\n\r\n")
}

fn main() -> ExitCode {
    match port().and_then(|port| check(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("max-mnist-healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}

fn port() -> Result<u16, String> {
    match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|_| format!("PORT={port:?} is not a port number")),
        Err(_) => Ok(DEFAULT_PORT),
    }
}

/// Asks the server at `addr` whether it is ready; the error says why not.
fn check(addr: SocketAddr) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_read_timeout(Some(TIMEOUT)))
        .and_then(|()| stream.write_all(request().as_bytes()))
        .map_err(|error| format!("cannot send the request to {addr}: {error}"))?;
    let status_line = read_status_line(&mut stream).map_err(|error| match error.kind() {
        // A read timeout shows as WouldBlock on Unix: say what happened rather than "os error 11".
        ErrorKind::WouldBlock | ErrorKind::TimedOut => format!("no answer from {addr} within {TIMEOUT:?}"),
        _ => format!("no answer from {addr}: {error}"),
    })?;
    match status_line.split_whitespace().collect::<Vec<_>>()[..] {
        [version, "200", ..] if version.starts_with("HTTP/") => Ok(()),
        [version, _, ..] if version.starts_with("HTTP/") => Err(format!("not ready: {status_line}")),
        _ => Err(format!("not an HTTP answer from {addr}: {status_line:?}")),
    }
}

/// Reads up to the end of the first line; the status is all the check needs, and a server that
/// sends a long body (or none) cannot keep it reading.
fn read_status_line(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buffer = [0; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        match stream.read(&mut buffer)? {
            0 => break,
            read => head.extend_from_slice(&buffer[..read]),
        }
    }
    let line = head.split(|&byte| byte == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// A one-request server on a free loopback port that answers `response`, as the real
    /// server would, after reading the request.
    fn serve_once(response: &'static str) -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0; 1024];
            let read = stream.read(&mut request).unwrap();
            assert!(request[..read].starts_with(b"GET /health/ready HTTP/1.1\r\n"));
            stream.write_all(response.as_bytes()).unwrap();
        });
        addr
    }

    #[test]
    fn a_200_is_ready() {
        let addr = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 18\r\n\r\n{\"status\":\"ready\"}");
        assert_eq!(check(addr), Ok(()));
    }

    #[test]
    fn a_503_is_not_ready_and_says_so() {
        let addr = serve_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(check(addr), Err("not ready: HTTP/1.1 503 Service Unavailable".to_owned()));
    }

    #[test]
    fn no_server_is_not_ready() {
        let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap();
        assert!(check(addr).unwrap_err().starts_with("cannot connect to"));
    }

    #[test]
    fn something_else_than_http_is_not_ready() {
        let addr = serve_once("SSH-2.0-OpenSSH_9.2\r\n");
        assert!(check(addr).unwrap_err().starts_with("not an HTTP answer"));
    }
}
