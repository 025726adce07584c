//! Request and response bodies: a request body with its deadline, and a
//! response body that keeps its request counted as in progress.

use super::*;

/// One request in progress on a connection, until its response body is
/// sent (or dropped).
pub(super) struct InFlight(Arc<ConnectionState>);

impl InFlight {
    pub(super) fn begin(state: &Arc<ConnectionState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress.
pub(super) struct HeldBody {
    pub(super) inner: Body,
    pub(super) _in_flight: InFlight,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a request body gives once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Whether `err` (a body extractor's rejection, or anything whose sources
/// lead to one) was caused by [`BodyTimedOut`].
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyTimedOut>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// A request body that fails with [`BodyTimedOut`] once `timeout` has
/// passed since its headers arrived, and marks its connection as waiting on
/// its client until it has arrived.
pub struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    connection: Arc<ConnectionState>,
}

impl DeadlineBody {
    pub(super) fn new(
        inner: Incoming,
        timeout: Duration,
        connection: Arc<ConnectionState>,
    ) -> Self {
        use http_body::Body as _;
        if !inner.is_end_stream() {
            connection.start(&connection.receiving_since);
            connection.unread_body.store(true, Ordering::Release);
        }
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            connection,
        }
    }

    fn received(&self) {
        self.connection.receiving_since.store(0, Ordering::Release);
    }
}

impl Drop for DeadlineBody {
    fn drop(&mut self) {
        self.received();
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() || self.inner.is_end_stream() {
                self.received();
                self.connection.unread_body.store(false, Ordering::Release);
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(axum::Error::new)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
