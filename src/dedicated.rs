//! Latency-critical background loops (the event writer, the projection runner) on threads of
//! their own, each with a single-threaded Tokio runtime and database connections of its own
//! (`store::connection_of_its_own`):
//! a reply from PostgreSQL wakes the loop at once instead of queueing behind request handlers
//! on the shared workers, which under load was most of each round trip's time.
//!
//! Work that may wait (the gateway's usage publisher) runs the other way round, on a thread of
//! its own at a lower priority ([`spawn_background`]): a burst of it never takes a core from a
//! request in flight.

use std::future::Future;

/// Runs the future `make` builds on a new thread named `name` (its own runtime, so sockets it
/// opens belong to that thread); on the caller's runtime if no thread can be started.
pub fn spawn<F, Fut>(name: &str, make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    spawn_at(name, 0, make)
}

/// How much lower than the request handlers a background thread runs (a nice value).
pub const BACKGROUND_NICENESS: i32 = 10;

/// [`spawn`], the thread running [`BACKGROUND_NICENESS`] below the rest of the process: when
/// the cores are busy, the scheduler gives them to the request handlers first.
pub fn spawn_background<F, Fut>(name: &str, make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    spawn_at(name, BACKGROUND_NICENESS, make)
}

fn spawn_at<F, Fut>(name: &str, niceness: i32, make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel::<F>(1);
    let thread_name = name.to_string();
    let started = std::thread::Builder::new().name(name.to_string()).spawn(move || {
        let Ok(make) = rx.recv() else { return };
        if niceness != 0 {
            lower_priority(&thread_name, niceness);
        }
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            // Built inside the runtime: what it creates (connections) belongs to it.
            Ok(runtime) => runtime.block_on(async move { make().await }),
            Err(e) => tracing::error!(thread = %thread_name, error = %e, "cannot start a runtime"),
        }
    });
    match started {
        Ok(_) => {
            // The thread waits for it; a send fails only if the thread is already gone.
            let _ = tx.send(make);
        }
        Err(e) => {
            tracing::warn!(thread = name, error = %e, "cannot start a thread; running on the shared runtime");
            tokio::spawn(make());
        }
    }
}

/// Raises the calling thread's nice value by `by` (on Linux a nice value is per thread, and
/// `setpriority` with no pid sets the calling thread's; raising it needs no privilege). If it is
/// refused, the thread keeps its priority.
fn lower_priority(thread: &str, by: i32) {
    use rustix::process::{getpriority_process, setpriority_process};
    let lowered = getpriority_process(None).and_then(|now| setpriority_process(None, (now + by).min(19)));
    if let Err(e) = lowered {
        tracing::debug!(thread, error = %e, "cannot lower the thread's priority; it keeps the process's");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_runs_below_the_caller_and_the_caller_keeps_its_priority() {
        let caller = rustix::process::getpriority_process(None).expect("the caller's nice value");
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_background("nice-test", move || async move {
            let _ = tx.send(rustix::process::getpriority_process(None).expect("the thread's nice value"));
        });
        let background = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the thread ran");
        assert_eq!(background, (caller + BACKGROUND_NICENESS).min(19));
        assert_eq!(
            rustix::process::getpriority_process(None).unwrap(),
            caller,
            "only that thread is lowered"
        );
    }
}
