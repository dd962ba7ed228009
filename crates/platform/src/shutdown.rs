//! One signal that every part of a service listens to. SIGTERM or Ctrl-C trips it in
//! production; `switchyard dev` and tests trip it themselves. Long-lived streams select on
//! [`Shutdown::cancelled`] so that they end with a status the client can act on instead of
//! a dropped connection.

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown of everything holding a clone of this signal.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// A token cancelled with this signal, for code that takes a plain cancellation token.
    pub fn token(&self) -> CancellationToken {
        self.0.child_token()
    }

    /// Completes once shutdown has started.
    pub async fn cancelled(&self) {
        self.0.cancelled().await;
    }

    /// Trips this signal on SIGTERM or Ctrl-C. Call once per process.
    pub fn trigger_on_signals(&self) {
        let shutdown = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; draining");
            shutdown.trigger();
        });
    }

    /// The status a stream ends with when the server goes away: clients reconnect elsewhere
    /// and resume from the last position they applied.
    pub fn stream_status() -> tonic::Status {
        tonic::Status::unavailable("server is shutting down; reconnect and resume")
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Passes a server stream's items through until shutdown, then ends it with
/// [`Shutdown::stream_status`], so every long-lived stream closes with a reason to resume.
pub fn end_on_shutdown<S, T>(
    stream: S,
    shutdown: Shutdown,
) -> impl futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static
where
    S: futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    use futures::StreamExt;
    let stream = Box::pin(stream);
    futures::stream::unfold((stream, shutdown, false), |(mut stream, shutdown, done)| async move {
        if done {
            return None;
        }
        tokio::select! {
            _ = shutdown.cancelled() => Some((Err(Shutdown::stream_status()), (stream, shutdown, true))),
            item = stream.next() => item.map(|item| (item, (stream, shutdown, false))),
        }
    })
}
