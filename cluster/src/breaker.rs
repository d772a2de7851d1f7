//! The poison breaker: a systematic stream of "bad" records is a fault, not bad records.
//!
//! Records that are really wrong are rare and scattered among good ones. When the target (or
//! the decoder) refuses record after record, the cause is almost always on the cluster's side
//! or in the configuration (a mapping that does not match the data, a wrong `--index-map`, a
//! new field the target's mapping refuses), and dead-lettering on would move the whole topic
//! into the dead-letter topic while every signal says all is well. The breaker trips when
//!
//! - `max_run` records in a row were judged poison (no record written between them), or
//! - more than `max_ratio` of the last [`WINDOW`] records were judged poison,
//!
//! and the writer then halts without committing (indexer) or checkpointing (backfill) past the
//! record that tripped it. Both writers use it with the same defaults ([`Limits::default`]).

use std::collections::VecDeque;
use std::fmt;

/// Records the ratio is measured over.
pub const WINDOW: usize = 1000;

/// When the breaker trips.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Poison records in a row (none written between them) that trip it.
    pub max_run: u64,
    /// Share of the last [`WINDOW`] records that may be poison (0.0..=1.0); more trips it.
    pub max_ratio: f64,
}

impl Default for Limits {
    /// 50 in a row, or more than 10 % of the last 1000: far above the scattered bad records of
    /// a healthy topic, far below "everything fails".
    fn default() -> Self {
        Limits { max_run: 50, max_ratio: 0.1 }
    }
}

/// The breaker's flags, shared by `indexer` and `backfill copy`.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct BreakerArgs {
    /// Poison breaker: halt (indexer exit 3, backfill copy exit 5) when this many records in a
    /// row are judged bad (dead letters, or documents the copy cannot write) with none written
    /// between them. Bad records are rare and scattered; a stream of them is a fault of the
    /// target or the configuration (a mapping that does not fit the data, a wrong
    /// --index-map), and dead-lettering on would move the whole topic aside. Nothing past the
    /// record that trips it is committed or checkpointed.
    #[arg(long, default_value_t = Limits::default().max_run)]
    pub max_poison_run: u64,
    /// Poison breaker: halt when more than this share (0.0 to 1.0) of the last 1000 records were
    /// judged bad, scattered or not.
    #[arg(long, default_value_t = Limits::default().max_ratio, value_parser = parse_ratio)]
    pub max_poison_ratio: f64,
}

impl From<&BreakerArgs> for Limits {
    fn from(a: &BreakerArgs) -> Self {
        Limits { max_run: a.max_poison_run.max(1), max_ratio: a.max_poison_ratio }
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}`: expected a share between 0.0 and 1.0 (e.g. 0.1 for 10 %)")),
    }
}

/// Why the breaker tripped, for the halt message.
#[derive(Clone, Debug, PartialEq)]
pub struct Tripped {
    /// Poison records in a row when it tripped.
    pub run: u64,
    /// Poison records among the last `window` records.
    pub in_window: usize,
    pub window: usize,
    pub limits: Limits,
}

impl fmt::Display for Tripped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "systematic failures: {} records in a row judged bad ({} of the last {}); limits: {} in a row, {:.0} % of the last {}. \
             This is almost never the records' fault: check the target's mapping against the data, ingest pipelines and \
             index settings, and the index mapping (--index-map), then start again (nothing past these records was committed or checkpointed)",
            self.run,
            self.in_window,
            self.window,
            self.limits.max_run,
            self.limits.max_ratio * 100.0,
            WINDOW
        )
    }
}

/// Counts verdicts in the order they are reached.
#[derive(Debug)]
pub struct Breaker {
    limits: Limits,
    run: u64,
    /// The last [`WINDOW`] verdicts (true: poison), and how many of them are poison.
    recent: VecDeque<bool>,
    poison_in_window: usize,
}

impl Breaker {
    pub fn new(limits: Limits) -> Self {
        Breaker { limits, run: 0, recent: VecDeque::with_capacity(WINDOW), poison_in_window: 0 }
    }

    /// Records were written, superseded or found to need nothing: the run of poison ends.
    pub fn good(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.run = 0;
        for _ in 0..n.min(WINDOW as u64) {
            self.push(false);
        }
    }

    /// A record was judged poison after `written` records that were not (0: right after the
    /// last poison one): the writers' verdicts in the order they reach them. `Err` when this
    /// one trips the breaker: the caller must then halt without dead-lettering (or recording) it.
    pub fn poison_after(&mut self, written: u64) -> Result<(), Tripped> {
        self.good(written);
        self.poison()
    }

    /// A record was judged poison. `Err` when this one trips the breaker: the caller must then
    /// halt without dead-lettering (or recording) it.
    pub fn poison(&mut self) -> Result<(), Tripped> {
        let (run, in_window) = (self.run + 1, self.poison_in_window + 1);
        let over_ratio = in_window as f64 > self.limits.max_ratio * WINDOW as f64;
        if run >= self.limits.max_run || over_ratio {
            return Err(Tripped { run, in_window, window: (self.recent.len() + 1).min(WINDOW), limits: self.limits });
        }
        self.run = run;
        self.push(true);
        Ok(())
    }

    fn push(&mut self, poison: bool) {
        if self.recent.len() == WINDOW && self.recent.pop_front() == Some(true) {
            self.poison_in_window -= 1;
        }
        self.recent.push_back(poison);
        if poison {
            self.poison_in_window += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_poison_trips_it_and_a_good_record_ends_the_run() {
        let mut b = Breaker::new(Limits { max_run: 3, max_ratio: 1.0 });
        assert!(b.poison().is_ok());
        assert!(b.poison().is_ok());
        assert!(b.poison_after(1).is_ok(), "a written record ends the run");
        assert!(b.poison().is_ok());
        let tripped = b.poison().unwrap_err();
        assert_eq!((tripped.run, tripped.in_window), (3, 5));
        assert!(tripped.to_string().contains("check the target's mapping"), "{tripped}");
        assert!(b.poison().is_err(), "it stays tripped: the tripping record was not counted as dead-lettered");
    }

    #[test]
    fn scattered_poison_trips_it_only_past_the_ratio() {
        let limits = Limits { max_run: 1000, max_ratio: 0.1 };
        let mut b = Breaker::new(limits);
        // 1 in 20 for a long while: 5 %, never trips.
        for _ in 0..200 {
            b.good(19);
            assert!(b.poison().is_ok());
        }
        // 1 in 5 from now on: past 10 % of the window within a window's worth.
        let mut tripped = None;
        for i in 0..WINDOW {
            b.good(4);
            if let Err(t) = b.poison() {
                tripped = Some((i, t));
                break;
            }
        }
        let (i, t) = tripped.expect("trips at 20 %");
        assert!(i > 10 && i < WINDOW / 5, "tripped after {i} bad records");
        assert_eq!(t.in_window, 101);
    }

    #[test]
    fn the_window_forgets_old_poison() {
        let mut b = Breaker::new(Limits { max_run: 1000, max_ratio: 0.1 });
        for _ in 0..100 {
            b.poison().unwrap();
            b.good(1);
        }
        b.good(WINDOW as u64);
        for _ in 0..100 {
            b.poison().unwrap();
            b.good(1);
        }
    }
}
