//! HTTPS against the real binary: `cairn serve --tls-cert --tls-key` with
//! certificates of a private CA made here (rcgen), the CLI and the SDK over
//! `https://` with `--ca-cert`, HTTP/2 by ALPN, a WebSocket stream over
//! `wss://`, plain HTTP answered with a clear error, refused TLS options,
//! and the reload on SIGHUP: new connections get the new certificate, a
//! connection opened before keeps working, a broken file changes nothing.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tls::{ServerCertificate, TestCa};
use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for something it expects.
const WAIT: Duration = Duration::from_secs(20);

/// A TLS server with a certificate of the CA `first`, in `dir`.
struct TlsServer {
    server: Server,
    ca: TestCa,
    certificate: ServerCertificate,
}

fn start_tls(dir: &Path) -> TlsServer {
    let ca = TestCa::new(dir, "first");
    let certificate = ca.server_certificate(dir, "server", 1);
    let server = Server::start(
        &dir.join("data"),
        &[
            "--tls-cert",
            certificate.certificate.to_str().unwrap(),
            "--tls-key",
            certificate.key.to_str().unwrap(),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    TlsServer {
        server,
        ca,
        certificate,
    }
}

/// A blocking HTTPS client trusting `ca` (it offers HTTP/2 and HTTP/1.1).
fn https_client(ca: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(WAIT)
        .build()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_cli_and_the_sdk_work_over_https_with_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tls = start_tls(dir.path());
    let base = tls.server.base.as_str();
    let ca = tls.ca.certificate.to_str().unwrap();

    let fact_json = r#"{"type":"Tls.Note","predecessors":{},"fields":{"n":1}}"#;
    let put = run_cli(&["put", "--server", base, "--ca-cert", ca], fact_json);
    assert!(put.success, "{}", put.stderr);
    let hash = cairn_fact::CanonicalFact::from_json(
        fact_json.as_bytes(),
        cairn_fact::FACT_CANONICAL_BYTES_MAX_DEFAULT,
    )
    .unwrap()
    .hash
    .to_string();
    assert!(put.stdout.contains(&hash), "{}", put.stdout);
    let get = run_cli(&["get", "--server", base, "--ca-cert", ca, &hash], "");
    assert!(get.success, "{}", get.stderr);
    assert!(get.stdout.contains("Tls.Note"), "{}", get.stdout);

    // The same through the environment variable.
    let output = Command::new(CAIRN)
        .args(["get", "--server", base, &hash])
        .env("CAIRN_CA_CERT", ca)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Without the CA the certificate is not trusted, and the error says so.
    let untrusted = run_cli(&["get", "--server", base, &hash], "");
    assert!(!untrusted.success);
    assert!(
        untrusted.stderr.contains("certificate") && untrusted.stderr.contains("--ca-cert"),
        "{}",
        untrusted.stderr
    );

    // The SDK, with the CA as a file and as PEM bytes.
    let runtime = runtime();
    runtime.block_on(async {
        for ca_certificate in [
            cairn_client::CaCertificate::File(tls.ca.certificate.clone()),
            cairn_client::CaCertificate::Pem(std::fs::read(&tls.ca.certificate).unwrap()),
        ] {
            let client = cairn_client::Client::remote(cairn_client::ClientOptions {
                ca_certificates: vec![ca_certificate],
                attempts_max: 1,
                ..cairn_client::ClientOptions::new([base])
            })
            .unwrap();
            let fact = cairn_fact::CanonicalFact::from_json(
                fact_json.as_bytes(),
                cairn_fact::FACT_CANONICAL_BYTES_MAX_DEFAULT,
            )
            .unwrap();
            let written = client.put_facts(vec![fact]).await.unwrap();
            assert_eq!(written[0].hash.to_string(), hash);
            let read = client.get_fact(&written[0].hash).await.unwrap().unwrap();
            assert_eq!(read.fact["type"], "Tls.Note");
        }
        // A CA file that is no certificate is refused when the client is made.
        let refused = cairn_client::Client::remote(cairn_client::ClientOptions {
            ca_certificates: vec![cairn_client::CaCertificate::Pem(b"not PEM".to_vec())],
            ..cairn_client::ClientOptions::new([base])
        });
        assert!(
            matches!(refused, Err(cairn_client::ClientError::InvalidOptions(ref message))
                if message.contains("no PEM certificate")),
            "{:?}",
            refused.err()
        );
    });
}

#[test]
fn plain_http_to_the_https_port_is_answered_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let tls = start_tls(dir.path());
    let plain_base = tls.server.base.replacen("https://", "http://", 1);
    let (status, answer) = json_answer(
        http()
            .get(format!("{plain_base}/v1/health"))
            .send()
            .expect("the server answers plain HTTP"),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "malformed_http", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https://"),
        "{answer}"
    );
    let cli = run_cli(&["log", "--server", &plain_base], "");
    assert!(!cli.success);
    assert!(cli.stderr.contains("https://"), "{}", cli.stderr);
    // The server goes on serving HTTPS.
    let health = https_client(&tls.ca.certificate)
        .get(tls.server.url("/v1/health"))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn http2_is_negotiated_and_metrics_are_served_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls = start_tls(dir.path());
    let client = https_client(&tls.ca.certificate);
    let health = client.get(tls.server.url("/v1/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    let metrics = client.get(tls.server.url("/metrics")).send().unwrap();
    assert_eq!(metrics.status(), 200);
    assert_eq!(metrics.version(), reqwest::Version::HTTP_2);
    assert!(metrics.text().unwrap().contains("cairn_"));
    // A client that offers HTTP/1.1 only gets it.
    let pem = std::fs::read(&tls.ca.certificate).unwrap();
    let http1 = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .http1_only()
        .timeout(WAIT)
        .build()
        .unwrap();
    let health = http1.get(tls.server.url("/v1/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), reqwest::Version::HTTP_11);
    // Writes over HTTP/2 too.
    let written = client
        .post(tls.server.url("/v1/facts"))
        .json(&json!({"facts": [fact("Tls.H2", json!({}), json!({}))]}))
        .send()
        .unwrap();
    assert_eq!(written.status(), 200);
    assert_eq!(written.version(), reqwest::Version::HTTP_2);
}

#[test]
fn a_subscription_streams_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let tls = start_tls(dir.path());
    let client = https_client(&tls.ca.certificate);
    let created = client
        .put(tls.server.url("/v1/subscriptions/notes"))
        .json(&json!({"type": "Tls.Note"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let written = client
        .post(tls.server.url("/v1/facts"))
        .json(&json!({"facts": [fact("Tls.Note", json!({"n": 1}), json!({}))]}))
        .send()
        .unwrap();
    assert_eq!(written.status(), 200);

    let config = Arc::new(client_config(&[&tls.ca.certificate], &[b"http/1.1"]));
    let url = format!(
        "{}/v1/subscriptions/notes/stream",
        tls.server.base.replacen("https://", "wss://", 1)
    );
    runtime().block_on(async {
        let (mut socket, response) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async_tls_with_config(
                url,
                None,
                false,
                Some(tokio_tungstenite::Connector::Rustls(config)),
            ),
        )
        .await
        .expect("the upgrade is answered in time")
        .expect("the stream upgrades over TLS");
        assert_eq!(response.status().as_u16(), 101);
        socket
            .send(Message::text(json!({"credit": 1}).to_string()))
            .await
            .unwrap();
        let frame = loop {
            match tokio::time::timeout(WAIT, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    break serde_json::from_str::<Value>(text.as_str()).unwrap()
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                other => panic!("expected a message frame, got {other:?}"),
            }
        };
        assert_eq!(frame["message"]["fact"]["type"], "Tls.Note", "{frame}");
        let token = frame["message"]["token"].clone();
        socket
            .send(Message::text(json!({"ack": [token]}).to_string()))
            .await
            .unwrap();
        let answer = match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                serde_json::from_str::<Value>(text.as_str()).unwrap()
            }
            other => panic!("expected the ack's results, got {other:?}"),
        };
        assert_eq!(answer["results"][0]["status"], "acked", "{answer}");
        socket.close(None).await.ok();
    });
}

#[test]
fn tls_options_are_checked_before_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "first");
    let certificate = ca.server_certificate(dir.path(), "server", 1);
    let other = ca.server_certificate(dir.path(), "other", 2);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let path = |path: &Path| path.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--tls-cert".into(), path(&certificate.certificate)],
            "--tls-key",
        ),
        (
            vec!["--tls-key".into(), path(&certificate.key)],
            "--tls-cert",
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&dir.path().join("absent.crt")),
                "--tls-key".into(),
                path(&certificate.key),
            ],
            "absent.crt",
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&certificate.certificate),
                "--tls-key".into(),
                path(&garbage),
            ],
            "no usable private key",
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&certificate.certificate),
                "--tls-key".into(),
                path(&other.key),
            ],
            "does not fit the certificate",
        ),
    ];
    let other_key = std::fs::read_to_string(&other.key).unwrap();
    for (args, expected) in cases {
        let mut child = Command::new(CAIRN)
            .arg("serve")
            .arg("--data")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env_remove("CAIRN_STORE")
            .env_remove("CAIRN_TLS_CERT")
            .env_remove("CAIRN_TLS_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > WAIT {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("cairn serve {args:?} did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{args:?} started");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("listening on"), "{args:?}: {stderr}");
        for key_line in other_key.lines().filter(|line| !line.starts_with("-----")) {
            assert!(!stderr.contains(key_line), "key material in {stderr}");
        }
    }
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let tls = start_tls(dir.path());
    let second_ca = TestCa::new(dir.path(), "second");
    let second = second_ca.server_certificate(dir.path(), "renewed", 2);
    let address = tls.server.base.trim_start_matches("https://").to_string();
    let both_cas = Arc::new(client_config(
        &[&tls.ca.certificate, &second_ca.certificate],
        &[b"http/1.1"],
    ));

    runtime().block_on(async {
        // A connection opened before the reload, kept open.
        let (mut kept, first_seen) = connect(&address, &both_cas).await;
        assert_eq!(first_seen, tls.certificate.der);
        assert_eq!(health(&mut kept).await, 200);

        // Renew: new files from another CA, then SIGHUP.
        std::fs::copy(&second.certificate, &tls.certificate.certificate).unwrap();
        std::fs::copy(&second.key, &tls.certificate.key).unwrap();
        hang_up(&tls.server);
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, seen) = connect(&address, &both_cas).await;
            if seen == second.der {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "new connections still get the old certificate:\n{}",
                tls.server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The connection from before still works, on the same socket.
        assert_eq!(health(&mut kept).await, 200);
        assert!(tls.server.log_text().contains("TLS files reloaded"));

        // A broken key file: the reload fails and changes nothing.
        std::fs::write(
            &tls.certificate.key,
            "-----BEGIN PRIVATE KEY-----\ntruncated",
        )
        .unwrap();
        hang_up(&tls.server);
        let deadline = Instant::now() + WAIT;
        while !tls.server.log_text().contains("not reloaded") {
            assert!(Instant::now() < deadline, "{}", tls.server.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!tls.server.log_text().contains("truncated"));
        let (mut after_failure, seen) = connect(&address, &both_cas).await;
        assert_eq!(seen, second.der);
        assert_eq!(health(&mut after_failure).await, 200);
        assert_eq!(health(&mut kept).await, 200);
    });

    // Clients trusting only the new CA get through; the old CA no longer.
    let base = tls.server.base.as_str();
    let new_ca = run_cli(
        &[
            "log",
            "--server",
            base,
            "--ca-cert",
            second_ca.certificate.to_str().unwrap(),
        ],
        "",
    );
    assert!(new_ca.success, "{}", new_ca.stderr);
    let old_ca = run_cli(
        &[
            "log",
            "--server",
            base,
            "--ca-cert",
            tls.ca.certificate.to_str().unwrap(),
        ],
        "",
    );
    assert!(!old_ca.success);
    assert!(old_ca.stderr.contains("certificate"), "{}", old_ca.stderr);
}

/// A rustls client configuration trusting `cas` and offering `alpn`.
fn client_config(cas: &[&Path], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(certificate.unwrap()).unwrap();
        }
    }
    #[allow(deprecated)] // ring, as the server uses (see tls.rs)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|name| name.to_vec()).collect();
    config
}

type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A new TLS connection and the server certificate it was shown.
async fn connect(address: &str, config: &Arc<rustls::ClientConfig>) -> (TlsStream, Vec<u8>) {
    let tcp = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(address))
        .await
        .expect("connects in time")
        .expect("the listener accepts");
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshakes in time")
        .expect("the handshake succeeds");
    let seen = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (stream, seen)
}

/// `GET /v1/health` on a kept-alive HTTP/1.1 connection; the status.
async fn health(stream: &mut TlsStream) -> u16 {
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("answers in time")
            .expect("the connection stays open");
        assert!(read > 0, "the connection was closed");
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a content-length");
            if answer.len() >= head_end + 4 + length {
                return text[9..12].parse().unwrap();
            }
        }
    }
}

/// Sends SIGHUP to the server (by its PID).
fn hang_up(server: &Server) {
    // SAFETY: kill(2) on the PID of the test's own child, which is running
    // (not reaped), so the PID cannot belong to another process.
    let sent = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(sent, 0);
}

/// The link named `name` on `server`, as its admin sees it.
fn link_view(server: &Server, name: &str) -> Value {
    get_json(server, &format!("/v1/links/{name}")).1
}

#[test]
fn a_link_reads_an_https_source_signed_by_a_private_ca_it_is_told_to_trust() {
    let dir = tempfile::tempdir().unwrap();
    let source = start_tls(dir.path());
    let ca = source.ca.certificate.to_str().unwrap();
    let trusting = Server::start(&dir.path().join("trusting"), &["--link-ca-cert", ca]);
    let untrusting = Server::start(&dir.path().join("untrusting"), &[]);
    let definition = json!({"source": source.server.base, "types": ["Tls.*"]});
    for receiver in [&trusting, &untrusting] {
        let (status, answer) = json_answer(
            http()
                .put(receiver.url("/v1/links/secure"))
                .json(&definition)
                .send()
                .unwrap(),
        );
        assert_eq!(status, 201, "{answer}");
    }
    let fact_json = r#"{"type":"Tls.Linked","predecessors":{},"fields":{"n":2}}"#;
    let put = run_cli(
        &["put", "--server", &source.server.base, "--ca-cert", ca],
        fact_json,
    );
    assert!(put.success, "{}", put.stderr);

    let deadline = Instant::now() + WAIT;
    while last_seq(&trusting) < 1 {
        assert!(
            Instant::now() < deadline,
            "{}",
            link_view(&trusting, "secure")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Without the CA the source's certificate is not trusted: the link
    // fails, says why, and stores nothing.
    let failing = loop {
        let view = link_view(&untrusting, "secure");
        if view["state"] == "failing" {
            break view;
        }
        assert!(Instant::now() < deadline, "{view}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let error = failing["last_error"].as_str().unwrap();
    assert!(
        error.contains("cannot connect") && error.contains("--link-ca-cert"),
        "{error}"
    );
    assert_eq!(last_seq(&untrusting), 0);

    // A CA file that holds no certificate stops the server at start.
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not PEM").unwrap();
    let refused = Server::try_start(
        &dir.path().join("refused"),
        &["--link-ca-cert", not_pem.to_str().unwrap()],
    );
    assert!(
        matches!(&refused, Err(message) if message.contains("no PEM certificate")),
        "{:?}",
        refused.err()
    );
}
