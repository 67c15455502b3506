//! The key checks shared by `vecgate check --config` and `vecgate serve`: whether a configured
//! PEM public key or HMAC secret fits every configured algorithm. Both commands call these
//! functions, so a key one accepts the other accepts too, with the same message otherwise.

use super::Algorithm;
use jsonwebtoken::{AlgorithmFamily, DecodingKey};

/// Why a configured key cannot verify the configured algorithms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("this is a private key; give vecgate the public key only")]
    PrivateKey,
    #[error("expected a PUBLIC KEY PEM block, found {0}")]
    NotAPublicKey(String),
    #[error("no PEM block found")]
    NoPem,
    #[error("not an RSA, EC or Ed25519 public key")]
    UnknownKeyType,
    #[error("{key} cannot verify {algorithm}")]
    WrongFamily { key: &'static str, algorithm: &'static str },
    #[error("the key's curve does not match {0}")]
    WrongCurve(&'static str),
    #[error("the key is not a valid {0} key")]
    Invalid(&'static str),
    #[error("unreadable key")]
    Unreadable,
    #[error("a shared secret cannot verify {0}")]
    SecretForPublicKeyAlgorithm(&'static str),
    #[error("the secret has {have} bytes; the configured algorithms need at least {need}")]
    SecretTooShort { have: usize, need: usize },
}

impl From<Algorithm> for jsonwebtoken::Algorithm {
    fn from(alg: Algorithm) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match alg {
            Algorithm::HS256 => J::HS256,
            Algorithm::HS384 => J::HS384,
            Algorithm::HS512 => J::HS512,
            Algorithm::RS256 => J::RS256,
            Algorithm::RS384 => J::RS384,
            Algorithm::RS512 => J::RS512,
            Algorithm::PS256 => J::PS256,
            Algorithm::PS384 => J::PS384,
            Algorithm::PS512 => J::PS512,
            Algorithm::ES256 => J::ES256,
            Algorithm::ES384 => J::ES384,
            Algorithm::EdDSA => J::EdDSA,
        }
    }
}

/// Shortest HMAC secret RFC 7518 §3.2 allows for `alg`: as long as the hash output.
pub fn min_hmac_secret_bytes(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// A shared secret for HMAC algorithms only, long enough for each of them.
pub fn hmac_key(secret: &[u8], algorithms: &[Algorithm]) -> Result<DecodingKey, KeyError> {
    if let Some(alg) = algorithms.iter().find(|a| !a.is_hmac()) {
        return Err(KeyError::SecretForPublicKeyAlgorithm(alg.name()));
    }
    let need = algorithms.iter().map(|a| min_hmac_secret_bytes(*a)).max().unwrap_or(32);
    if secret.len() < need {
        return Err(KeyError::SecretTooShort { have: secret.len(), need });
    }
    Ok(DecodingKey::from_secret(secret))
}

/// Reads a PEM public key (RSA, EC P-256/P-384 or Ed25519), detecting its type, and checks it
/// fits each algorithm (family, curve, and that it parses as a verifier).
pub fn public_key_from_pem(pem: &[u8], algorithms: &[Algorithm]) -> Result<DecodingKey, KeyError> {
    match first_pem_label(pem) {
        Some("PUBLIC KEY") | Some("RSA PUBLIC KEY") => {}
        Some(label) if label.contains("PRIVATE") => return Err(KeyError::PrivateKey),
        Some(label) => return Err(KeyError::NotAPublicKey(label.to_string())),
        None => return Err(KeyError::NoPem),
    }
    let key = DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .map_err(|_| KeyError::UnknownKeyType)?;
    for alg in algorithms {
        check_key_fits(&key, *alg)?;
    }
    Ok(key)
}

/// The label of the first `-----BEGIN <label>-----` line.
fn first_pem_label(pem: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(pem).ok()?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("-----BEGIN "))
        .and_then(|rest| rest.strip_suffix("-----"))
}

fn key_family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "a shared secret",
        AlgorithmFamily::Rsa => "an RSA key",
        AlgorithmFamily::Ec => "an EC key",
        AlgorithmFamily::Ed => "an Ed25519 key",
    }
}

fn check_key_fits(key: &DecodingKey, alg: Algorithm) -> Result<(), KeyError> {
    let jwt_alg = jsonwebtoken::Algorithm::from(alg);
    if key.family() != jwt_alg.family() {
        return Err(KeyError::WrongFamily { key: key_family_name(key.family()), algorithm: alg.name() });
    }
    // SEC1 point sizes (uncompressed, compressed) tell the curve apart.
    let bytes = key.try_get_as_bytes().map_err(|_| KeyError::Unreadable)?;
    let size_fits = match alg {
        Algorithm::ES256 => matches!(bytes.len(), 65 | 33),
        Algorithm::ES384 => matches!(bytes.len(), 97 | 49),
        Algorithm::EdDSA => bytes.len() == 32,
        _ => true,
    };
    if !size_fits {
        return Err(KeyError::WrongCurve(alg.name()));
    }
    // Building a verifier parses EC and Ed25519 points; a bad point fails here, at startup.
    // An empty signature never verifies, so Ok(false) is the expected answer.
    match jsonwebtoken::crypto::verify("", b"", key, jwt_alg) {
        Ok(_) => Ok(()),
        Err(_) => Err(KeyError::Invalid(alg.name())),
    }
}
