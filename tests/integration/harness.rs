//! Starts the real `letterbox` binary on ephemeral ports with a temporary data dir, and
//! speaks line protocols to it over plain sockets.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse";

/// How often [`wait_for`] probes its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Probes `condition` until it yields a value, and returns it; panics naming `what` if
/// that has not happened within `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// [`wait_for`] a condition that is simply true or false.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(timeout, what, || condition().then_some(()))
}

pub struct Server {
    child: Option<Child>,
    pub ports: HashMap<String, u16>,
    pub dir: PathBuf,
    config: PathBuf,
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_letterbox")
}

impl Server {
    /// A server for example.org with users alice and bob; `extra` is appended to the config.
    pub fn start(extra: &str) -> Server {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lb-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = String::from(
            "hostname = \"mx.test\"\ndomains = [\"example.org\"]\nrun_as = \"nobody\"\n",
        );
        config.push_str(extra);
        config.push('\n');
        if !extra.contains("[inbound]") {
            // The inbound checks need DNS; only tests/python/test_inbound.py has a fixture.
            config.push_str("[inbound]\nenabled = false\n");
        }
        for kind in [
            "smtp",
            "submission",
            "submissions",
            "pop3",
            "pop3s",
            "imap",
            "imaps",
        ] {
            config.push_str(&format!(
                "[[listener]]\nkind = \"{kind}\"\naddress = \"127.0.0.1\"\nport = 0\n"
            ));
        }
        let config_path = dir.join("letterbox.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut server = Server {
            child: None,
            ports: HashMap::new(),
            dir,
            config: config_path,
        };
        for user in ["alice@example.org", "bob@example.org"] {
            let out = server.cli(&["user", "add", user, "--password-stdin"], Some(PASSWORD));
            assert!(out.status.success(), "{out:?}");
        }
        server.launch();
        server
    }

    fn launch(&mut self) {
        let mut child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&self.config)
            .arg("--data")
            .arg(self.dir.join("data"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("start letterbox");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        self.ports.clear();
        loop {
            let line = lines
                .next()
                .expect("letterbox exited before it was ready")
                .unwrap();
            if line == "ready" {
                break;
            }
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts[0], "listening", "unexpected line {line:?}");
            let port = parts[2].rsplit(':').next().unwrap().parse().unwrap();
            self.ports.insert(parts[1].to_string(), port);
        }
        self.child = Some(child);
    }

    pub fn port(&self, kind: &str) -> u16 {
        self.ports[kind]
    }

    /// Runs an admin command against this server's data dir.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut child = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--data")
            .arg(self.dir.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            // The command may end before reading its input (a refused `user add`): a
            // closed pipe here is not the test's business.
            let _ = writeln!(child.stdin.as_mut().unwrap(), "{input}");
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// SIGTERM, then waits (at most 20 s) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().unwrap();
        wait_for(
            Duration::from_secs(20),
            "letterbox exits after SIGTERM",
            || child.try_wait().unwrap(),
        )
    }

    /// Waits until the `kind` listener refuses connections: the server has begun to shut
    /// down and no longer accepts (a connection that is still accepted is closed again).
    pub fn wait_until_refusing(&self, kind: &str) {
        let port = self.port(kind);
        wait_until(
            Duration::from_secs(10),
            &format!("the {kind} port refuses connections"),
            || match TcpStream::connect(("127.0.0.1", port)) {
                Ok(_) => false,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => true,
                Err(e) => panic!("connecting to the {kind} port: {e}"),
            },
        );
    }

    pub fn restart(&mut self) {
        assert!(self.stop().success());
        self.launch();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = self.stderr();
        let _ = std::fs::remove_dir_all(&self.dir);
        if !std::thread::panicking() {
            assert!(!log.contains("panicked"), "the server panicked:\n{log}");
        }
    }
}

/// A line-oriented client over a plain socket.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Reads one line without its CRLF; None at EOF.
    pub fn line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => Some(String::from_utf8_lossy(&line).trim_end().to_string()),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads one (possibly multi-line) SMTP reply; returns its last line.
    pub fn reply(&mut self) -> String {
        loop {
            let line = self
                .line()
                .expect("connection closed while waiting for a reply");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    /// Sends a command and asserts the reply starts with `expect`.
    pub fn command(&mut self, command: &str, expect: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes());
        let reply = self.reply();
        assert!(
            reply.starts_with(expect),
            "{command:?} got {reply:?}, wanted {expect:?}"
        );
        reply
    }

    /// Reads a POP3 multi-line body (after the +OK line) up to the lone dot, unstuffed.
    pub fn pop3_body(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            assert!(
                self.reader.read_until(b'\n', &mut line).unwrap() > 0,
                "EOF in body"
            );
            if line == b".\r\n" {
                return out;
            }
            let content = line.strip_prefix(b".").unwrap_or(&line);
            out.extend_from_slice(content);
        }
    }

    /// True when the server closed the connection (EOF before `timeout`).
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Connects to an SMTP port, reads the greeting and says EHLO.
pub fn smtp_session(port: u16) -> Client {
    let mut c = Client::connect(port);
    c.reply();
    c.command("EHLO client.test", "250");
    c
}

/// An SMTP session with a transaction open: MAIL from a remote sender, RCPT to `to`.
pub fn smtp_transaction(port: u16, to: &str) -> Client {
    let mut c = smtp_session(port);
    c.command("MAIL FROM:<a@remote.test>", "250");
    c.command(&format!("RCPT TO:<{to}>"), "250");
    c
}

/// Sends one message over plain SMTP to the MX port and asserts it was accepted.
pub fn send_mail(port: u16, from: &str, to: &str, body: &str) {
    let mut c = smtp_session(port);
    c.command(&format!("MAIL FROM:<{from}>"), "250");
    c.command(&format!("RCPT TO:<{to}>"), "250");
    c.command("DATA", "354");
    c.send(body.as_bytes());
    c.command(".", "250");
    c.command("QUIT", "221");
}

/// Logs in over plain POP3 (the server must allow plaintext on loopback).
pub fn pop3_login(port: u16, user: &str) -> Client {
    let mut c = Client::connect(port);
    assert!(c.line().unwrap().starts_with("+OK"));
    c.command(&format!("USER {user}"), "+OK");
    c.command(&format!("PASS {PASSWORD}"), "+OK");
    c
}

/// Like [`pop3_login`], but while the maildrop is still locked by a session that is
/// ending (`-ERR [IN-USE]`), tries again on a new connection, for at most 10 s.
pub fn pop3_login_when_unlocked(port: u16, user: &str) -> Client {
    wait_for(
        Duration::from_secs(10),
        &format!("the maildrop of {user} is unlocked"),
        || {
            let mut c = Client::connect(port);
            assert!(c.line().unwrap().starts_with("+OK"));
            c.command(&format!("USER {user}"), "+OK");
            c.send(format!("PASS {PASSWORD}\r\n").as_bytes());
            let reply = c.line().expect("connection closed after PASS");
            if reply.starts_with("-ERR [IN-USE]") {
                return None;
            }
            assert!(reply.starts_with("+OK"), "PASS got {reply:?}");
            Some(c)
        },
    )
}
