//! A real TLS 1.3 mutual-auth handshake with rustls (webpki checks both chains) using a server and
//! a client certificate issued by the core.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use common::{now, rng};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use wasm_pki::*;

fn issue(
    ca: &CertificateAuthority,
    alg: Algorithm,
    identity: SanName,
    usage: Usage,
) -> (KeyPair, Certificate) {
    let (key, csr, opts) = common::request_for(alg, identity, None);
    let profile = ProfileSpec {
        usage,
        ..Profile::default().to_spec()
    }
    .build()
    .unwrap();
    (
        key,
        ca.issue(&csr, &profile, &opts, now(), &mut rng())
            .unwrap()
            .certificate,
    )
}

fn key_der(k: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.to_pkcs8_der().unwrap().to_vec()))
}

fn handshake(
    ca_alg: Algorithm,
    server_alg: Algorithm,
    client_alg: Algorithm,
    client_identity: SanName,
) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut p = CaParams::new("mTLS Root");
    p.algorithm = ca_alg;
    let root = CertificateAuthority::new_root(&p, now(), &mut rng()).unwrap();
    let mut ip = CaParams::new("mTLS Intermediate");
    ip.algorithm = ca_alg;
    let int = root.new_intermediate(&ip, now(), &mut rng()).unwrap();
    let (skey, scert) = issue(
        &int,
        server_alg,
        SanName::dns("server.test").unwrap(),
        Usage::Server,
    );
    let (ckey, ccert) = issue(&int, client_alg, client_identity, Usage::Client);

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(root.certificate().der().to_vec()))
        .unwrap();
    let roots = Arc::new(roots);
    let chain = |c: &Certificate| {
        vec![
            CertificateDer::from(c.der().to_vec()),
            CertificateDer::from(int.certificate().der().to_vec()),
        ]
    };

    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(&scert), key_der(&skey))
        .unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain(&ccert), key_der(&ckey))
        .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || -> Result<String, String> {
        let (mut tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut conn =
            rustls::ServerConnection::new(Arc::new(server_cfg)).map_err(|e| e.to_string())?;
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(b"pong").map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        let peer = conn.peer_certificates().map(|c| c.len()).unwrap_or(0);
        Ok(format!("{} {peer}", String::from_utf8_lossy(&buf)))
    });
    let client_result = (|| -> Result<String, String> {
        let mut tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let mut conn = rustls::ClientConnection::new(
            Arc::new(client_cfg),
            ServerName::try_from("server.test").unwrap(),
        )
        .map_err(|e| e.to_string())?;
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        tls.write_all(b"ping!").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })();
    let server_result = server.join().unwrap();
    let reply = client_result?;
    let seen = server_result?;
    Ok(format!("{reply} / {seen}"))
}

#[test]
fn tls13_mutual_auth_with_issued_certificates() {
    for (ca, s, c) in [
        (Algorithm::P256, Algorithm::P256, Algorithm::Ed25519),
        (Algorithm::Ed25519, Algorithm::Ed25519, Algorithm::P256),
    ] {
        let out = handshake(ca, s, c, SanName::dns("client.test").unwrap())
            .unwrap_or_else(|e| panic!("{ca}/{s}/{c}: {e}"));
        // The client got "pong", the server read "ping!" and saw a two-certificate client chain.
        assert_eq!(out, "pong / ping! 2");
    }
}

#[test]
fn tls13_mutual_auth_with_a_spiffe_client() {
    let out = handshake(
        Algorithm::P256,
        Algorithm::P256,
        Algorithm::P256,
        SanName::uri("spiffe://example.org/ns/a/sa/b").unwrap(),
    )
    .unwrap();
    assert_eq!(out, "pong / ping! 2");
}

#[test]
fn webpki_rejects_a_client_certificate_used_as_server() {
    // A client-only leaf must not work as a server certificate: the EKU the profile set is enforced.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root =
        CertificateAuthority::new_root(&CaParams::new("EKU Root"), now(), &mut rng()).unwrap();
    let (_k, cert) = issue(
        &root,
        Algorithm::P256,
        SanName::dns("server.test").unwrap(),
        Usage::Client,
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(root.certificate().der().to_vec()))
        .unwrap();
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let err = verifier
        .verify_server_cert(
            &CertificateDer::from(cert.der().to_vec()),
            &[],
            &ServerName::try_from("server.test").unwrap(),
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("Purpose")
            || format!("{err:?}").contains("ExtendedKeyUsage")
            || format!("{err:?}").contains("Usage"),
        "{err:?}"
    );
}
