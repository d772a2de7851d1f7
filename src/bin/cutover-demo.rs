//! `cutover-demo`: the legacy side of a live system, for the main job and for trying cutover.
//!
//! It creates the legacy index (dynamic tag map, as the team had it), generates a command
//! workload, and plays the legacy indexer: every command is applied to the legacy cluster and
//! produced to the command topic. First the history (as fast as possible), then live traffic at
//! a steady rate, so the migration runs against a system that keeps changing.

use clap::Parser;
use cutover::sim::{self, generate, LegacyIndexer, WorkloadSpec};
use cutover::{kafka, Services};
use std::time::{Duration, Instant};

/// Plays the legacy system: legacy index + command topic, history then live traffic.
#[derive(Parser, Debug)]
#[command(name = "cutover-demo", version, about, long_about)]
struct Args {
    /// Legacy index to create and feed.
    #[arg(long, default_value = "items")]
    index: String,
    /// Command topic.
    #[arg(long, default_value = "commands")]
    topic: String,
    /// Partitions of the command topic (created if absent).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Primary shards of the legacy index.
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Distinct documents.
    #[arg(long, default_value_t = 20_000)]
    docs: usize,
    /// Commands written as history before live traffic starts.
    #[arg(long, default_value_t = 60_000)]
    history: usize,
    /// Commands of live traffic after the history.
    #[arg(long, default_value_t = 10_000)]
    live: usize,
    /// Live traffic rate, commands per second.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Distinct tag keys (the legacy mapping explodes past ~1,000).
    #[arg(long, default_value_t = 600)]
    tag_keys: usize,
    /// Seed of the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Apply the commands to the legacy index only, producing nothing (builds a legacy index
    /// faster when its command topic is not wanted, e.g. by dev/bench.sh).
    #[arg(long)]
    no_topic: bool,
    /// Create a file at this path once the history is written (scripts wait for it).
    #[arg(long)]
    history_done_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let s = Services::from_env();
    let legacy = s.legacy();
    let (status, _) = legacy.request(elasticsearch::http::Method::Head, &format!("/{}", a.index), None).await?;
    if status == 404 {
        sim::create_legacy_index(&legacy, &a.index, a.shards).await?;
    }
    let topic = (!a.no_topic).then_some(a.topic.as_str());
    if let Some(t) = topic {
        kafka::create_topic(&s.kafka, t, a.partitions).await;
    }
    let spec = WorkloadSpec { tag_keys: a.tag_keys, ..WorkloadSpec::new(&a.index, a.docs, a.history + a.live, a.seed) };
    let cmds = generate(&spec);
    let producer = kafka::producer(&s.kafka);
    let mut legacy_indexer = LegacyIndexer::new(legacy, &a.index);

    let started = Instant::now();
    for chunk in cmds[..a.history].chunks(2000) {
        play(&mut legacy_indexer, &producer, topic, chunk).await?;
    }
    eprintln!("history: {} commands applied{} in {:.1}s", a.history, if a.no_topic { "" } else { " and produced" }, started.elapsed().as_secs_f64());
    if let Some(f) = &a.history_done_file {
        std::fs::write(f, "done\n")?;
    }

    let started = Instant::now();
    let per_tick = (a.rate / 10).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for chunk in cmds[a.history..].chunks(per_tick) {
        tick.tick().await;
        play(&mut legacy_indexer, &producer, topic, chunk).await?;
    }
    eprintln!("live: {} commands in {:.1}s", a.live, started.elapsed().as_secs_f64());
    Ok(())
}

/// Applies commands to the legacy cluster, then produces them (unless there is no topic): the
/// legacy indexer is ahead of (or level with) the topic, as in a real system where the topic is
/// its input.
async fn play(li: &mut LegacyIndexer, producer: &rdkafka::producer::FutureProducer, topic: Option<&str>, cmds: &[sim::SimCommand]) -> anyhow::Result<()> {
    li.apply(cmds).await?;
    let Some(topic) = topic else { return Ok(()) };
    let sends = cmds.iter().map(|c| {
        let payload = c.payload();
        async move { kafka::produce(producer, topic, Some(c.id.as_bytes()), &payload, &[]).await }
    });
    futures::future::join_all(sends).await;
    Ok(())
}
