//! Dropping root. letterbox binds its ports as root, hands the data directory to the
//! unprivileged user, then switches to it for good: setgroups, setgid, setuid, and
//! PR_SET_NO_NEW_PRIVS, verified afterwards. Started as an ordinary user, nothing changes.

use nix::unistd::{chown, getegid, geteuid, getgid, getuid, setgid, setgroups, setuid, Uid, User};
use std::path::Path;

pub fn is_root() -> bool {
    geteuid().is_root()
}

/// The user to run as. When none is configured and the default `letterbox` user does not
/// exist, `nobody` is used (with a warning) so the embedded default works anywhere.
pub fn target_user(configured: Option<&str>) -> Result<User, String> {
    let name = configured.unwrap_or(crate::config::DEFAULT_RUN_AS);
    match User::from_name(name) {
        Ok(Some(user)) if user.uid.is_root() => Err(format!("run_as user {name} is root")),
        Ok(Some(user)) => Ok(user),
        Ok(None) if configured.is_none() => {
            log::warn!("user {name} does not exist; running as nobody (set run_as to choose)");
            User::from_name("nobody")
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "neither user letterbox nor nobody exists".to_string())
        }
        Ok(None) => Err(format!("run_as user {name} does not exist")),
        Err(e) => Err(format!("looking up user {name}: {e}")),
    }
}

/// Gives `dir` and everything in it to `user`.
pub fn chown_tree(dir: &Path, user: &User) -> Result<(), String> {
    chown(dir, Some(user.uid), Some(user.gid)).map_err(|e| format!("{}: {e}", dir.display()))?;
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if kind.is_dir() {
            chown_tree(&path, user)?;
        } else if !kind.is_symlink() {
            chown(&path, Some(user.uid), Some(user.gid))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Switches permanently to `user` and verifies that root cannot be regained.
pub fn drop_to(user: &User) -> Result<(), String> {
    setgroups(&[user.gid]).map_err(|e| format!("setgroups: {e}"))?;
    setgid(user.gid).map_err(|e| format!("setgid: {e}"))?;
    setuid(user.uid).map_err(|e| format!("setuid: {e}"))?;
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS only sets a flag on this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(format!(
            "PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        ));
    }
    let dropped = getuid() == user.uid
        && geteuid() == user.uid
        && getgid() == user.gid
        && getegid() == user.gid
        && setuid(Uid::from_raw(0)).is_err();
    if !dropped {
        return Err("privileges were not dropped".to_string());
    }
    Ok(())
}
