//! A TCP proxy in front of PostgreSQL for the multi-server outage tests:
//! it forwards connections, and on command cuts them or stalls them (a
//! network partition), then lets them through again.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A TCP proxy in front of PostgreSQL. It forwards connections, and on
/// command cuts them (closes every connection and turns new ones away:
/// accepted, then closed at once) or stalls them (bytes stop flowing both
/// ways and new connections are held unanswered, as in a network
/// partition), and lets them through again. It can stall right after a
/// large request went through to PostgreSQL, so that a statement is
/// certainly in flight when the partition starts.
pub struct Proxy {
    /// Where the proxy listens.
    pub address: SocketAddr,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy, PartialEq)]
enum ProxyMode {
    Open,
    Cut,
    Stalled,
}

struct ProxyShared {
    stopping: AtomicBool,
    /// Read by the copying threads before each write.
    stalled: AtomicBool,
    /// When not 0: stall after forwarding a read of at least this many
    /// bytes towards PostgreSQL.
    stall_after_bytes: AtomicUsize,
    connections: Mutex<ProxyConnections>,
}

struct ProxyConnections {
    mode: ProxyMode,
    /// When the last stall began.
    stalled_at: Option<Instant>,
    /// Both ends of every forwarded connection, to cut them.
    streams: Vec<TcpStream>,
    /// Connections accepted while stalled, never answered.
    held: Vec<TcpStream>,
    /// The threads copying bytes, two per connection.
    pumps: Vec<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared {
            stopping: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            stall_after_bytes: AtomicUsize::new(0),
            connections: Mutex::new(ProxyConnections {
                mode: ProxyMode::Open,
                stalled_at: None,
                streams: Vec::new(),
                held: Vec::new(),
                pumps: Vec::new(),
            }),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if acceptor_shared.stopping.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                // Deciding under the lock that `cut` and `stall` take means
                // no connection slips through a change of mode.
                let mut connections = acceptor_shared.connections.lock().unwrap();
                match connections.mode {
                    ProxyMode::Cut => drop(client),
                    ProxyMode::Stalled => connections.held.push(client),
                    ProxyMode::Open => {
                        if let Ok(upstream) =
                            TcpStream::connect_timeout(&target, Duration::from_secs(2))
                        {
                            forward(&acceptor_shared, client, upstream, &mut connections);
                        }
                    }
                }
            }
        });
        Proxy {
            address,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Closes every forwarded connection and turns new ones away.
    pub fn cut(&self) {
        let mut connections = self.shared.connections.lock().unwrap();
        connections.mode = ProxyMode::Cut;
        self.shared.stalled.store(false, Ordering::Release);
        for stream in connections.streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        connections.held.clear();
    }

    /// Stalls right after the next read of at least `bytes_min` bytes
    /// towards PostgreSQL (a large statement) went through; returns when
    /// the stall began.
    pub fn stall_after_request_of(&self, bytes_min: usize, within: Duration) -> Instant {
        self.shared
            .stall_after_bytes
            .store(bytes_min, Ordering::Release);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(stalled_at) = self.shared.connections.lock().unwrap().stalled_at {
                return stalled_at;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no request of {bytes_min} bytes went to PostgreSQL within {within:?}");
    }

    /// Forwards again: stalled connections resume, held ones are closed
    /// (their clients gave up long ago), new ones pass.
    pub fn restore(&self) {
        let mut connections = self.shared.connections.lock().unwrap();
        connections.mode = ProxyMode::Open;
        connections.stalled_at = None;
        self.shared.stall_after_bytes.store(0, Ordering::Release);
        self.shared.stalled.store(false, Ordering::Release);
        connections.held.clear();
    }
}

impl ProxyShared {
    /// Stops every byte, both ways, without closing anything.
    fn stall(&self) {
        let mut connections = self.connections.lock().unwrap();
        connections.mode = ProxyMode::Stalled;
        connections.stalled_at.get_or_insert_with(Instant::now);
        self.stall_after_bytes.store(0, Ordering::Release);
        self.stalled.store(true, Ordering::Release);
    }
}

/// Copies bytes both ways between `client` and `upstream` on two threads,
/// holding them back while the proxy is stalled.
fn forward(
    shared: &Arc<ProxyShared>,
    client: TcpStream,
    upstream: TcpStream,
    connections: &mut ProxyConnections,
) {
    let ends = [
        (client.try_clone(), upstream.try_clone(), true),
        (upstream.try_clone(), client.try_clone(), false),
    ];
    for ends in ends {
        let (Ok(mut from), Ok(mut to), towards_postgres) = ends else {
            return;
        };
        let shared = Arc::clone(shared);
        connections.pumps.push(std::thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n_bytes = match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n_bytes) => n_bytes,
                };
                while shared.stalled.load(Ordering::Acquire)
                    && !shared.stopping.load(Ordering::Acquire)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if to.write_all(&buffer[..n_bytes]).is_err() {
                    break;
                }
                let bytes_min = shared.stall_after_bytes.load(Ordering::Acquire);
                if towards_postgres && bytes_min > 0 && n_bytes >= bytes_min {
                    shared.stall();
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }));
    }
    connections.streams.push(client);
    connections.streams.push(upstream);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.cut();
        // Wakes the acceptor, which then sees `stopping`.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let pumps: Vec<_> = self
            .shared
            .connections
            .lock()
            .unwrap()
            .pumps
            .drain(..)
            .collect();
        for pump in pumps {
            let _ = pump.join();
        }
    }
}
