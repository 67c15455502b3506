//! Where verification keys come from: one configured key ([`StaticKey`]) or a JWKS key set
//! ([`super::jwks::JwksResolver`]), both behind [`KeyResolver`]. Whether a configured key
//! fits the configured algorithms is checked by [`crate::config::keys`], the same check
//! `vecgate check --config` runs.

use super::AuthnError;
use crate::config::Algorithm;
use jsonwebtoken::DecodingKey;
use std::sync::Arc;

/// Verification keys, looked up by the token's `kid` and `alg`.
///
/// A configured PEM or secret is one [`StaticKey`]; a JWKS key set implements this trait too
/// and selects by `kid`.
pub trait KeyResolver: Send + Sync {
    /// The key that verifies a token naming `kid` and signed with `alg` (`alg` is already
    /// known to be configured). Returning a key of another family is refused by the caller.
    /// Ed25519 keys must be 32 bytes (jsonwebtoken slices them unchecked); EC and Ed25519 keys
    /// should pass [`crate::config::keys::public_key_from_pem`]'s checks or their JWK equivalent.
    /// May wait for the keys to be fetched.
    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthnError>;

    /// [`KeyResolver::key_for`]'s answer when it can be given without waiting; `None` when
    /// it would wait for the keys to be fetched. A resolver that never waits needs nothing
    /// more than `key_for`.
    fn key_now(&self, kid: Option<&str>, alg: Algorithm) -> Option<Result<Arc<DecodingKey>, AuthnError>> {
        Some(self.key_for(kid, alg))
    }

    /// Changes whenever tokens verified earlier must be verified again: the keys were
    /// fetched anew (one may have been removed or replaced) or have grown too old to use.
    /// The verified-token cache only serves entries made under the current version.
    fn key_set_version(&self) -> u64;
}

/// One configured key, used whatever `kid` a token names.
pub struct StaticKey {
    key: Arc<DecodingKey>,
}

impl StaticKey {
    pub fn new(key: DecodingKey) -> StaticKey {
        StaticKey { key: Arc::new(key) }
    }
}

impl KeyResolver for StaticKey {
    fn key_for(&self, _kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthnError> {
        if self.key.family() == jsonwebtoken::Algorithm::from(alg).family() {
            Ok(Arc::clone(&self.key))
        } else {
            Err(AuthnError::AlgorithmNotAllowed)
        }
    }

    /// A configured key never changes while the process runs.
    fn key_set_version(&self) -> u64 {
        0
    }
}

