//! The client's byte stream as hyper sees it: activity noted, the slot
//! held (also after an upgrade), raw query strings repaired, and a
//! refused body drained before the close.

use super::*;

/// The client's stream, noting when bytes arrive (for the idle timeout),
/// holding the connection's slot until it closes, also after an upgrade to
/// a WebSocket, and repairing raw query strings (`QueryRepair`).
pub(super) struct TrackedStream {
    /// Taken only when it is dropped, to linger.
    inner: Option<TcpStream>,
    slot: Arc<HeldSlot>,
    repair: QueryRepair,
    /// Repaired bytes not yet taken by hyper, from `repaired_at` on.
    repaired: Vec<u8>,
    repaired_at: usize,
}

impl TrackedStream {
    pub(super) fn new(inner: TcpStream, slot: Arc<HeldSlot>) -> Self {
        Self {
            inner: Some(inner),
            slot,
            repair: QueryRepair::default(),
            repaired: Vec::new(),
            repaired_at: 0,
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.inner
                .as_mut()
                .expect("the stream is taken only on drop"),
        )
    }

    /// Moves repaired bytes into `buf`; whether there were any.
    fn take_repaired(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let waiting = &self.repaired[self.repaired_at..];
        if waiting.is_empty() {
            return false;
        }
        let n = waiting.len().min(buf.remaining());
        buf.put_slice(&waiting[..n]);
        self.repaired_at += n;
        if self.repaired_at == self.repaired.len() {
            self.repaired.clear();
            self.repaired_at = 0;
        }
        true
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.take_repaired(buf) {
            return Poll::Ready(Ok(()));
        }
        if this.repair.is_pass_through() {
            let before = buf.filled().len();
            let polled = this.stream().poll_read(cx, buf);
            if buf.filled().len() > before {
                this.slot.state.touch();
            }
            return polled;
        }
        let mut raw = [0_u8; 8 * 1024];
        let mut raw = ReadBuf::new(&mut raw[..buf.remaining().min(8 * 1024)]);
        let polled = this.stream().poll_read(cx, &mut raw);
        if !raw.filled().is_empty() {
            this.slot.state.touch();
            this.repair.push(raw.filled(), &mut this.repaired);
            this.take_repaired(buf);
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = self.stream().poll_write(cx, buf);
        self.note_write(polled.is_pending());
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = self.stream().poll_write_vectored(cx, bufs);
        self.note_write(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(TcpStream::is_write_vectored)
    }
}

impl TrackedStream {
    /// Notes whether the client is keeping a write waiting.
    fn note_write(&self, blocked: bool) {
        let state = &self.slot.state;
        if blocked {
            state.start(&state.write_blocked_since);
        } else {
            state.write_blocked_since.store(0, Ordering::Release);
        }
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if !self.slot.state.linger.load(Ordering::Acquire) {
            return;
        }
        let (Some(stream), Ok(runtime)) =
            (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        if LINGERING.fetch_add(1, Ordering::AcqRel) >= MAX_LINGERING {
            LINGERING.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        runtime.spawn(async move {
            linger(stream).await;
            LINGERING.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Connections draining an unread body right now.
pub(super) static LINGERING: AtomicUsize = AtomicUsize::new(0);
/// Most connections drained at once; past that, they close at once.
pub(super) const MAX_LINGERING: usize = 64;
/// Most bytes drained from one connection.
pub(super) const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// Longest a connection is drained.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(5);

/// Closes a connection whose client may still be sending a body it was
/// answered before: says it is done writing, then reads and drops what
/// comes until the client closes too (or [`LINGER_BYTES`] or
/// [`LINGER_TIME`] pass). Closing with unread bytes would make the kernel
/// reset the connection, and a client still sending would lose the answer
/// to the reset.
pub(super) async fn linger(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt as _;
    let _ = stream.shutdown().await;
    let mut drained = 0;
    let mut buf = vec![0_u8; 64 * 1024];
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
