//! A runtime of its own for the publishers.
//!
//! In a real deployment the publisher is another process on another machine; here it
//! shares the generator with thousands of subscriber tasks. On the subscribers' runtime
//! an acknowledgement would wait behind every queued subscriber read before the next
//! publish could go out, so the generator's own scheduling would set the publish rate
//! ("as fast as acks allow" would measure the generator, not the server). A
//! current-thread runtime on its own OS thread gets its turn from the kernel's
//! scheduler like a separate process would.

use std::io;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub struct PublisherRuntime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PublisherRuntime {
    pub fn start() -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("publishers".to_owned())
            .spawn(move || {
                // The runtime drives its tasks and its sockets only while blocked on.
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_background();
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for PublisherRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
