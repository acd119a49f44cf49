//! The audit journal: audit events whose callers should not wait for a source-chain commit, such as
//! the answers of an inference query. `write` makes the events durable on this node's disk (written,
//! fsync'd, renamed into place) and returns; `run` commits what is pending to the policy_store chain
//! in order, up to `AUDIT_BATCH_MAX` events per commit, and deletes each file once its events are on
//! the chain. Files a crash left behind are committed on the next start. A batch whose earlier
//! commit may or may not have happened (a replay, a failed call) is first compared with the chain,
//! so no event is recorded twice.
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use policy_store_types::{AuditEvent, AUDIT_BATCH_MAX};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

/// The journal's directory in a node's data dir.
pub const AUDIT_JOURNAL_DIR: &str = "audit-journal";
/// Events written with `Commit::WithNext` wait at most this long; a failed commit is retried as often.
pub const HOLD_MAX: Duration = Duration::from_secs(5);
/// How long a stopping node keeps trying to commit what is pending (the rest waits for its restart).
pub const STOP_DRAIN: Duration = Duration::from_secs(10);

/// Where a journal's events go: this node's `audit` zome.
pub trait AuditSink: Send + Sync {
    /// Commits `events` (1 to `AUDIT_BATCH_MAX`) in one commit, in order.
    fn commit(&self, events: &[AuditEvent]) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// This node's events about `subject` that are on its chain.
    fn recorded(&self, subject: &str) -> impl Future<Output = anyhow::Result<Vec<AuditEvent>>> + Send;
}

/// When written events go to the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Right away, in the background.
    Soon,
    /// With the next `Soon` write or `commit_now`, or after `HOLD_MAX`: for events in the middle of
    /// work whose end commits something else first (a query's answers before its merge decision).
    WithNext,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("audit event refused: {0}")]
    Invalid(String),
    #[error("the audit journal {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// One file's content.
#[derive(Serialize, Deserialize)]
struct Entry {
    events: Vec<AuditEvent>,
}

struct Pending {
    events: Vec<AuditEvent>,
    /// A commit of these events may already have happened: check the chain before committing.
    uncertain: bool,
}

#[derive(Default)]
struct State {
    /// The next file's sequence number; file names sort in this order.
    next: u64,
    pending: BTreeMap<u64, Pending>,
}

pub struct AuditJournal {
    dir: PathBuf,
    state: Mutex<State>,
    wake: Notify,
    /// Bumped whenever pending events were committed, for `flush`.
    committed: watch::Sender<u64>,
}

impl AuditJournal {
    /// Opens (creating) the journal in `dir`; what a previous run left pending is committed first.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut state = State::default();
        for item in std::fs::read_dir(dir).map_err(io)? {
            let path = item.map_err(io)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".tmp") {
                // A write that never returned to its caller.
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
            let Some(seq) = name.strip_suffix(".json").and_then(|s| s.parse::<u64>().ok()) else { continue };
            let read = std::fs::read(&path).map_err(|source| JournalError::Io { path: path.clone(), source })?;
            match serde_json::from_slice::<Entry>(&read) {
                Ok(entry) => {
                    state.pending.insert(seq, Pending { events: entry.events, uncertain: true });
                }
                Err(e) => {
                    let kept = path.with_extension("unreadable");
                    tracing::error!(
                        "audit journal: {} is unreadable ({e}); kept as {}",
                        path.display(),
                        kept.display()
                    );
                    std::fs::rename(&path, &kept).map_err(|source| JournalError::Io { path, source })?;
                }
            }
            state.next = state.next.max(seq + 1);
        }
        if !state.pending.is_empty() {
            let events: usize = state.pending.values().map(|p| p.events.len()).sum();
            tracing::info!("audit journal: {events} event(s) written before the last stop are committed now");
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
            wake: Notify::new(),
            committed: watch::channel(0).0,
        })
    }

    /// Makes `events` durable on this node (1 to `AUDIT_BATCH_MAX`, each valid by rule AU1) and
    /// returns; they are committed to the chain `when`.
    pub async fn write(&self, events: Vec<AuditEvent>, when: Commit) -> Result<(), JournalError> {
        if events.is_empty() {
            return Ok(());
        }
        if events.len() > AUDIT_BATCH_MAX {
            return Err(JournalError::Invalid(format!(
                "at most {AUDIT_BATCH_MAX} events at once, not {}",
                events.len()
            )));
        }
        for event in &events {
            event.check().map_err(|e| JournalError::Invalid(format!("{} {}: {e}", event.category, event.subject)))?;
        }
        let seq = {
            let mut state = self.lock();
            state.next += 1;
            state.next - 1
        };
        let path = self.dir.join(format!("{seq:020}.json"));
        let entry = Entry { events };
        let content = serde_json::to_vec(&entry).expect("audit events serialize");
        let dir = self.dir.clone();
        let written = tokio::task::spawn_blocking(move || write_durably(&dir, &path, &content))
            .await
            .expect("the journal write does not panic");
        written?;
        self.lock().pending.insert(seq, Pending { events: entry.events, uncertain: false });
        if when == Commit::Soon {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Commits everything pending now (in the background).
    pub fn commit_now(&self) {
        self.wake.notify_one();
    }

    /// Waits (at most `wait`) until everything written before this call is on the chain; false when
    /// some of it is still pending then.
    pub async fn flush(&self, wait: Duration) -> bool {
        let target = {
            let state = self.lock();
            if state.pending.is_empty() {
                return true;
            }
            state.next
        };
        let mut committed = self.committed.subscribe();
        self.wake.notify_one();
        let done = || self.lock().pending.keys().next().is_none_or(|first| *first >= target);
        tokio::time::timeout(wait, async {
            while !done() {
                if committed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && done()
    }

    /// Events not yet on the chain.
    pub fn pending(&self) -> usize {
        self.lock().pending.values().map(|p| p.events.len()).sum()
    }

    /// Commits what is pending (first what a previous run left), then whenever woken and every
    /// `HOLD_MAX`, until `stop`; then keeps trying for up to `STOP_DRAIN` before it returns.
    pub async fn run<S: AuditSink>(&self, sink: &S, mut stop: watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            self.drain(sink, &mut failing).await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(HOLD_MAX) => {}
                _ = stop.changed() => break,
            }
        }
        let left = self.pending();
        if left > 0 && tokio::time::timeout(STOP_DRAIN, self.drain(sink, &mut failing)).await.is_err() {
            tracing::warn!("audit journal: {left} event(s) stay in {} until the next start", self.dir.display());
        }
    }

    /// Commits pending batches in order until none is left or one fails (retried on the next round).
    async fn drain<S: AuditSink>(&self, sink: &S, failing: &mut bool) {
        while let Some((seqs, events, uncertain)) = self.next_batch() {
            match commit_batch(sink, &events, uncertain).await {
                Ok(()) => {
                    if std::mem::take(failing) {
                        tracing::info!("audit journal: committing again");
                    }
                    self.lock().pending.retain(|seq, _| !seqs.contains(seq));
                    for seq in &seqs {
                        let path = self.dir.join(format!("{seq:020}.json"));
                        // Not durable yet: a file that comes back after a crash is checked against the chain.
                        if let Err(e) = std::fs::remove_file(&path) {
                            tracing::warn!("audit journal: {} is committed but not removed: {e}", path.display());
                        }
                    }
                    self.committed.send_modify(|n| *n += 1);
                }
                Err(e) => {
                    if !std::mem::replace(failing, true) {
                        tracing::warn!(
                            "audit journal: {} event(s) could not be committed yet, retrying every {}s: {e:#}",
                            events.len(),
                            HOLD_MAX.as_secs()
                        );
                    }
                    let mut state = self.lock();
                    for seq in &seqs {
                        if let Some(p) = state.pending.get_mut(seq) {
                            p.uncertain = true;
                        }
                    }
                    return;
                }
            }
        }
    }

    /// The oldest pending files whose events fit in one commit.
    fn next_batch(&self) -> Option<(Vec<u64>, Vec<AuditEvent>, bool)> {
        let state = self.lock();
        let (mut seqs, mut events, mut uncertain) = (Vec::new(), Vec::new(), false);
        for (seq, pending) in &state.pending {
            if !events.is_empty() && events.len() + pending.events.len() > AUDIT_BATCH_MAX {
                break;
            }
            seqs.push(*seq);
            events.extend(pending.events.iter().cloned());
            uncertain |= pending.uncertain;
        }
        (!seqs.is_empty()).then_some((seqs, events, uncertain))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Commits `events`, leaving out those an earlier commit of an `uncertain` batch already recorded.
async fn commit_batch<S: AuditSink>(sink: &S, events: &[AuditEvent], uncertain: bool) -> anyhow::Result<()> {
    let mut missing = events.to_vec();
    if uncertain {
        let mut subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
        subjects.sort_unstable();
        subjects.dedup();
        for subject in subjects {
            for recorded in sink.recorded(subject).await? {
                if let Some(i) = missing.iter().position(|e| *e == recorded) {
                    missing.remove(i);
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    sink.commit(&missing).await
}

/// Writes `content` to `path` so that after a crash the file is either whole or absent.
fn write_durably(dir: &Path, path: &Path, content: &[u8]) -> Result<(), JournalError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let io = |source| JournalError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(content).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A chain in memory that can be down.
    #[derive(Default)]
    struct Chain {
        down: std::sync::atomic::AtomicBool,
        commits: Mutex<Vec<Vec<AuditEvent>>>,
    }

    impl AuditSink for Chain {
        async fn commit(&self, events: &[AuditEvent]) -> anyhow::Result<()> {
            anyhow::ensure!(!self.down.load(std::sync::atomic::Ordering::SeqCst), "conductor unreachable");
            self.commits.lock().unwrap().push(events.to_vec());
            Ok(())
        }
        async fn recorded(&self, subject: &str) -> anyhow::Result<Vec<AuditEvent>> {
            anyhow::ensure!(!self.down.load(std::sync::atomic::Ordering::SeqCst), "conductor unreachable");
            Ok(self.events().into_iter().filter(|e| e.subject == subject).collect())
        }
    }

    impl Chain {
        fn events(&self) -> Vec<AuditEvent> {
            self.commits.lock().unwrap().iter().flatten().cloned().collect()
        }
    }

    fn event(subject: &str) -> AuditEvent {
        AuditEvent {
            category: "inference.response".into(),
            subject: subject.into(),
            outcome: "ok".into(),
            detail: "sha256 abc".into(),
            references: vec!["trace-1".into()],
        }
    }

    /// A journal directory of its own, removed when dropped.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch_dir(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ripple-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// The committer of a journal, running against a chain in the background.
    struct Committer {
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Committer {
        fn start(journal: &Arc<AuditJournal>, chain: &Arc<Chain>) -> Self {
            let (stop, stop_rx) = watch::channel(false);
            let (journal, chain) = (journal.clone(), chain.clone());
            Self { stop, task: tokio::spawn(async move { journal.run(chain.as_ref(), stop_rx).await }) }
        }

        /// Stops it and waits until it has returned (after its final commit).
        async fn stop(self) {
            self.stop.send(true).unwrap();
            self.task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn written_events_are_on_disk_before_write_returns_and_committed_in_order() {
        let scratch = scratch_dir("order");
        let dir = &scratch.0;
        let journal = Arc::new(AuditJournal::open(dir).unwrap());
        let chain = Arc::new(Chain::default());
        journal.write(vec![event("smol-a")], Commit::WithNext).await.unwrap();
        journal.write(vec![event("smol-b"), event("smol-c")], Commit::WithNext).await.unwrap();
        assert_eq!(files(dir), ["00000000000000000000.json", "00000000000000000001.json"]);
        let committer = Committer::start(&journal, &chain);
        journal.write(vec![event("trace-1")], Commit::Soon).await.unwrap();
        assert!(journal.flush(Duration::from_secs(5)).await);
        let subjects: Vec<String> = chain.events().into_iter().map(|e| e.subject).collect();
        assert_eq!(subjects, ["smol-a", "smol-b", "smol-c", "trace-1"]);
        let first = chain.commits.lock().unwrap()[0].len();
        assert!(first >= 3, "the pending files go in one commit ({first} events)");
        assert!(files(dir).is_empty(), "committed files are removed");
        committer.stop().await;
    }

    #[tokio::test]
    async fn a_crash_leaves_the_events_which_the_next_start_commits_once() {
        let scratch = scratch_dir("crash");
        let dir = &scratch.0;
        let chain = Arc::new(Chain::default());
        {
            // The first run commits one file, then "crashes" with the second uncommitted and the
            // first still on disk (as if the crash came between the commit and the removal).
            let journal = AuditJournal::open(dir).unwrap();
            journal.write(vec![event("smol-a")], Commit::WithNext).await.unwrap();
            chain.commit(&[event("smol-a")]).await.unwrap();
            journal.write(vec![event("smol-b")], Commit::WithNext).await.unwrap();
            std::fs::write(dir.join("00000000000000000002.tmp"), b"{\"eve").unwrap();
        }
        let journal = Arc::new(AuditJournal::open(dir).unwrap());
        assert_eq!(journal.pending(), 2);
        assert_eq!(files(dir), ["00000000000000000000.json", "00000000000000000001.json"], "the torn write is gone");
        let committer = Committer::start(&journal, &chain);
        assert!(journal.flush(Duration::from_secs(5)).await);
        let subjects: Vec<String> = chain.events().into_iter().map(|e| e.subject).collect();
        assert_eq!(subjects, ["smol-a", "smol-b"], "smol-a is not recorded twice");
        journal.write(vec![event("smol-c")], Commit::Soon).await.unwrap();
        assert!(journal.flush(Duration::from_secs(5)).await);
        assert!(files(dir).is_empty());
        committer.stop().await;
    }

    #[tokio::test]
    async fn a_chain_that_is_down_keeps_the_events_until_it_is_back() {
        let scratch = scratch_dir("down");
        let dir = &scratch.0;
        let journal = Arc::new(AuditJournal::open(dir).unwrap());
        let chain = Arc::new(Chain::default());
        chain.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let committer = Committer::start(&journal, &chain);
        journal.write(vec![event("smol-a")], Commit::Soon).await.unwrap();
        assert!(!journal.flush(Duration::from_millis(300)).await, "nothing commits while the chain is down");
        assert_eq!(journal.pending(), 1);
        chain.down.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(journal.flush(HOLD_MAX * 3).await, "the retry commits it");
        assert_eq!(chain.events(), [event("smol-a")]);
        committer.stop().await;
    }

    #[tokio::test]
    async fn invalid_events_are_refused_before_they_are_written() {
        let scratch = scratch_dir("invalid");
        let dir = &scratch.0;
        let journal = AuditJournal::open(dir).unwrap();
        let bad = AuditEvent { outcome: "Not OK!".into(), ..event("smol-a") };
        let err = journal.write(vec![event("smol-b"), bad], Commit::Soon).await.unwrap_err();
        assert!(err.to_string().contains("audit event refused: inference.response smol-a"), "{err}");
        let too_many = journal.write(vec![event("x"); AUDIT_BATCH_MAX + 1], Commit::Soon).await.unwrap_err();
        assert!(too_many.to_string().contains("at most 32 events at once, not 33"), "{too_many}");
        assert!(files(dir).is_empty());
    }

    #[tokio::test]
    async fn a_stopping_node_commits_what_is_pending() {
        let scratch = scratch_dir("stop");
        let dir = &scratch.0;
        let journal = Arc::new(AuditJournal::open(dir).unwrap());
        let chain = Arc::new(Chain::default());
        let committer = Committer::start(&journal, &chain);
        journal.write(vec![event("smol-a")], Commit::WithNext).await.unwrap();
        committer.stop().await;
        assert_eq!(chain.events(), [event("smol-a")]);
        assert!(files(dir).is_empty());
    }
}
