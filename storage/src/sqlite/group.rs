//! Group commit: concurrent writes share one transaction, so one fsync.
//!
//! With `synchronous = FULL` every commit waits for an fsync of the WAL, which costs far
//! more than the writes themselves; publishes from many services (every account's PEP
//! is a service) would otherwise queue one fsync each behind the writer mutex.
//!
//! No writer thread is needed. A caller of [`Db::group_write`] queues its write (a
//! closure owning its arguments). If no batch is being committed, it becomes the
//! *leader*: it takes the whole queue, runs every write in one `IMMEDIATE` transaction
//! on the writer connection (each inside its own savepoint, so a write that fails rolls
//! back alone and the others still commit), commits once, then hands each caller its
//! result through a channel and wakes the waiters. Callers that queued while that
//! commit was in progress sleep on a condition variable; when woken, each either finds
//! its result (return) or, its write still queued and no leader active, leads the next
//! batch: everything queued during the previous fsync. A result is never handed out
//! before the commit that made it durable returned.
//!
//! Waiters sleep on the condition variable rather than on the writer mutex on purpose:
//! a first version queued them on the mutex, and callers whose write was already
//! committed then took the mutex one after the other just to learn it (a lock convoy),
//! which left the next batch almost empty (1.7 writes per commit with 16 threads).
//!
//! A single caller pays what [`Db::write`] pays (one transaction, one fsync). Under
//! concurrency the fsync is shared by everyone who arrived during the previous one.
//! Everything stays synchronous and on the callers' threads; the leader returns after
//! its one batch, so no caller commits for others indefinitely.
//!
//! Measured with `bench_put_item` (release, file database, each thread publishing to
//! its own service, 200-byte payloads, max_items 10) on the 2-vCPU development VM,
//! whose fsync takes about 140 µs:
//!
//! | threads | one commit per put | group commit              |
//! |---------|--------------------|---------------------------|
//! | 1       | ~5,300 put_item/s  | ~5,200/s (1 per commit)   |
//! | 4       | ~4,300/s           | ~8,400/s (2.2 per commit) |
//! | 16      | ~3,700/s           | ~15,500/s (8 per commit)  |
//!
//! (Runs vary by ±30% on this shared machine; the first run after a build is often
//! slower.) On a disk whose fsync takes milliseconds the per-commit column falls to a
//! few hundred per second while batches grow, which is where group commit matters most.

#[cfg(test)]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, TransactionBehavior};

use super::{Db, lock};
use crate::{Result, StorageError};

/// Most writes in one transaction: bounds how long one caller spends committing for
/// others (the rest stay queued for the next leader).
const MAX_BATCH: usize = 256;

/// A queued write: runs on whichever thread commits the batch, says whether it
/// succeeded (else its savepoint is rolled back), and returns how to deliver its result
/// once the batch's commit outcome is known.
type Job = Box<dyn FnOnce(&Connection) -> Ran + Send>;

struct Ran {
    ok: bool,
    deliver: Box<dyn FnOnce(std::result::Result<(), &StorageError>) + Send>,
}

/// The writes waiting for the next batch, and whether a leader is committing one.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    /// Signalled after every batch (results delivered, leadership free).
    done: Condvar,
}

#[derive(Default)]
struct State {
    jobs: Vec<Job>,
    leading: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().jobs.len()
    }
}

/// Gives up leadership and wakes the waiters, also when the batch panicked (a waiter
/// whose write was lost with it then sees its channel closed).
struct Leading<'a>(&'a Queue);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.lock().leading = false;
        self.0.done.notify_all();
    }
}

/// Test-only switch for the benchmark's baseline: off, every write is its own
/// transaction (batches of one), which is what [`Db::write`] does.
#[cfg(test)]
static BATCHING: AtomicBool = AtomicBool::new(true);

#[cfg(test)]
pub(crate) fn set_batching(on: bool) {
    BATCHING.store(on, Ordering::Relaxed);
}

/// Test-only count of committed batches, for the benchmark's average batch size.
#[cfg(test)]
pub(crate) static BATCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Db {
    /// Runs `f` atomically and durably, like [`Db::write`], but possibly in one
    /// transaction with other concurrent `group_write`s: when this returns `Ok`, the
    /// transaction that holds `f`'s changes has committed (fsynced). An `Err` from `f`
    /// undoes exactly `f`'s changes.
    ///
    /// `f` may run on another caller's thread, hence `Send + 'static`: it owns its
    /// arguments.
    pub(crate) fn group_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.group_queue(f).wait_on(self)
    }

    /// Queues `f` for the next batch without waiting for it: writes commit in the order
    /// they were queued. [`Ticket::wait`] (or `wait_on`) then does what `group_write`
    /// does after queueing, so the caller can let go of its own locks in between.
    pub(crate) fn group_queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Ticket<T> {
        let (tx, rx) = mpsc::sync_channel::<Result<T>>(1);
        let job: Job = Box::new(move |conn| match f(conn) {
            Ok(value) => Ran {
                ok: true,
                deliver: Box::new(move |committed| {
                    let out = committed
                        .map(|()| value)
                        .map_err(|e| StorageError::Backend(format!("group commit failed: {e}")));
                    let _ = tx.send(out);
                }),
            },
            Err(e) => Ran {
                ok: false,
                deliver: Box::new(move |_| {
                    let _ = tx.send(Err(e));
                }),
            },
        });
        self.queue.lock().jobs.push(job);
        Ticket { rx }
    }
}

/// A queued write's result, once its batch committed.
pub(crate) struct Ticket<T> {
    rx: mpsc::Receiver<Result<T>>,
}

impl<T> Ticket<T> {
    /// Blocks until the write's batch committed, leading a batch if nobody is.
    pub(crate) fn wait_on(self, db: &Db) -> Result<T> {
        let mut state = db.queue.lock();
        loop {
            match self.rx.try_recv() {
                Ok(out) => return out,
                // The leader that took our write panicked before delivering.
                Err(TryRecvError::Disconnected) => {
                    return Err(StorageError::Backend(
                        "write batch aborted before commit".into(),
                    ));
                }
                Err(TryRecvError::Empty) => {}
            }
            if state.leading {
                state = db
                    .queue
                    .done
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Our write is still queued and nobody is committing: lead one batch.
            state.leading = true;
            let n = state.jobs.len().min(max_batch());
            let jobs: Vec<Job> = state.jobs.drain(..n).collect();
            drop(state);
            {
                let _leading = Leading(&db.queue);
                run_batch(&mut lock(&db.writer), jobs);
            }
            // Ours was in the batch unless more than a batch was queued ahead of it.
            state = db.queue.lock();
        }
    }
}

fn max_batch() -> usize {
    #[cfg(test)]
    if !BATCHING.load(Ordering::Relaxed) {
        return 1;
    }
    MAX_BATCH
}

/// Runs `jobs` in one transaction and delivers every result after the commit.
fn run_batch(conn: &mut Connection, jobs: Vec<Job>) {
    let mut delivers = Vec::with_capacity(jobs.len());
    let outcome = (|| -> Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in jobs {
            let sp = tx.savepoint()?;
            let ran = job(&sp);
            if ran.ok {
                sp.commit()?;
            } else {
                // Rollback to the savepoint, then release it.
                sp.finish()?;
            }
            delivers.push(ran.deliver);
        }
        tx.commit()?;
        #[cfg(test)]
        BATCHES.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })();
    // If the batch failed half way, the jobs not yet run were dropped with the
    // iterator: their callers see a disconnected channel and report an aborted batch.
    for deliver in delivers {
        deliver(outcome.as_ref().copied());
    }
}
