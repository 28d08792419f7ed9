//! A moto server (AWS's S3, SQS and DynamoDB, from PyPI) for one test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The moto server tests start: `BACKDROP_MOTO_SERVER`, else `infra/moto-server` — moto's own
/// `moto_server` with DynamoDB's conditional writes made atomic, as the real service's are
/// (`tests/run` installs moto: `infra/venv.sh`).
pub fn moto_program() -> String {
    std::env::var("BACKDROP_MOTO_SERVER")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/moto-server").into())
}

/// A moto server ([`moto_program`]) on a free port of 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts the server and waits until it accepts connections (at most 10 s).
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let child = Command::new(moto_program())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (tests/run installs it: infra/venv.sh)");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not start on port {port}");
    }

    /// Its endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
