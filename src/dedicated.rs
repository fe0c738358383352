//! Latency-critical background loops (the event writer, the projection runner) on threads of
//! their own, each with a single-threaded Tokio runtime and database connections of its own:
//! a reply from PostgreSQL wakes the loop at once instead of queueing behind request handlers
//! on the shared workers, which under load was most of each round trip's time.

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Runs the future `make` builds on a new thread named `name` (its own runtime, so sockets it
/// opens belong to that thread); on the caller's runtime if no thread can be started.
pub fn spawn<F, Fut>(name: &str, make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel::<F>(1);
    let thread_name = name.to_string();
    let started = std::thread::Builder::new().name(name.to_string()).spawn(move || {
        let Ok(make) = rx.recv() else { return };
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

/// A pool of one connection with `options`, opened on first use: called inside the future a
/// [`spawn`]ed thread runs, the connection belongs to that thread's runtime.
pub fn connection(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(5)).connect_lazy_with(options)
}
