//! How to reach a cluster. Both binaries talk to two clusters (legacy and target), so the clap
//! arguments are generated twice with different prefixes by `cluster_args!`.

/// The duration flag syntax, for the generated arguments (`--<prefix>-timeout 60s`).
#[doc(hidden)]
pub use runtime::duration;
use std::path::PathBuf;
use std::time::Duration;

/// Everything needed to open a connection to one cluster. Secrets are held here but never
/// printed: `Debug` redacts them.
#[derive(Clone, Default)]
pub struct ClusterConfig {
    /// Base URL, e.g. `http://127.0.0.1:9201` or `https://es.example:9200`.
    pub url: String,
    /// Basic-auth user name (with `password`).
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// An encoded API key (the base64 `id:api_key` Elasticsearch returns as `encoded`).
    pub api_key: Option<String>,
    /// A PEM file with the CA that signed the cluster's certificate.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (testing only).
    pub insecure: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Gzip request bodies and ask for gzipped responses (`--<prefix>-compression`); off, the
    /// client asks for none ([`crate::Es::connect`]).
    pub compression: bool,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .finish()
    }
}

/// Generates a clap `Args` struct whose flags carry a prefix (`--legacy-url`, `--target-url`),
/// so one binary can take two clusters without the flags colliding.
#[macro_export]
macro_rules! cluster_args {
    ($name:ident, $prefix:literal, $env:literal, $default_url:literal, $heading:literal) => {
        #[doc = concat!("Connection flags for the ", $prefix, " cluster.")]
        #[derive(clap::Args, Clone, Debug)]
        #[command(next_help_heading = $heading)]
        pub struct $name {
            #[doc = concat!("URL of the ", $prefix, " cluster.")]
            #[arg(id = concat!($prefix, "_url"), long = concat!($prefix, "-url"), env = concat!("CUTOVER_", $env, "_URL"), default_value = $default_url)]
            pub url: String,
            #[doc = "Basic-auth user (password from the matching _PASSWORD environment variable)."]
            #[arg(id = concat!($prefix, "_username"), long = concat!($prefix, "-username"), env = concat!("CUTOVER_", $env, "_USERNAME"))]
            pub username: Option<String>,
            #[doc = "Basic-auth password. Prefer the environment variable: flags show in `ps`."]
            #[arg(id = concat!($prefix, "_password"), long = concat!($prefix, "-password"), env = concat!("CUTOVER_", $env, "_PASSWORD"), hide_env_values = true)]
            pub password: Option<String>,
            #[doc = "Encoded API key (base64 of id:key), sent as `Authorization: ApiKey ...`."]
            #[arg(id = concat!($prefix, "_api_key"), long = concat!($prefix, "-api-key"), env = concat!("CUTOVER_", $env, "_API_KEY"), hide_env_values = true)]
            pub api_key: Option<String>,
            #[doc = "PEM file of the CA that signed the cluster's TLS certificate."]
            #[arg(id = concat!($prefix, "_ca_file"), long = concat!($prefix, "-ca-file"), env = concat!("CUTOVER_", $env, "_CA_FILE"))]
            pub ca_file: Option<std::path::PathBuf>,
            #[doc = "Do not verify the TLS certificate (never in production)."]
            #[arg(id = concat!($prefix, "_insecure"), long = concat!($prefix, "-insecure"), env = concat!("CUTOVER_", $env, "_INSECURE"))]
            pub insecure: bool,
            #[doc = "Timeout of one HTTP request (`60s`, `2m`)."]
            #[arg(id = concat!($prefix, "_timeout"), long = concat!($prefix, "-timeout"), default_value = "60s", value_parser = $crate::config::duration::parse)]
            pub timeout: std::time::Duration,
            #[doc = concat!("Gzip the requests to the ", $prefix, " cluster and ask it to gzip its responses: less traffic for more CPU on both ends (compressing is the cluster's cost), worth it only over a slow link between data centres. Off: bodies go uncompressed, which on a LAN is cheapest for the cluster.")]
            #[arg(id = concat!($prefix, "_compression"), long = concat!($prefix, "-compression"), env = concat!("CUTOVER_", $env, "_COMPRESSION"))]
            pub compression: bool,
        }

        impl From<$name> for $crate::ClusterConfig {
            fn from(a: $name) -> Self {
                $crate::ClusterConfig {
                    url: a.url,
                    username: a.username,
                    password: a.password,
                    api_key: a.api_key,
                    ca_file: a.ca_file,
                    insecure: a.insecure,
                    timeout: a.timeout,
                    compression: a.compression,
                }
            }
        }
    };
}

cluster_args!(LegacyArgs, "legacy", "LEGACY", "http://127.0.0.1:9200", "Legacy cluster (read-only)");
cluster_args!(TargetArgs, "target", "TARGET", "http://127.0.0.1:9201", "Target cluster");

impl ClusterConfig {
    /// A config for a plain-HTTP cluster without authentication (tests, local clusters).
    pub fn plain(url: impl Into<String>) -> Self {
        ClusterConfig { url: url.into(), timeout: Duration::from_secs(60), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = ClusterConfig { password: Some("hunter2".into()), api_key: Some("c2VjcmV0".into()), ..ClusterConfig::plain("http://x") };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("c2VjcmV0"), "{shown}");
    }
}
