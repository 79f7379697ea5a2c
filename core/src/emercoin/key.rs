//! Private keys: generation, WIF import/export, and the public key hash that names
//! the key's addresses.

use k256::ecdsa::SigningKey;

use super::{Address, Network, hash160};

/// A secp256k1 private key with the "compressed public key" flag that WIF carries.
#[derive(Clone)]
pub struct PrivateKey {
    key: SigningKey,
    compressed: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the private key is not valid base58check WIF")]
    NotWif,
    #[error("the WIF private key has version byte {0}, expected 128 (main) or 239 (test)")]
    UnknownVersion(u8),
    #[error("the private key bytes are not a valid secp256k1 scalar")]
    OutOfRange,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "PrivateKey(<secret>, compressed={})", self.compressed)
    }
}

impl PrivateKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        loop {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            if let Ok(key) = Self::from_bytes(&bytes, true) {
                return key;
            }
        }
    }

    pub fn from_bytes(bytes: &[u8; 32], compressed: bool) -> Result<Self, KeyError> {
        let key = SigningKey::from_slice(bytes).map_err(|_| KeyError::OutOfRange)?;
        Ok(PrivateKey { key, compressed })
    }

    /// Decode a WIF string; returns the key and the network family it was made for
    /// (testnet and regtest share version 239, reported as [`Network::Test`]).
    pub fn from_wif(wif: &str) -> Result<(Self, Network), KeyError> {
        let raw = super::base58check_decode(wif.trim()).ok_or(KeyError::NotWif)?;
        let network = match raw.first() {
            Some(128) => Network::Main,
            Some(239) => Network::Test,
            Some(v) => return Err(KeyError::UnknownVersion(*v)),
            None => return Err(KeyError::NotWif),
        };
        let compressed = match raw.len() {
            33 => false,
            34 if raw[33] == 1 => true,
            _ => return Err(KeyError::NotWif),
        };
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&raw[1..33]);
        Ok((Self::from_bytes(&bytes, compressed)?, network))
    }

    pub fn to_wif(&self, network: Network) -> String {
        let mut raw = Vec::with_capacity(34);
        raw.push(network.wif_version());
        raw.extend_from_slice(&self.key.to_bytes());
        if self.compressed {
            raw.push(1);
        }
        super::base58check_encode(&raw)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.key.to_bytes());
        out
    }

    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// SEC1 encoding of the public key (33 bytes compressed, 65 uncompressed).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.key.verifying_key().to_sec1_bytes_with(self.compressed)
    }

    /// hash160 of the public key: the hash inside this key's addresses.
    pub fn key_hash(&self) -> [u8; 20] {
        hash160(&self.public_key_bytes())
    }

    pub fn p2pkh_address(&self, network: Network) -> Address {
        Address::p2pkh(network, self.key_hash())
    }

    /// The bech32 address; only defined for compressed keys, as in Bitcoin Core.
    pub fn p2wpkh_address(&self, network: Network) -> Option<Address> {
        self.compressed.then(|| Address::p2wpkh(network, self.key_hash()))
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

trait Sec1With {
    fn to_sec1_bytes_with(&self, compressed: bool) -> Vec<u8>;
}

impl Sec1With for k256::ecdsa::VerifyingKey {
    fn to_sec1_bytes_with(&self, compressed: bool) -> Vec<u8> {
        self.to_sec1_point(compressed).as_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wif_round_trip() {
        let key = PrivateKey::generate();
        for net in [Network::Main, Network::Test] {
            let wif = key.to_wif(net);
            let (back, n) = PrivateKey::from_wif(&wif).unwrap();
            assert_eq!(n, net);
            assert_eq!(back.to_bytes(), key.to_bytes());
            assert!(back.is_compressed());
        }
        assert_eq!(PrivateKey::from_wif("garbage").unwrap_err(), KeyError::NotWif);
    }

    #[test]
    fn known_key_gives_known_address() {
        // Private key 1: its compressed public key hash is well known.
        let mut one = [0u8; 32];
        one[31] = 1;
        let key = PrivateKey::from_bytes(&one, true).unwrap();
        assert_eq!(hex::encode(key.key_hash()), "751e76e8199196d454941c45d1b3a323f1433bd6");
        let unc = PrivateKey::from_bytes(&one, false).unwrap();
        assert_eq!(hex::encode(unc.key_hash()), "91b24bf9f5288532960ac687abb035127b1d28a5");
    }
}
