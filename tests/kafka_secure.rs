//! Secured Kafka, end to end: the `kafka-secure` node of `dev/services.sh` (SASL_SSL,
//! SCRAM-SHA-512, a CA of its own). Every Kafka client of the indexer (consumer and its offset
//! commits, dead-letter producer, lag reader behind `/ready`) gets its security settings from
//! one `--kafka-config` file (mode 600); wrong credentials, an unknown CA, a plaintext client on
//! the TLS listener end the indexer at once with exit code 5 and the cause; the secret shows in
//! no log, no `--help`, no command line, no dead letter. Also: librdkafka overrides that would
//! break at-least-once replay from zero are refused (exit code 2) before joining the group.

use cutover::procs::{http_get, log_of, Proc};
use cutover::scenario::Scenario;
use cutover::sim::{generate, WorkloadSpec};
use cutover::{kafka, unique, SecureKafka};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes a librdkafka properties file, mode 600, in a fresh temporary folder.
fn props_file(name: &str, lines: &[(&str, &str)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kafka.properties");
    let text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The README's `kafka.properties` example, with the node's user, password and CA filled in,
/// as a mode-600 file: the documented example is the one tested.
fn readme_properties(sec: &SecureKafka) -> PathBuf {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme.split("```properties\n").nth(1).and_then(|b| b.split("```").next()).expect("README has a ```properties block");
    let mut lines = Vec::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (k, v) = line.split_once('=').expect("key=value");
        let v = match k {
            "sasl.username" | "sasl.password" | "ssl.ca.location" => sec.prop(k),
            _ => v.to_string(),
        };
        lines.push((k.to_string(), v));
    }
    let keys: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location"], "the README's example");
    let borrowed: Vec<(&str, &str)> = lines.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    props_file("readme-kafka", &borrowed)
}

/// The command line of a running process, as `ps` shows it.
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}

async fn wait_ready(p: &Proc) {
    Scenario::eventually("readiness gate open", Duration::from_secs(60), || {
        http_get(p.metrics_port, "/ready").is_some_and(|r| r.contains(" 200 ") && r.contains("\"caught_up\":true"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replays_dead_letters_and_resumes_through_sasl_ssl() {
    let sec = SecureKafka::require();
    let password = sec.prop("sasl.password");
    let mut sc = Scenario::on_kafka("ksec", 2, Some(&sec.brokers)).await;
    let config = sec.config.display().to_string();
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 60, 400, 13));
    let (first, second) = cmds.split_at(250);

    // History, one poison record in the middle (with a header of its own), more history.
    sc.live(&first[..120]).await;
    let producer = kafka::producer(&sc.s.kafka);
    let (poison_partition, poison_offset) = kafka::produce(&producer, &sc.topic, Some(b"poison"), b"{\"op\": \"upsert\", ", &[("trace", b"t-9")]).await;
    sc.live(&first[120..]).await;

    // Run 1: replay from offset zero until the readiness gate opens, then SIGTERM.
    let readme = readme_properties(&sec).display().to_string();
    let p = sc.start_indexer("run1", &["--kafka-config", &readme]);
    assert!(!cmdline(p.child.id()).contains(&password), "the password is not on the command line");
    wait_ready(&p).await;
    assert_eq!(p.metric("cutover_indexer_consumed_total"), Some(first.len() as f64 + 1.0), "run 1 replayed the topic from zero");
    p.signal("TERM");
    assert!(p.wait(Duration::from_secs(30)).success(), "run 1 exits 0 on SIGTERM");
    let committed = sc.committed();
    assert_eq!(committed.iter().sum::<i64>(), first.len() as i64 + 1, "run 1 committed every record, the poison one too: {committed:?}");

    // Run 2: more traffic; the restart resumes from the committed offsets (reads only the new records).
    sc.live(second).await;
    let p = sc.start_indexer("run2", &["--kafka-config", &config]);
    wait_ready(&p).await;
    assert_eq!(p.metric("cutover_indexer_consumed_total"), Some(second.len() as f64), "run 2 resumed from the committed offsets");
    p.signal("TERM");
    assert!(p.wait(Duration::from_secs(30)).success(), "run 2 exits 0 on SIGTERM");
    assert_eq!(sc.committed().iter().sum::<i64>(), cmds.len() as i64 + 1);
    sc.assert_converged().await;

    // The dead letter, read back through the secured listener.
    let dlq = kafka::read_all(&sc.s.kafka, &format!("{}.dlq", sc.topic), 2, Duration::from_secs(5));
    assert_eq!(dlq.len(), 1, "one dead letter");
    let m = &dlq[0];
    assert_eq!(kafka::header(m, "cutover.error.kind").as_deref(), Some("invalid_json"));
    assert_eq!(kafka::header(m, "cutover.offset"), Some(poison_offset.to_string()));
    assert_eq!(kafka::header(m, "cutover.partition"), Some(poison_partition.to_string()));
    assert_eq!(kafka::header(m, "trace").as_deref(), Some("t-9"), "original headers kept");
    assert_eq!(m.payload(), Some(&b"{\"op\": \"upsert\", "[..]), "original bytes kept");
    for h in m.headers().unwrap().iter() {
        let value = String::from_utf8_lossy(h.value.unwrap_or_default());
        assert!(!value.contains(&password) && !h.key.contains(&password), "a dead letter's header {} holds the secret", h.key);
    }

    // The secret: in no log, not in --help (even with the config file in the environment).
    for run in ["run1", "run2"] {
        let log = log_of(&format!("{}-{run}", sc.topic));
        assert!(log.contains("kafka reachable and accepted the client's credentials"), "{run}: the probe passed: {log}");
        assert!(!log.contains(&password), "{run} logged the secret");
    }
    let help = std::process::Command::new(cutover::procs::bin("indexer")).arg("--help").env("CUTOVER_KAFKA_CONFIG", &sec.config).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--kafka-config") && help.contains("exit code 5"), "{help}");
    assert!(!help.contains(&password));
    sc.cleanup().await;
}

/// One misconfigured start: exit code, message, seconds to exit.
fn bad_start(sc: &Scenario, name: &str, brokers: &str, config: Option<&Path>, connect_timeout: &str) -> (Option<i32>, String, f64) {
    let mut args = sc.indexer_args(&["--kafka-connect-timeout", connect_timeout]);
    let at = args.iter().position(|a| a == "--brokers").unwrap();
    args[at + 1] = brokers.to_string();
    if let Some(c) = config {
        args.extend(["--kafka-config".to_string(), c.display().to_string()]);
    }
    let started = Instant::now();
    let p = Proc::start("indexer", &format!("{}-{name}", sc.topic), &args);
    let status = p.wait(Duration::from_secs(90));
    (status.code(), log_of(&format!("{}-{name}", sc.topic)), started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_unknown_ca_and_plaintext_fail_fast_with_the_cause() {
    let sec = SecureKafka::require();
    let password = sec.prop("sasl.password");
    let sc = Scenario::on_kafka("kbad", 1, Some(&sec.brokers)).await;
    let ca = sec.prop("ssl.ca.location");

    // A CA that did not sign the broker's certificate.
    let other = std::env::temp_dir().join(unique("other-ca"));
    std::fs::create_dir_all(&other).unwrap();
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=not-the-kafka-ca"])
        .arg("-keyout")
        .arg(other.join("ca.key"))
        .arg("-out")
        .arg(other.join("ca.crt"))
        .output()
        .unwrap();
    assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    let other_ca = other.join("ca.crt").display().to_string();

    let wrong_password = "not-the-password-4711";
    let sasl = |pw: &str, ca: &str| -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", "SASL_SSL".to_string()),
            ("sasl.mechanism", "SCRAM-SHA-512".to_string()),
            ("sasl.username", "cutover".to_string()),
            ("sasl.password", pw.to_string()),
            ("ssl.ca.location", ca.to_string()),
        ]
    };
    let as_file = |name: &str, lines: Vec<(&str, String)>| {
        let borrowed: Vec<(&str, &str)> = lines.iter().map(|(k, v)| (*k, v.as_str())).collect();
        props_file(name, &borrowed)
    };
    let wrong = as_file("kafka-wrong-pw", sasl(wrong_password, &ca));
    // The real password in a file that trusts another CA: TLS fails before any credential is sent.
    let unknown_ca = as_file("kafka-unknown-ca", sasl(&password, &other_ca));

    // The probe's deadline is 60 s: each of these must end by its cause, long before.
    let cases: Vec<(&str, Option<&Path>, &str)> = vec![
        ("wrong-password", Some(wrong.as_path()), "rejected the SASL credentials"),
        ("unknown-ca", Some(unknown_ca.as_path()), "TLS verification of the broker's certificate failed"),
        ("plaintext", None, "speaks TLS but the client connected in plaintext"),
    ];
    for (name, config, cause) in cases {
        let (code, log, secs) = bad_start(&sc, name, &sec.brokers, config, "60s");
        eprintln!("{name}: exit {code:?} after {secs:.1}s: {}", log.lines().filter(|l| l.contains("kafka unavailable")).collect::<Vec<_>>().join(" | "));
        assert_eq!(code, Some(5), "{name}: exit code 5: {log}");
        assert!(log.contains(cause), "{name}: the message names the cause ({cause}): {log}");
        assert!(secs < 15.0, "{name}: exited after {secs:.1}s, not at once");
        assert!(!log.contains(&password) && !log.contains(wrong_password), "{name}: a secret in the log");
    }

    // Nothing listening: bounded by --kafka-connect-timeout.
    let nowhere = format!("127.0.0.1:{}", cutover::procs::free_port());
    let (code, log, secs) = bad_start(&sc, "unreachable", &nowhere, None, "3s");
    eprintln!("unreachable: exit {code:?} after {secs:.1}s");
    assert_eq!(code, Some(5), "{log}");
    assert!(log.contains("cannot connect to any broker"), "{log}");
    assert!(secs < 20.0, "bounded by the probe's deadline: {secs:.1}s");

    assert_eq!(sc.committed(), vec![-1001], "none of them joined the group and committed anything");
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsafe_overrides_and_secrets_on_the_command_line_are_refused() {
    let sc = Scenario::new("koverride", 1).await;
    let cases: [(&str, &[&str], &str); 4] = [
        ("auto-store", &["-X", "enable.auto.offset.store=true"], "enable.auto.offset.store=true is refused"),
        ("reset-latest", &["-X", "auto.offset.reset=latest"], "auto.offset.reset=latest is refused"),
        ("uncommitted", &["-X", "isolation.level=read_uncommitted"], "isolation.level=read_uncommitted is refused"),
        ("secret", &["-X", "sasl.password=hunter2-on-argv"], "puts a secret on the command line"),
    ];
    for (name, extra, message) in cases {
        let p = sc.start_indexer(name, extra);
        let status = p.wait(Duration::from_secs(30));
        let log = log_of(&format!("{}-{name}", sc.topic));
        assert_eq!(status.code(), Some(2), "{name}: refused to start: {log}");
        assert!(log.contains(message), "{name}: {log}");
        assert!(!log.contains("hunter2-on-argv"), "{name}: the refusal does not repeat the secret");
        assert!(!log.contains("kafka reachable"), "{name}: refused before connecting to Kafka");
    }
    // The group was never joined: the broker does not know it.
    let consumer: BaseConsumer = kafka::config(&sc.s.kafka).create().unwrap();
    let groups = consumer.fetch_group_list(Some(&sc.group), Duration::from_secs(10)).unwrap();
    let known: Vec<_> = groups.groups().iter().filter(|g| g.name() == sc.group && g.state() != "Dead").map(|g| g.state().to_string()).collect();
    assert!(known.is_empty(), "group {} exists: {known:?}", sc.group);
    assert_eq!(sc.committed(), vec![-1001]);
    sc.cleanup().await;
}

/// Runs Kafka's ConfigCommand against the secured listener as the node's admin user.
fn kafka_configs(sec: &SecureKafka, args: &[&str]) {
    let tools = sec.config.with_file_name("tools.properties");
    let tools = tools.display().to_string();
    let mut all = vec!["kafka-tool", "kafka.admin.ConfigCommand", "--bootstrap-server", &sec.brokers, "--command-config", &tools];
    all.extend_from_slice(args);
    cutover::procs::services(&all);
}

/// Credentials revoked while the indexer runs: it stops by itself (exit code 5, naming the
/// cause) instead of retrying silently, dead-letters nothing, commits nothing past what it
/// applied; with valid credentials it resumes from the committed offsets and converges.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_revoked_mid_run_stop_the_indexer_cleanly() {
    let sec = SecureKafka::require();
    let mut sc = Scenario::on_kafka("krevoke", 1, Some(&sec.brokers)).await;
    // A user of its own, to revoke (its throwaway password is on the tool's command line).
    let user = unique("revocable");
    let user_password = unique("pw");
    let scram = format!("SCRAM-SHA-512=[iterations=4096,password={user_password}]");
    kafka_configs(&sec, &["--alter", "--add-config", &scram, "--entity-type", "users", "--entity-name", &user]);
    let ca = sec.prop("ssl.ca.location");
    let config = props_file(
        "kafka-revocable",
        &[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", &user),
            ("sasl.password", &user_password),
            ("ssl.ca.location", &ca),
        ],
    );
    let config = config.display().to_string();
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 40, 600, 21));
    sc.live(&cmds[..200]).await;
    let p = sc.start_indexer("revoked", &["--kafka-config", &config]);
    wait_ready(&p).await;

    // Revoke while traffic goes on (the broker makes clients re-authenticate every 10 s).
    kafka_configs(&sec, &["--alter", "--delete-config", "SCRAM-SHA-512", "--entity-type", "users", "--entity-name", &user]);
    let revoked = Instant::now();
    let mut p = p;
    let mut sent = 200;
    while p.running() && revoked.elapsed() < Duration::from_secs(60) {
        if sent < cmds.len() {
            sc.produce(&cmds[sent..sent + 50]).await;
            sent += 50;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = p.wait(Duration::from_secs(30));
    let secs = revoked.elapsed().as_secs_f64();
    let log = log_of(&format!("{}-revoked", sc.topic));
    eprintln!(
        "revoked: exit {:?} {secs:.1}s after the revocation: {}",
        status.code(),
        log.lines().filter(|l| l.contains("kafka unavailable")).collect::<Vec<_>>().join(" | ")
    );
    assert_eq!(status.code(), Some(5), "exit code 5: {log}");
    assert!(log.contains("rejected the SASL credentials"), "the cause is named: {log}");
    assert!(!log.contains(&user_password), "the secret is not logged");
    let committed = sc.committed()[0];
    assert!(committed >= 200 && committed <= sent as i64, "committed {committed} of {sent}");
    assert!(kafka::read_all(&sc.s.kafka, &format!("{}.dlq", sc.topic), 1, Duration::from_secs(3)).is_empty(), "nothing dead-lettered");

    // The rest of the traffic; the legacy cluster gets it all; valid credentials resume the replay.
    if sent < cmds.len() {
        sc.produce(&cmds[sent..]).await;
    }
    sc.legacy.apply(&cmds[200..]).await.expect("legacy indexer");
    let secure_config = sec.config.display().to_string();
    sc.run_indexer_to_idle("resumed", &["--kafka-config", &secure_config], Duration::from_secs(60));
    assert_eq!(sc.committed(), vec![cmds.len() as i64]);
    sc.assert_converged().await;
    sc.cleanup().await;
}
