//! TLS against a loopback HTTPS console with a self-signed certificate: refused by default,
//! accepted with `ca_bundle` naming that certificate (as a file or as PEM text), and accepted
//! with `verify_tls: false`, which the result then warns about.
//!
//! The console is the simulator behind a small TLS-terminating proxy (rustls, with a
//! certificate rcgen makes for 127.0.0.1 at test time), so the requests are real action
//! requests and the simulator records them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use s1_sim::Simulator;
use serde_json::{Value, json};

use crate::support::{self, CANARY_TOKEN};

const HASH: &str = "b1ac000000000000000000000000000000000001";

/// HTTPS on a loopback port in front of a simulator.
struct TlsConsole {
    port: u16,
    /// PEM of the console's self-signed certificate.
    certificate: String,
    handshakes: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    sim: Simulator,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsConsole {
    fn start() -> Self {
        let sim = support::simulator(json!({ "generate": { "restrictions": 2 } }));
        let generated =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".into()])
                .unwrap();
        let certificate = generated.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(generated.cert.der().to_vec())],
                key,
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = sim.base_url().trim_start_matches("http://").to_string();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (counter, log, stopping) = (
            Arc::clone(&handshakes),
            Arc::clone(&errors),
            Arc::clone(&stop),
        );
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, upstream) = (Arc::clone(&config), upstream.clone());
                let (counter, log) = (Arc::clone(&counter), Arc::clone(&log));
                std::thread::spawn(move || {
                    if let Err(error) = proxy(stream, config, &upstream, &counter) {
                        log.lock().unwrap().push(error);
                    }
                });
            }
        });
        Self {
            port,
            certificate,
            handshakes,
            errors,
            sim,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn hostname(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Runs action 3 on one listed hash with `config` added to the connection settings.
    fn delete_one(&self, config: Value) -> (support::Run, Value) {
        let mut full = json!({ "hostname": self.hostname(), "api_token": CANARY_TOKEN,
                               "max_retries": 2, "request_timeout_seconds": 5 });
        full.as_object_mut()
            .unwrap()
            .extend(config.as_object().unwrap().clone());
        let envelope = json!({ "action": 3, "config": full,
                               "objects": [{ "id": 1, "type": "SHA-1", "value": HASH }] });
        let out = support::run(&["run"], &envelope.to_string());
        let result = support::checked(&out, 1);
        (out, result)
    }
}

impl Drop for TlsConsole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// One connection: the TLS handshake, one request forwarded to the simulator, its answer back.
fn proxy(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    upstream: &str,
    handshakes: &AtomicUsize,
) -> Result<(), String> {
    let connection = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, stream);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    handshakes.fetch_add(1, Ordering::SeqCst);
    let Some(request) = support::read_request(&mut tls) else {
        return Ok(());
    };
    let mut backend = TcpStream::connect(upstream).map_err(|e| e.to_string())?;
    backend
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // The simulator closes every connection after its answer.
    backend
        .read_to_end(&mut answer)
        .map_err(|e| e.to_string())?;
    tls.write_all(&answer).map_err(|e| e.to_string())?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}

#[test]
fn a_self_signed_console_is_refused_by_default_and_not_retried() {
    let console = TlsConsole::start();
    let (out, result) = console.delete_one(json!({}));
    assert_eq!(out.exit, 5, "{result}");
    assert_eq!(result["errors"][0]["code"], "network.tls", "{result}");
    assert_eq!(result["errors"][0]["retryable"], false);
    assert_eq!(result["results"][0]["error"]["code"], "network.tls");
    assert_eq!(
        result["metrics"]["http_requests"], 1,
        "a TLS failure is never retried"
    );
    assert_eq!(console.handshakes.load(Ordering::SeqCst), 0);
    assert!(
        console.sim.requests().is_empty(),
        "nothing reached the console"
    );
    // The server thread records the broken handshake on its own time, which can be after the
    // client has exited.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while console.errors.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let errors = console.errors.lock().unwrap().clone();
    assert!(!errors.is_empty(), "the client broke off the handshake");
}

#[test]
fn a_ca_bundle_naming_the_certificate_is_trusted() {
    let console = TlsConsole::start();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &console.certificate).unwrap();
    for bundle in [
        file.path().display().to_string(),
        console.certificate.clone(),
    ] {
        console.sim.take_requests();
        let (out, result) = console.delete_one(json!({ "ca_bundle": bundle }));
        assert_eq!(out.exit, 0, "{result}");
        assert_eq!(result["warnings"], json!([]), "{result}");
        let requests = console.sim.take_requests();
        assert!(!requests.is_empty());
        assert!(requests.iter().all(|request| request.authorized));
    }
    // The first run removed the entry, the second found nothing left to remove.
    assert_eq!(
        console.sim.state()["restrictions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A bundle with another certificate does not make the console trusted.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (out, result) = console.delete_one(json!({ "ca_bundle": other.cert.pem() }));
    assert_eq!(out.exit, 5, "{result}");
    assert_eq!(result["errors"][0]["code"], "network.tls");
}

#[test]
fn verify_tls_false_accepts_the_certificate_and_warns() {
    let console = TlsConsole::start();
    let (out, result) = console.delete_one(json!({ "verify_tls": false }));
    assert_eq!(out.exit, 0, "{result}");
    let warnings = result["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|warning| warning["code"] == "tls.verification_disabled"
                && warning["field"] == "config.verify_tls"),
        "{result}"
    );
    assert_eq!(
        result["results"][0]["detail"],
        "Removed 1 blacklist entry (windows)"
    );
    assert!(console.handshakes.load(Ordering::SeqCst) >= 2);

    // `check` the same way.
    let envelope = json!({ "config": { "hostname": console.hostname(), "api_token": CANARY_TOKEN,
                                       "verify_tls": false } });
    let out = support::run(&["check"], &envelope.to_string());
    let result = support::checked(&out, 0);
    assert_eq!(out.exit, 0, "{result}");
    assert_eq!(result["records"][0]["authenticated"], true);
    assert_eq!(result["warnings"][0]["code"], "tls.verification_disabled");
}
