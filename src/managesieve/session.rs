//! One ManageSieve connection (RFC 5804): capabilities, STARTTLS, AUTHENTICATE PLAIN
//! (through the login defence every protocol shares), then the script commands over
//! the store's per-account scripts. Scripts are compiled before they are stored, so a
//! stored script always compiles; errors name line and column.

use super::parse::{literal_at_end, lone_string, parse_command, quote, Command, ParseError};
use crate::auth::{decode_sasl_line, parse_plain, SaslError};
use crate::config::Config;
use crate::floor::session::{
    autologout_timeouts, login_allowed, read_or_shutdown, End, ErrorBudget,
};
use crate::floor::Shared;
use crate::net::{Connection, Line};
use crate::store::{StoreError, MAX_SCRIPTS, MAX_SCRIPT_BYTES};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A command line outside its literals.
const MAX_LINE: usize = 8 * 1024;
/// The largest literal read: a script at the size limit, and some room.
const MAX_LITERAL: u64 = MAX_SCRIPT_BYTES as u64 + 1024;
/// Idle time allowed between commands (as IMAP's autologout).
const AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);

pub struct Session {
    shared: Arc<Shared>,
    config: Arc<Config>,
    conn: Connection,
    user: Option<String>,
    errors: ErrorBudget,
}

/// How a command ends the session, if it does.
type Outcome = io::Result<Option<End>>;

impl Session {
    pub fn new(shared: Arc<Shared>, mut conn: Connection) -> Session {
        let config = shared.config();
        autologout_timeouts(&mut conn, &config, AUTOLOGOUT);
        Session {
            errors: ErrorBudget::new(&config),
            shared,
            config,
            conn,
            user: None,
        }
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn reply(&mut self, kind: &str, code: Option<&str>, text: &str) {
        let mut line = kind.as_bytes().to_vec();
        if let Some(code) = code {
            line.extend_from_slice(format!(" ({code})").as_bytes());
        }
        if !text.is_empty() {
            line.push(b' ');
            line.extend_from_slice(&quote(text.as_bytes()));
        }
        line.extend_from_slice(b"\r\n");
        self.conn.send(&line);
    }

    fn ok(&mut self, text: &str) {
        self.reply("OK", None, text);
    }

    /// A NO; counts against the error budget when `error` (a client mistake, not a
    /// refusal such as a missing script). True when the session must end.
    fn no(&mut self, code: Option<&str>, text: &str, error: bool) -> bool {
        self.reply("NO", code, text);
        if error && self.errors.spend() {
            self.reply("BYE", None, "Too many errors");
            return true;
        }
        false
    }

    fn capabilities(&mut self) {
        let mut out = String::from("\"IMPLEMENTATION\" \"letterbox\"\r\n");
        // RFC 5804 §1.7: an empty list only while STARTTLS is still to come.
        let sasl = if login_allowed(&self.conn, &self.config) {
            "PLAIN"
        } else {
            ""
        };
        out.push_str(&format!("\"SASL\" \"{sasl}\"\r\n"));
        out.push_str(&format!(
            "\"SIEVE\" \"{}\"\r\n",
            crate::sieve::program::EXTENSIONS.join(" ")
        ));
        if !self.conn.is_tls() && self.user.is_none() {
            out.push_str("\"STARTTLS\"\r\n");
        }
        out.push_str(&format!(
            "\"MAXREDIRECTS\" \"{}\"\r\n",
            crate::sieve::run::MAX_REDIRECTS
        ));
        if let Some(user) = &self.user {
            out.push_str(&format!(
                "\"OWNER\" {}\r\n",
                String::from_utf8_lossy(&quote(user.as_bytes()))
            ));
        }
        out.push_str("\"UNAUTHENTICATE\"\r\n");
        out.push_str("\"VERSION\" \"1.0\"\r\n");
        self.conn.send(out.as_bytes());
    }

    pub async fn run(&mut self) -> End {
        self.capabilities();
        self.ok("letterbox ManageSieve ready");
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let Some(read) = read_or_shutdown(&mut shutdown, self.read_command()).await else {
                self.reply("BYE", Some("TRYLATER"), "Server shutting down");
                self.conn.close().await;
                return End::Shutdown;
            };
            let end = match read {
                Ok(Ok(command)) => match self.command(&command).await {
                    Ok(end) => end,
                    Err(e) => Some(End::from_io(e)),
                },
                Ok(Err(Some(why))) => self.no(None, why, true).then_some(End::TooManyErrors),
                Ok(Err(None)) => Some(End::Closed),
                Err(e) => Some(End::from_io(e)),
            };
            if let Some(end) = end {
                if matches!(end, End::Timeout) {
                    self.reply("BYE", None, "Idle too long");
                }
                self.conn.close().await;
                return end;
            }
        }
    }

    /// A whole command with its literals. `Err(Some(why))` for a command to refuse and
    /// go on after, `Err(None)` for a closed connection.
    async fn read_command(&mut self) -> io::Result<Result<Vec<u8>, Option<&'static str>>> {
        let mut command = Vec::new();
        // Once a command has begun, all of it (literals too) within the command timeout.
        let mut deadline: Option<Instant> = None;
        loop {
            let line = match self.conn.read_line(MAX_LINE).await? {
                Line::Complete(line) => line,
                Line::TooLong => {
                    // A literal it announced is read and thrown away, not taken as commands.
                    let tail = self.conn.finish_too_long().await?;
                    if let Some(Ok(n)) = literal_at_end(&tail) {
                        if n > MAX_LITERAL || !self.skip(n as usize).await? {
                            return Ok(Err(None));
                        }
                    }
                    return Ok(Err(Some("Line too long")));
                }
                Line::Closed => return Ok(Err(None)),
            };
            let deadline = *deadline
                .get_or_insert_with(|| Instant::now() + self.config.limits.command_timeout());
            let literal = literal_at_end(&line);
            command.extend_from_slice(&line);
            match literal {
                None => return Ok(Ok(command)),
                Some(Ok(n)) if n <= MAX_LITERAL => {
                    let mut left = n as usize;
                    while left > 0 {
                        if !self.conn.has_buffered_input()
                            && self.conn.fill_by(Some(deadline)).await? == 0
                        {
                            return Ok(Err(None));
                        }
                        let take = left.min(self.conn.buffered().len());
                        command.extend_from_slice(&self.conn.buffered()[..take]);
                        self.conn.consume(take);
                        left -= take;
                    }
                }
                Some(_) => {
                    // Too big to read, and a literal cannot be skipped safely: end here.
                    self.reply("BYE", Some("QUOTA/MAXSIZE"), "Literal too large");
                    return Ok(Err(None));
                }
            }
            if command.len() > MAX_LITERAL as usize + 4 * MAX_LINE {
                return Ok(Err(Some("Command too long")));
            }
        }
    }

    /// Reads and drops `n` bytes within the command timeout; false if the client left.
    async fn skip(&mut self, mut n: usize) -> io::Result<bool> {
        let deadline = Instant::now() + self.config.limits.command_timeout();
        while n > 0 {
            if !self.conn.has_buffered_input() && self.conn.fill_by(Some(deadline)).await? == 0 {
                return Ok(false);
            }
            let take = n.min(self.conn.buffered().len());
            self.conn.consume(take);
            n -= take;
        }
        Ok(true)
    }

    async fn command(&mut self, input: &[u8]) -> Outcome {
        let command = match parse_command(input) {
            Ok(command) => command,
            Err(ParseError::Unknown(name)) => {
                let text = format!("Unknown command {name}");
                return Ok(self.no(None, &text, true).then_some(End::TooManyErrors));
            }
            Err(ParseError::Syntax(why)) => {
                return Ok(self.no(None, why, true).then_some(End::TooManyErrors))
            }
        };
        match (command, self.user.clone()) {
            (Command::Capability, _) => {
                self.capabilities();
                self.ok("Capability completed");
            }
            (Command::Logout, _) => {
                self.ok("Logout completed");
                return Ok(Some(End::Quit));
            }
            (Command::Noop { tag }, _) => match tag {
                Some(tag) => {
                    let code = format!("TAG {}", String::from_utf8_lossy(&quote(tag.as_bytes())));
                    self.reply("OK", Some(&code), "Done");
                }
                None => self.ok("Done"),
            },
            (Command::StartTls, None) if !self.conn.is_tls() => {
                self.ok("Begin TLS negotiation now");
                let acceptor = self.shared.tls.acceptor();
                if let Err(e) = self.conn.start_tls(&acceptor).await {
                    log::info!("managesieve {}: TLS handshake failed: {e}", self.conn.peer);
                    return Ok(Some(End::Closed));
                }
                // RFC 5804 §2.2: the capabilities again, over TLS.
                self.capabilities();
                self.ok("TLS negotiation successful");
            }
            (Command::StartTls, _) => {
                return Ok(self
                    .no(None, "TLS is already active or not allowed now", true)
                    .then_some(End::TooManyErrors))
            }
            (Command::Authenticate { mechanism, initial }, None) => {
                return self.authenticate(&mechanism, initial).await
            }
            (Command::Authenticate { .. }, Some(_)) => {
                return Ok(self
                    .no(None, "Already authenticated", true)
                    .then_some(End::TooManyErrors))
            }
            (_, None) => {
                return Ok(self
                    .no(None, "Authenticate first", true)
                    .then_some(End::TooManyErrors))
            }
            (Command::Unauthenticate, Some(_)) => {
                self.user = None;
                self.ok("Unauthenticate completed");
            }
            (command, Some(account)) => return self.script_command(command, &account).await,
        }
        Ok(None)
    }

    async fn authenticate(&mut self, mechanism: &str, initial: Option<Vec<u8>>) -> Outcome {
        if !login_allowed(&self.conn, &self.config) {
            let stop = self.no(Some("ENCRYPT-NEEDED"), "Use STARTTLS first", true);
            return Ok(stop.then_some(End::TooManyErrors));
        }
        if mechanism != "PLAIN" {
            let stop = self.no(None, "Unsupported SASL mechanism", true);
            return Ok(stop.then_some(End::TooManyErrors));
        }
        let response = match initial {
            Some(r) => r,
            None => {
                // The empty challenge; the answer is a string (quoted or a literal).
                self.conn.send(b"\"\"\r\n");
                match self.read_command().await? {
                    Ok(line) => lone_string(&line).unwrap_or_else(|| b"*".to_vec()),
                    Err(Some(_)) => b"*".to_vec(),
                    Err(None) => return Ok(Some(End::Closed)),
                }
            }
        };
        let text = String::from_utf8_lossy(&response).trim().to_string();
        let (user, password) = match decode_sasl_line(&text).and_then(|b| parse_plain(&b)) {
            Ok(credentials) => credentials,
            Err(SaslError::Cancelled) => {
                return Ok(self
                    .no(None, "Authentication cancelled", false)
                    .then_some(End::TooManyErrors))
            }
            Err(SaslError::Malformed) => {
                return Ok(self
                    .no(None, "Malformed authentication data", true)
                    .then_some(End::TooManyErrors))
            }
        };
        let peer = self.conn.peer.ip();
        match self
            .shared
            .auth
            .login(&user, password, peer, "managesieve")
            .await
        {
            Some(account) => {
                log::info!("managesieve {}: login user={account}", self.conn.peer);
                self.user = Some(account);
                self.ok("Authentication successful");
                Ok(None)
            }
            None => {
                log::info!("managesieve {}: authentication failed", self.conn.peer);
                Ok(self
                    .no(None, "Authentication failed", true)
                    .then_some(End::TooManyErrors))
            }
        }
    }

    async fn script_command(&mut self, command: Command, account: &str) -> Outcome {
        let owner = account.to_string();
        let result = self
            .shared
            .store
            .call(move |store| Ok(run_script_command(store, &owner, command)))
            .await;
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                log::error!("managesieve {}: {e}", self.conn.peer);
                Reply::No(
                    Some("TRYLATER"),
                    "Temporary failure, try again".into(),
                    false,
                )
            }
        };
        match reply {
            Reply::Ok(body, text) => {
                self.conn.send(&body);
                self.ok(&text);
            }
            Reply::No(code, text, error) => {
                return Ok(self.no(code, &text, error).then_some(End::TooManyErrors))
            }
        }
        Ok(None)
    }
}

/// What a script command answers: lines before the OK, or a NO (with a code; counted
/// as an error when the client did something wrong).
enum Reply {
    Ok(Vec<u8>, String),
    No(Option<&'static str>, String, bool),
}

fn run_script_command(store: &crate::store::Store, account: &str, command: Command) -> Reply {
    let ok = |text: &str| Reply::Ok(Vec::new(), text.to_string());
    let failed = |e: StoreError| match e {
        StoreError::NotFound(what) => {
            Reply::No(Some("NONEXISTENT"), format!("{what} does not exist"), false)
        }
        StoreError::Exists(what) => Reply::No(
            Some("ALREADYEXISTS"),
            format!("{what} already exists"),
            false,
        ),
        StoreError::Invalid(why) if why.contains("is active") => {
            Reply::No(Some("ACTIVE"), why, false)
        }
        StoreError::Invalid(why) => Reply::No(None, why, false),
        other => Reply::No(Some("TRYLATER"), other.to_string(), false),
    };
    let name_ok = |name: &str| crate::sieve::valid_script_name(name);
    match command {
        Command::HaveSpace { name, size } => {
            if size > MAX_SCRIPT_BYTES as u64 {
                return Reply::No(
                    Some("QUOTA/MAXSIZE"),
                    format!("Scripts may have at most {MAX_SCRIPT_BYTES} bytes"),
                    false,
                );
            }
            match room_for(store, account, &name) {
                Ok(true) => ok("Putscript would succeed"),
                Ok(false) => Reply::No(
                    Some("QUOTA/MAXSCRIPTS"),
                    format!("At most {MAX_SCRIPTS} scripts"),
                    false,
                ),
                Err(e) => failed(e),
            }
        }
        Command::PutScript { name, script } => {
            if !name_ok(&name) {
                return Reply::No(None, "Invalid script name".into(), true);
            }
            if script.len() > MAX_SCRIPT_BYTES {
                return Reply::No(
                    Some("QUOTA/MAXSIZE"),
                    format!("Scripts may have at most {MAX_SCRIPT_BYTES} bytes"),
                    false,
                );
            }
            if let Err(e) = crate::sieve::compile(&script) {
                return Reply::No(None, e.to_string(), false);
            }
            match room_for(store, account, &name) {
                Ok(true) => {}
                Ok(false) => {
                    return Reply::No(
                        Some("QUOTA/MAXSCRIPTS"),
                        format!("At most {MAX_SCRIPTS} scripts"),
                        false,
                    )
                }
                Err(e) => return failed(e),
            }
            match store.put_sieve_script(account, &name, &script) {
                Ok(()) => ok("Putscript completed"),
                Err(e) => failed(e),
            }
        }
        Command::CheckScript { script } => match crate::sieve::compile(&script) {
            Ok(_) => ok("Script is valid"),
            Err(e) => Reply::No(None, e.to_string(), false),
        },
        Command::ListScripts => match store.sieve_scripts(account) {
            Ok(scripts) => {
                let mut body = Vec::new();
                for script in scripts {
                    body.extend_from_slice(&quote(script.name.as_bytes()));
                    if script.active {
                        body.extend_from_slice(b" ACTIVE");
                    }
                    body.extend_from_slice(b"\r\n");
                }
                Reply::Ok(body, "Listscripts completed".into())
            }
            Err(e) => failed(e),
        },
        Command::SetActive { name } => {
            let name = (!name.is_empty()).then_some(name);
            match store.activate_sieve_script(account, name.as_deref()) {
                Ok(()) => ok("Setactive completed"),
                Err(e) => failed(e),
            }
        }
        Command::GetScript { name } => match store.sieve_script(account, &name) {
            Ok(Some(text)) => {
                let mut body = format!("{{{}}}\r\n", text.len()).into_bytes();
                body.extend_from_slice(&text);
                body.extend_from_slice(b"\r\n");
                Reply::Ok(body, "Getscript completed".into())
            }
            Ok(None) => Reply::No(
                Some("NONEXISTENT"),
                format!("script {name} does not exist"),
                false,
            ),
            Err(e) => failed(e),
        },
        Command::DeleteScript { name } => match store.delete_sieve_script(account, &name) {
            Ok(()) => ok("Deletescript completed"),
            Err(e) => failed(e),
        },
        Command::RenameScript { from, to } => {
            if !name_ok(&to) {
                return Reply::No(None, "Invalid script name".into(), true);
            }
            match store.rename_sieve_script(account, &from, &to) {
                Ok(()) => ok("Renamescript completed"),
                Err(e) => failed(e),
            }
        }
        // Handled by the session before it asks the store.
        Command::Authenticate { .. }
        | Command::StartTls
        | Command::Logout
        | Command::Capability
        | Command::Noop { .. }
        | Command::Unauthenticate => ok("Done"),
    }
}

/// Whether `name` may be stored: it exists already, or there is room for one more.
fn room_for(store: &crate::store::Store, account: &str, name: &str) -> Result<bool, StoreError> {
    let scripts = store.sieve_scripts(account)?;
    Ok(scripts.iter().any(|s| s.name == name) || scripts.len() < MAX_SCRIPTS)
}
