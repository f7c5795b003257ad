//! `letterbox import`, `export` and `migrate` (see [`crate::transfer`]).

use super::progress::{Progress, Unit};
use super::{existing_account, open_store, Cli};
use crate::mail::mbox::Quoting;
use crate::transfer::{export, import, Summary};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Mbox,
    Maildir,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    format: Format,
    /// An mbox file or a directory of them; a Maildir folder or a Maildir++ tree.
    path: PathBuf,
    /// The account the mail goes to.
    #[arg(long)]
    user: String,
    /// Into this mailbox (created if missing); PATH is then one mbox file or Maildir folder.
    #[arg(long)]
    mailbox: Option<String>,
    /// The mbox was written with mboxo quoting (only `From ` lines quoted).
    #[arg(long)]
    mboxo: bool,
    /// Forget how far earlier runs got and read PATH again from its start.
    #[arg(long)]
    restart: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    format: Format,
    /// mbox: a file (with --mailbox) or a directory; Maildir: a folder or a Maildir++ tree.
    dest: PathBuf,
    #[arg(long)]
    user: String,
    /// Only this mailbox.
    #[arg(long)]
    mailbox: Option<String>,
}

fn print_summary(verb: &str, summary: &Summary) {
    for (name, taken, skipped) in &summary.mailboxes {
        if *skipped > 0 {
            println!("{name}: {verb} {taken} ({skipped} already there)");
        } else {
            println!("{name}: {verb} {taken}");
        }
    }
    for failure in &summary.failed {
        println!("failed: {failure}");
    }
    println!(
        "{verb} {} messages in {} mailboxes, {} skipped, {} failed",
        summary.taken(),
        summary.mailboxes.len(),
        summary.skipped(),
        summary.failed.len()
    );
}

pub fn import_command(cli: &Cli, args: &ImportArgs) -> Result<(), String> {
    let store = open_store(cli)?;
    let account = existing_account(&store, &args.user)?;
    let kind = match args.format {
        Format::Mbox => "mbox",
        Format::Maildir => "maildir",
    };
    if args.restart {
        let n = import::restart(&store, &account, kind, &args.path)?;
        println!("forgot {n} earlier imports of {}", args.path.display());
    }
    let quoting = if args.mboxo { Quoting::O } else { Quoting::Rd };
    let mut progress = Progress::new("import", Unit::Messages, None);
    let mut tick = |n| progress.advance(n);
    let summary = match (args.format, &args.mailbox) {
        (Format::Mbox, Some(name)) => {
            let (taken, skipped) = import::mbox_file(
                &store,
                &account,
                &args.path,
                (name, None),
                quoting,
                &mut tick,
            )?;
            Summary {
                mailboxes: vec![(name.clone(), taken, skipped)],
                failed: Vec::new(),
            }
        }
        (Format::Mbox, None) if args.path.is_dir() => {
            import::mbox_tree(&store, &account, &args.path, quoting, &mut tick)?
        }
        (Format::Mbox, None) => {
            let (taken, skipped) = import::mbox_file(
                &store,
                &account,
                &args.path,
                ("INBOX", None),
                quoting,
                &mut tick,
            )?;
            Summary {
                mailboxes: vec![("INBOX".into(), taken, skipped)],
                failed: Vec::new(),
            }
        }
        (Format::Maildir, Some(name)) => {
            if !import::is_maildir(&args.path) {
                return Err(format!(
                    "{} is not a Maildir folder (no cur/ or new/)",
                    args.path.display()
                ));
            }
            let (taken, skipped) =
                import::maildir_folder(&store, &account, &args.path, (name, None), &mut tick)?;
            Summary {
                mailboxes: vec![(name.clone(), taken, skipped)],
                failed: Vec::new(),
            }
        }
        (Format::Maildir, None) => {
            if !import::is_maildir(&args.path) {
                return Err(format!(
                    "{} is not a Maildir (no cur/ or new/)",
                    args.path.display()
                ));
            }
            import::maildir_tree(&store, &account, &args.path, &mut tick)?
        }
    };
    progress.finish();
    // A running server's IMAP sessions and NOTIFY see the new mail at their next look.
    print_summary("imported", &summary);
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} sources failed", summary.failed.len()))
    }
}

pub fn export_command(cli: &Cli, args: &ExportArgs) -> Result<(), String> {
    let store = open_store(cli)?;
    let account = existing_account(&store, &args.user)?;
    let mut progress = Progress::new("export", Unit::Messages, None);
    let mut tick = |n| progress.advance(n);
    let summary = match (args.format, &args.mailbox) {
        (Format::Mbox, Some(name)) => Summary {
            mailboxes: vec![(
                name.clone(),
                export::mbox_mailbox(&store, &account, name, &args.dest, &mut tick)?,
                0,
            )],
            failed: Vec::new(),
        },
        (Format::Mbox, None) => export::mbox_account(&store, &account, &args.dest, &mut tick)?,
        (Format::Maildir, Some(name)) => Summary {
            mailboxes: vec![(
                name.clone(),
                export::maildir_mailbox(&store, &account, name, &args.dest, &mut tick)?,
                0,
            )],
            failed: Vec::new(),
        },
        (Format::Maildir, None) => {
            export::maildir_account(&store, &account, &args.dest, &mut tick)?
        }
    };
    progress.finish();
    print_summary("exported", &summary);
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} mailboxes failed", summary.failed.len()))
    }
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The account to pull: imaps://LOGIN@HOST[:PORT] (imap:// only to a loopback address).
    #[arg(long)]
    from: String,
    /// The account the mail goes to.
    #[arg(long)]
    user: String,
    /// Read the source's password from stdin's first line instead of asking.
    #[arg(long)]
    password_stdin: bool,
    /// Accept any certificate from the source (a self-signed old server).
    #[arg(long)]
    insecure: bool,
    /// Forget earlier runs and copy everything again.
    #[arg(long)]
    restart: bool,
}

fn connect_source(
    source: &crate::migrate::Source,
    insecure: bool,
) -> Result<Box<dyn crate::migrate::client::Stream>, String> {
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(60);
    let addrs: Vec<_> = (source.host.as_str(), source.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", source.host))?
        .collect();
    if !source.tls && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err("imap:// (without TLS) is only for loopback sources: use imaps://".into());
    }
    let mut last = format!("{}: no address", source.host);
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => {
                tcp.set_read_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                tcp.set_write_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                if !source.tls {
                    return Ok(Box::new(tcp));
                }
                let configs = crate::tls::client::ClientConfigs::new(None)?;
                let config = if insecure {
                    configs.opportunistic
                } else {
                    configs.verified
                };
                let name = rustls::pki_types::ServerName::try_from(source.host.clone())
                    .map_err(|e| format!("{}: {e}", source.host))?;
                let conn =
                    rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
                return Ok(Box::new(rustls::StreamOwned::new(conn, tcp)));
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

pub fn migrate_command(cli: &Cli, args: &MigrateArgs) -> Result<(), String> {
    let source = crate::migrate::Source::parse(&args.from)?;
    let store = open_store(cli)?;
    let account = existing_account(&store, &args.user)?;
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err("no terminal to ask for the password: use --password-stdin".into());
        }
        super::prompt_hidden(&format!(
            "Password of {} at {}: ",
            source.login, source.host
        ))?
    };
    if args.restart {
        let n = crate::migrate::restart(&store, &account, &source)?;
        println!("forgot {n} folders of earlier runs");
    }
    let stream = connect_source(&source, args.insecure)?;
    let mut client = crate::migrate::connect(&source, &password, stream)?;
    let started = std::time::Instant::now();
    let mut progress = Progress::new("migrate", Unit::Messages, None);
    let summary = crate::migrate::run(&mut client, &store, &account, &source, &mut |n| {
        progress.advance(n)
    })?;
    progress.finish();
    print_summary("copied", &summary);
    let secs = started.elapsed().as_secs_f64();
    if summary.taken() > 0 {
        println!("{:.0} messages/s", summary.taken() as f64 / secs.max(0.001));
    }
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} folders failed", summary.failed.len()))
    }
}
