//! A WebSocket's writing side, shared by the connection's task and by publishers.
//!
//! Server frames are not masked, so a push is framed here in a few header bytes and written
//! without waiting: what the socket takes now goes out at once, the rest is kept, in order,
//! until the connection's task finishes writing it ([`SocketWire::write_some`]). Each message is
//! kept whole, so frames written by publishers, by the task and by tungstenite (pongs,
//! close) never interleave.
//!
//! Only pushes count against the connection's limit: a client too far behind for those is a
//! slow consumer. The task's own replies and control frames are always taken (their size
//! is bounded by the command that asked for them).

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use bytes::{Buf, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf},
    sync::Notify,
};

use crate::biz::outbox::{Wire, WireFull};

/// The upgraded connection.
pub type Io = TokioIo<Upgraded>;

/// The frame buffer is kept between frames up to this size (a typical push); a larger
/// frame's buffer is released, so that one large push does not pin memory in every
/// subscriber that then goes idle. A backlog's buffer is always released once written.
const KEEP_SCRATCH: usize = 512;

pub struct SocketWire {
    state: Mutex<WireState>,
    /// Wakes the connection's task when bytes are left for it to write.
    backlog: Notify,
    /// The most a connection may have waiting to be written before a push is refused.
    limit: usize,
}

struct WireState {
    writer: WriteHalf<Io>,
    /// Bytes the socket has not taken yet.
    unsent: BytesMut,
    /// A frame being built.
    scratch: Vec<u8>,
    /// A write failed: the connection is gone, and its reader will find out.
    broken: bool,
}

impl SocketWire {
    pub fn new(writer: WriteHalf<Io>, limit: usize) -> Arc<SocketWire> {
        Arc::new(SocketWire {
            state: Mutex::new(WireState {
                writer,
                unsent: BytesMut::new(),
                scratch: Vec::new(),
                broken: false,
            }),
            backlog: Notify::new(),
            limit,
        })
    }

    fn state(&self) -> MutexGuard<'_, WireState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends pushes as one text frame, unless the connection is too far behind for them.
    pub fn push(&self, payload: &[u8]) -> Result<(), WireFull> {
        self.send_text(payload, Some(self.limit))
    }

    /// Sends the task's own message (replies, pings, the disconnect notice) as one text frame.
    pub fn reply(&self, payload: &[u8]) {
        // Unbounded: cannot be refused.
        let _ = self.send_text(payload, None);
    }

    fn send_text(&self, payload: &[u8], limit: Option<usize>) -> Result<(), WireFull> {
        let mut state = self.state();
        let mut frame = std::mem::take(&mut state.scratch);
        frame.clear();
        write_text_header(payload.len(), &mut frame);
        frame.extend_from_slice(payload);
        let sent = self.send_locked(&mut state, &frame, limit);
        if frame.capacity() <= KEEP_SCRATCH {
            state.scratch = frame;
        }
        sent
    }

    /// Sends bytes that are already whole frames (tungstenite's pongs and close).
    pub fn send_frames(&self, frames: &[u8]) {
        let mut state = self.state();
        // Unbounded: cannot be refused.
        let _ = self.send_locked(&mut state, frames, None);
    }

    fn send_locked(&self, state: &mut WireState, frames: &[u8], limit: Option<usize>) -> Result<(), WireFull> {
        if state.broken {
            return Ok(());
        }
        if !state.unsent.is_empty() {
            if limit.is_some_and(|limit| state.unsent.len() + frames.len() > limit) {
                return Err(WireFull);
            }
            state.unsent.extend_from_slice(frames);
            return Ok(());
        }
        let written = state.write_now(frames);
        if written < frames.len() && !state.broken {
            state.unsent.extend_from_slice(&frames[written..]);
            self.backlog.notify_one();
        }
        Ok(())
    }

    /// Whether bytes are waiting for the connection's task.
    pub fn has_backlog(&self) -> bool {
        self.backlog_bytes() > 0
    }

    fn backlog_bytes(&self) -> usize {
        self.state().unsent.len()
    }

    /// Waits until a publisher leaves bytes the socket could not take.
    pub async fn backlogged(&self) {
        self.backlog.notified().await;
    }

    /// Waits until the socket takes some of what is kept (or all of it is written).
    pub async fn write_some(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_some(cx)).await
    }

    fn poll_write_some(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.state();
        let WireState {
            writer, unsent, broken, ..
        } = &mut *state;
        let written = match write_until_blocked(writer, cx, unsent) {
            Ok(written) => written,
            Err(error) => {
                *broken = true;
                unsent.clear();
                return Poll::Ready(Err(error));
            }
        };
        unsent.advance(written);
        if !unsent.is_empty() {
            // Blocked: `cx` is registered for when the socket has room again.
            return if written > 0 {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        *unsent = BytesMut::new();
        Pin::new(&mut *writer).poll_flush(cx)
    }
}

impl WireState {
    /// Writes what the socket takes without waiting; returns how much that was. A
    /// would-block write registers no waker of a task: the one that later flushes the
    /// backlog registers its own.
    fn write_now(&mut self, bytes: &[u8]) -> usize {
        let mut context = Context::from_waker(Waker::noop());
        write_until_blocked(&mut self.writer, &mut context, bytes).unwrap_or_else(|_| {
            self.broken = true;
            0
        })
    }
}

/// Writes from the start of `bytes` until the socket would block (registering `cx`) or
/// everything is written; how much it took.
fn write_until_blocked(writer: &mut WriteHalf<Io>, cx: &mut Context<'_>, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match Pin::new(&mut *writer).poll_write(cx, &bytes[written..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(taken)) => written += taken,
            Poll::Ready(Err(error)) => return Err(error),
            Poll::Pending => break,
        }
    }
    Ok(written)
}

impl Wire for SocketWire {
    fn send(&self, message: &[u8]) -> Result<(), WireFull> {
        self.push(message)
    }

    fn backlog(&self) -> usize {
        self.backlog_bytes()
    }
}

/// The header of an unmasked, unfragmented text frame carrying `length` bytes.
fn write_text_header(length: usize, out: &mut Vec<u8>) {
    out.push(0x81);
    match length {
        0..=125 => out.push(length as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
}

/// What tungstenite reads from and writes to: the socket's reading side, and the shared
/// wire for the frames tungstenite writes itself (pongs, close).
pub struct Duplex {
    pub reader: ReadHalf<Io>,
    pub wire: Arc<SocketWire>,
}

impl AsyncRead for Duplex {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Duplex {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, frames: &[u8]) -> Poll<io::Result<usize>> {
        self.wire.send_frames(frames);
        Poll::Ready(Ok(frames.len()))
    }

    /// Handed to the wire counts as flushed: the connection's task writes any backlog, under
    /// its write timeout, so reading never waits for a client that does not read.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_headers_use_the_shortest_length_form() {
        for (length, header) in [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65_535, vec![0x81, 126, 0xff, 0xff]),
            (65_536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut out = Vec::new();
            write_text_header(length, &mut out);
            assert_eq!(out, header, "length {length}");
        }
    }
}
