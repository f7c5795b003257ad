//! The command line: `serve` and the admin commands. Admin commands open the same LMDB
//! environment as a running server (LMDB is safe across processes), so they work live.
//! Errors print one line and exit non-zero.

use crate::auth::{hash_password, Secret};
use crate::config::{Config, DEFAULT_CONFIG_PATH, DEFAULT_DATA_DIR};
use crate::floor::Shared;
use crate::server;
use crate::store::Store;
use crate::{privilege, signals, tls};
use clap::{Parser, Subcommand};

mod backup;
mod check;
mod clock;
mod probe;
mod progress;
mod queue;
mod records;
mod sieve;
mod signature;
mod status;
mod transfer;
mod vacation;
mod wifi;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "letterbox",
    version,
    about = "A small mail appliance: SMTP in and out, POP3 and IMAP, one static binary"
)]
pub struct Cli {
    /// Configuration file [default: /etc/letterbox/letterbox.toml if it exists,
    /// otherwise the embedded default].
    #[arg(long, global = true, env = "LETTERBOX_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides data_dir from the config) [default: ./letterbox-data].
    #[arg(long, global = true, env = "LETTERBOX_DATA")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the mail server.
    Serve,
    /// Configuration file tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage local domains.
    Domain {
        #[command(subcommand)]
        action: DomainAction,
    },
    /// Manage accounts (named by full address, which is also the login).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage aliases (an address, or @domain for a catch-all; to local accounts, or to
    /// other servers' addresses, forwarded with SRS).
    Alias {
        #[command(subcommand)]
        action: AliasAction,
    },
    /// Look at and steer the outbound queue.
    Queue {
        #[command(subcommand)]
        action: queue::QueueAction,
    },
    /// Sources refused after failed logins (IPv4 addresses, IPv6 /64s); works live.
    Block {
        #[command(subcommand)]
        action: BlockAction,
    },
    /// The junk filter of an account: train it by hand, look at it, score a message.
    Junk {
        #[command(subcommand)]
        action: JunkAction,
    },
    /// An out-of-office reply: `vacation ADDRESS on [--subject S] [--until DATE] < text`.
    Vacation {
        address: String,
        #[command(subcommand)]
        action: vacation::VacationAction,
    },
    /// The deliverability doctor: MX, PTR, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, block
    /// lists, port 25, the certificate and the clock, then the DNS records to publish.
    Check {
        /// Only this local domain (the host is always checked).
        domain: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Only print the records to publish (no lookups).
        #[arg(long)]
        records: bool,
        /// Whose MX the outbound port-25 probe connects to.
        #[arg(long, default_value = "gmail.com")]
        probe: String,
        /// Port of the MTA-STS policy servers (only tests change it).
        #[arg(long, default_value_t = 443, hide = true)]
        https_port: u16,
    },
    /// The clock against time servers (SNTP).
    Clock {
        #[command(subcommand)]
        action: clock::ClockAction,
    },
    /// Sieve filter scripts.
    Sieve {
        #[command(subcommand)]
        action: sieve::SieveAction,
    },
    /// Back up the store, the keys and the configuration, while serving: to a file, a
    /// directory (dated names) or - (stdout); gzip by default, age encryption on request.
    Backup(backup::BackupArgs),
    /// Restore a backup onto a stopped server (an existing store needs --force).
    Restore(backup::RestoreArgs),
    /// Check the store's invariants (or a backup's, given its file).
    Verify(backup::VerifyArgs),
    /// Import mail from an mbox or Maildir (resumable: a second run takes only what is new).
    Import(transfer::ImportArgs),
    /// Export an account's mail (or one mailbox) as mbox or Maildir.
    Export(transfer::ExportArgs),
    /// Pull a whole account from another IMAP server (resumable, incremental).
    Migrate(transfer::MigrateArgs),
    /// The box at a glance: server, listeners, clock, queue, store, certificate, backups.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Does the running server answer on every configured listener? One line each; exits
    /// non-zero when one did not send its greeting within the timeout.
    Probe {
        /// Seconds each listener has to answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// The appliance's Wi-Fi network: wpa_supplicant's configuration, from the setup or
    /// from wifi.txt on the boot partition.
    Wifi {
        #[command(subcommand)]
        action: wifi::WifiAction,
    },
    /// Ed25519 signatures of files (the appliance's update files).
    Signature {
        #[command(subcommand)]
        action: signature::SignatureAction,
    },
    /// DKIM signing keys.
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
    /// Send a message read from standard input, as sendmail does (also run as `sendmail`
    /// through a symlink): [-t] [-f FROM] [-F NAME] [-i] [RECIPIENT...].
    Sendmail {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum BlockAction {
    /// Blocks in force, and expired ones still remembered for doubling.
    List,
    /// Block an address (an IPv6 address blocks its /64).
    Add {
        ip: std::net::IpAddr,
        /// How long.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
    },
    /// Lift a block and forget it.
    Del { ip: String },
}

#[derive(Subcommand, Debug)]
enum JunkAction {
    /// Learn the message on standard input as spam or as ham.
    Train {
        address: String,
        #[arg(long, conflicts_with = "ham", required_unless_present = "ham")]
        spam: bool,
        #[arg(long)]
        ham: bool,
    },
    /// Trained spam and ham messages, tokens kept, LMDB bytes of all accounts' statistics.
    Stats { address: String },
    /// Print the spam probability of the message on standard input (or `untrained`).
    Score { address: String },
}

#[derive(Subcommand, Debug)]
enum DkimAction {
    /// Make an RSA-2048 and an Ed25519 key for DOMAIN and print the DNS records to publish.
    Generate {
        domain: String,
        /// The DKIM selector (a new one for each key rotation).
        #[arg(long, default_value = "letterbox")]
        selector: String,
    },
    /// Check the DKIM signatures of a message read from standard input (with mail-auth);
    /// exits 0 only when there is at least one and all pass.
    Verify {
        /// DNS server (`ip` or `ip:port`) for the key lookups [default: /etc/resolv.conf].
        #[arg(long)]
        dns: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Validate the configuration file given with --config.
    Check,
}

#[derive(Subcommand, Debug)]
enum DomainAction {
    Add { domain: String },
    Del { domain: String },
    List,
}

#[derive(Subcommand, Debug)]
enum UserAction {
    Add {
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    Del {
        address: String,
    },
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set the storage quota: bytes with an optional K, M or G suffix, or `none`.
    Quota {
        address: String,
        limit: String,
    },
    List,
}

#[derive(Subcommand, Debug)]
enum AliasAction {
    Add {
        source: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    Del {
        source: String,
    },
    List,
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    // Called through a `sendmail` symlink: sendmail's own argument syntax.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if invoked_as.as_deref() == Some("sendmail") {
        args.insert(1, "sendmail".into());
    }
    let cli = Cli::parse_from(args);
    if !matches!(cli.command, Command::Serve) {
        // Admin commands behave like other Unix tools in a pipeline (`user list | head`):
        // a closed pipe ends them quietly. The server keeps SIGPIPE ignored for its sockets.
        // SAFETY: restoring the default disposition of one signal before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let default_level = if matches!(cli.command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    crate::logtail::init(default_level);
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("letterbox: {e}");
            1
        }
    }
}

/// The config file to use: --config, else the default path if present, else none.
fn config_path(cli: &Cli) -> Option<PathBuf> {
    cli.config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG_PATH);
        default.exists().then_some(default)
    })
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    match config_path(cli) {
        Some(path) => Config::load(&path).map_err(|e| e.to_string()),
        None => Ok(Config::embedded_default()),
    }
}

fn data_dir(cli: &Cli, config: &Config) -> PathBuf {
    cli.data
        .clone()
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

fn open_store(cli: &Cli) -> Result<Store, String> {
    let config = load_config(cli)?;
    let dir = data_dir(cli, &config);
    let store =
        Store::open(&dir, crate::store::map_size(&config, &dir)).map_err(|e| e.to_string())?;
    for domain in &config.domains {
        store.ensure_domain(domain).map_err(|e| e.to_string())?;
    }
    Ok(store)
}

/// `address` lower-cased, when it is an account; an error naming it otherwise.
fn existing_account(store: &Store, address: &str) -> Result<String, String> {
    let address = address.to_ascii_lowercase();
    match store.account(&address).map_err(|e| e.to_string())? {
        Some(_) => Ok(address),
        None => Err(format!("account {address} does not exist")),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Serve => serve(&cli),
        Command::Sendmail { args } => {
            let config = load_config(&cli)?;
            let store = open_store(&cli)?;
            let code = crate::sendmail::run(args, &config, &store);
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Queue { action } => queue::queue_command(&cli, action),
        Command::Block { action } => block_command(&cli, action),
        Command::Junk { action } => junk_command(&cli, action),
        Command::Sieve { action } => sieve::sieve_command(&cli, action),
        Command::Check {
            domain,
            json,
            records,
            probe,
            https_port,
        } => check::check_command(
            &cli,
            domain.as_deref(),
            check::Output {
                json: *json,
                records_only: *records,
            },
            probe,
            *https_port,
        ),
        Command::Clock { action } => clock::clock_command(action, &load_config(&cli)?),
        Command::Backup(args) => backup::backup_command(&cli, args),
        Command::Restore(args) => backup::restore_command(&cli, args),
        Command::Verify(args) => backup::verify_command(&cli, args),
        Command::Import(args) => transfer::import_command(&cli, args),
        Command::Export(args) => transfer::export_command(&cli, args),
        Command::Migrate(args) => transfer::migrate_command(&cli, args),
        Command::Status { json } => status::status_command(&cli, *json),
        Command::Probe { timeout } => probe::probe(
            &load_config(&cli)?,
            std::time::Duration::from_secs((*timeout).max(1)),
        ),
        Command::Wifi { action } => wifi::run(action),
        Command::Signature { action } => signature::run(action),
        Command::Vacation { address, action } => vacation::vacation_command(&cli, address, action),
        Command::Dkim {
            action: DkimAction::Generate { domain, selector },
        } => {
            let config = load_config(&cli)?;
            let dir = data_dir(&cli, &config);
            let records = crate::relay::dkim::generate(&dir, domain, selector)?;
            println!(
                "Publish these DNS TXT records (RSA for every receiver, Ed25519 for newer ones):"
            );
            for record in records {
                println!("{record}");
            }
            Ok(())
        }
        Command::Dkim {
            action: DkimAction::Verify { dns },
        } => {
            let servers = match dns {
                Some(d) => vec![crate::config::parse_dns_server(d)
                    .ok_or(format!("{d:?} is not ip or ip:port"))?],
                None => Vec::new(),
            };
            let mut message = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut message)
                .map_err(|e| e.to_string())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let (lines, pass) = runtime.block_on(crate::relay::dkim::verify(&message, &servers))?;
            for line in lines {
                println!("{line}");
            }
            if !pass {
                return Err("DKIM verification failed".into());
            }
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let path = config_path(&cli).ok_or("no configuration file: pass --config PATH")?;
            Config::load(&path).map_err(|e| e.to_string())?;
            println!("{}: ok", path.display());
            Ok(())
        }
        Command::Domain { action } => {
            let store = open_store(&cli)?;
            match action {
                DomainAction::Add { domain } => {
                    let d = store.add_domain(domain).map_err(|e| e.to_string())?;
                    println!("added domain {d}");
                }
                DomainAction::Del { domain } => {
                    store.remove_domain(domain).map_err(|e| e.to_string())?;
                    println!("deleted domain {domain}");
                }
                DomainAction::List => {
                    for d in store.domains().map_err(|e| e.to_string())? {
                        println!("{d}");
                    }
                }
            }
            Ok(())
        }
        Command::User { action } => {
            let store = open_store(&cli)?;
            match action {
                UserAction::Add {
                    address,
                    password_stdin,
                } => {
                    if store.account(address).map_err(|e| e.to_string())?.is_some() {
                        return Err(format!("account {address} already exists"));
                    }
                    let password = read_password(*password_stdin)?;
                    let a = store
                        .add_account(address, &hash_password(&password))
                        .map_err(|e| e.to_string())?;
                    println!("added user {a}");
                }
                UserAction::Del { address } => {
                    store.remove_account(address).map_err(|e| e.to_string())?;
                    println!("deleted user {address}");
                }
                UserAction::Quota { address, limit } => {
                    let bytes = parse_quota(limit)?;
                    store.set_quota(address, bytes).map_err(|e| e.to_string())?;
                    if bytes == 0 {
                        println!("{address} has no quota");
                    } else {
                        println!("quota of {address} is {bytes} bytes");
                    }
                }
                UserAction::Passwd {
                    address,
                    password_stdin,
                } => {
                    if store.account(address).map_err(|e| e.to_string())?.is_none() {
                        return Err(format!("account {address} does not exist"));
                    }
                    let password = read_password(*password_stdin)?;
                    store
                        .set_password(address, &hash_password(&password))
                        .map_err(|e| e.to_string())?;
                    println!("changed password of {address}");
                }
                UserAction::List => {
                    for a in store.accounts().map_err(|e| e.to_string())? {
                        println!("{a}");
                    }
                }
            }
            Ok(())
        }
        Command::Alias { action } => {
            let store = open_store(&cli)?;
            match action {
                AliasAction::Add { source, targets } => {
                    let s = store
                        .add_alias(source, targets)
                        .map_err(|e| e.to_string())?;
                    println!("added alias {s}");
                }
                AliasAction::Del { source } => {
                    store.remove_alias(source).map_err(|e| e.to_string())?;
                    println!("deleted alias {source}");
                }
                AliasAction::List => {
                    for (source, targets) in store.aliases().map_err(|e| e.to_string())? {
                        println!("{source} -> {}", targets.join(", "));
                    }
                }
            }
            Ok(())
        }
    }
}

/// Reads a password from stdin (`--password-stdin`) or from the terminal without echo,
/// asking twice. Never from argv, where other users could read it.
fn read_password(from_stdin: bool) -> Result<Secret, String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading password: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            return Err("no terminal to ask for the password: use --password-stdin".into());
        }
        let first = prompt_hidden("Password: ")?;
        let second = prompt_hidden("Repeat password: ")?;
        if first != second {
            return Err("passwords do not match".into());
        }
        first
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(Secret(password))
}

fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|e| format!("terminal: {e}"))?;
    let mut silent = saved.clone();
    silent.local_flags.remove(LocalFlags::ECHO);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, SetArg::TCSANOW, &silent).map_err(|e| format!("terminal: {e}"))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.map_err(|e| format!("reading password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn serve(cli: &Cli) -> Result<(), String> {
    let path = config_path(cli);
    let config = load_config(cli)?;
    if let Some(p) = &path {
        use std::os::unix::fs::PermissionsExt;
        let world_readable =
            std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
        if world_readable && config.relay.smarthosts.iter().any(|s| s.password.is_some()) {
            log::warn!(
                "{} holds smarthost passwords and every user can read it: chmod 640 it (owner root, group letterbox)",
                p.display()
            );
        }
    }
    let data = data_dir(cli, &config);
    let as_root = privilege::is_root();
    let listeners = server::bind(&config.effective_listeners(as_root))?;
    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    // Held until the process ends (see ServeLock).
    let serve_lock = crate::store::ServeLock::take(&data)
        .map_err(|e| format!("{}: {e}", data.join("serve.lock").display()))?
        .ok_or_else(|| format!("another letterbox is serving {}", data.display()))?;
    std::mem::forget(serve_lock);
    if as_root {
        let user = privilege::target_user(config.run_as.as_deref())?;
        privilege::chown_tree(&data, &user)?;
        privilege::drop_to(&user)?;
        log::info!("dropped privileges to {} (uid {})", user.name, user.uid);
    }
    let store = Arc::new(
        Store::open(&data, crate::store::map_size(&config, &data)).map_err(|e| e.to_string())?,
    );
    store.grow_when_full(true);
    for domain in &config.domains {
        store.ensure_domain(domain).map_err(|e| e.to_string())?;
    }
    let certificate = tls::load(&config, &data)?;
    let signals = signals::listen().map_err(|e| format!("signals: {e}"))?;
    // The blocking pool runs store calls (some long: SEARCH over a mailbox, DKIM signing),
    // argon2 (at most two at once) and large message descriptions. Threads start on
    // demand and end after 10 s idle; each costs its touched stack, so the SMTP command
    // path stays off the pool (see `Store::reader`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let reload_data = data.clone();
    let (schedule_config, schedule_data) = (path.clone(), data.clone());
    let reload: server::Reloader = Box::new(move || {
        let config = match &path {
            Some(p) => Config::load(p).map_err(|e| e.to_string())?,
            None => Config::embedded_default(),
        };
        let certificate = tls::load(&config, &reload_data)?;
        Ok((config, certificate))
    });
    log::info!(
        "letterbox {} serving {} (data in {})",
        env!("CARGO_PKG_VERSION"),
        config.hostname,
        data.display()
    );
    // Never closed: LMDB keeps a reader slot per thread that read, and frees it from a
    // thread-exit hook; closing the environment while runtime threads are still exiting
    // lets that hook write to unmapped memory (seen as a SIGSEGV at shutdown). Every
    // commit is durable already, so the process simply exits with the store open.
    std::mem::forget(store.clone());
    runtime.block_on(async move {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared::new(
            store,
            config,
            tls::TlsContext::new(certificate)?,
            shutdown,
        ));
        let daily = shared.clone();
        tokio::spawn(crate::backup::schedule::run(
            move || daily.config(),
            schedule_config,
            schedule_data,
            shared.shutdown.clone(),
        ));
        server::run(shared, listeners, stop, signals, reload).await
    })?;
    // Sessions that outlived the grace period are dropped with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    log::info!("stopped");
    Ok(())
}

fn block_command(cli: &Cli, action: &BlockAction) -> Result<(), String> {
    let store = open_store(cli)?;
    let now = crate::clock::unix_now();
    match action {
        BlockAction::List => {
            let blocks = store.blocks(now).map_err(|e| e.to_string())?;
            for (source, b) in &blocks {
                let state = if b.until > now {
                    format!("blocked for {}", queue::age(b.until - now))
                } else {
                    format!("expired {} ago", queue::age(now - b.until))
                };
                println!("{source}  {state}  level {}  {}", b.level, b.reason);
            }
            if blocks.is_empty() {
                println!("nothing is blocked");
            }
        }
        BlockAction::Add { ip, minutes } => {
            let source = crate::auth::guard::source_of(*ip);
            let block = crate::store::Block {
                until: now.saturating_add((*minutes).min(10 * 366 * 24 * 60) as i64 * 60),
                level: 1,
                reason: "added by hand".into(),
            };
            store
                .block(&source, &block, now)
                .map_err(|e| e.to_string())?;
            println!("blocked {source} for {minutes} min");
        }
        BlockAction::Del { ip } => {
            let source = match ip.parse::<std::net::IpAddr>() {
                Ok(addr) => crate::auth::guard::source_of(addr),
                Err(_) => ip.clone(),
            };
            if !store.unblock(&source).map_err(|e| e.to_string())? {
                return Err(format!("{source} is not blocked"));
            }
            println!("unblocked {source}");
        }
    }
    Ok(())
}

fn junk_command(cli: &Cli, action: &JunkAction) -> Result<(), String> {
    let store = open_store(cli)?;
    let (JunkAction::Train { address, .. }
    | JunkAction::Stats { address }
    | JunkAction::Score { address }) = action;
    if store.account(address).map_err(|e| e.to_string())?.is_none() {
        return Err(format!("account {address} does not exist"));
    }
    // The filter reads no further than this; neither do we.
    let read_message = || {
        let mut message = Vec::new();
        let limit = crate::limits::JUNK_SCAN_BYTES as u64;
        std::io::Read::read_to_end(&mut std::io::stdin().lock().take(limit), &mut message)
            .map(|_| message)
            .map_err(|e| format!("reading the message: {e}"))
    };
    match action {
        JunkAction::Train { spam, .. } => {
            crate::junk::train(&store, address, &read_message()?, *spam)
                .map_err(|e| e.to_string())?;
            println!("learnt as {}", if *spam { "spam" } else { "ham" });
        }
        JunkAction::Stats { .. } => {
            let totals = store.junk_totals(address).map_err(|e| e.to_string())?;
            println!("spam {}", totals.spam);
            println!("ham {}", totals.ham);
            println!("tokens {}", totals.tokens);
            println!("bytes {}", store.junk_bytes().map_err(|e| e.to_string())?);
        }
        JunkAction::Score { .. } => {
            match crate::junk::probability(&store, address, &read_message()?)
                .map_err(|e| e.to_string())?
            {
                Some(p) => println!("{p:.4}"),
                None => println!("untrained"),
            }
        }
    }
    Ok(())
}

/// `500M`, `2G`, `123456`, or `none` (0: unlimited).
fn parse_quota(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") || text == "0" {
        return Ok(0);
    }
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let factor: u64 = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => {
            return Err(format!(
                "invalid quota {text:?}: use bytes, K, M, G or none"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("invalid quota {text:?}: use bytes, K, M, G or none"))
}

#[cfg(test)]
mod tests {
    use super::parse_quota;

    #[test]
    fn quota_sizes() {
        assert_eq!(parse_quota("none"), Ok(0));
        assert_eq!(parse_quota("1500"), Ok(1500));
        assert_eq!(parse_quota("2k"), Ok(2048));
        assert_eq!(parse_quota("500M"), Ok(500 << 20));
        assert_eq!(parse_quota("1G"), Ok(1 << 30));
        assert!(parse_quota("12T").is_err());
        assert!(parse_quota("M").is_err());
        assert!(parse_quota("99999999999999999999G").is_err());
    }
}
