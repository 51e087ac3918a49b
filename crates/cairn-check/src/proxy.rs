//! A fault-injecting TCP proxy on loopback, placed by `cairn check` between
//! its clients and a Cairn server so that network faults can be switched on
//! and off while the workload runs.
//!
//! The proxy listens on `127.0.0.1:0` and forwards every accepted connection
//! to one target address. Each connection runs one task per direction; the
//! current fault lives in a `tokio::sync::watch` channel, so a change takes
//! effect at once for existing connections as well as for new ones, and a
//! forwarder holding bytes wakes as soon as the fault is healed.
//!
//! What each [`NetworkFault`] models:
//! - `Delay`: a slow network. Every chunk waits `delay_ms` after it was read
//!   before it is written on; chunks are delayed in a pipeline, like latency,
//!   not one after the other.
//! - `Drop`: a peer or a middlebox closing the connection in an orderly way
//!   (FIN). New connections are accepted and closed at once.
//! - `Reset`: a peer crashing or a middlebox aborting the connection (RST,
//!   sent by closing with `SO_LINGER` 0). New connections are reset at once.
//! - `StallClientToServer` / `StallServerToClient`: an asymmetric partition.
//!   Bytes in one direction are held, neither forwarded nor lost, until the
//!   fault is healed; the other direction still flows. Stalling the answers
//!   is the classic lost-acknowledgement case: the server has done the work
//!   but the client cannot know it.
//! - `Blackhole`: packets lost. Bytes in both directions are discarded while
//!   the fault lasts; connections stay open and carry new bytes after heal.
//!
//! Everything is bounded: at most [`CONNECTIONS_LIVE_MAX`] live connections
//! (more are accepted and closed at once) and at most [`HELD_BYTES_MAX`] bytes
//! held per direction of a connection, after which the proxy stops reading
//! and TCP flow control pushes back on the sender.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Live proxied connections at most; connections accepted beyond this are
/// closed at once, so a runaway client cannot exhaust file descriptors.
pub const CONNECTIONS_LIVE_MAX: usize = 1024;

/// Bytes read from a socket at most in one chunk.
pub const READ_CHUNK_BYTES_MAX: usize = 16 * 1024;

/// Bytes held (read but not yet forwarded) per direction of a connection at
/// most; when reached, the proxy stops reading from that side.
pub const HELD_BYTES_MAX: usize = 64 * 1024;

/// How long the proxy waits for the target to accept a connection before it
/// gives up on the client's connection.
pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Pause after a failed `accept` (for example out of file descriptors), so
/// that the accept loop does not spin on a persistent error.
pub const ACCEPT_ERROR_BACKOFF_MS: u64 = 10;

const _: () = assert!(READ_CHUNK_BYTES_MAX > 0 && READ_CHUNK_BYTES_MAX <= HELD_BYTES_MAX);

/// A network fault the proxy applies to the connections it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkFault {
    /// Bytes are forwarded as they come.
    None,
    /// Every chunk forwarded (either direction) is held this long first.
    Delay {
        /// How long each chunk is held, in milliseconds.
        delay_ms: u64,
    },
    /// Existing connections are closed (FIN) and new ones are accepted and closed at once.
    Drop,
    /// Existing and new connections are reset (RST, via SO_LINGER 0).
    Reset,
    /// Bytes from client to server are held (not forwarded, not dropped) until healed; the other direction flows.
    StallClientToServer,
    /// Bytes from server to client are held until healed; the other direction flows.
    StallServerToClient,
    /// Bytes in both directions are silently discarded while the fault lasts (a black hole); connections stay open.
    Blackhole,
}

impl NetworkFault {
    /// A short stable name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            NetworkFault::None => "none",
            NetworkFault::Delay { .. } => "delay",
            NetworkFault::Drop => "drop",
            NetworkFault::Reset => "reset",
            NetworkFault::StallClientToServer => "stall_c2s",
            NetworkFault::StallServerToClient => "stall_s2c",
            NetworkFault::Blackhole => "blackhole",
        }
    }

    /// How long a chunk waits before it is forwarded under this fault.
    fn forwarding_delay(&self) -> Duration {
        match self {
            NetworkFault::Delay { delay_ms } => Duration::from_millis(*delay_ms),
            _ => Duration::ZERO,
        }
    }
}

/// A running fault-injecting proxy. Clones share the same proxy; dropping the
/// last clone stops the accept loop and closes every proxied connection.
#[derive(Clone)]
pub struct FaultProxy {
    owner: Arc<ProxyOwner>,
}

impl FaultProxy {
    /// Starts a proxy listening on `127.0.0.1:0` that forwards every accepted
    /// connection to `target`, initially without any fault.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (fault_sender, _) = watch::channel(NetworkFault::None);
        let shared = Arc::new(ProxyShared {
            target,
            fault_sender,
            registry: Mutex::new(ConnectionRegistry {
                live: HashMap::new(),
                shut_down: false,
            }),
            connections_total: AtomicU64::new(0),
        });
        let accept_task = tokio::spawn(accept_connections(listener, Arc::clone(&shared)));
        Ok(FaultProxy {
            owner: Arc::new(ProxyOwner {
                shared,
                address,
                accept_task,
            }),
        })
    }

    /// The loopback address clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.owner.address
    }

    /// Applies `fault` at once, to existing and new connections.
    pub fn set_fault(&self, fault: NetworkFault) {
        let shared = &self.owner.shared;
        // The fault is published before the registry is walked, and a new
        // connection is admitted under the registry lock after reading the
        // fault: so every connection either sees Drop/Reset when admitted or
        // is in the registry when it is walked.
        shared.fault_sender.send_replace(fault);
        tracing::debug!(fault = fault.name(), "network fault set");
        match fault {
            NetworkFault::Drop => shared.end_all_connections(ConnectionEnd::Close),
            NetworkFault::Reset => shared.end_all_connections(ConnectionEnd::Reset),
            _ => {}
        }
    }

    /// Removes any fault; bytes held by a stall are then delivered.
    pub fn heal(&self) {
        self.set_fault(NetworkFault::None);
    }

    /// Connections accepted so far, including those closed at once because
    /// of a fault or the connection limit.
    pub fn connections_total(&self) -> u64 {
        self.owner.shared.connections_total.load(Ordering::Relaxed)
    }
}

/// Owns the accept task; dropped with the last [`FaultProxy`] clone.
struct ProxyOwner {
    shared: Arc<ProxyShared>,
    address: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl Drop for ProxyOwner {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.shared.shut_down();
    }
}

/// State shared by the handle, the accept loop and the connection tasks.
struct ProxyShared {
    target: SocketAddr,
    fault_sender: watch::Sender<NetworkFault>,
    registry: Mutex<ConnectionRegistry>,
    connections_total: AtomicU64,
}

/// The live connections, each with the sender that tells its tasks to end.
struct ConnectionRegistry {
    live: HashMap<u64, watch::Sender<ConnectionEnd>>,
    /// Set when the proxy is dropped, so that a connection accepted during
    /// the drop is refused instead of escaping the shutdown.
    shut_down: bool,
}

/// How a connection must end; only ever raised (Open → Close → Reset), so a
/// forwarder can never miss an end by reading a later value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ConnectionEnd {
    Open,
    Close,
    Reset,
}

/// Whether a newly accepted connection is proxied or closed at once.
enum Admission {
    Admitted(watch::Sender<ConnectionEnd>),
    Closed,
    Reset,
}

impl ProxyShared {
    fn lock_registry(&self) -> MutexGuard<'_, ConnectionRegistry> {
        // The registry holds no invariant a panicking holder could break
        // half-way, so a poisoned lock is still safe to use.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(&self, connection_id: u64) -> Admission {
        let mut registry = self.lock_registry();
        if registry.shut_down {
            return Admission::Closed;
        }
        match *self.fault_sender.borrow() {
            NetworkFault::Drop => return Admission::Closed,
            NetworkFault::Reset => return Admission::Reset,
            _ => {}
        }
        if registry.live.len() >= CONNECTIONS_LIVE_MAX {
            tracing::debug!(
                connections_live_max = CONNECTIONS_LIVE_MAX,
                "proxy connection limit reached; closing the new connection"
            );
            return Admission::Closed;
        }
        let (end_sender, _) = watch::channel(ConnectionEnd::Open);
        registry.live.insert(connection_id, end_sender.clone());
        Admission::Admitted(end_sender)
    }

    fn end_all_connections(&self, end: ConnectionEnd) {
        for end_sender in self.lock_registry().live.values() {
            raise_end(end_sender, end);
        }
    }

    fn shut_down(&self) {
        let mut registry = self.lock_registry();
        registry.shut_down = true;
        for end_sender in registry.live.values() {
            raise_end(end_sender, ConnectionEnd::Close);
        }
    }
}

fn raise_end(end_sender: &watch::Sender<ConnectionEnd>, end: ConnectionEnd) {
    end_sender.send_if_modified(|current| {
        let raised = end > *current;
        if raised {
            *current = end;
        }
        raised
    });
}

/// Closes a stream with RST instead of FIN.
fn reset_stream(stream: TcpStream) {
    // If SO_LINGER cannot be set the stream still closes, with FIN; there is
    // nothing better to do with a stream being thrown away.
    let _ = stream.set_zero_linger();
}

async fn accept_connections(listener: TcpListener, shared: Arc<ProxyShared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                tracing::debug!(%error, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                continue;
            }
        };
        let connection_id = shared.connections_total.fetch_add(1, Ordering::Relaxed);
        match shared.admit(connection_id) {
            Admission::Admitted(end_sender) => {
                tokio::spawn(run_connection(
                    Arc::clone(&shared),
                    connection_id,
                    client,
                    end_sender,
                ));
            }
            Admission::Closed => drop(client),
            Admission::Reset => reset_stream(client),
        }
    }
}

/// Removes a connection from the registry once both of its tasks are done.
struct ConnectionSlot {
    shared: Arc<ProxyShared>,
    connection_id: u64,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.lock_registry().live.remove(&self.connection_id);
    }
}

/// Connects to the target, then forwards client → server in this task and
/// server → client in a second one.
async fn run_connection(
    shared: Arc<ProxyShared>,
    connection_id: u64,
    client: TcpStream,
    end_sender: watch::Sender<ConnectionEnd>,
) {
    let target = shared.target;
    let slot = Arc::new(ConnectionSlot {
        shared,
        connection_id,
    });
    let mut end_receiver = end_sender.subscribe();
    let connect_timeout = Duration::from_millis(UPSTREAM_CONNECT_TIMEOUT_MS);
    let server = tokio::select! {
        connected = tokio::time::timeout(connect_timeout, TcpStream::connect(target)) => {
            match connected {
                Ok(Ok(server)) => server,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %target, "proxy could not reach its target");
                    // A reset is the nearest a proxy can come to passing on
                    // "connection refused" once it has accepted the client.
                    reset_stream(client);
                    return;
                }
                Err(_) => {
                    tracing::debug!(%target, "proxy timed out connecting to its target");
                    reset_stream(client);
                    return;
                }
            }
        }
        ended = end_receiver.wait_for(|end| *end != ConnectionEnd::Open) => {
            if matches!(ended.as_deref(), Ok(ConnectionEnd::Reset)) {
                reset_stream(client);
            }
            return;
        }
    };
    // Chunks are written as soon as the fault allows; Nagle's algorithm would
    // add delays of its own that no fault asked for.
    for stream in [&client, &server] {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "proxy could not set TCP_NODELAY");
        }
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let server_to_client = Forwarder::new(
        Direction::ServerToClient,
        server_read,
        client_write,
        &slot,
        &end_sender,
    );
    let client_to_server = Forwarder::new(
        Direction::ClientToServer,
        client_read,
        server_write,
        &slot,
        &end_sender,
    );
    tokio::spawn(server_to_client.run());
    client_to_server.run().await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    /// Whether bytes in this direction must be held under `fault`. Under a
    /// black hole only the end of stream can be held (bytes are discarded):
    /// it is delivered after heal, as a retransmitted FIN would be.
    fn is_held_by(self, fault: NetworkFault) -> bool {
        match fault {
            NetworkFault::StallClientToServer => self == Direction::ClientToServer,
            NetworkFault::StallServerToClient => self == Direction::ServerToClient,
            NetworkFault::Blackhole => true,
            _ => false,
        }
    }
}

/// Something read from the source and not yet delivered to the destination.
struct Segment {
    read_at: Instant,
    payload: Payload,
}

enum Payload {
    Bytes(Vec<u8>),
    EndOfStream,
}

/// What a delivery to the destination achieved.
enum Delivery {
    BytesWritten(usize),
    EndOfStream,
}

/// Forwards one direction of one connection, applying the current fault.
/// It holds a half of each of the connection's two sockets, so either
/// forwarder alone can reset the whole connection.
struct Forwarder {
    direction: Direction,
    source: OwnedReadHalf,
    destination: OwnedWriteHalf,
    fault_receiver: watch::Receiver<NetworkFault>,
    end_sender: watch::Sender<ConnectionEnd>,
    end_receiver: watch::Receiver<ConnectionEnd>,
    held: VecDeque<Segment>,
    held_bytes: usize,
    source_finished: bool,
    /// Keeps the connection registered while this forwarder runs.
    _slot: Arc<ConnectionSlot>,
}

impl Forwarder {
    fn new(
        direction: Direction,
        source: OwnedReadHalf,
        destination: OwnedWriteHalf,
        slot: &Arc<ConnectionSlot>,
        end_sender: &watch::Sender<ConnectionEnd>,
    ) -> Forwarder {
        Forwarder {
            direction,
            source,
            destination,
            fault_receiver: slot.shared.fault_sender.subscribe(),
            end_sender: end_sender.clone(),
            end_receiver: end_sender.subscribe(),
            held: VecDeque::new(),
            held_bytes: 0,
            source_finished: false,
            _slot: Arc::clone(slot),
        }
    }

    async fn run(mut self) {
        let mut read_buffer = vec![0_u8; READ_CHUNK_BYTES_MAX];
        loop {
            let end = *self.end_receiver.borrow_and_update();
            match end {
                ConnectionEnd::Open => {}
                // Dropping the halves sends FIN on both sockets.
                ConnectionEnd::Close => return,
                ConnectionEnd::Reset => return self.reset(),
            }
            let fault = *self.fault_receiver.borrow_and_update();
            if fault == NetworkFault::Blackhole {
                self.discard_held_bytes();
            }
            let due_at = self.front_due_at(fault);
            let read_capacity = if self.source_finished {
                0
            } else {
                (HELD_BYTES_MAX - self.held_bytes).min(READ_CHUNK_BYTES_MAX)
            };
            tokio::select! {
                // The new end is acted on at the top of the loop. The sender
                // cannot be gone: this forwarder holds a clone.
                _ = self.end_receiver.changed() => {}
                changed = self.fault_receiver.changed() => {
                    // The proxy's shared state, and with it the fault sender,
                    // outlives every forwarder, so this is not expected; if
                    // it happens there is no fault left to obey.
                    if changed.is_err() {
                        return;
                    }
                }
                read = self.source.read(&mut read_buffer[..read_capacity]), if read_capacity > 0 => {
                    match read {
                        Ok(n_bytes) => self.hold(&read_buffer[..n_bytes]),
                        Err(error) => return self.fail(error),
                    }
                }
                delivered = deliver_front(&mut self.destination, &self.held, due_at) => {
                    match delivered {
                        Ok(Delivery::BytesWritten(n_bytes)) => self.consume_front(n_bytes),
                        // The FIN went on; this direction is done.
                        Ok(Delivery::EndOfStream) => return,
                        Err(error) => return self.fail(error),
                    }
                }
            }
        }
    }

    /// Queues what was just read; an empty read is the end of the stream.
    /// Under a black hole the bytes are discarded at the top of the loop.
    fn hold(&mut self, bytes: &[u8]) {
        let read_at = Instant::now();
        if bytes.is_empty() {
            self.source_finished = true;
            self.held.push_back(Segment {
                read_at,
                payload: Payload::EndOfStream,
            });
        } else {
            self.held_bytes += bytes.len();
            self.held.push_back(Segment {
                read_at,
                payload: Payload::Bytes(bytes.to_vec()),
            });
        }
    }

    /// Under a black hole bytes already read but not yet forwarded are lost
    /// too, like packets in flight; the end of stream is kept.
    fn discard_held_bytes(&mut self) {
        self.held
            .retain(|segment| matches!(segment.payload, Payload::EndOfStream));
        self.held_bytes = 0;
    }

    /// When the oldest held segment may be delivered, or `None` if it may not
    /// (nothing held, the direction is held by the fault, or the delay is too
    /// long to represent).
    fn front_due_at(&self, fault: NetworkFault) -> Option<Instant> {
        if self.direction.is_held_by(fault) {
            return None;
        }
        let front = self.held.front()?;
        front.read_at.checked_add(fault.forwarding_delay())
    }

    fn consume_front(&mut self, n_bytes: usize) {
        self.held_bytes -= n_bytes;
        if let Some(Segment {
            payload: Payload::Bytes(bytes),
            ..
        }) = self.held.front_mut()
        {
            if n_bytes < bytes.len() {
                bytes.drain(..n_bytes);
                return;
            }
        }
        self.held.pop_front();
    }

    /// An I/O error on either socket ends the whole connection with a reset,
    /// so the other peer learns of the failure as it would without a proxy.
    fn fail(self, error: io::Error) {
        tracing::debug!(%error, direction = ?self.direction, "proxied connection failed; resetting it");
        raise_end(&self.end_sender, ConnectionEnd::Reset);
        self.reset();
    }

    /// Arranges for both sockets to close with RST once the other forwarder
    /// has let go of its halves too (it sees the same end and does the same).
    fn reset(self) {
        for stream in [self.source.as_ref(), self.destination.as_ref()] {
            // Failing to set SO_LINGER leaves a FIN close: still a close.
            let _ = stream.set_zero_linger();
        }
        // Dropping a write half normally sends FIN first, which the peer
        // would read as a clean end before the reset.
        self.destination.forget();
    }
}

/// Writes (part of) the oldest held segment once it is due; pending forever
/// if nothing may be delivered. A single `write` is cancel-safe, so this can
/// race with reads without losing track of what was sent.
async fn deliver_front(
    destination: &mut OwnedWriteHalf,
    held: &VecDeque<Segment>,
    due_at: Option<Instant>,
) -> io::Result<Delivery> {
    let (Some(due_at), Some(front)) = (due_at, held.front()) else {
        return std::future::pending().await;
    };
    tokio::time::sleep_until(due_at).await;
    match &front.payload {
        Payload::Bytes(bytes) => match destination.write(bytes).await? {
            0 => Err(io::ErrorKind::WriteZero.into()),
            n_bytes => Ok(Delivery::BytesWritten(n_bytes)),
        },
        Payload::EndOfStream => {
            destination.shutdown().await?;
            Ok(Delivery::EndOfStream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// Every test finishes well within this, or fails.
    const TEST_TIMEOUT_MS: u64 = 20_000;
    /// How long "nothing arrives" is watched for.
    const QUIET_WINDOW_MS: u64 = 300;
    /// How long a close or reset may take to reach the client.
    const CLOSE_WAIT_MS: u64 = 3_000;

    async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
        tokio::time::timeout(Duration::from_millis(TEST_TIMEOUT_MS), test)
            .await
            .expect("test timed out");
    }

    /// A real echo server on loopback that also reports every chunk it
    /// receives, so tests can see what reached the server side.
    struct EchoServer {
        address: SocketAddr,
        received: mpsc::UnboundedReceiver<Vec<u8>>,
        accept_task: JoinHandle<()>,
    }

    impl Drop for EchoServer {
        fn drop(&mut self) {
            self.accept_task.abort();
        }
    }

    impl EchoServer {
        async fn start() -> EchoServer {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let address = listener.local_addr().unwrap();
            let (received_sender, received) = mpsc::unbounded_channel();
            let accept_task = tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    tokio::spawn(echo(stream, received_sender.clone()));
                }
            });
            EchoServer {
                address,
                received,
                accept_task,
            }
        }

        /// Waits until exactly `n_bytes` have reached the server and returns them.
        async fn receive_exactly(&mut self, n_bytes: usize) -> Vec<u8> {
            let mut bytes = Vec::new();
            while bytes.len() < n_bytes {
                bytes.extend(self.received.recv().await.unwrap());
            }
            assert_eq!(bytes.len(), n_bytes, "the server received extra bytes");
            bytes
        }

        async fn receives_nothing_for_a_while(&mut self) -> bool {
            let quiet = Duration::from_millis(QUIET_WINDOW_MS);
            tokio::time::timeout(quiet, self.received.recv())
                .await
                .is_err()
        }
    }

    /// Echoes until end of stream, then closes its side.
    async fn echo(mut stream: TcpStream, received: mpsc::UnboundedSender<Vec<u8>>) {
        let mut buffer = vec![0_u8; 8192];
        loop {
            let n_bytes = match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n_bytes) => n_bytes,
            };
            let _ = received.send(buffer[..n_bytes].to_vec());
            if stream.write_all(&buffer[..n_bytes]).await.is_err() {
                return;
            }
        }
    }

    async fn connect(proxy: &FaultProxy) -> TcpStream {
        TcpStream::connect(proxy.address()).await.unwrap()
    }

    /// An echo server, a proxy in front of it, and a client connection
    /// through the proxy that has made one round trip (whose bytes the
    /// server has already been asked for).
    async fn warmed_up() -> (EchoServer, FaultProxy, TcpStream) {
        let mut server = EchoServer::start().await;
        let proxy = FaultProxy::start(server.address).await.unwrap();
        let mut client = connect(&proxy).await;
        round_trip(&mut client, b"warm").await;
        server.receive_exactly(4).await;
        (server, proxy, client)
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) {
        stream.write_all(message).await.unwrap();
        let mut answer = vec![0_u8; message.len()];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, message);
    }

    async fn reads_nothing_for_a_while(stream: &mut TcpStream) -> bool {
        let mut buffer = [0_u8; 64];
        let quiet = Duration::from_millis(QUIET_WINDOW_MS);
        tokio::time::timeout(quiet, stream.read(&mut buffer))
            .await
            .is_err()
    }

    /// The result of the client's next read, which must come soon.
    async fn next_read(stream: &mut TcpStream) -> io::Result<usize> {
        let mut buffer = [0_u8; 64];
        let wait = Duration::from_millis(CLOSE_WAIT_MS);
        tokio::time::timeout(wait, stream.read(&mut buffer))
            .await
            .expect("the client's read neither returned nor failed")
    }

    #[tokio::test]
    async fn forwards_both_ways_including_large_payloads_and_end_of_stream() {
        bounded(async {
            let mut server = EchoServer::start().await;
            let proxy = FaultProxy::start(server.address).await.unwrap();
            let mut client = connect(&proxy).await;
            round_trip(&mut client, b"hello").await;
            assert_eq!(server.receive_exactly(5).await, b"hello");

            // Larger than every proxy buffer, written while reading, so the
            // bounded buffers and flow control are exercised.
            let payload: Vec<u8> = (0..1_000_000_u32).map(|i| (i % 251) as u8).collect();
            let (mut client_read, mut client_write) = client.into_split();
            let to_write = payload.clone();
            let writer = tokio::spawn(async move {
                client_write.write_all(&to_write).await.unwrap();
                client_write.shutdown().await.unwrap();
            });
            let mut answer = Vec::new();
            client_read.read_to_end(&mut answer).await.unwrap();
            writer.await.unwrap();
            assert_eq!(answer.len(), payload.len());
            assert!(answer == payload, "the echoed payload differs");
            assert_eq!(proxy.connections_total(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn delay_holds_each_direction_for_at_least_delay_ms() {
        bounded(async {
            let server = EchoServer::start().await;
            let proxy = FaultProxy::start(server.address).await.unwrap();
            let mut client = connect(&proxy).await;
            round_trip(&mut client, b"warm").await;

            let delay_ms = 200;
            proxy.set_fault(NetworkFault::Delay { delay_ms });
            let started = Instant::now();
            round_trip(&mut client, b"slow").await;
            let elapsed = started.elapsed();
            // Request and answer are each delayed.
            assert!(
                elapsed >= Duration::from_millis(2 * delay_ms),
                "round trip took only {elapsed:?}"
            );

            proxy.heal();
            round_trip(&mut client, b"fast again").await;
        })
        .await;
    }

    #[tokio::test]
    async fn drop_closes_existing_and_new_connections() {
        bounded(async {
            let server = EchoServer::start().await;
            let proxy = FaultProxy::start(server.address).await.unwrap();
            let mut existing = connect(&proxy).await;
            round_trip(&mut existing, b"before").await;

            proxy.set_fault(NetworkFault::Drop);
            let read = next_read(&mut existing).await;
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "existing connection still open: {read:?}"
            );
            let mut new = connect(&proxy).await;
            let read = next_read(&mut new).await;
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "new connection still open: {read:?}"
            );

            proxy.heal();
            let mut after = connect(&proxy).await;
            round_trip(&mut after, b"after").await;
            assert_eq!(proxy.connections_total(), 3);
        })
        .await;
    }

    #[tokio::test]
    async fn reset_resets_existing_and_new_connections() {
        bounded(async {
            let server = EchoServer::start().await;
            let proxy = FaultProxy::start(server.address).await.unwrap();
            let mut existing = connect(&proxy).await;
            round_trip(&mut existing, b"before").await;

            proxy.set_fault(NetworkFault::Reset);
            let error = next_read(&mut existing).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
            let mut new = connect(&proxy).await;
            let error = next_read(&mut new).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);

            proxy.heal();
            let mut after = connect(&proxy).await;
            round_trip(&mut after, b"after").await;
        })
        .await;
    }

    #[tokio::test]
    async fn stall_client_to_server_holds_the_request_until_heal() {
        bounded(async {
            let (mut server, proxy, mut client) = warmed_up().await;

            proxy.set_fault(NetworkFault::StallClientToServer);
            client.write_all(b"request").await.unwrap();
            assert!(server.receives_nothing_for_a_while().await);
            assert!(reads_nothing_for_a_while(&mut client).await);

            proxy.heal();
            assert_eq!(server.receive_exactly(7).await, b"request");
            let mut answer = [0_u8; 7];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"request");
        })
        .await;
    }

    #[tokio::test]
    async fn stall_server_to_client_holds_the_answer_until_heal() {
        bounded(async {
            let (mut server, proxy, mut client) = warmed_up().await;

            proxy.set_fault(NetworkFault::StallServerToClient);
            client.write_all(b"request").await.unwrap();
            // The request goes through; only the answer is held.
            assert_eq!(server.receive_exactly(7).await, b"request");
            assert!(reads_nothing_for_a_while(&mut client).await);

            proxy.heal();
            let mut answer = [0_u8; 7];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"request");
        })
        .await;
    }

    #[tokio::test]
    async fn blackhole_discards_bytes_and_new_bytes_flow_after_heal() {
        bounded(async {
            let (mut server, proxy, mut client) = warmed_up().await;

            proxy.set_fault(NetworkFault::Blackhole);
            client.write_all(b"lost").await.unwrap();
            assert!(server.receives_nothing_for_a_while().await);
            assert!(reads_nothing_for_a_while(&mut client).await);

            proxy.heal();
            client.write_all(b"found").await.unwrap();
            assert_eq!(server.receive_exactly(5).await, b"found");
            let mut answer = [0_u8; 5];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"found");
            // The discarded bytes never show up later.
            assert!(server.receives_nothing_for_a_while().await);
            assert!(reads_nothing_for_a_while(&mut client).await);
        })
        .await;
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections() {
        bounded(async {
            let server = EchoServer::start().await;
            let proxy = FaultProxy::start(server.address).await.unwrap();
            let mut client = connect(&proxy).await;
            round_trip(&mut client, b"alive").await;

            let address = proxy.address();
            let clone = proxy.clone();
            drop(proxy);
            // A remaining clone keeps the proxy running.
            round_trip(&mut client, b"still alive").await;
            drop(clone);
            let read = next_read(&mut client).await;
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "connection still open: {read:?}"
            );
            // The accept task is aborted, which closes the listener soon after.
            loop {
                if TcpStream::connect(address).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_connections_each_get_their_own_answers() {
        bounded(async {
            let server = EchoServer::start().await;
            let proxy = FaultProxy::start(server.address).await.unwrap();
            let n_connections = 200_u64;
            let mut clients = Vec::new();
            for connection_idx in 0..n_connections {
                let address = proxy.address();
                clients.push(tokio::spawn(async move {
                    let mut client = TcpStream::connect(address).await.unwrap();
                    for message_idx in 0..5 {
                        let message = format!("connection {connection_idx} message {message_idx}");
                        round_trip(&mut client, message.as_bytes()).await;
                    }
                }));
            }
            for client in clients {
                client.await.unwrap();
            }
            assert_eq!(proxy.connections_total(), n_connections);
        })
        .await;
    }

    /// Makes sure this process may open `n_files_needed` descriptors,
    /// raising the soft limit towards the hard one if needed; false if the
    /// hard limit is too low.
    fn ensure_open_files_limit(n_files_needed: u64) -> bool {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return false;
        }
        if limit.rlim_cur >= n_files_needed {
            return true;
        }
        if limit.rlim_max < n_files_needed {
            return false;
        }
        limit.rlim_cur = n_files_needed;
        // SAFETY: setrlimit only reads the struct it is given; raising the
        // soft limit up to the hard one needs no privilege.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_beyond_the_limit_are_closed_until_a_slot_frees() {
        // Each proxied connection costs four descriptors in this process:
        // the client, the proxy's two sockets and the echo server's.
        let n_files_needed = 4 * CONNECTIONS_LIVE_MAX as u64 + 256;
        if !ensure_open_files_limit(n_files_needed) {
            eprintln!("skipped: the open files limit is below {n_files_needed}");
            return;
        }
        bounded(async {
            let server = EchoServer::start().await;
            let proxy = FaultProxy::start(server.address).await.unwrap();
            let mut clients = Vec::new();
            for _ in 0..CONNECTIONS_LIVE_MAX {
                let mut client = connect(&proxy).await;
                // A completed round trip proves the connection is registered.
                round_trip(&mut client, b"x").await;
                clients.push(client);
            }
            let mut refused = connect(&proxy).await;
            let read = next_read(&mut refused).await;
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "a connection beyond the limit stayed open: {read:?}"
            );

            // Closing a client frees its slot once both directions are done.
            drop(clients.pop());
            loop {
                let mut client = connect(&proxy).await;
                let _ = client.write_all(b"y").await;
                let mut answer = [0_u8; 1];
                if client.read_exact(&mut answer).await.is_ok() {
                    assert_eq!(&answer, b"y");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    #[test]
    fn fault_names_are_stable() {
        let names: Vec<&str> = [
            NetworkFault::None,
            NetworkFault::Delay { delay_ms: 1 },
            NetworkFault::Drop,
            NetworkFault::Reset,
            NetworkFault::StallClientToServer,
            NetworkFault::StallServerToClient,
            NetworkFault::Blackhole,
        ]
        .iter()
        .map(NetworkFault::name)
        .collect();
        assert_eq!(
            names,
            [
                "none",
                "delay",
                "drop",
                "reset",
                "stall_c2s",
                "stall_s2c",
                "blackhole"
            ]
        );
    }
}
