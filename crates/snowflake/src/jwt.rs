//! Key-pair authentication: an RS256 JWT whose issuer names the public key's SHA-256 fingerprint,
//! as Snowflake documents for `SNOWFLAKE_JWT`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub(crate) fn parse_key(pem: &str) -> Result<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| {
            Error::Config(
                "the private key is not an unencrypted PKCS#8 or PKCS#1 RSA key in PEM form".into(),
            )
        })
}

/// `SHA256:<base64 of the SHA-256 of the DER public key>`, as shown by `DESC USER`.
pub(crate) fn public_key_fingerprint(key: &RsaPrivateKey) -> Result<String> {
    let der = RsaPublicKey::from(key)
        .to_public_key_der()
        .map_err(|e| Error::Config(format!("cannot encode the public key: {e}")))?;
    Ok(format!(
        "SHA256:{}",
        STANDARD.encode(Sha256::digest(der.as_bytes()))
    ))
}

/// Account and user as Snowflake expects them in the claims: upper case, account without its
/// region or cloud suffix.
fn qualified(account: &str, user: &str) -> String {
    let account = account.split('.').next().unwrap_or(account).to_uppercase();
    format!("{account}.{}", user.to_uppercase())
}

pub(crate) fn token(account: &str, user: &str, key: &RsaPrivateKey, now: i64) -> Result<String> {
    let subject = qualified(account, user);
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": format!("{subject}.{}", public_key_fingerprint(key)?),
        "sub": subject,
        "iat": now,
        "exp": now + 3600 - 60,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = SigningKey::<Sha256>::new(key.clone()).sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::signature::Verifier;

    #[test]
    fn jwt_is_signed_and_names_the_key() {
        let mut rng = rand_core_rng();
        let key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = parse_key(&pem).unwrap();
        let jwt = token("xy12345.eu-west-1", "loader", &key, 1_700_000_000).unwrap();

        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "XY12345.LOADER");
        let iss = claims["iss"].as_str().unwrap();
        assert!(iss.starts_with("XY12345.LOADER.SHA256:"), "{iss}");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3540
        );

        let signature =
            Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(RsaPublicKey::from(&key));
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn a_bad_key_says_what_is_wrong_without_echoing_it() {
        let err = parse_key("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("PKCS#8") && !text.contains("c2VjcmV0"),
            "{text}"
        );
    }

    fn rand_core_rng() -> impl rsa::rand_core::CryptoRngCore {
        rsa::rand_core::OsRng
    }
}
