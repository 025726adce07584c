//! Secrets from files, the Docker-secrets convention: `DATABASE_URL_FILE`,
//! `HUB_API_TOKEN_FILE` and `NATS_URL_FILE` name a file whose contents are
//! the value of the variable without the suffix.
//!
//! Only the file form keeps a secret out of `/proc/<hub pid>/environ`,
//! which every process of the same user can read (the hub's children
//! included): that file shows the environment the hub was started with.
//! A value read from a file is set in the hub's own environment after it
//! started, which that file does not show, and the shell orchestrator
//! removes it (with every other hub setting) from its commands' environment.

use std::path::Path;

/// The variables that may come from a `<NAME>_FILE`.
pub const FROM_FILES: [&str; 3] = ["DATABASE_URL", "HUB_API_TOKEN", "NATS_URL"];

/// Reads every `<NAME>_FILE` that is set into `<NAME>`: the file's
/// contents, without the trailing line break. Call it first thing in
/// `main`, before any other thread runs: it changes the process's
/// environment.
///
/// # Errors
/// A sentence naming the variable: both `<NAME>` and `<NAME>_FILE` are set,
/// or the file cannot be read.
pub fn load_files() -> Result<(), String> {
    for name in FROM_FILES {
        let file_variable = format!("{name}_FILE");
        let Some(path) = std::env::var_os(&file_variable) else {
            continue;
        };
        if std::env::var_os(name).is_some() {
            return Err(format!(
                "both {name} and {file_variable} are set; set only one of them"
            ));
        }
        let value =
            read_secret(Path::new(&path)).map_err(|err| format!("{file_variable}: {err}"))?;
        std::env::set_var(name, value);
    }
    Ok(())
}

/// A secret file's contents without the line break editors and `echo`
/// leave at its end.
///
/// # Errors
/// A sentence saying why the file could not be used.
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_loses_only_its_final_line_break() {
        let dir = std::env::temp_dir().join(format!("hub-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_secret(&file).unwrap(), "s3cret");
        std::fs::write(&file, " two words \r\n").unwrap();
        assert_eq!(read_secret(&file).unwrap(), " two words ");
        std::fs::write(&file, "\n").unwrap();
        assert!(read_secret(&file).unwrap_err().contains("is empty"));
        let missing = read_secret(&dir.join("missing")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
