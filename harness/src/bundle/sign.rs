//! Ed25519 keys and manifest signatures (`ed25519-dalek`). Text formats, one line each:
//!
//! - secret key file (mode 0600): `effbench-ed25519-secret <64 hex digits: the 32-byte seed>`
//! - public key file (`KEYFILE.pub`): `effbench-ed25519-public <64 hex digits>`
//! - `manifest.json.sig`: `effbench-ed25519-signature <128 hex digits>`, over the exact bytes of
//!   `manifest.json`.
//!
//! A key's fingerprint is `sha256:` and the first 16 bytes (hex) of the SHA-256 of its 32 bytes.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{hex, unhex, BundleError};

const SECRET_TAG: &str = "effbench-ed25519-secret";
const PUBLIC_TAG: &str = "effbench-ed25519-public";
const SIGNATURE_TAG: &str = "effbench-ed25519-signature";
/// Key and signature files are one short line; anything longer is not one.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// `KEYFILE.pub` beside `KEYFILE`.
pub fn public_path(secret: &Path) -> PathBuf {
    let mut s = secret.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Writes a fresh key pair: the secret at `out` (mode 0600) and the public key at `out.pub`.
/// Refuses to overwrite either. Returns the public key's fingerprint.
pub fn keygen(out: &Path) -> Result<String, BundleError> {
    let public = public_path(out);
    for p in [out, public.as_path()] {
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(BundleError::Input(format!(
                "{} already exists; keygen never overwrites a key: pick another --out or move it away",
                p.display()
            )));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| BundleError::Input(format!("cannot read the system's random source: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    write_new(out, 0o600, &format!("{SECRET_TAG} {}\n", hex(&seed)))?;
    seed.fill(0);
    write_new(&public, 0o644, &format!("{PUBLIC_TAG} {}\n", hex(key.verifying_key().as_bytes())))?;
    Ok(fingerprint(&key.verifying_key()))
}

fn write_new(path: &Path, mode: u32, text: &str) -> Result<(), BundleError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(BundleError::io(path))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(BundleError::io(path))
}

/// `sha256:` + the first 16 bytes of SHA-256(key), hex.
pub fn fingerprint(key: &VerifyingKey) -> String {
    format!("sha256:{}", hex(&Sha256::digest(key.as_bytes())[..16]))
}

fn read_tagged(path: &Path, tag: &str, len: usize) -> Result<Vec<u8>, String> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = Path::new(path.file_name().ok_or_else(|| format!("{} is not a file", path.display()))?);
    let text =
        super::fsafe::read_text(dir, name, MAX_KEY_FILE_BYTES).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || format!("{} is not an `{tag} <hex>` line ({} bytes of hex)", path.display(), len);
    let rest = text.trim().strip_prefix(tag).ok_or_else(bad)?;
    let bytes = unhex(rest.trim()).ok_or_else(bad)?;
    if bytes.len() != len {
        return Err(bad());
    }
    Ok(bytes)
}

pub fn load_secret(path: &Path) -> Result<SigningKey, BundleError> {
    let b = read_tagged(path, SECRET_TAG, 32).map_err(BundleError::Input)?;
    let seed: [u8; 32] = b.try_into().map_err(|_| BundleError::Input("bad key length".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

pub fn load_public(path: &Path) -> Result<VerifyingKey, BundleError> {
    let b = read_tagged(path, PUBLIC_TAG, 32).map_err(BundleError::Input)?;
    public_from_bytes(&b).map_err(BundleError::Input)
}

pub fn public_from_bytes(b: &[u8]) -> Result<VerifyingKey, String> {
    let arr: [u8; 32] = b.try_into().map_err(|_| "a public key is 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// The signature file's text for `message`.
pub fn signature_text(key: &SigningKey, message: &[u8]) -> String {
    format!("{SIGNATURE_TAG} {}\n", hex(&key.sign(message).to_bytes()))
}

/// Whether `sig_text` (a signature file's text) is `key`'s signature of `message`.
pub fn verify(key: &VerifyingKey, message: &[u8], sig_text: &str) -> Result<(), String> {
    let rest =
        sig_text.trim().strip_prefix(SIGNATURE_TAG).ok_or_else(|| format!("not an `{SIGNATURE_TAG} <hex>` line"))?;
    let b = unhex(rest.trim()).ok_or("its signature is not hex")?;
    let arr: [u8; 64] = b.try_into().map_err(|_| "a signature is 64 bytes".to_string())?;
    key.verify_strict(message, &Signature::from_bytes(&arr))
        .map_err(|_| format!("the signature does not verify with key {}", fingerprint(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_sign_verify_round_trip_and_other_keys_fail() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.key"), d.path().join("b.key"));
        let fa = keygen(&a).unwrap();
        keygen(&b).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(keygen(&a).unwrap_err().to_string().contains("already exists"));
        let (sa, pa, pb) =
            (load_secret(&a).unwrap(), load_public(&public_path(&a)).unwrap(), load_public(&public_path(&b)).unwrap());
        assert_eq!(fingerprint(&pa), fa);
        let sig = signature_text(&sa, b"manifest bytes");
        assert_eq!(verify(&pa, b"manifest bytes", &sig), Ok(()));
        assert!(verify(&pa, b"manifest bytes!", &sig).is_err(), "an edited message must fail");
        assert!(verify(&pb, b"manifest bytes", &sig).unwrap_err().contains("does not verify"));
    }
}
