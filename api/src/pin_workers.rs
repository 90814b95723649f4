//! The PIN workers: a fixed set of OS threads, at a lower CPU priority, on
//! which every request that hashes or verifies a PIN does its engine work.
//!
//! Argon2 keeps a core busy for tens of milliseconds per PIN. On threads of
//! their own, niced (`server.argon2_nice`), a burst of logins uses every
//! idle cycle yet yields the CPU to the async workers whenever a verify,
//! step-up or delivery is ready, so those keep their latency while logins
//! queue here. The count (`server.argon2_workers`) bounds the Argon2 memory
//! in use, since the engine keeps one block of it per worker.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// The threads and the queue they take work from.
#[derive(Debug)]
pub struct PinWorkers {
    /// One permit per thread: a job is queued only when a thread is free,
    /// so waiting happens here, in async code, not in the queue.
    permits: Arc<Semaphore>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Why a job gave no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The workers are stopping.
    Stopped,
    /// The job panicked (the worker survives it).
    Panicked,
}

impl PinWorkers {
    /// Starts `count` threads (at least one) at niceness `nice` (0 leaves the priority as it is).
    pub fn start(count: usize, nice: i32) -> Result<PinWorkers, String> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let count = count.max(1);
        let mut threads = Vec::with_capacity(count);
        for n in 0..count {
            let queue = Arc::clone(&queue);
            let thread = std::thread::Builder::new()
                .name(format!("otpd-pin-{n}"))
                .spawn(move || {
                    if nice != 0 {
                        lower_priority(nice);
                    }
                    loop {
                        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(job) = next else { return };
                        // A panicking job drops its answer channel: its caller
                        // hears of it; the thread lives on for the next job.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(|e| format!("cannot start the PIN workers: {e}"))?;
            threads.push(thread);
        }
        Ok(PinWorkers {
            permits: Arc::new(Semaphore::new(count)),
            jobs: Mutex::new(Some(jobs)),
            threads: Mutex::new(threads),
        })
    }

    /// Runs `work` on a worker as soon as one is free, and gives its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Lost> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Lost::Stopped)?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic in `work` drops `done` (and the permit): the caller gets `Panicked`.
            let value = work();
            // Released on the worker as the work ends, so the next job starts at once.
            drop(permit);
            let _ = done.send(value);
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|jobs| jobs.send(job));
        match sent {
            Some(Ok(())) => result.await.map_err(|_| Lost::Panicked),
            _ => Err(Lost::Stopped),
        }
    }

    /// Lets queued jobs finish, then stops the threads.
    pub fn stop(&self) {
        self.permits.close();
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for PinWorkers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Raises this thread's niceness (lowers its priority). Best effort: a
/// failure leaves the thread at the process's priority.
fn lower_priority(nice: i32) {
    let me = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(me), current.saturating_add(nice)) {
        tracing::warn!(error = %e, "cannot lower the priority of a PIN worker");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn niceness_of_this_thread() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[tokio::test]
    async fn work_runs_on_niced_threads_and_answers() {
        let workers = PinWorkers::start(2, 3).unwrap();
        let base = niceness_of_this_thread();
        let (name, nice) = workers
            .run(|| {
                (
                    std::thread::current().name().map(str::to_owned),
                    niceness_of_this_thread(),
                )
            })
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("otpd-pin-"));
        assert_eq!(nice, (base + 3).min(19));
    }

    #[tokio::test]
    async fn at_most_count_jobs_run_at_once() {
        let workers = Arc::new(PinWorkers::start(2, 0).unwrap());
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..12 {
            let (workers, running, most) = (
                Arc::clone(&workers),
                Arc::clone(&running),
                Arc::clone(&most),
            );
            jobs.push(tokio::spawn(async move {
                workers
                    .run(move || {
                        use std::sync::atomic::Ordering::SeqCst;
                        let now = running.fetch_add(1, SeqCst) + 1;
                        most.fetch_max(now, SeqCst);
                        std::thread::yield_now();
                        running.fetch_sub(1, SeqCst);
                    })
                    .await
            }));
        }
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_caller_and_the_workers_go_on() {
        let workers = PinWorkers::start(1, 0).unwrap();
        let failed = workers.run(|| -> u8 { panic!("boom") }).await;
        assert_eq!(failed, Err(Lost::Panicked));
        assert_eq!(workers.run(|| 7).await, Ok(7), "the one worker survived");
    }

    #[tokio::test]
    async fn stopped_workers_refuse_work() {
        let workers = PinWorkers::start(1, 0).unwrap();
        workers.stop();
        assert_eq!(workers.run(|| 1).await, Err(Lost::Stopped));
    }
}
