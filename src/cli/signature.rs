//! `letterbox signature keygen|sign|verify`: Ed25519 signatures of files, which is how the
//! appliance's `letterbox-update` knows that an update file comes from its builder.
//!
//! ring does the cryptography; the files are one base64 line each, so they can be pasted
//! over a serial console:
//! - the private key (`KEY`, mode 0600): `letterbox-signing-key 1 <PKCS#8 v2 document>`;
//! - the public key (`KEY.pub`): `letterbox-signing-pub 1 <32 bytes>`;
//! - a signature: `letterbox-signature 1 <64 bytes>`.
//!
//! Files are read whole (an update's manifest is a few hundred bytes; what it lists is
//! covered by the SHA-256 sums inside it).

use base64::Engine;
use clap::Subcommand;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum SignatureAction {
    /// Make a key pair: KEY (private, mode 0600) and KEY.pub.
    Keygen { key: PathBuf },
    /// Print the signature of FILE made with KEY.
    Sign { key: PathBuf, file: PathBuf },
    /// Exit 0 only when SIGNATURE is PUBLIC's signature of FILE.
    Verify {
        public: PathBuf,
        file: PathBuf,
        signature: PathBuf,
    },
}

/// Runs `letterbox signature ACTION`.
pub fn run(action: &SignatureAction) -> Result<(), String> {
    match action {
        SignatureAction::Keygen { key } => keygen(key),
        SignatureAction::Sign { key, file } => sign(key, file),
        SignatureAction::Verify {
            public,
            file,
            signature,
        } => verify(public, file, signature),
    }
}

const PRIVATE_TAG: &str = "letterbox-signing-key 1 ";
const PUBLIC_TAG: &str = "letterbox-signing-pub 1 ";
const SIGNATURE_TAG: &str = "letterbox-signature 1 ";
/// Larger files are refused: this signs manifests, not images.
const MAX_SIGNED: u64 = 1 << 20;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The base64 payload of a one-line file that starts with `tag`.
fn read_tagged(path: &Path, tag: &str) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let payload = text.trim_end().strip_prefix(tag).ok_or_else(|| {
        format!(
            "{}: not a {}file",
            path.display(),
            tag.trim_end_matches("1 ")
        )
    })?;
    b64()
        .decode(payload)
        .map_err(|e| format!("{}: bad base64: {e}", path.display()))
}

fn read_signed(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > MAX_SIGNED {
        return Err(format!(
            "{}: {len} bytes; at most {MAX_SIGNED} are signed",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `KEY` (0600, never over an existing file) and `KEY.pub`.
pub fn keygen(key: &Path) -> Result<(), String> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| format!("keygen: {e}"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| format!("keygen: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    writeln!(file, "{PRIVATE_TAG}{}", b64().encode(pkcs8.as_ref()))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let public = format!("{}.pub", key.display());
    std::fs::write(
        &public,
        format!("{PUBLIC_TAG}{}\n", b64().encode(pair.public_key().as_ref())),
    )
    .map_err(|e| format!("{public}: {e}"))?;
    println!("{public}");
    Ok(())
}

/// Prints the signature line of `file` made with `key`.
pub fn sign(key: &Path, file: &Path) -> Result<(), String> {
    let pkcs8 = read_tagged(key, PRIVATE_TAG)?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|e| format!("{}: not an Ed25519 key: {e}", key.display()))?;
    let signature = pair.sign(&read_signed(file)?);
    println!("{SIGNATURE_TAG}{}", b64().encode(signature.as_ref()));
    Ok(())
}

/// Whether `signature` is `public`'s signature of `file`.
pub fn verify(public: &Path, file: &Path, signature: &Path) -> Result<(), String> {
    let key = read_tagged(public, PUBLIC_TAG)?;
    let sig = read_tagged(signature, SIGNATURE_TAG)?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&read_signed(file)?, &sig)
        .map_err(|_| {
            format!(
                "{}: not a good signature of {} by {}",
                signature.display(),
                file.display(),
                public.display()
            )
        })?;
    println!("good signature");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_a_changed_file() {
        let dir = std::env::temp_dir().join(format!("lb-sig-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k");
        keygen(&key).unwrap();
        assert!(
            keygen(&key).is_err(),
            "an existing key is never overwritten"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let file = dir.join("manifest");
        std::fs::write(&file, b"letterbox-update 1\nversion 1\n").unwrap();
        let pkcs8 = read_tagged(&key, PRIVATE_TAG).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
        let sig = dir.join("sig");
        let line = b64().encode(pair.sign(&std::fs::read(&file).unwrap()).as_ref());
        std::fs::write(&sig, format!("{SIGNATURE_TAG}{line}\n")).unwrap();
        let public = dir.join("k.pub");
        verify(&public, &file, &sig).unwrap();
        std::fs::write(&file, b"letterbox-update 1\nversion 2\n").unwrap();
        let err = verify(&public, &file, &sig).unwrap_err();
        assert!(err.contains("not a good signature"), "{err}");
        assert!(verify(&file, &file, &sig)
            .unwrap_err()
            .contains("not a letterbox-signing-pub"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
