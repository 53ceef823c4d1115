//! TLS for the PostgreSQL archive: libpq's `sslmode` and `sslrootcert`
//! read from the connection URL, and the rustls connector they call for.
//!
//! The `postgres` crate only knows `sslmode=disable|prefer|require` and
//! rejects any other parameter, so [`TlsSettings::split`] takes both of
//! ours out of the URL before the driver parses the rest. Their meaning is
//! libpq's (PostgreSQL 15 docs, "SSL Support" in the libpq chapter):
//!
//! | `sslmode` | TLS | server certificate |
//! |-----------|-----|--------------------|
//! | `disable` | never | — |
//! | `prefer` (default) | if the server offers it, else plain | not checked |
//! | `require` | always | not checked, unless a root certificate is there: then as `verify-ca` (libpq's rule, kept for compatibility) |
//! | `verify-ca` | always | must chain to a root |
//! | `verify-full` | always | must chain to a root and name the host |
//!
//! Roots come from `sslrootcert=PATH` (a PEM file of one or more
//! certificates), else from libpq's default `~/.postgresql/root.crt` if it
//! exists. `sslrootcert=system` takes the system's trusted roots instead
//! (as in libpq 16, honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`); it makes
//! `verify-full` the default mode and refuses weaker ones, since a public
//! CA vouches for names, not for a database. Unverified modes still check
//! the handshake signature against the presented certificate
//! ([`AnyServerCertificate`]), and SCRAM channel binding still ties the
//! password exchange to that certificate.
//!
//! Over a unix socket the server never offers TLS, so `prefer` connects
//! plain there and stronger modes fail, saying the server has no TLS.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::postgres::config::SslMode as DriverSslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::Error;

/// libpq's `sslmode` values that host-aggregator supports (all but the
/// deprecated `allow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, certificate not checked.
    Prefer,
    /// TLS or fail; the certificate is checked only if a root is there.
    Require,
    /// TLS with a certificate that chains to a root.
    VerifyCa,
    /// TLS with a certificate that chains to a root and names the host.
    VerifyFull,
}

impl SslMode {
    /// Every mode, weakest first: the one list the parser and the messages
    /// use.
    pub(super) const ALL: [SslMode; 5] = [
        SslMode::Disable,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// What a bad `sslmode` is told it should be (checked against
    /// [`SslMode::ALL`] by a unit test).
    const EXPECTED: &'static str = "disable, prefer, require, verify-ca or verify-full";

    /// The name libpq gives the mode.
    pub(super) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Option<SslMode> {
        SslMode::ALL.into_iter().find(|mode| mode.name() == value)
    }
}

/// Where the roots that verify the server come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Roots {
    /// A PEM file.
    File(PathBuf),
    /// The system's trusted roots (`sslrootcert=system`).
    System,
}

/// The TLS half of a PostgreSQL connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TlsSettings {
    /// The mode asked for, or the default.
    pub(super) mode: SslMode,
    /// `sslrootcert`, if given.
    pub(super) root_cert: Option<Roots>,
}

/// How one connection is secured, once the defaults are resolved.
pub(super) struct Connector {
    /// What the driver is told: whether to ask for TLS and whether to give
    /// up without it.
    pub(super) driver_mode: DriverSslMode,
    /// The rustls connector (unused with `disable`).
    pub(super) tls: MakeRustlsConnect,
    /// For messages: the mode and what checks the certificate, e.g.
    /// `sslmode=verify-full, roots from /etc/ssl/db-ca.pem`.
    pub(super) describe: String,
}

/// Why TLS could not be set up; nothing was sent to the server.
#[derive(Debug)]
pub(super) enum TlsError {
    /// A mode that verifies the server, and no root to verify it with.
    NoRootCertificate {
        /// The mode asked for.
        mode: SslMode,
        /// The default file that was looked for.
        looked_for: Option<PathBuf>,
    },
    /// The root file could not be read or parsed.
    RootFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustls_pki_types::pem::Error,
    },
    /// The root file holds no certificate rustls accepts.
    NoUsableRoot {
        /// Where the roots came from.
        roots: String,
        /// Why each candidate was refused, if any was.
        why: Option<rustls::Error>,
    },
    /// `sslrootcert=system` with a mode that does not check host names.
    WeakModeWithSystemRoots(SslMode),
    /// rustls refused the configuration.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NoRootCertificate { mode, looked_for } => {
                write!(
                    f,
                    "sslmode={} checks the server's certificate, but ",
                    mode.name()
                )?;
                match looked_for {
                    Some(path) => write!(
                        f,
                        "the root certificate file {} does not exist",
                        path.display()
                    )?,
                    None => write!(
                        f,
                        "there is no home directory to find ~/.postgresql/root.crt in"
                    )?,
                }
                write!(
                    f,
                    "; give the CA's certificate with sslrootcert=PATH, use the system's roots with \
                     sslrootcert=system, or encrypt without checking with sslmode=require"
                )
            }
            TlsError::RootFile { path, source } => {
                write!(
                    f,
                    "cannot read the root certificates in {}: {source}",
                    path.display()
                )
            }
            TlsError::NoUsableRoot { roots, why } => {
                write!(f, "no usable root certificate in {roots}")?;
                match why {
                    Some(why) => write!(f, " ({why})"),
                    None => Ok(()),
                }
            }
            TlsError::WeakModeWithSystemRoots(mode) => write!(
                f,
                "sslmode={} may not be used with sslrootcert=system (use verify-full: any public \
                 CA can vouch for a certificate, so only the host name check makes it mean anything)",
                mode.name()
            ),
            TlsError::Rustls(why) => write!(f, "cannot configure TLS: {why}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::RootFile { source, .. } => Some(source),
            TlsError::NoUsableRoot { why, .. } => why.as_ref().map(|why| why as _),
            TlsError::Rustls(why) => Some(why),
            TlsError::NoRootCertificate { .. } | TlsError::WeakModeWithSystemRoots(_) => None,
        }
    }
}

impl TlsSettings {
    /// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query
    /// (or a `key=value` string's items) and returns the rest, for the
    /// driver, with the settings.
    ///
    /// # Errors
    /// [`Error::BadArgument`] for an unknown `sslmode` or a value that is
    /// not valid percent-encoded UTF-8.
    pub(super) fn split(url: &str) -> Result<(String, TlsSettings), Error> {
        let mut mode = None;
        let mut root_cert = None;
        let mut take = |key: &str, value: String| -> Result<bool, Error> {
            match key {
                "sslmode" => {
                    mode = Some(SslMode::parse(&value).ok_or(Error::BadArgument {
                        what: "sslmode",
                        given: value,
                        expected: SslMode::EXPECTED,
                    })?);
                    Ok(true)
                }
                "sslrootcert" => {
                    root_cert = Some(if value == "system" {
                        Roots::System
                    } else {
                        Roots::File(PathBuf::from(value))
                    });
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let rest = if url.contains("://") {
            let (head, query) = url.split_once('?').unwrap_or((url, ""));
            let mut kept = Vec::new();
            for item in query.split('&').filter(|item| !item.is_empty()) {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                let key = percent_decode(key)?;
                // A password that does not decode is not echoed.
                let value = percent_decode(value).map_err(|e| match e {
                    Error::BadArgument { what, expected, .. } if key == "password" => {
                        Error::BadArgument {
                            what,
                            given: "password=***".to_owned(),
                            expected,
                        }
                    }
                    other => other,
                })?;
                if !take(&key, value)? {
                    kept.push(item);
                }
            }
            if kept.is_empty() {
                head.to_owned()
            } else {
                format!("{head}?{}", kept.join("&"))
            }
        } else {
            // key=value form: our two keys take plain (unquoted) values.
            let mut kept = Vec::new();
            for item in url.split_whitespace() {
                let taken = match item.split_once('=') {
                    Some((key, value)) => take(key, value.to_owned())?,
                    None => false,
                };
                if !taken {
                    kept.push(item);
                }
            }
            kept.join(" ")
        };
        let mode = match (mode, &root_cert) {
            (Some(mode), _) => mode,
            // libpq 16: the system's roots make verify-full the default.
            (None, Some(Roots::System)) => SslMode::VerifyFull,
            (None, _) => SslMode::Prefer,
        };
        Ok((rest, TlsSettings { mode, root_cert }))
    }

    /// Resolves the defaults (the root file in `home`, libpq's
    /// `~/.postgresql/root.crt`) and builds the connector.
    ///
    /// # Errors
    /// [`TlsError`] if a verifying mode has no roots, the roots cannot be
    /// read, or `sslrootcert=system` comes with a weaker mode.
    pub(super) fn connector(&self, home: Option<&Path>) -> Result<Connector, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let default_root = home.map(|home| home.join(".postgresql/root.crt"));
        let roots = match &self.root_cert {
            Some(roots) => Some(roots.clone()),
            None => default_root
                .as_ref()
                .filter(|path| path.is_file())
                .map(|path| Roots::File(path.clone())),
        };
        if roots == Some(Roots::System) && self.mode != SslMode::VerifyFull {
            return Err(TlsError::WeakModeWithSystemRoots(self.mode));
        }
        // What checks the certificate: libpq's rule is that `require` with a
        // root behaves as `verify-ca`; `prefer` never checks (an attacker who
        // could fake a certificate can as well answer "no TLS").
        let check = match self.mode {
            SslMode::Disable | SslMode::Prefer => None,
            SslMode::Require => roots.map(|roots| (roots, false)),
            SslMode::VerifyCa | SslMode::VerifyFull => match roots {
                Some(roots) => Some((roots, self.mode == SslMode::VerifyFull)),
                None => {
                    return Err(TlsError::NoRootCertificate {
                        mode: self.mode,
                        looked_for: default_root,
                    });
                }
            },
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?;
        let (config, describe) = match check {
            None => (
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyServerCertificate {
                        algorithms: provider.signature_verification_algorithms,
                    }))
                    .with_no_client_auth(),
                format!(
                    "sslmode={}, server certificate not checked",
                    self.mode.name()
                ),
            ),
            Some((roots, check_name)) => {
                let (store, source) = load_roots(&roots)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(|why| TlsError::Rustls(rustls::Error::General(why.to_string())))?;
                let verifier: Arc<dyn ServerCertVerifier> = if check_name {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                };
                let what = if check_name {
                    format!("certificate and host name checked against the roots in {source}")
                } else {
                    format!("certificate checked against the roots in {source}, host name not")
                };
                (
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(verifier)
                        .with_no_client_auth(),
                    format!("sslmode={}, {what}", self.mode.name()),
                )
            }
        };
        let driver_mode = match self.mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        };
        Ok(Connector {
            driver_mode,
            tls: MakeRustlsConnect::new(config),
            describe,
        })
    }
}

/// The user's home directory, for libpq's default root file: `$HOME`, else
/// the password database's entry.
pub(super) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| home.is_absolute())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|user| user.dir)
        })
}

/// Reads `roots` into a store; returns it with where they came from.
fn load_roots(roots: &Roots) -> Result<(RootCertStore, String), TlsError> {
    let (certs, source) = match roots {
        Roots::File(path) => {
            let read = |source| TlsError::RootFile {
                path: path.clone(),
                source,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(read)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(read)?;
            (certs, path.display().to_string())
        }
        Roots::System => {
            // Unreadable entries are skipped, as OpenSSL does; an empty
            // result is reported below.
            let found = rustls_native_certs::load_native_certs();
            (found.certs, "the system's trust store".to_owned())
        }
    };
    let mut store = RootCertStore::empty();
    let mut why = None;
    for cert in certs {
        if let Err(refused) = store.add(cert) {
            why = Some(refused);
        }
    }
    if store.is_empty() {
        return Err(TlsError::NoUsableRoot { roots: source, why });
    }
    Ok((store, source))
}

/// libpq's "encrypt only" (`sslmode=require` or `prefer` with no root):
/// accepts whatever certificate the server presents, without checking who
/// signed it or whom it names. Still checks that the server holds that
/// certificate's key (the handshake signature), so the session keys are
/// shared with the certificate's owner, and SCRAM channel binding can bind
/// the password exchange to it.
#[derive(Debug)]
struct AnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the full WebPKI check except the host name. The
/// WebPKI verifier checks the chain (to a root, validity dates, key usage)
/// before the name, so a name mismatch is its last possible error and
/// means everything else passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Decodes `%XX` escapes (a URL query value).
fn percent_decode(text: &str) -> Result<String, Error> {
    let bad = || Error::BadArgument {
        what: "PostgreSQL URL parameter",
        given: text.to_owned(),
        expected: "percent-encoded UTF-8",
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Whether `error`'s chain holds a TLS failure (rustls' own error, which
/// tokio-rustls wraps in an `io::Error`).
pub(super) fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<rustls::Error>()
            || error
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, TlsSettings) {
        TlsSettings::split(url).unwrap()
    }

    #[test]
    fn expected_names_every_mode() {
        for mode in SslMode::ALL {
            assert!(SslMode::EXPECTED.contains(mode.name()), "{mode:?}");
            assert_eq!(SslMode::parse(mode.name()), Some(mode));
        }
        assert_eq!(SslMode::parse("allow"), None);
    }

    #[test]
    fn splits_our_parameters_out_of_urls() {
        let cases = [
            (
                "postgres://u:pw@h/db",
                "postgres://u:pw@h/db",
                SslMode::Prefer,
                None,
            ),
            (
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem&port=5",
                "postgres://u@h/db?port=5",
                SslMode::VerifyFull,
                Some(Roots::File("/etc/ca x.pem".into())),
            ),
            (
                "postgresql://h/db?host=/run/pg&sslmode=disable",
                "postgresql://h/db?host=/run/pg",
                SslMode::Disable,
                None,
            ),
            (
                "postgres://h/db?sslrootcert=system",
                "postgres://h/db",
                SslMode::VerifyFull,
                Some(Roots::System),
            ),
            (
                "host=h sslmode=verify-ca sslrootcert=/ca.pem user=u",
                "host=h user=u",
                SslMode::VerifyCa,
                Some(Roots::File("/ca.pem".into())),
            ),
        ];
        for (url, rest, mode, root_cert) in cases {
            assert_eq!(
                split(url),
                (rest.to_owned(), TlsSettings { mode, root_cert }),
                "{url}"
            );
        }
    }

    #[test]
    fn a_bad_mode_or_escape_is_refused_with_what_is_accepted() {
        let err = TlsSettings::split("postgres://h/db?sslmode=allow")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "bad sslmode \"allow\": expected disable, prefer, require, verify-ca or verify-full"
        );
        let err = TlsSettings::split("postgres://h/db?sslrootcert=%zz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("percent-encoded"), "{err}");
    }

    fn settings(mode: SslMode, root_cert: Option<Roots>) -> TlsSettings {
        TlsSettings { mode, root_cert }
    }

    #[test]
    fn verifying_modes_need_a_root_and_name_the_file_looked_for() {
        let home = std::env::temp_dir().join(format!("tls-home-{}", std::process::id()));
        let err = settings(SslMode::VerifyFull, None)
            .connector(Some(&home))
            .err()
            .expect("no root: an error")
            .to_string();
        assert!(
            err.starts_with("sslmode=verify-full checks the server's certificate, but the root certificate file ")
                && err.contains(&format!("{}/.postgresql/root.crt does not exist", home.display()))
                && err.contains("sslrootcert=PATH"),
            "{err}"
        );
        // Without a root, require only encrypts, as in libpq.
        let connector = settings(SslMode::Require, None)
            .connector(Some(&home))
            .unwrap_or_else(|e| panic!("require without a root: {e}"));
        assert_eq!(connector.driver_mode, DriverSslMode::Require);
        assert_eq!(
            connector.describe,
            "sslmode=require, server certificate not checked"
        );
        assert_eq!(
            settings(SslMode::Prefer, None)
                .connector(None)
                .unwrap_or_else(|e| panic!("prefer: {e}"))
                .driver_mode,
            DriverSslMode::Prefer
        );
    }

    #[test]
    fn system_roots_only_with_verify_full() {
        for mode in [SslMode::Prefer, SslMode::Require, SslMode::VerifyCa] {
            let err = settings(mode, Some(Roots::System))
                .connector(None)
                .err()
                .expect("weak mode refused")
                .to_string();
            assert!(
                err.starts_with(&format!(
                    "sslmode={} may not be used with sslrootcert=system",
                    mode.name()
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn an_unreadable_or_empty_root_file_is_named() {
        let dir = std::env::temp_dir().join(format!("tls-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = settings(SslMode::VerifyCa, Some(Roots::File(missing.clone())))
            .connector(None)
            .err()
            .expect("missing file")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "cannot read the root certificates in {}: ",
                missing.display()
            )),
            "{err}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = settings(SslMode::VerifyFull, Some(Roots::File(empty.clone())))
            .connector(None)
            .err()
            .expect("no certificate")
            .to_string();
        assert_eq!(
            err,
            format!("no usable root certificate in {}", empty.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finds_tls_failures_behind_io_errors() {
        let wrapped = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(is_tls_failure(&wrapped));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_tls_failure(&refused));
    }
}
