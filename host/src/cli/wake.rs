//! When a `--watch` command (`run`, `render`) looks at its secrets again:
//! at once when the server reports a change (its change events, through
//! [`Client::watch`]), and every `--interval` in any case, for a server
//! without events or a watch that broke (it is opened again then).

use std::time::Duration;

use crate::client::{Client, Watch};

/// How long to gather further changes after one arrives, so that a burst
/// (a migration, several fields written one by one) is one look.
const SETTLE: Duration = Duration::from_millis(100);

/// The wake-up source of a `--watch` loop.
pub(crate) struct Wake {
    client: Client,
    every: Duration,
    watch: Option<Watch>,
}

impl Wake {
    /// Start watching now (before the first fetch, so that no change after
    /// it is missed), looking again at least every `every`.
    pub(crate) async fn start(client: &Client, every: Duration) -> Wake {
        let mut wake = Wake {
            client: client.clone(),
            every,
            watch: None,
        };
        wake.open().await;
        wake
    }

    async fn open(&mut self) {
        if self.watch.is_none() {
            self.watch = self.client.watch("").await.ok();
        }
    }

    /// Wait until it is time to look again.
    pub(crate) async fn next(&mut self) {
        let interval = tokio::time::sleep(self.every);
        let Some(watch) = self.watch.as_mut() else {
            interval.await;
            self.open().await;
            return;
        };
        tokio::select! {
            () = interval => {}
            change = watch.next() => match change {
                Some(Ok(_)) => {
                    let settle = tokio::time::sleep(SETTLE);
                    tokio::pin!(settle);
                    loop {
                        tokio::select! {
                            () = &mut settle => break,
                            more = watch.next() => if !matches!(more, Some(Ok(_))) {
                                self.watch = None;
                                break;
                            },
                        }
                    }
                }
                // The watch ended: look now, and open it again.
                _ => {
                    self.watch = None;
                    self.open().await;
                }
            },
        }
    }
}
