//! The Bitwarden key hierarchy and the two `EncString` forms `bw` decrypts.
//!
//! Recipe: `/work/shared/reference/bitwarden-protocol.md` §4. Every primitive comes from the
//! `RustCrypto` crates; this module only wires them together. Nothing here is meant to be secure
//! (the keys live for one test run), only to be exactly what `bw` expects.

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A 64-byte symmetric key as Bitwarden uses it: AES-256 key then HMAC-SHA256 key.
#[derive(Clone)]
pub struct SymmetricKey {
    enc: [u8; 32],
    mac: [u8; 32],
}

impl SymmetricKey {
    pub fn random() -> Self {
        let mut bytes = [0u8; 64];
        OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8; 64]) -> Self {
        let mut enc = [0u8; 32];
        let mut mac = [0u8; 32];
        enc.copy_from_slice(&bytes[..32]);
        mac.copy_from_slice(&bytes[32..]);
        Self { enc, mac }
    }

    /// The raw 64 bytes (enc ‖ mac), which is what gets wrapped by another key.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.enc);
        out[32..].copy_from_slice(&self.mac);
        out
    }

    /// The stretched master key (§4.1–4.2): PBKDF2-HMAC-SHA256 of the password over the
    /// lower-cased, trimmed e-mail, then HKDF-Expand (no Extract) with info "enc" and "mac".
    pub fn stretched_master_key(password: &str, salt: &str, iterations: u32) -> Self {
        let mut master_key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut master_key);
        let hkdf = Hkdf::<Sha256>::from_prk(&master_key).expect("32 bytes is a valid PRK length");
        let mut bytes = [0u8; 64];
        let (enc, mac) = bytes.split_at_mut(32);
        hkdf.expand(b"enc", enc).expect("32 bytes is a valid HKDF output length");
        hkdf.expand(b"mac", mac).expect("32 bytes is a valid HKDF output length");
        Self::from_bytes(&bytes)
    }

    /// `EncString` type 2 (`AesCbc256_HmacSha256_B64`): `2.iv|ct|mac`, fresh random IV.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let mut iv = [0u8; 16];
        OsRng.fill_bytes(&mut iv);
        self.encrypt_with_iv(plaintext, iv)
    }

    fn encrypt_with_iv(&self, plaintext: &[u8], iv: [u8; 16]) -> String {
        let ct = cbc::Encryptor::<Aes256>::new(&self.enc.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let mut mac = HmacSha256::new_from_slice(&self.mac).expect("HMAC takes any key length");
        mac.update(&iv);
        mac.update(&ct);
        let tag = mac.finalize().into_bytes();
        format!("2.{}|{}|{}", B64.encode(iv), B64.encode(ct), B64.encode(tag))
    }

    pub fn encrypt_str(&self, plaintext: &str) -> String {
        self.encrypt(plaintext.as_bytes())
    }
}

/// The user's RSA-2048 key pair (§4.5).
pub struct UserKeyPair {
    private: RsaPrivateKey,
    public: RsaPublicKey,
}

impl UserKeyPair {
    pub fn generate() -> Self {
        let private = RsaPrivateKey::new(&mut OsRng, 2048).expect("RSA-2048 generation");
        let public = RsaPublicKey::from(&private);
        Self { private, public }
    }

    /// base64 of the `SubjectPublicKeyInfo` DER.
    pub fn public_key_b64(&self) -> String {
        let der = self.public.to_public_key_der().expect("SPKI encoding");
        B64.encode(der.as_bytes())
    }

    /// The PKCS#8 DER private key, to be wrapped by the user key.
    pub fn private_key_pkcs8(&self) -> Vec<u8> {
        let der = self.private.to_pkcs8_der().expect("PKCS#8 encoding");
        der.as_bytes().to_vec()
    }

    /// `EncString` type 4 (`Rsa2048_OaepSha1_B64`) of `plaintext` under the public key.
    pub fn encrypt_oaep_sha1(&self, plaintext: &[u8]) -> String {
        let ct = self
            .public
            .encrypt(&mut OsRng, Oaep::new::<sha1::Sha1>(), plaintext)
            .expect("RSA-OAEP of 64 bytes fits a 2048-bit key");
        format!("4.{}", B64.encode(ct))
    }
}

/// HMAC-SHA256, used to sign the access tokens this server hands out.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Constant-time comparison of two MACs.
pub fn hmac_sha256_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockDecryptMut;

    fn decrypt_type2(key: &SymmetricKey, s: &str) -> Option<Vec<u8>> {
        let body = s.strip_prefix("2.")?;
        let mut parts = body.split('|');
        let iv = B64.decode(parts.next()?).ok()?;
        let ct = B64.decode(parts.next()?).ok()?;
        let tag = B64.decode(parts.next()?).ok()?;
        let mut mac = HmacSha256::new_from_slice(&key.mac).ok()?;
        mac.update(&iv);
        mac.update(&ct);
        mac.verify_slice(&tag).ok()?;
        let iv: [u8; 16] = iv.try_into().ok()?;
        cbc::Decryptor::<Aes256>::new(&key.enc.into(), &iv.into()).decrypt_padded_vec_mut::<Pkcs7>(&ct).ok()
    }

    #[test]
    fn type2_round_trips_and_detects_the_wrong_key() {
        let key = SymmetricKey::random();
        let s = key.encrypt_str("A=1\nB=two words");
        assert_eq!(decrypt_type2(&key, &s).unwrap(), b"A=1\nB=two words");
        assert!(decrypt_type2(&SymmetricKey::random(), &s).is_none());
    }

    #[test]
    fn type2_layout_is_iv_ct_mac() {
        let key = SymmetricKey::from_bytes(&[7u8; 64]);
        let s = key.encrypt_with_iv(b"", [0u8; 16]);
        let parts: Vec<&str> = s.strip_prefix("2.").unwrap().split('|').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(B64.decode(parts[0]).unwrap().len(), 16);
        // An empty plaintext pads to one full block.
        assert_eq!(B64.decode(parts[1]).unwrap().len(), 16);
        assert_eq!(B64.decode(parts[2]).unwrap().len(), 32);
    }

    #[test]
    fn stretched_key_depends_on_password_salt_and_iterations() {
        let key = |pw: &str, salt: &str, n: u32| SymmetricKey::stretched_master_key(pw, salt, n).to_bytes();
        let base = key("pw", "a@example.com", 5000);
        assert_eq!(base, key("pw", "a@example.com", 5000));
        assert_ne!(base, key("pw2", "a@example.com", 5000));
        assert_ne!(base, key("pw", "b@example.com", 5000));
        assert_ne!(base, key("pw", "a@example.com", 5001));
        // enc and mac halves come from different HKDF infos.
        assert_ne!(base[..32], base[32..]);
    }

    #[test]
    fn stretched_key_is_hkdf_expand_of_pbkdf2() {
        // Recompute §4.2 by hand with HMAC: T1 = HMAC(PRK, info ‖ 0x01).
        let mut prk = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pw", b"a@example.com", 5000, &mut prk);
        let enc = hmac_sha256(&prk, b"enc\x01");
        let mac = hmac_sha256(&prk, b"mac\x01");
        let key = SymmetricKey::stretched_master_key("pw", "a@example.com", 5000).to_bytes();
        assert_eq!(key[..32], enc);
        assert_eq!(key[32..], mac);
    }

    #[test]
    fn rsa_public_key_is_spki_and_oaep_decrypts() {
        let pair = UserKeyPair::generate();
        assert!(pair.public_key_b64().starts_with("MIIBIjAN"));
        let s = pair.encrypt_oaep_sha1(&[9u8; 64]);
        let ct = B64.decode(s.strip_prefix("4.").unwrap()).unwrap();
        let pt = pair.private.decrypt(Oaep::new::<sha1::Sha1>(), &ct).unwrap();
        assert_eq!(pt, [9u8; 64]);
    }
}
