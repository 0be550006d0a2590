//! A TCP fault proxy with Toxiproxy's semantics, for outages between the components and a
//! service: the components connect to the proxy, the proxy to the service, and the harness
//! switches the fault on and off while they run.
//!
//! - [`Toxic::Pass`]: bytes forwarded unchanged, both ways;
//! - [`Toxic::Refuse`]: the port is closed (new connections refused) and open connections are
//!   closed (Toxiproxy's `enabled: false`);
//! - [`Toxic::Reset`]: every connection, open or new, is reset (RST) (`reset_peer`);
//! - [`Toxic::Blackhole`]: connections are accepted and held, nothing is forwarded either way
//!   (`timeout` with no timeout): the hardest case for a client without timeouts. When it ends,
//!   the held connections are closed, since whatever was sent meanwhile is gone;
//! - [`Toxic::Latency`]: every chunk from the service waits this long before it is forwarded
//!   (`latency`, downstream).
//!
//! A change applies to open connections at once, not only to new ones.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toxic {
    Pass,
    Refuse,
    Reset,
    Blackhole,
    Latency(Duration),
}

/// A running proxy. Dropping it stops it and closes its connections.
pub struct FaultProxy {
    addr: SocketAddr,
    toxic: watch::Sender<Toxic>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (toxic, watcher) = watch::channel(Toxic::Pass);
        let task = tokio::spawn(serve(Some(listener), addr, upstream, watcher));
        Ok(Self { addr, toxic, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, toxic: Toxic) {
        self.toxic.send_replace(toxic);
    }

    pub fn toxic(&self) -> Toxic {
        *self.toxic.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts while the port is open; closes it while the toxic is `Refuse` and opens it again on
/// the same port afterwards.
async fn serve(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut toxic: watch::Receiver<Toxic>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let current = *toxic.borrow_and_update();
        match (&listener, current) {
            (Some(_), Toxic::Refuse) => listener = None,
            (None, t) if t != Toxic::Refuse => match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "fault proxy: reopening the port");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ => {}
        }
        tokio::select! {
            changed = toxic.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = accept(listener.as_ref()) => {
                if let Ok((client, _)) = accepted {
                    connections.spawn(connection(client, upstream, toxic.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// A zero linger: closing the socket then sends a reset (RST) instead of an orderly close, and
/// does not block (tokio deprecates `set_linger` because a non-zero linger blocks on drop).
#[allow(deprecated)]
fn zero_linger(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

/// Ends a connection with a TCP reset rather than an orderly close.
fn reset(stream: TcpStream) {
    zero_linger(&stream);
    drop(stream);
}

async fn connection(client: TcpStream, upstream: SocketAddr, mut toxic: watch::Receiver<Toxic>) {
    let _ = client.set_nodelay(true);
    let current = *toxic.borrow_and_update();
    match current {
        Toxic::Reset => return reset(client),
        Toxic::Blackhole => {
            // Held open, read and dropped, until the fault ends; then closed.
            hold(client, &mut toxic).await;
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream_pump = pump(client_read, server_write, toxic.clone(), false);
    let downstream_pump = pump(server_read, client_write, toxic.clone(), true);
    // Whichever side ends first ends the connection.
    let outcome = tokio::select! {
        o = upstream_pump => o,
        o = downstream_pump => o,
    };
    if let Ending::Reset(a, b) = outcome {
        drop(a);
        drop(b);
    }
}

/// How a pump ended: the peer closed, or the toxic said to reset (the halves to drop, with
/// linger 0 already set on the sockets where it could be).
enum Ending {
    Closed,
    Reset(
        Option<tokio::net::tcp::OwnedReadHalf>,
        Option<tokio::net::tcp::OwnedWriteHalf>,
    ),
}

async fn hold(client: TcpStream, toxic: &mut watch::Receiver<Toxic>) {
    let (mut read, _write) = client.into_split();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            changed = toxic.changed() => {
                if changed.is_err() || *toxic.borrow() != Toxic::Blackhole {
                    return;
                }
            }
            n = read.read(&mut buf) => {
                if matches!(n, Ok(0) | Err(_)) {
                    return;
                }
            }
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut toxic: watch::Receiver<Toxic>,
    downstream: bool,
) -> Ending {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            changed = toxic.changed() => {
                if changed.is_err() {
                    return Ending::Closed;
                }
                match *toxic.borrow() {
                    Toxic::Refuse => return Ending::Closed,
                    Toxic::Reset => {
                        zero_linger(to.as_ref());
                        return Ending::Reset(Some(from), Some(to));
                    }
                    _ => continue,
                }
            }
            n = from.read(&mut buf) => n,
        };
        let n = match n {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return Ending::Closed;
            }
            Ok(n) => n,
        };
        let current = *toxic.borrow();
        match current {
            Toxic::Pass => {}
            Toxic::Latency(d) => {
                if downstream {
                    tokio::time::sleep(d).await;
                }
            }
            Toxic::Blackhole => {
                // Dropped; the connection is held until the fault ends, then closed.
                loop {
                    if toxic.changed().await.is_err() || *toxic.borrow() != Toxic::Blackhole {
                        return Ending::Closed;
                    }
                }
            }
            Toxic::Refuse => return Ending::Closed,
            Toxic::Reset => {
                zero_linger(to.as_ref());
                return Ending::Reset(Some(from), Some(to));
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return Ending::Closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// An echo server: whatever a client sends comes back.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(bytes).await?;
        let mut back = vec![0u8; bytes.len()];
        s.read_exact(&mut back).await?;
        Ok(back)
    }

    #[tokio::test]
    async fn traffic_passes_byte_exact_when_no_fault_is_on() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(round_trip(&mut s, &bytes).await.unwrap(), bytes);
    }

    #[tokio::test]
    async fn refuse_closes_the_port_and_open_connections_then_reopens_it() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut open, b"hello").await.unwrap();
        proxy.set(Toxic::Refuse);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let err = TcpStream::connect(proxy.addr()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "the open connection is closed: {read:?}"
        );
        proxy.set(Toxic::Pass);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut again, b"back").await.unwrap(), b"back");
    }

    #[tokio::test]
    async fn reset_resets_open_and_new_connections() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut open, b"hello").await.unwrap();
        proxy.set(Toxic::Reset);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let old = round_trip(&mut open, b"again").await;
        assert!(old.is_err(), "{old:?}");
        let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
        let err = round_trip(&mut new, b"x").await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_blackhole_holds_a_connection_until_the_clients_timeout() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.set(Toxic::Blackhole);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        for s in [&mut open, &mut fresh] {
            let r = tokio::time::timeout(Duration::from_millis(500), round_trip(s, b"ping")).await;
            assert!(r.is_err(), "no answer before the client's timeout: {r:?}");
        }
        proxy.set(Toxic::Pass);
        let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut after, b"pong").await.unwrap(), b"pong");
    }

    #[tokio::test]
    async fn latency_delays_each_answer_by_the_set_time() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut s, b"warm").await.unwrap();
        let latency = Duration::from_millis(400);
        proxy.set(Toxic::Latency(latency));
        let mut trips: Vec<Duration> = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            round_trip(&mut s, b"ping").await.unwrap();
            trips.push(started.elapsed());
        }
        trips.sort();
        let median = trips[2];
        assert!(
            median >= latency && median <= latency + latency / 10,
            "median round trip {median:?} for a latency of {latency:?}"
        );
        proxy.set(Toxic::Pass);
        let started = Instant::now();
        round_trip(&mut s, b"fast").await.unwrap();
        assert!(started.elapsed() < latency, "latency off again");
    }
}
