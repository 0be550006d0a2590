//! Which 127.0.0.1 ports a stack's services get.

use crate::StackName;

/// Where stack ports come from: below Linux's ephemeral range (32768-60999), which every
/// outgoing connection on the machine draws its local port from. A port chosen there is free
/// when chosen and may be some client's a moment later, before the service binds it (seen with
/// several stacks starting at once: RabbitMQ's management listener failed with eaddrinuse).
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port for `service` of stack `name` that stays the same from one `up` to the next, spread
/// over [`PORTS`] by a hash of both names.
pub(crate) fn preferred_port(name: &StackName, service: &str) -> u16 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{name}/{service}").as_bytes());
    PORTS.start + u16::from_be_bytes([digest[0], digest[1]]) % (PORTS.end - PORTS.start)
}

/// A listener on `service`'s preferred port, or else on the next free one in [`PORTS`] after
/// it; the caller holds it until the service is spawned, so no two services of one `up` get
/// the same port.
pub(crate) fn bind_free_port(
    name: &StackName,
    service: &str,
) -> std::io::Result<std::net::TcpListener> {
    let first = preferred_port(name, service);
    let span = PORTS.end - PORTS.start;
    let mut last = None;
    for i in 0..span {
        let port = PORTS.start + (first - PORTS.start + i) % span;
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

#[cfg(test)]
mod port_tests {
    use super::preferred_port;

    #[test]
    fn a_stack_keeps_its_ports_and_services_get_different_ones() {
        let name = "default".parse().unwrap();
        assert_eq!(
            preferred_port(&name, "fakesnow"),
            preferred_port(&name, "fakesnow")
        );
        let ports: std::collections::HashSet<u16> =
            ["rabbitmq", "postgres", "localstack", "fakesnow"]
                .iter()
                .map(|s| preferred_port(&name, s))
                .collect();
        assert_eq!(ports.len(), 4);
        assert!(ports.iter().all(|p| super::PORTS.contains(p)));
        assert!(super::PORTS.end <= 32_768, "below the ephemeral range");
    }

    #[test]
    fn a_taken_preferred_port_gives_the_next_free_one_below_the_ephemeral_range() {
        let name = "porttest".parse().unwrap();
        let held = super::bind_free_port(&name, "svc").unwrap();
        let next = super::bind_free_port(&name, "svc").unwrap();
        let (a, b) = (
            held.local_addr().unwrap().port(),
            next.local_addr().unwrap().port(),
        );
        assert_ne!(a, b);
        assert!(super::PORTS.contains(&a) && super::PORTS.contains(&b));
    }
}
