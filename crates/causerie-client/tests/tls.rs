//! `https://` servers: trusted through the roots the client is given, and only those. The roots
//! are what the Android build uses (Mozilla's, compiled in), through the same connector.

mod support;

use std::net::SocketAddr;

use causerie_client::{ClientConfig, ClientEvent, ConnectionState, TrustedRoots};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use support::{Recorded, TestServer, test_config};
use tokio::net::{TcpListener, TcpStream};

/// A private certificate authority, and a certificate it issued for 127.0.0.1.
struct TestAuthority {
    root_der: Vec<u8>,
    server_identity: native_tls::Identity,
}

fn test_authority() -> TestAuthority {
    let authority_key = KeyPair::generate().expect("a key");
    let mut authority = CertificateParams::new(Vec::<String>::new()).expect("params");
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    authority.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    authority
        .distinguished_name
        .push(DnType::CommonName, "Causerie test authority");
    let root = authority.self_signed(&authority_key).expect("a root");
    let issuer = Issuer::new(authority, authority_key);
    let server_key = KeyPair::generate().expect("a key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&server_key, &issuer)
        .expect("a server certificate");
    let server_identity = native_tls::Identity::from_pkcs8(
        server.pem().as_bytes(),
        server_key.serialize_pem().as_bytes(),
    )
    .expect("an identity");
    TestAuthority {
        root_der: root.der().to_vec(),
        server_identity,
    }
}

/// Terminates TLS in front of the server at `target`, as a reverse proxy would.
async fn tls_front(identity: native_tls::Identity, target: SocketAddr) -> SocketAddr {
    let acceptor = tokio_native_tls::TlsAcceptor::from(
        native_tls::TlsAcceptor::new(identity).expect("an acceptor"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake: nothing to relay.
                let Ok(mut inbound) = acceptor.accept(inbound).await else {
                    return;
                };
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    address
}

fn connected(log: &[ClientEvent]) -> bool {
    log.iter()
        .any(|e| matches!(e, ClientEvent::State(ConnectionState::Connected)))
}

#[tokio::test]
async fn an_https_server_is_trusted_through_the_roots_given_and_no_others() {
    let server = TestServer::start().await;
    let authority = test_authority();
    let front = tls_front(authority.server_identity, server.address).await;
    let url = format!("https://{front}");

    let mut trusting = Recorded::start(ClientConfig {
        trusted_roots: TrustedRoots::Only(vec![authority.root_der]),
        ..test_config(&url, "Ada")
    });
    trusting.until_connected().await;
    let hello = trusting.client.send("general", "over TLS");
    trusting.until_confirmed(std::slice::from_ref(&hello)).await;

    // Mozilla's roots, the Android default, do not vouch for a private authority; neither does
    // this machine's store. Each tries twice and is never welcomed.
    for roots in [TrustedRoots::mozilla(), TrustedRoots::System] {
        let mut doubting = Recorded::start(ClientConfig {
            trusted_roots: roots,
            ..test_config(&url, "Bob")
        });
        doubting
            .until("two failed attempts", |log| {
                log.iter().any(|e| {
                    matches!(
                        e,
                        ClientEvent::State(ConnectionState::Reconnecting { attempt: 2, .. })
                    )
                })
            })
            .await;
        assert!(
            !connected(&doubting.log),
            "not welcomed: {:?}",
            doubting.log
        );
    }
}

#[test]
fn mozillas_roots_are_many_and_readable() {
    let TrustedRoots::Only(roots) = TrustedRoots::mozilla() else {
        panic!("a list");
    };
    assert!(roots.len() > 100, "{} roots", roots.len());
    for der in &roots {
        native_tls::Certificate::from_der(der).expect("each root reads as a certificate");
    }
}
