//! One side's digests for verify's join: (document, version, source hash) records, kept sorted
//! by document in bounded memory.
//!
//! A walk pushes its pages' digests into a [`Spill`]. Past `cap` records the buffer is sorted
//! and written to a run file (in a folder of its own under the spill directory, removed when
//! the spill is dropped); [`Spill::finish`] merges the runs and what is left in memory into
//! one stream sorted by (id, routing), each document once. Memory is the buffer (`cap`
//! records, about 100 bytes each) plus one read buffer per run, whatever the index's size; the
//! disk holds about 40 bytes plus the id per document and side.
//!
//! A scan may read a document twice (a resume re-reads the documents at its floor, a `_doc`
//! scroll restarts its slice): records carry the order they were pushed in, and of one
//! document's records only the last one pushed is kept.

use super::DocRef;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// One document as a walk saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Digest {
    pub key: DocRef,
    pub version: u64,
    /// Hash of the (target-form) source; `None`: the legacy source cannot be rewritten.
    pub hash: Option<u64>,
    /// Push order, so that the last read of a document wins.
    seq: u64,
}

impl Digest {
    fn order(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key).then(self.seq.cmp(&other.seq))
    }

    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let text = |w: &mut dyn Write, s: &str| -> io::Result<()> {
            w.write_all(&(s.len() as u32).to_le_bytes())?;
            w.write_all(s.as_bytes())
        };
        text(w, &self.key.id)?;
        match &self.key.routing {
            Some(r) => {
                w.write_all(&[1])?;
                text(w, r)?;
            }
            None => w.write_all(&[0])?,
        }
        w.write_all(&self.version.to_le_bytes())?;
        w.write_all(&self.seq.to_le_bytes())?;
        match self.hash {
            Some(h) => {
                w.write_all(&[1])?;
                w.write_all(&h.to_le_bytes())
            }
            None => w.write_all(&[0]),
        }
    }

    /// The next record of a run; `None` at its end.
    fn read(r: &mut impl Read) -> io::Result<Option<Digest>> {
        fn bytes<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
            let mut b = [0u8; N];
            r.read_exact(&mut b)?;
            Ok(b)
        }
        fn text(r: &mut impl Read) -> io::Result<String> {
            let mut s = vec![0u8; u32::from_le_bytes(bytes(r)?) as usize];
            r.read_exact(&mut s)?;
            String::from_utf8(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        // The end of a run is the end of a record; a run cut inside one is an error.
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < len.len() {
            match r.read(&mut len[got..])? {
                0 if got == 0 => return Ok(None),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            }
        }
        let mut id = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut id)?;
        let id = String::from_utf8(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let routing = if bytes::<1>(r)?[0] == 1 { Some(text(r)?) } else { None };
        let version = u64::from_le_bytes(bytes(r)?);
        let seq = u64::from_le_bytes(bytes(r)?);
        let hash = if bytes::<1>(r)?[0] == 1 { Some(u64::from_le_bytes(bytes(r)?)) } else { None };
        Ok(Some(Digest { key: DocRef { id, routing }, version, hash, seq }))
    }
}

/// A side's digests being collected: sorted runs on disk past `cap` records.
pub(crate) struct Spill {
    side: &'static str,
    dir: PathBuf,
    cap: usize,
    buf: Vec<Digest>,
    runs: Vec<PathBuf>,
    seq: u64,
}

impl Spill {
    /// A spill of at most `cap` records in memory; its runs go to a folder of its own under
    /// `parent`, made at the first run.
    pub fn new(parent: &Path, side: &'static str, cap: usize) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = parent.join(format!("cutover-verify-{side}-{}-{nanos}", std::process::id()));
        Spill { side, dir, cap: cap.max(1), buf: Vec::new(), runs: Vec::new(), seq: 0 }
    }

    /// Adds a document as the walk read it.
    pub fn push(&mut self, key: DocRef, version: u64, hash: Option<u64>) -> io::Result<()> {
        self.seq += 1;
        self.buf.push(Digest { key, version, hash, seq: self.seq });
        if self.buf.len() >= self.cap {
            self.write_run()?;
        }
        Ok(())
    }

    /// How many run files were written.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn write_run(&mut self) -> io::Result<()> {
        if self.runs.is_empty() {
            std::fs::create_dir_all(&self.dir)?;
        }
        self.buf.sort_unstable_by(Digest::order);
        let path = self.dir.join(format!("run-{}", self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 16, File::create(&path)?);
        for d in self.buf.drain(..) {
            d.write(&mut w)?;
        }
        w.flush()?;
        tracing::debug!(side = self.side, run = self.runs.len(), "verify digests spilled to disk");
        self.runs.push(path);
        Ok(())
    }

    /// Every digest pushed, sorted by document, the last read of each document only.
    pub fn finish(mut self) -> io::Result<Sorted> {
        self.buf.sort_unstable_by(Digest::order);
        let mut heads = BinaryHeap::new();
        let mut readers = Vec::with_capacity(self.runs.len());
        for (i, path) in self.runs.iter().enumerate() {
            let mut r = BufReader::with_capacity(1 << 16, File::open(path)?);
            if let Some(d) = Digest::read(&mut r)? {
                heads.push(Head(d, i));
            }
            readers.push(r);
        }
        let memory = std::mem::take(&mut self.buf).into_iter();
        Ok(Sorted { heads, readers, memory: memory.peekable(), next: None, _spill: self })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        if !self.runs.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A run's current record, ordered for a min-heap.
struct Head(Digest, usize);

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.order(&self.0) // reversed: BinaryHeap pops the greatest
    }
}

/// The merged stream of a [`Spill`] (which it keeps, so the runs live as long as it reads them).
pub(crate) struct Sorted {
    heads: BinaryHeap<Head>,
    readers: Vec<BufReader<File>>,
    memory: std::iter::Peekable<std::vec::IntoIter<Digest>>,
    /// A record read ahead (the first of the next document).
    next: Option<Digest>,
    _spill: Spill,
}

impl Sorted {
    /// The smallest record left, runs and memory merged.
    fn pop(&mut self) -> io::Result<Option<Digest>> {
        let from_runs = match (self.heads.peek(), self.memory.peek()) {
            (None, None) => return Ok(None),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Head(h, _)), Some(m)) => h.order(m) == Ordering::Less,
        };
        if !from_runs {
            return Ok(self.memory.next());
        }
        let Head(d, i) = self.heads.pop().expect("peeked");
        if let Some(n) = Digest::read(&mut self.readers[i])? {
            self.heads.push(Head(n, i));
        }
        Ok(Some(d))
    }

    /// The next document: the last-pushed of its records.
    pub fn next_doc(&mut self) -> io::Result<Option<Digest>> {
        let mut current = match self.next.take() {
            Some(d) => d,
            None => match self.pop()? {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        while let Some(d) = self.pop()? {
            if d.key != current.key {
                self.next = Some(d);
                break;
            }
            current = d; // same document, pushed later
        }
        Ok(Some(current))
    }
}

/// Walks two sorted streams side by side: `on(key, legacy, target)` for every document of
/// either, in order, with what each side holds of it.
pub(crate) fn join(mut legacy: Sorted, mut target: Sorted, mut on: impl FnMut(DocRef, Option<Digest>, Option<Digest>)) -> io::Result<()> {
    let (mut l, mut t) = (legacy.next_doc()?, target.next_doc()?);
    loop {
        let order = match (&l, &t) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.key.cmp(&b.key),
        };
        match order {
            Ordering::Less => {
                let d = l.take().expect("legacy side");
                on(d.key.clone(), Some(d), None);
                l = legacy.next_doc()?;
            }
            Ordering::Greater => {
                let d = t.take().expect("target side");
                on(d.key.clone(), None, Some(d));
                t = target.next_doc()?;
            }
            Ordering::Equal => {
                let (a, b) = (l.take().expect("legacy side"), t.take().expect("target side"));
                on(a.key.clone(), Some(a), Some(b));
                l = legacy.next_doc()?;
                t = target.next_doc()?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> DocRef {
        DocRef::new(format!("doc-{i:05}"), i.is_multiple_of(3).then_some("r"))
    }

    fn collect(mut s: Sorted) -> Vec<(DocRef, u64)> {
        let mut out = Vec::new();
        while let Some(d) = s.next_doc().unwrap() {
            out.push((d.key, d.version));
        }
        out
    }

    #[test]
    fn spilled_runs_merge_sorted_and_the_last_read_wins() {
        let dir = std::env::temp_dir();
        let mut spill = Spill::new(&dir, "test", 7);
        // 50 documents pushed in a scrambled order, 10 of them read a second time later with
        // a newer version, the buffer holding 7: several runs and a remainder in memory.
        for i in (0..50u64).map(|i| (i * 37) % 50) {
            spill.push(key(i), i, Some(i)).unwrap();
        }
        for i in 0..10u64 {
            spill.push(key(i * 5), 1000 + i, None).unwrap();
        }
        assert!(spill.runs() >= 7, "the test spills: {} runs", spill.runs());
        let run_dir = spill.dir.clone();
        let got = collect(spill.finish().unwrap());
        let mut want: Vec<(DocRef, u64)> = (0..50u64).map(|i| (key(i), if i % 5 == 0 { 1000 + i / 5 } else { i })).collect();
        want.sort();
        assert_eq!(got, want);
        assert!(!run_dir.exists(), "the runs are removed with the spill");
    }

    #[test]
    fn records_survive_their_encoding() {
        let d = Digest { key: DocRef::new("é \"x\"\n", Some("routé")), version: u64::MAX, hash: Some(7), seq: 3 };
        let plain = Digest { key: DocRef::new("", None), version: 0, hash: None, seq: 4 };
        let mut bytes = Vec::new();
        d.write(&mut bytes).unwrap();
        plain.write(&mut bytes).unwrap();
        let mut r = bytes.as_slice();
        assert_eq!(Digest::read(&mut r).unwrap(), Some(d));
        assert_eq!(Digest::read(&mut r).unwrap(), Some(plain));
        assert_eq!(Digest::read(&mut r).unwrap(), None);
        // A run cut inside a record is an error, never a shorter run.
        let cut = &bytes[..bytes.len() - 3];
        let mut r = cut;
        assert!(Digest::read(&mut r).unwrap().is_some());
        assert!(Digest::read(&mut r).is_err());
        let mut r = &bytes[..2];
        assert!(Digest::read(&mut r).is_err());
    }

    #[test]
    fn join_meets_every_document_of_either_side_once() {
        let dir = std::env::temp_dir();
        let (mut l, mut t) = (Spill::new(&dir, "l", 4), Spill::new(&dir, "t", 4));
        for i in 0..20u64 {
            if i % 4 != 1 {
                l.push(key(i), i, Some(i)).unwrap();
            }
            if i % 4 != 2 {
                t.push(key(i), i, Some(i)).unwrap();
            }
        }
        let mut seen = Vec::new();
        join(l.finish().unwrap(), t.finish().unwrap(), |k, a, b| seen.push((k, a.is_some(), b.is_some()))).unwrap();
        let mut want: Vec<(DocRef, bool, bool)> = (0..20u64).map(|i| (key(i), i % 4 != 1, i % 4 != 2)).collect();
        want.sort();
        assert_eq!(seen, want);
    }
}
