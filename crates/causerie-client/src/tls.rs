//! Which certificate authorities the client trusts for `https://` servers.
//!
//! The platform's store by default. On Android, OpenSSL is built from source with the app
//! (`vendored`): openssl-probe finds no store of its own there, and native-tls only adds the
//! files of `/system/etc/security/cacerts` (which Android 14 no longer updates; its roots moved to
//! an updatable APEX). So the app trusts Mozilla's roots, compiled in (`webpki-root-certs`),
//! besides. The connector is built by the same function on every platform, so that the host's
//! tests exercise the Android path too.

use crate::error::ClientError;

/// The certificate authorities an `https://` server's certificate must chain to.
#[derive(Clone, PartialEq, Eq)]
pub enum TrustedRoots {
    /// The platform's store: the default, except on Android.
    System,
    /// These certificates (DER) instead of the platform's store: Mozilla's roots on Android
    /// ([`TrustedRoots::mozilla`]), a private authority elsewhere. On Android, native-tls adds the
    /// files of the system store besides, whatever it is told.
    Only(Vec<Vec<u8>>),
}

/// A count, not the certificates (Mozilla's are about 150).
impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => f.write_str("System"),
            Self::Only(roots) => write!(f, "Only({} certificates)", roots.len()),
        }
    }
}

impl Default for TrustedRoots {
    fn default() -> Self {
        if cfg!(target_os = "android") {
            Self::mozilla()
        } else {
            Self::System
        }
    }
}

impl TrustedRoots {
    /// The roots Mozilla trusts, as compiled into this build (the Android default).
    pub fn mozilla() -> Self {
        Self::Only(
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|certificate| certificate.to_vec())
                .collect(),
        )
    }
}

/// The TLS connector both transports use (polling and websocket).
pub(crate) fn connector(roots: &TrustedRoots) -> Result<native_tls::TlsConnector, ClientError> {
    let failed = |reason: String| ClientError::Tls { reason };
    let mut builder = native_tls::TlsConnector::builder();
    if let TrustedRoots::Only(certificates) = roots {
        builder.disable_built_in_roots(true);
        for der in certificates {
            let certificate = native_tls::Certificate::from_der(der)
                .map_err(|e| failed(format!("a trusted root cannot be read: {e}")))?;
            builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| failed(e.to_string()))
}
