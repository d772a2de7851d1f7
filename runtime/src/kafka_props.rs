//! The librdkafka properties a user gives either binary (`--kafka-config FILE`, then `-X
//! KEY=VALUE`): their syntax, and the refusals both binaries share.
//!
//! - Secrets (`sasl.password`, `ssl.key.password`, anything named like a password or secret)
//!   never come on the command line, where `ps` and the shell history show them: only in the
//!   file, which should be readable by the process's user alone ([`warn_if_readable`]).
//! - Each binary refuses properties its guarantees rest on, or that have a flag of their own:
//!   its table of [`Guarded`] properties, checked by [`check`].

/// A property a binary sets itself: the values it accepts from the user (none: always
/// refused) and why.
pub struct Guarded {
    pub key: &'static str,
    pub accepted: &'static [&'static str],
    pub why: &'static str,
}

/// librdkafka properties holding secrets: never accepted on the command line, never printed.
const SECRETS: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "ssl_key",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
];

/// True for a property whose value is a secret.
pub fn is_secret(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    SECRETS.contains(&key.as_str()) || key.contains("password") || key.contains("secret")
}

/// Checks the user's properties: `file` from `--kafka-config`, `cli` from `-X`. Returns the
/// refusal (without any secret value) for the first property that puts a secret on the
/// command line or sets a `guarded` property to a value the binary does not accept.
pub fn check(file: &[(String, String)], cli: &[(String, String)], guarded: &[Guarded]) -> Result<(), String> {
    for (key, _) in cli {
        if is_secret(key) {
            return Err(format!(
                "-X {key}=... puts a secret on the command line, where `ps` and the shell history show it: \
                 put `{key}=...` in the --kafka-config file (readable only by this process's user, mode 600) instead"
            ));
        }
    }
    for (origin, props) in [("--kafka-config", file), ("-X", cli)] {
        for (key, value) in props {
            let k = key.trim().to_ascii_lowercase();
            let Some(g) = guarded.iter().find(|g| g.key == k) else {
                continue;
            };
            let v = value.trim().to_ascii_lowercase();
            if !g.accepted.contains(&v.as_str()) {
                let allowed = if g.accepted.is_empty() { String::new() } else { format!(" (cutover sets {}={})", g.key, g.accepted[0]) };
                return Err(format!("{origin} {key}={value} is refused{allowed}: {}", g.why));
            }
        }
    }
    Ok(())
}

/// Parses one `KEY=VALUE` (the value parser of `-X`).
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Reads a properties file: `key=value` lines, blank lines and `#` comments ignored.
pub fn read(path: &std::path::Path) -> std::io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).filter_map(|l| parse_kv(l).ok()).collect())
}

/// The user's properties, file first then `-X`, checked against `guarded`; warns when the
/// file holds a secret others may read.
pub fn load(file: Option<&std::path::Path>, cli: &[(String, String)], guarded: &[Guarded]) -> Result<Vec<(String, String)>, String> {
    let mut props = Vec::new();
    if let Some(path) = file {
        props = read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        warn_if_readable(path, &props);
    }
    check(&props, cli, guarded)?;
    props.extend(cli.iter().cloned());
    Ok(props)
}

/// Warns when the properties file holds a secret but others may read it.
pub fn warn_if_readable(path: &std::path::Path, props: &[(String, String)]) {
    use std::os::unix::fs::PermissionsExt;
    if !props.iter().any(|(k, _)| is_secret(k)) {
        return;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "the Kafka properties file holds a secret and others may read it: chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const TABLE: &[Guarded] =
        &[Guarded { key: "group.id", accepted: &[], why: "use --group" }, Guarded { key: "acks", accepted: &["all", "-1"], why: "durability" }];

    #[test]
    fn secrets_only_in_the_file_and_guarded_values_refused() {
        let err = check(&[], &kv(&[("sasl.password", "hunter2")]), TABLE).unwrap_err();
        assert!(err.contains("--kafka-config") && !err.contains("hunter2"), "{err}");
        assert_eq!(check(&kv(&[("sasl.password", "hunter2")]), &[], TABLE), Ok(()));
        assert!(check(&[], &kv(&[("group.id", "x")]), TABLE).unwrap_err().contains("--group"));
        assert!(check(&kv(&[("acks", "1")]), &[], TABLE).unwrap_err().contains("cutover sets acks=all"));
        assert_eq!(check(&[], &kv(&[("acks", "ALL")]), TABLE), Ok(()));
        assert!(parse_kv("novalue").is_err());
        assert_eq!(parse_kv(" a = b=c ").unwrap(), ("a".to_string(), "b=c".to_string()));
    }
}
