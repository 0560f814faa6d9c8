//! Keys for a developer's machine: when no digest is configured, the cyber and operator keys
//! are generated once and kept in the data directory, so a restart keeps them.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bcdi_shared::domain::Secret;

pub struct DevKey {
    pub path: PathBuf,
    pub secret: Secret,
    /// Whether this start generated it, rather than reading it from a previous start.
    pub generated: bool,
}

/// Reads `<data_dir>/keys/<name>.key`, or generates and writes it (owner-only on Unix).
pub fn load_or_generate(data_dir: &Path, name: &str) -> io::Result<DevKey> {
    let dir = data_dir.join("keys");
    let path = dir.join(format!("{name}.key"));
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            let secret = Secret::from_presented(text.trim());
            Ok(DevKey {
                path,
                secret,
                generated: false,
            })
        }
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => {
            fs::create_dir_all(&dir)?;
            let secret = Secret::generate(&format!("bcdi_{name}"));
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            file.write_all(secret.expose().as_bytes())?;
            file.write_all(b"\n")?;
            Ok(DevKey {
                path,
                secret,
                generated: true,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_generated_once_then_kept() {
        let dir = std::env::temp_dir().join(format!("bcdi-dev-keys-{}", std::process::id()));
        let first = load_or_generate(&dir, "cyber").unwrap();
        let second = load_or_generate(&dir, "cyber").unwrap();
        assert!(first.generated && !second.generated);
        assert_eq!(first.secret.expose(), second.secret.expose());
        let text = fs::read_to_string(&first.path).unwrap();
        assert_eq!(text.trim(), first.secret.expose());
        fs::remove_dir_all(dir).unwrap();
    }
}
